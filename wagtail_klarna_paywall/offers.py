"""What a reader can buy, as configured by editors in a page's StreamField.

The browser only ever names an offer by its reference (``offer_ref``); code, period and price always come
from the page's saved configuration through :func:`resolve_offer`, so a reader cannot choose them.

Offer references:
- on an article: ``"<paywall block id>:<offer list item id>"``
- on a purchase page: ``"<offer block id>"`` (its own ``offers`` stream)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wagtail.models import Page

#: Klarna payment method categories a trial (a 0-amount purchase) can be paid with, in order of preference:
#: Klarna allows only direct debit for trials, listed as ``direct_debit`` or grouped under ``pay_now``.
TRIAL_PAYMENT_METHOD_CATEGORIES = ("direct_debit", "pay_now")


@dataclass(frozen=True)
class Offer:
    ref: str
    product_code: str
    product_kind: str  # "package" | "campaign"
    period_type: str  # "limited" | "recurring" (always recurring for campaigns)
    label: str
    product_name: str = ""
    period_id: str = ""
    is_trial: bool = False
    #: The editor's choice; empty means "no preference". Loaded only when Payway's session lists it
    #: (see ``purchase.choose_payment_method_category``).
    payment_method_category: str = ""
    selling_points: tuple[str, ...] = ()
    price: Decimal | None = None
    price_period: str = ""
    #: The paywall (or purchase page) this offer belongs to.
    purchase_page_id: int | None = None
    confirmation_page_id: int | None = None
    #: The product codes that open its paywall's article (``blocks.paywall_access_codes``), or for an offer
    #: of a purchase page's own, the products it grants (``blocks.offer_access_codes``).
    access_product_codes: tuple[str, ...] = field(default=())
    #: The products buying this offer grants (``blocks.offer_access_codes``): what the buyer holds after.
    grants: tuple[str, ...] = field(default=())


def resolve_offer(page: Page, offer_ref: str) -> Offer | None:
    """The offer ``offer_ref`` names on ``page`` (any StreamField), or None if there is no such offer."""
    from .blocks import find_offer

    return find_offer(page.specific, offer_ref)
