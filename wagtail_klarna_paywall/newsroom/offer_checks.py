"""Offers checked against Payway's catalogue when an editor saves a page, and what to warn them about.

The blocks call :func:`check_offer` from their ``clean``. An unknown or expired product, or a Klarna payment
period the product no longer has, is an error on the field. When Payway cannot be reached the offer is
saved unchecked and noted; an offer whose catalogue entry lists no products is noted too (its own code
then opens the article). The admin pops both notes after the save and warns the editor
(``chooser.warn_about_unchecked_offers``). The notes live in context variables, so they belong to the
admin request that saved the page.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ..exceptions import PaywallError
from . import catalogue

logger = logging.getLogger(__name__)

#: Product codes saved without a catalogue check during the current admin request (Payway unreachable),
#: so the admin can warn the editor once the page is saved (see ``chooser.warn_about_unchecked_offers``).
_unchecked_codes: ContextVar[tuple[str, ...]] = ContextVar("wagtail_klarna_paywall_unchecked", default=())


#: Offered codes that grant access themselves during the current admin request, because Payway's catalogue
#: lists no products for them and the paywall names none (see ``chooser.warn_about_unchecked_offers``).
_fallback_codes: ContextVar[tuple[str, ...]] = ContextVar("wagtail_klarna_paywall_fallback", default=())


def reset_unchecked_offer_codes() -> None:
    _unchecked_codes.set(())
    _fallback_codes.set(())


def pop_unchecked_offer_codes() -> tuple[str, ...]:
    codes = _unchecked_codes.get()
    _unchecked_codes.set(())
    return codes


def pop_fallback_offer_codes() -> tuple[str, ...]:
    codes = tuple(dict.fromkeys(_fallback_codes.get()))
    _fallback_codes.set(())
    return codes


def record_fallback(code: str) -> None:
    _fallback_codes.set((*_fallback_codes.get(), code))


def forget_fallback(code: str) -> None:
    codes = list(_fallback_codes.get())
    if code in codes:
        codes.remove(code)
        _fallback_codes.set(tuple(codes))


def check_offer_errors(code: str, period_id: str = "") -> dict[str, ValidationError]:
    """Errors for an unknown or expired product code, or a period it does not have.

    When Payway cannot be reached the offer is accepted (and logged): an outage must not stop editors
    from saving, and the purchase flow checks the offer with Payway again anyway.
    """
    return check_offer(code, period_id)[0]


def check_offer(code: str, period_id: str = "") -> tuple[dict[str, ValidationError], Any]:
    """``check_offer_errors``'s errors, and the catalogue's product when Payway was reached."""
    # Looked up by name: the models import the blocks, which import this module.
    settings_model = apps.get_model("wagtail_klarna_paywall", "PaywallSettings")
    try:
        title_codes = sorted(
            {code for code in settings_model.objects.values_list("title_code", flat=True) if code}
        )
        product = catalogue.find_product(code, in_titles=title_codes or None)
        if product is None:
            return {
                "product_code": ValidationError(
                    _("“%(code)s” is not a package or campaign in Payway's catalogue. Choose it again."),
                    code="unknown_product",
                    params={"code": code},
                )
            }, None
        if catalogue.is_expired(product):
            return {
                "product_code": ValidationError(
                    _("“%(code)s” has expired in Payway and can no longer be sold. Choose another product."),
                    code="expired_product",
                    params={"code": code},
                )
            }, product
        if period_id and period_id not in {period.id for period in catalogue.payment_periods(code)}:
            return {
                "period_id": ValidationError(
                    _("“%(code)s” has no such Klarna payment period (any more). Choose the product again."),
                    code="unknown_period",
                    params={"code": code},
                )
            }, product
    except PaywallError as err:
        logger.warning("Payway catalogue unreachable; offer %s saved unchecked: %s", code, err)
        if code not in _unchecked_codes.get():
            _unchecked_codes.set((*_unchecked_codes.get(), code))
        return {}, None
    return {}, product
