/*
 * The checkout page's Klarna widget: load it, authorize on the pay button's click, post the token.
 *
 * Reads its settings from <script type="application/json" id="wkp-klarna-config"> (Django's json_script):
 * the Klarna client token, the payment method category, timeouts and the reader messages. No inline
 * script is needed, so the page runs under a strict Content-Security-Policy.
 *
 * Klarna's rules followed here (docs/payway-contract.md#klarna-js-sdk): authorize() is called directly in
 * the click handler (nothing awaited before it, or browsers block Klarna's pop-up); the button is disabled
 * while it runs, so two authorizations never run at once; the form is validated again on the server anyway.
 */
(function () {
  "use strict";

  var configNode = document.getElementById("wkp-klarna-config");
  if (!configNode) {
    return;
  }
  var config;
  try {
    config = JSON.parse(configNode.textContent);
  } catch (err) {
    return;
  }
  var messages = config.messages || {};
  var form = document.querySelector("[data-wkp-checkout-form]");
  var payButton = document.querySelector("[data-wkp-pay]");
  var tokenInput = document.querySelector("[data-wkp-authorization-token]");
  var statusNode = document.querySelector("[data-wkp-status]");
  var declinedForm = document.querySelector("[data-wkp-declined-form]");
  var container = document.querySelector(config.container || "#wkp-klarna-container");
  var fallback = document.querySelector("[data-wkp-fallback]");
  var fallbackText = document.querySelector("[data-wkp-fallback-text]");
  var retryButton = document.querySelector("[data-wkp-retry]");

  var started = false; // init + load called
  var ready = false; // load answered show_form: true
  var busy = false; // an authorize is running or the form is being posted
  var loadTimer = null;

  function setStatus(text) {
    if (statusNode) {
      statusNode.textContent = text || "";
    }
  }

  function setFieldsLocked(locked) {
    if (!form) {
      return;
    }
    Array.prototype.forEach.call(form.querySelectorAll("input:not([type=hidden])"), function (input) {
      input.readOnly = locked;
    });
  }

  function enablePay(enabled) {
    if (payButton) {
      payButton.disabled = !enabled;
    }
  }

  function showFallback(text) {
    ready = false;
    enablePay(false);
    if (container) {
      container.hidden = true;
    }
    if (!fallback) {
      return;
    }
    if (fallbackText) {
      fallbackText.textContent = text || messages.widgetUnavailable || "";
    }
    fallback.hidden = false;
    if (retryButton) {
      retryButton.disabled = true;
      // A retry right away would most likely fail the same way: offer it after a few seconds.
      window.setTimeout(function () {
        retryButton.disabled = false;
      }, config.retryDelayMs || 3000);
    }
  }

  function category() {
    return config.paymentMethodCategory;
  }

  function onLoaded(res) {
    window.clearTimeout(loadTimer);
    if (res && res.show_form) {
      ready = true;
      if (container) {
        container.hidden = false;
      }
      if (fallback) {
        fallback.hidden = true;
      }
      enablePay(true);
    } else {
      showFallback(messages.widgetUnavailable);
    }
  }

  function start() {
    if (!category()) {
      // No payment method category of the session fits this offer: never init, load or authorize.
      showFallback(messages.noPaymentMethod);
      return;
    }
    if (started || !window.Klarna || !window.Klarna.Payments) {
      return;
    }
    started = true;
    try {
      window.Klarna.Payments.init({ client_token: config.clientToken });
      window.Klarna.Payments.load(
        { container: config.container, payment_method_category: category() },
        {},
        onLoaded
      );
    } catch (err) {
      // Klarna has already called back with show_form: false when it throws; make sure of the fallback.
      showFallback(messages.widgetUnavailable);
    }
  }

  function declineInWidget() {
    // Klarna will not offer a payment on this session: tell the server (it ends the attempt and shows
    // the reader why, with a button to start again).
    busy = true;
    enablePay(false);
    setStatus(messages.declined);
    if (container) {
      container.hidden = true;
    }
    if (declinedForm) {
      HTMLFormElement.prototype.submit.call(declinedForm);
    }
  }

  function release(text) {
    busy = false;
    setFieldsLocked(false);
    enablePay(ready);
    setStatus(text);
  }

  function submitToken(token) {
    tokenInput.value = token;
    // Placing the order can take several seconds: say so while the button stays disabled.
    setStatus(messages.placing);
    // The prototype's submit: a field named "submit" cannot shadow it, and no submit event re-enters.
    HTMLFormElement.prototype.submit.call(form);
  }

  function onAuthorized(res) {
    res = res || {};
    if (res.approved && res.authorization_token) {
      submitToken(res.authorization_token);
      return;
    }
    if (res.approved && res.finalize_required) {
      try {
        window.Klarna.Payments.finalize({ payment_method_category: category() }, {}, onAuthorized);
      } catch (err) {
        release(messages.aborted);
      }
      return;
    }
    if (res.show_form === false) {
      declineInWidget();
      return;
    }
    // approved: false with show_form: true: the reader aborted or has a field to fix; let them retry.
    var invalid = res.error && res.error.invalid_fields && res.error.invalid_fields.length;
    release(invalid ? messages.invalidFields : messages.aborted);
  }

  function onPay(event) {
    event.preventDefault();
    if (busy || !ready) {
      return;
    }
    // Browser-side check of the new-customer fields; synchronous, so authorize() stays in the handler.
    if (form.reportValidity && !form.reportValidity()) {
      return;
    }
    busy = true;
    enablePay(false);
    setFieldsLocked(true);
    try {
      window.Klarna.Payments.authorize({ payment_method_category: category() }, {}, onAuthorized);
    } catch (err) {
      release(messages.aborted);
    }
  }

  if (form && payButton) {
    // A click on the pay button (also fired by pressing Enter in a field) starts Klarna's authorization;
    // the form itself is only ever posted by submitToken(), which does not fire a submit event.
    payButton.addEventListener("click", onPay);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
    });
  }
  if (retryButton) {
    retryButton.addEventListener("click", function () {
      // A GET of this page never creates a Payway session; it renders the same client token again.
      window.location.reload();
    });
  }

  if (!category()) {
    start(); // the fallback, and nothing else: the page does not load Klarna's SDK either
    return;
  }

  // The SDK calls klarnaAsyncCallback once it has loaded (it is included after this file, async).
  var previousCallback = window.klarnaAsyncCallback;
  window.klarnaAsyncCallback = function () {
    if (typeof previousCallback === "function") {
      previousCallback();
    }
    start();
  };
  loadTimer = window.setTimeout(function () {
    if (!ready) {
      showFallback(messages.widgetUnavailable);
    }
  }, config.loadTimeoutMs || 10000);
  start();
})();
