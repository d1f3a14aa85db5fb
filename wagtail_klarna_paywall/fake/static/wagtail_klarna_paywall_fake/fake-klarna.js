/*
 * A fake of Klarna's Payments SDK (https://x.klarnacdn.net/kp/lib/v1/api.js) for the sandbox and tests.
 *
 * Same surface: Klarna.Payments.init / load / authorize / reauthorize / finalize / on / off, then
 * window.klarnaAsyncCallback() like the real SDK. Instead of Klarna's iframe it renders a visible TEST
 * widget where the reader picks the outcome. An approval returns the authorization token
 * "fake-auth-<scenario>-<random>", which tells the fake Payway's place_order what to do.
 *
 * No dependencies, no eval, no inline script or style (a strict CSP with script-src 'self' and
 * style-src 'self' allows it): styles come from fake-klarna.css next to this file.
 *
 * Tests can preset behaviour before this file runs with window.fakeKlarnaOptions = {
 *   load: "unavailable",      // load() answers {show_form: false}
 *   outcome: "decline",       // pre-select an outcome
 *   delay: 0                  // milliseconds before authorize's callback (default 150)
 * }.
 */
(function () {
  "use strict";

  if (window.Klarna && window.Klarna.Payments && window.Klarna.Payments.isFake) {
    return;
  }

  var OUTCOMES = [
    { value: "ok", label: "Approve (godkänn)" },
    { value: "decline", label: "Decline: approved false, show_form false" },
    { value: "abort", label: "Abort: approved false, show_form true" },
    { value: "invalid_fields", label: "Fixable error: invalid billing_address.email" },
    { value: "finalize_required", label: "Approve after finalize (finalize_required)" },
    { value: "payment_method_failed", label: "Approve, then place_order fails: 403 payment method failed" },
    { value: "validation", label: "Approve, then place_order fails: 400 validation" },
    { value: "expired_token", label: "Approve, then place_order fails: 401 expired token" },
    { value: "server_error", label: "Approve, then place_order fails: 500" },
    { value: "slow", label: "Approve, then place_order is slower than the read timeout" },
    { value: "garbage", label: "Approve, then place_order answers 200 with garbage" },
    { value: "ssn_already_taken", label: "Approve, then place_order fails: SSN already taken" },
    { value: "bad_redirect", label: "Approve, then place_order redirects to evil.example" },
  ];
  var EVENTS = ["heightChanged", "fullscreenOverlayShown", "fullscreenOverlayHidden"];

  var scriptSrc = document.currentScript && document.currentScript.src;
  var clientToken = null;
  var loaded = null; // {container, category, instanceId}
  var handlers = {};
  var counter = 0;

  function options() {
    return window.fakeKlarnaOptions || {};
  }

  function klarnaError(name, message) {
    var err = new Error(message);
    err.name = name;
    return err;
  }

  function randomId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map
      .call(bytes, function (b) {
        return ("0" + b.toString(16)).slice(-2);
      })
      .join("");
  }

  // Klarna allows (options, callback) as well as (options, data, callback).
  function splitArgs(args) {
    var opts = args[0] || {};
    var data = args[1];
    var callback = args[2];
    if (typeof data === "function") {
      callback = data;
      data = {};
    }
    return { opts: opts, data: data || {}, callback: typeof callback === "function" ? callback : function () {} };
  }

  function emit(name, value) {
    (handlers[name] || []).slice().forEach(function (handler) {
      handler(value);
    });
  }

  function ensureStylesheet() {
    if (!scriptSrc || document.querySelector("link[data-fake-klarna-css]")) {
      return;
    }
    var link = document.createElement("link");
    link.rel = "stylesheet";
    // Under a hashing static storage (ManifestStaticFilesStorage, whitenoise) this script is
    // fake-klarna.<hash>.js; the stylesheet's own hash is unknown here, and the unhashed copy is served too.
    link.href = scriptSrc.replace(/fake-klarna(\.[0-9a-f]+)?\.js(\?.*)?$/, "fake-klarna.css");
    link.setAttribute("data-fake-klarna-css", "");
    document.head.appendChild(link);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text) {
      node.textContent = text;
    }
    return node;
  }

  function render(container, category, instanceId) {
    counter += 1;
    var group = "fake-klarna-outcome-" + counter;
    var preset = options().outcome || "ok";
    var box = el("div", "fake-klarna");
    box.id = "fake-klarna-widget" + (instanceId ? "-" + instanceId : "");
    box.setAttribute("data-fake-klarna", "widget");
    box.setAttribute("data-fake-klarna-category", category || "");
    box.setAttribute("role", "group");

    var badge = el("p", "fake-klarna__badge", "TEST WIDGET: fake Klarna, no real payment");
    badge.setAttribute("data-fake-klarna-label", "test");
    box.appendChild(badge);
    box.appendChild(el("p", "fake-klarna__category", "Payment method category: " + (category || "(session default)")));

    var fieldset = el("fieldset", "fake-klarna__outcomes");
    fieldset.appendChild(el("legend", null, "What should Klarna answer?"));
    OUTCOMES.forEach(function (outcome) {
      var id = group + "-" + outcome.value;
      var row = el("div", "fake-klarna__outcome");
      var input = document.createElement("input");
      input.type = "radio";
      input.name = group;
      input.id = id;
      input.value = outcome.value;
      input.checked = outcome.value === preset;
      // Klarna's widget lives in an iframe, so nothing of it is posted with the page's form. Tie the
      // radios to a form that does not exist to keep them out of an enclosing form's submission too.
      input.setAttribute("form", "fake-klarna-no-form");
      input.setAttribute("data-fake-klarna-outcome", outcome.value);
      var label = el("label", null, outcome.label);
      label.htmlFor = id;
      row.appendChild(input);
      row.appendChild(label);
      fieldset.appendChild(row);
    });
    box.appendChild(fieldset);
    var status = el("p", "fake-klarna__status");
    status.setAttribute("data-fake-klarna-status", "");
    status.setAttribute("aria-live", "polite");
    box.appendChild(status);

    while (container.firstChild) {
      container.removeChild(container.firstChild);
    }
    container.appendChild(box);
    container.setAttribute("data-fake-klarna-loaded", category || "");
    return box;
  }

  function chosenOutcome() {
    var checked = loaded && loaded.box.querySelector("input[data-fake-klarna-outcome]:checked");
    return checked ? checked.value : "ok";
  }

  function setStatus(text) {
    var status = loaded && loaded.box.querySelector("[data-fake-klarna-status]");
    if (status) {
      status.textContent = text;
    }
  }

  function resolveContainer(container) {
    if (container && typeof container === "object" && container.nodeType === 1) {
      return container;
    }
    if (typeof container === "string" && container) {
      try {
        return document.querySelector(container);
      } catch (e) {
        return null;
      }
    }
    return null;
  }

  function init(opts) {
    var token = opts && opts.client_token;
    if (typeof token !== "string" || !token) {
      throw klarnaError("InvalidClientTokenError", "client_token must be a non-empty string");
    }
    clientToken = token;
    loaded = null;
  }

  function load() {
    var a = splitArgs(arguments);
    if (!clientToken || !arguments.length) {
      a.callback({ show_form: false });
      throw klarnaError("ApplicationNotInitializedError", "Call Klarna.Payments.init before load");
    }
    var container = resolveContainer(a.opts.container);
    if (!container) {
      a.callback({ show_form: false });
      throw klarnaError("InvalidContainerSelectorError", "The container was not found");
    }
    var category = a.opts.payment_method_category;
    if (!category && a.opts.payment_method_categories) {
      category = a.opts.payment_method_categories[0];
    }
    ensureStylesheet();
    var box = render(container, category, a.opts.instance_id);
    loaded = { box: box, category: category || "", instanceId: a.opts.instance_id || "" };
    window.setTimeout(function () {
      if (options().load === "unavailable") {
        box.setAttribute("data-fake-klarna-state", "unavailable");
        a.callback({ show_form: false });
        return;
      }
      box.setAttribute("data-fake-klarna-state", "loaded");
      a.callback({ show_form: true });
      emit("heightChanged", box.offsetHeight);
    }, 0);
  }

  function authorizeLike(name, allowFinalize) {
    return function () {
      var a = splitArgs(arguments);
      if (!loaded) {
        a.callback({ show_form: false, approved: false });
        throw klarnaError("ApplicationNotLoadedError", "Call Klarna.Payments.load before " + name);
      }
      var category = a.opts.payment_method_category;
      if (!category && a.opts.payment_method_categories) {
        category = a.opts.payment_method_categories[0];
      }
      if ((category || "") !== loaded.category) {
        a.callback({ show_form: false, approved: false });
        throw klarnaError(
          "PaymentMethodCategoryNotSupportedError",
          "payment_method_category must match the one given to load"
        );
      }
      var outcome = chosenOutcome();
      var delay = typeof options().delay === "number" ? options().delay : 150;
      loaded.box.setAttribute("data-fake-klarna-state", "authorizing");
      setStatus("Authorizing…");
      window.setTimeout(function () {
        var res;
        if (outcome === "decline") {
          res = { approved: false, show_form: false };
        } else if (outcome === "abort") {
          res = { approved: false, show_form: true };
        } else if (outcome === "invalid_fields") {
          res = { approved: false, show_form: true, error: { invalid_fields: ["billing_address.email"] } };
        } else if (outcome === "finalize_required" && allowFinalize) {
          res = { approved: true, show_form: true, finalize_required: true };
        } else {
          var scenario = outcome === "finalize_required" ? "ok" : outcome;
          res = { approved: true, show_form: true, authorization_token: "fake-auth-" + scenario + "-" + randomId() };
        }
        loaded.box.setAttribute("data-fake-klarna-state", res.approved ? "approved" : "not-approved");
        setStatus(res.authorization_token ? "Approved." : res.finalize_required ? "Finalize required." : "Not approved.");
        a.callback(res);
      }, delay);
    };
  }

  function on(eventName, handler) {
    if (EVENTS.indexOf(eventName) === -1) {
      throw klarnaError("EventNotSupportedError", "Unknown event " + eventName);
    }
    (handlers[eventName] = handlers[eventName] || []).push(handler);
  }

  function off(eventName, handler) {
    if (EVENTS.indexOf(eventName) === -1) {
      throw klarnaError("EventNotSupportedError", "Unknown event " + eventName);
    }
    if (!handler) {
      handlers[eventName] = [];
    } else {
      handlers[eventName] = (handlers[eventName] || []).filter(function (h) {
        return h !== handler;
      });
    }
  }

  window.Klarna = window.Klarna || {};
  window.Klarna.Payments = {
    isFake: true,
    init: init,
    load: load,
    authorize: authorizeLike("authorize", true),
    reauthorize: authorizeLike("reauthorize", false),
    finalize: authorizeLike("finalize", false),
    on: on,
    off: off,
  };

  if (typeof window.klarnaAsyncCallback === "function") {
    window.klarnaAsyncCallback();
  }
})();
