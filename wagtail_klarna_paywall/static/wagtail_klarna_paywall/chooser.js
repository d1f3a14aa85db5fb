/*
 * The Payway product chooser widget of the offer block.
 *
 * It is Wagtail's own Chooser widget (window.Chooser, from wagtailadmin/js/chooser-widget.js); the only
 * addition is that choosing a product also fills the sibling fields of the same offer block (kind, name,
 * period id, period type, price, period, the product codes it includes, trial), so the editor never types
 * what Payway already knows.
 * Siblings are found by name: the widget's input is "<prefix>-product_code", theirs "<prefix>-<field>".
 *
 * Those copied fields are not shown as inputs (blocks/offer_form.html): the block shows them as a summary
 * (name, kind, price per period, trial, what it gives access to), written here from the fields' values
 * when the block is drawn and after each choice, with the words the template put in data attributes (the
 * editor's language). The chooser is the way to change them.
 */
(function () {
  'use strict';

  var FIELDS = [
    'product_kind',
    'product_name',
    'period_id',
    'period_type',
    'price',
    'price_period',
    'included_product_codes',
  ];

  function fillSiblings(input, data) {
    var prefix = input.name.replace(/product_code$/, '');
    var form = input.form || document;
    var setField = function (field, value) {
      var el = form.querySelector('[name="' + prefix + field + '"]');
      if (!el || value === undefined || value === null) return;
      if (el.type === 'checkbox') {
        el.checked = Boolean(value);
      } else {
        el.value = value;
      }
      el.dispatchEvent(new Event('change', { bubbles: true }));
    };
    FIELDS.forEach(function (field) {
      setField(field, data[field]);
    });
    // The label readers see is the editor's; until they write one, Payway's product name stands in.
    var label = form.querySelector('[name="' + prefix + 'label"]');
    if (label && !label.value && data.product_name) {
      setField('label', data.product_name);
    }
    // A free campaign period is a trial; anything else is not (the editor may still untick it).
    setField('is_trial', Boolean(data.is_trial));
    if (data.is_trial) {
      // Trials need Klarna's direct debit (loaded as "pay now" when the session lists no direct debit).
      setField('payment_method_category', 'direct_debit');
    }
  }

  var PERIOD_RE = /^(?:(\d{1,4}) )?(day|week|month|year)s?$/;

  function fieldOf(input, field) {
    var prefix = input.name.replace(/product_code$/, '');
    var form = input.form || document;
    return form.querySelector('[name="' + prefix + field + '"]');
  }

  function valueOf(input, field) {
    var el = fieldOf(input, field);
    if (!el) return '';
    if (el.type === 'checkbox') return el.checked;
    return (el.value || '').trim();
  }

  function periodWords(summary, stored) {
    // "month" -> "månad", "3 month" -> "3 månader" (as blocks.period_label does for readers).
    var match = PERIOD_RE.exec(stored || '');
    if (!match) return stored || '';
    var length = parseInt(match[1] || '1', 10);
    var words = (summary.getAttribute('data-wkp-unit-' + match[2]) || '').split('|');
    return length === 1 ? words[0] || match[2] : length + ' ' + (words[1] || match[2]);
  }

  function periodDuration(summary, stored) {
    var match = PERIOD_RE.exec(stored || '');
    if (!match) return stored || '';
    var length = parseInt(match[1] || '1', 10);
    var words = (summary.getAttribute('data-wkp-unit-' + match[2]) || '').split('|');
    return length + ' ' + (length === 1 ? words[0] : words[1] || words[0]);
  }

  function line(summary, className, text) {
    var p = document.createElement('p');
    p.className = className;
    p.textContent = text;
    summary.appendChild(p);
  }

  function renderSummary(input) {
    var block = input.closest('.wkp-offer-block');
    var summary = block && block.querySelector('[data-wkp-offer-summary]');
    if (!summary) return;
    var text = function (name) {
      return summary.getAttribute('data-wkp-' + name) || '';
    };
    summary.textContent = '';
    var code = (input.value || '').trim();
    if (!code) {
      line(summary, 'wkp-offer-summary-admin__empty', text('empty'));
      return;
    }
    var heading = document.createElement('h3');
    heading.className = 'wkp-offer-summary-admin__heading';
    heading.textContent = text('heading');
    summary.appendChild(heading);
    var name = valueOf(input, 'product_name');
    line(summary, 'wkp-offer-summary-admin__name', name && name !== code ? name + ' (' + code + ')' : code);
    var kind = valueOf(input, 'product_kind') === 'campaign' ? text('campaign') : text('package');
    var periodType = valueOf(input, 'period_type') === 'limited' ? text('limited') : text('recurring');
    line(summary, 'wkp-offer-summary-admin__kind', kind + ' · ' + periodType);
    var price = valueOf(input, 'price');
    var period = valueOf(input, 'price_period');
    var trial = valueOf(input, 'is_trial');
    if (trial && (!price || parseFloat(price) === 0)) {
      line(
        summary,
        'wkp-offer-summary-admin__trial',
        period ? text('free-trial-for').replace('__PERIOD__', periodDuration(summary, period)) : text('free-trial')
      );
    } else {
      if (trial) line(summary, 'wkp-offer-summary-admin__trial', text('free-trial'));
      if (price) {
        var amount = parseFloat(price).toLocaleString(document.documentElement.lang || undefined, {
          maximumFractionDigits: 2,
        });
        line(
          summary,
          'wkp-offer-summary-admin__price',
          text('price').replace('__PRICE__', amount).replace('__PERIOD__', periodWords(summary, period))
        );
      }
    }
    var codes = valueOf(input, 'included_product_codes') || code;
    line(summary, 'wkp-offer-summary-admin__opens', text('opens').replace('__CODES__', codes));
  }

  function ProductChooserFactory(html, idPattern, opts) {
    this.html = html;
    this.idPattern = idPattern;
    this.opts = opts || {};
  }

  ProductChooserFactory.prototype.render = function (placeholder, name, id, initialState) {
    placeholder.outerHTML = this.html.replace(/__NAME__/g, name).replace(/__ID__/g, id);
    var widget = new window.Chooser(id, this.opts);
    widget.setState(initialState);
    widget.addEventListener('chosen', function (event) {
      fillSiblings(widget.input, event.detail || {});
      renderSummary(widget.input);
    });
    // The siblings are drawn after this field (it comes first in the block): summarise once they are.
    window.setTimeout(function () {
      renderSummary(widget.input);
    }, 0);
    return widget;
  };

  window.telepath.register('wagtail_klarna_paywall.ProductChooser', ProductChooserFactory);
})();
