"""Analytics events for the site's tag manager: GA4 ecommerce events pushed to ``window.dataLayer``.

Off by default; one switch per site (``PaywallSettings.analytics_events``). The events are pushed by the
static ``paywall.js`` (so the purchase pages' Content-Security-Policy stays free of inline script), in
the order a purchase goes:

=================  ==============================================  =====================================
GA4 event          when                                            where the data comes from
=================  ==============================================  =====================================
``view_item_list`` a paywall is shown (its offers are the items)   the paywall's data attributes
``select_item``    the reader clicks an offer's buy button         the offer's data attributes
``begin_checkout`` the checkout page shows Klarna's widget         :func:`checkout_event` (json_script)
``purchase``       the confirmation page shows a completed order   :func:`purchase_event` (json_script)
=================  ==============================================  =====================================

Every event carries only the offer's product code, its name, its price, the currency and (from the
checkout on) the attempt's short reference, the first eight characters support staff already see. Never
a name, e-mail address, personnummer, account id, Payway order id or token. The Matomo mapping is in the
README.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wagtail.models import Site

from ..models import PaywallSettings

if TYPE_CHECKING:
    from django.http import HttpRequest

    from ..models import PurchaseAttempt

#: Prices are Swedish kronor throughout (Payway's catalogue and the offer summaries).
CURRENCY = "SEK"
#: ``item_list_id`` of the paywall's and the purchase page's offers.
PAYWALL_LIST = "paywall"
PURCHASE_PAGE_LIST = "purchase_page"


def enabled(request: HttpRequest | None) -> bool:
    """The site's switch; off when there is no site or the setting cannot be read.

    Read with a plain query, not ``PaywallSettings.for_request``: that creates the settings row when it
    is missing, and rendering a paywall must write nothing.
    """

    if request is None:
        return False
    try:
        site = Site.find_for_request(request)
        if site is None:
            return False
        return bool(
            PaywallSettings.objects.filter(site=site).values_list("analytics_events", flat=True).first()
        )
    except Exception:  # noqa: BLE001 - analytics must never take a page down
        return False


def short_reference(attempt: PurchaseAttempt) -> str:
    return str(attempt.reference)[:8]


def _item(attempt: PurchaseAttempt) -> dict[str, Any]:
    item: dict[str, Any] = {
        "item_id": attempt.product_code,
        "item_name": attempt.product_name or attempt.product_code,
        "quantity": 1,
    }
    if attempt.price is not None:
        item["price"] = float(attempt.price)
    return item


def _ecommerce(attempt: PurchaseAttempt) -> dict[str, Any]:
    ecommerce: dict[str, Any] = {"currency": CURRENCY, "items": [_item(attempt)]}
    if attempt.price is not None:
        ecommerce["value"] = float(attempt.price)
    return ecommerce


def checkout_event(attempt: PurchaseAttempt) -> dict[str, Any]:
    """``begin_checkout`` for the attempt whose Klarna widget is shown."""
    return {
        "event": "begin_checkout",
        "ecommerce": {**_ecommerce(attempt), "reference": short_reference(attempt)},
    }


def purchase_event(attempt: PurchaseAttempt) -> dict[str, Any]:
    """``purchase``, with the short reference as ``transaction_id``: GA4 uses it to keep one purchase from
    counting twice when the reader reloads the confirmation page."""
    reference = short_reference(attempt)
    return {
        "event": "purchase",
        "ecommerce": {**_ecommerce(attempt), "transaction_id": reference, "reference": reference},
    }
