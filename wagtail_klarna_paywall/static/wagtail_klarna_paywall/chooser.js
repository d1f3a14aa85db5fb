/*
 * The Payway product chooser widget of the offer block.
 *
 * It is Wagtail's own Chooser widget (window.Chooser, from wagtailadmin/js/chooser-widget.js); the only
 * addition is that choosing a product also fills the sibling fields of the same offer block (kind, name,
 * period id, period type, price, period, the product codes it includes, trial), so the editor never types
 * what Payway already knows.
 * Siblings are found by name: the widget's input is "<prefix>-product_code", theirs "<prefix>-<field>".
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
    });
    return widget;
  };

  window.telepath.register('wagtail_klarna_paywall.ProductChooser', ProductChooserFactory);
})();
