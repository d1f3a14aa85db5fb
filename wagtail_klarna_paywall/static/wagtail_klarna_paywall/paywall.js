/*
 * The paywall's script: count the paywall view, and (when the site turned analytics on) push GA4
 * ecommerce events to window.dataLayer. A static file with no inline script, so a strict
 * Content-Security-Policy holds; everything it needs is in data attributes of the page's markup.
 *
 * View beacon: one navigator.sendBeacon per page load for each paywall with data-wkp-view-url, carrying
 * the page id, the paywall block's id, the product codes shown and the reader state. Nothing is stored
 * in the browser (no cookie, no localStorage): the server recognises a reader it already counted today.
 *
 * Analytics (data-wkp-analytics on a paywall or on the purchase page's offer list):
 *   view_item_list  the paywall is shown (its offers are the items)
 *   select_item     the reader clicks an offer's buy button
 *   begin_checkout  the checkout page shows Klarna's widget      (#wkp-analytics-event, from the server)
 *   purchase        the confirmation page shows a completed order (#wkp-analytics-event, from the server)
 * Offer code, name, price, currency and the attempt's short reference only: never personal data.
 */
(function () {
  "use strict";

  if (window.__wkpPaywallScript) {
    return; // included once per paywall: run once per page
  }
  window.__wkpPaywallScript = true;

  function offersOf(container) {
    return Array.prototype.slice.call(container.querySelectorAll("[data-wkp-offer-code]"));
  }

  function item(offer, index, listId) {
    var result = {
      item_id: offer.getAttribute("data-wkp-offer-code"),
      item_name: offer.getAttribute("data-wkp-offer-name") || offer.getAttribute("data-wkp-offer-code"),
      index: index,
      item_list_id: listId,
      quantity: 1
    };
    var price = parseFloat(offer.getAttribute("data-wkp-offer-price"));
    if (!isNaN(price)) {
      result.price = price;
    }
    return result;
  }

  // -- the view beacon ------------------------------------------------------------------------------

  function sendView(paywall) {
    var url = paywall.getAttribute("data-wkp-view-url");
    if (!url) {
      return;
    }
    var body = new URLSearchParams();
    body.set("page", paywall.getAttribute("data-wkp-page") || "");
    body.set("paywall", paywall.getAttribute("data-wkp-block") || "");
    body.set("state", paywall.getAttribute("data-wkp-reader-state") || "");
    body.set(
      "offers",
      offersOf(paywall)
        .map(function (offer) {
          return offer.getAttribute("data-wkp-offer-code");
        })
        .join(",")
    );
    // A form body is a "simple" request: no preflight, and the page can be left at once.
    if (navigator.sendBeacon && navigator.sendBeacon(url, body)) {
      return;
    }
    if (window.fetch) {
      window.fetch(url, { method: "POST", body: body, keepalive: true, credentials: "omit" }).catch(function () {});
    }
  }

  // -- analytics --------------------------------------------------------------------------------------

  function push(event) {
    window.dataLayer = window.dataLayer || [];
    // Clear the previous event's ecommerce object first, as Google's ecommerce guide asks.
    window.dataLayer.push({ ecommerce: null });
    window.dataLayer.push(event);
  }

  function watchList(container) {
    var listId = container.getAttribute("data-wkp-analytics") || "paywall";
    var currency = container.getAttribute("data-wkp-currency") || "SEK";
    var offers = offersOf(container);
    if (container.hasAttribute("data-wkp-paywall")) {
      push({
        event: "view_item_list",
        ecommerce: {
          item_list_id: listId,
          currency: currency,
          items: offers.map(function (offer, index) {
            return item(offer, index, listId);
          })
        }
      });
    }
    offers.forEach(function (offer, index) {
      var button = offer.querySelector("[data-wkp-buy]");
      if (!button) {
        return;
      }
      button.addEventListener("click", function () {
        var chosen = item(offer, index, listId);
        var ecommerce = { item_list_id: listId, currency: currency, items: [chosen] };
        if (chosen.price !== undefined) {
          ecommerce.value = chosen.price;
        }
        push({ event: "select_item", ecommerce: ecommerce });
      });
    });
  }

  function serverEvent() {
    var node = document.getElementById("wkp-analytics-event");
    if (!node) {
      return;
    }
    try {
      push(JSON.parse(node.textContent));
    } catch (err) {
      // A broken payload must not break the page.
    }
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-wkp-paywall][data-wkp-view-url]"), sendView);
    Array.prototype.forEach.call(document.querySelectorAll("[data-wkp-analytics]"), watchList);
    serverEvent();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
