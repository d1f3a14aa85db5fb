"""The paywall block and its offer blocks."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.translation import gettext_lazy as _
from wagtail import blocks

from .offers import TRIAL_PAYMENT_METHOD_CATEGORY, Offer

PAYMENT_METHOD_CATEGORY_CHOICES = [
    ("", _("Site default")),
    ("pay_now", _("Pay now (direct debit, card, bank transfer)")),
    ("pay_later", _("Pay later (invoice)")),
    ("pay_over_time", _("Pay over time")),
    ("klarna", _("Pay with Klarna (all methods)")),
]


class OfferBlock(blocks.StructBlock):
    product_code = blocks.CharBlock(label=_("Payway product code"), max_length=1024)
    product_kind = blocks.ChoiceBlock(
        label=_("product kind"),
        choices=[("package", _("Package")), ("campaign", _("Campaign"))],
        default="package",
    )
    product_name = blocks.CharBlock(label=_("product name"), required=False)
    period_type = blocks.ChoiceBlock(
        label=_("period type"),
        choices=[("recurring", _("Recurring")), ("limited", _("Limited"))],
        default="recurring",
        help_text=_("Campaigns are always recurring."),
    )
    is_trial = blocks.BooleanBlock(label=_("free trial"), required=False)
    period_id = blocks.CharBlock(
        label=_("Klarna payment period"), required=False, max_length=24, help_text=_("Required for trials.")
    )
    price = blocks.DecimalBlock(label=_("price per period"), required=False, decimal_places=2)
    price_period = blocks.CharBlock(label=_("period"), required=False, help_text=_("e.g. “month”"))
    label = blocks.CharBlock(label=_("label"))
    selling_points = blocks.ListBlock(blocks.CharBlock(label=_("selling point")), required=False, default=[])
    payment_method_category = blocks.ChoiceBlock(
        label=_("Klarna payment method"),
        choices=PAYMENT_METHOD_CATEGORY_CHOICES,
        required=False,
        help_text=_("Trials always use direct debit (pay now)."),
    )

    class Meta:
        icon = "tag"
        label = _("Offer")


class PaywallBlock(blocks.StructBlock):
    """A paywall and a cut point: blocks after it in the stream are for subscribers only."""

    heading = blocks.CharBlock(label=_("heading"))
    teaser = blocks.RichTextBlock(label=_("teaser"), required=False)
    offers = blocks.ListBlock(OfferBlock(), label=_("offers"), min_num=1)
    purchase_page = blocks.PageChooserBlock(
        label=_("purchase page"), page_type="wagtail_klarna_paywall.KlarnaPurchasePage"
    )
    confirmation_page = blocks.PageChooserBlock(
        label=_("confirmation page"),
        page_type="wagtail_klarna_paywall.PurchaseConfirmationPage",
        required=False,
        help_text=_("Defaults to the site's confirmation page."),
    )
    login_text = blocks.CharBlock(
        label=_("log-in text"), required=False, default=_("Already a subscriber? Log in")
    )
    access_product_codes = blocks.ListBlock(
        blocks.CharBlock(label=_("product code")),
        label=_("product codes that grant access"),
        required=False,
        default=[],
        help_text=_("Readers holding any of these Payway product codes read on without the paywall."),
    )

    class Meta:
        icon = "lock"
        label = _("Paywall")
        template = "wagtail_klarna_paywall/blocks/paywall.html"


def _page_id(page: Any) -> int | None:
    return getattr(page, "pk", None) or (page if isinstance(page, int) else None)


def offer_from_value(ref: str, value: Any, *, paywall: Any = None) -> Offer:
    is_trial = bool(value.get("is_trial"))
    kind = value.get("product_kind") or "package"
    price = value.get("price")
    try:
        price = Decimal(price) if price not in (None, "") else None
    except (InvalidOperation, TypeError):
        price = None
    category = value.get("payment_method_category") or ""
    return Offer(
        ref=ref,
        product_code=value.get("product_code") or "",
        product_kind=kind,
        period_type="recurring" if kind == "campaign" else (value.get("period_type") or "recurring"),
        label=value.get("label") or "",
        product_name=value.get("product_name") or "",
        period_id=value.get("period_id") or "",
        is_trial=is_trial,
        payment_method_category=TRIAL_PAYMENT_METHOD_CATEGORY if is_trial else category,
        selling_points=tuple(value.get("selling_points") or ()),
        price=price,
        price_period=value.get("price_period") or "",
        purchase_page_id=_page_id(paywall.get("purchase_page")) if paywall else None,
        confirmation_page_id=_page_id(paywall.get("confirmation_page")) if paywall else None,
        access_product_codes=tuple(paywall.get("access_product_codes") or ()) if paywall else (),
    )


def iter_stream_fields(page: Any):
    from wagtail.fields import StreamField

    for model_field in page._meta.get_fields():
        if isinstance(model_field, StreamField):
            yield getattr(page, model_field.name)


def iter_paywalls(page: Any):
    """(block id, PaywallBlock value) for every paywall in ``page``'s stream fields (top level)."""
    for stream in iter_stream_fields(page):
        for child in stream:
            if isinstance(child.block, PaywallBlock):
                yield child.id, child.value


def find_offer(page: Any, offer_ref: str) -> Offer | None:
    if not isinstance(offer_ref, str) or len(offer_ref) > 200:
        return None
    block_id, _sep, item_id = offer_ref.partition(":")
    if item_id:
        for pid, paywall in iter_paywalls(page):
            if pid != block_id:
                continue
            for item in paywall["offers"].bound_blocks:
                if item.id == item_id:
                    return offer_from_value(offer_ref, item.value, paywall=paywall)
        return None
    # A purchase page's own offers stream.
    for stream in iter_stream_fields(page):
        for child in stream:
            if child.id == block_id and isinstance(child.block, OfferBlock):
                return offer_from_value(offer_ref, child.value, paywall=None)
    return None
