/*
 * One click from an anonymous reader's paywall to Klarna's widget, with the two-step form as the fallback.
 *
 * The paywalled article must stay cacheable (no session, no CSRF cookie), so its buy button is a GET form
 * to the purchase page, which shows the offer with the CSRF-protected POST that starts the purchase.
 * Without JavaScript the reader clicks that second button. With it, this script:
 *
 * - on the paywall: on a real click of a buy button (a trusted event, no modifier key, so not a new tab
 *   or window), notes a random token in sessionStorage and adds it to the form as ``wkp_click``;
 * - on the purchase page: when the URL's token is the one noted (this tab, a minute ago at most), the
 *   page was reached by that navigation (not reload, back/forward or a prerender nobody activated) and it
 *   shows exactly that offer's buy form, it forgets the token and posts the form once.
 *
 * The token is removed from storage and from the address before anything is posted, so going back to
 * the purchase page, reloading it, or opening its address again shows the form and waits for a click:
 * no session and no order start without the reader's own choice. A static file, no inline script, so
 * the purchase pages' strict Content-Security-Policy holds. Nothing else is stored.
 */
(function () {
  "use strict";

  if (window.__wkpBuyScript) {
    return; // included once per paywall: run once per page
  }
  window.__wkpBuyScript = true;

  var KEY = "wkp-buy-click";
  var PARAM = "wkp_click";
  var MAX_AGE_MS = 60 * 1000;

  function storage() {
    try {
      return window.sessionStorage;
    } catch (err) {
      return null; // storage blocked: the two-step form it is
    }
  }

  function newToken() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map
      .call(bytes, function (b) {
        return ("0" + b.toString(16)).slice(-2);
      })
      .join("");
  }

  function fieldValue(form, name) {
    var input = form.querySelector('input[name="' + name + '"]');
    return input ? input.value : "";
  }

  // -- the paywall: note a real click -------------------------------------------------------------------

  function watchPaywall(form) {
    var button = form.querySelector("[data-wkp-buy]");
    if (!button) {
      return;
    }
    button.addEventListener("click", function (event) {
      var store = storage();
      var plain = !(event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) && event.button === 0;
      if (!store || !event.isTrusted || !plain || !window.crypto || !window.crypto.getRandomValues) {
        return;
      }
      var token = newToken();
      try {
        store.setItem(
          KEY,
          JSON.stringify({
            token: token,
            page: fieldValue(form, "page"),
            offer: fieldValue(form, "offer"),
            at: Date.now()
          })
        );
      } catch (err) {
        return;
      }
      var input = form.querySelector('input[name="' + PARAM + '"]');
      if (!input) {
        input = document.createElement("input");
        input.type = "hidden";
        input.name = PARAM;
        form.appendChild(input);
      }
      input.value = token;
    });
  }

  // -- the purchase page: post the noted click's form once ----------------------------------------------

  function takeNote() {
    var store = storage();
    if (!store) {
      return null;
    }
    var raw = null;
    try {
      raw = store.getItem(KEY);
      store.removeItem(KEY);
    } catch (err) {
      return null;
    }
    try {
      return raw ? JSON.parse(raw) : null;
    } catch (err) {
      return null;
    }
  }

  function dropTokenFromAddress() {
    if (!window.URL || !window.history || !window.history.replaceState) {
      return;
    }
    var url = new URL(window.location.href);
    if (url.searchParams.has(PARAM)) {
      url.searchParams.delete(PARAM);
      window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
    }
  }

  function reachedByNavigation() {
    var entries = window.performance && performance.getEntriesByType && performance.getEntriesByType("navigation");
    // Without the Navigation Timing API the kind of navigation is unknown: do nothing.
    return Boolean(entries && entries.length && entries[0].type === "navigate");
  }

  function continueClick(list) {
    var token = new URLSearchParams(window.location.search).get(PARAM);
    var note = takeNote();
    dropTokenFromAddress();
    if (!token || !note || note.token !== token || !reachedByNavigation()) {
      return;
    }
    var age = Date.now() - Number(note.at);
    if (!(age >= 0 && age <= MAX_AGE_MS)) {
      return;
    }
    var forms = list.querySelectorAll("form.wkp-buy-form");
    if (forms.length !== 1) {
      return;
    }
    var form = forms[0];
    if (fieldValue(form, "page") !== note.page || fieldValue(form, "offer") !== note.offer) {
      return;
    }
    var button = form.querySelector("[data-wkp-buy]");
    var status = list.querySelector("[data-wkp-one-click-status]");
    if (button) {
      button.disabled = true;
    }
    if (status) {
      status.textContent = status.getAttribute("data-wkp-one-click-status") || "";
    }
    // The prototype's submit: posts the form as it is (CSRF token included), without a submit event.
    HTMLFormElement.prototype.submit.call(form);
  }

  function start() {
    Array.prototype.forEach.call(
      document.querySelectorAll("[data-wkp-paywall] form.wkp-buy-form[method=get]"),
      watchPaywall
    );
    var list = document.querySelector("[data-wkp-one-click]");
    if (list) {
      continueClick(list);
    }
  }

  // Back to a purchase page kept in the back/forward cache after its form was posted: ready for a click.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) {
      return;
    }
    Array.prototype.forEach.call(document.querySelectorAll("[data-wkp-one-click] [data-wkp-buy]"), function (b) {
      b.disabled = false;
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-wkp-one-click-status]"), function (s) {
      s.textContent = "";
    });
  });

  function whenShown() {
    if (document.prerendering) {
      // A prerendered page runs its scripts before anyone looks: wait until the reader actually goes there.
      document.addEventListener("prerenderingchange", start, { once: true });
    } else {
      start();
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", whenShown);
  } else {
    whenShown();
  }
})();
