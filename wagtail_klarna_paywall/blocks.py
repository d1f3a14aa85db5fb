"""The paywall block (a cut point in any StreamField), its offer blocks, their validation, and the
:class:`Offer` a reader can buy, read from them.

The browser only ever names an offer by its reference (``offer_ref``); code, period and price always come
from the page's saved configuration through :func:`find_offer`, so a reader cannot choose them.

Offer references:
- on an article: ``"<paywall block id>:<offer list item id>"``
- on a purchase page: ``"<offer block id>"`` (its own ``offers`` stream)
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.apps import apps
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.utils import translation
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from wagtail import blocks
from wagtail.blocks.struct_block import StructBlockValidationError
from wagtail.fields import StreamField

from .newsroom import offer_checks

logger = logging.getLogger(__name__)

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
    #: (see ``purchase.attempts.choose_payment_method_category``).
    payment_method_category: str = ""
    selling_points: tuple[str, ...] = ()
    price: Decimal | None = None
    price_period: str = ""
    #: The paywall (or purchase page) this offer belongs to.
    purchase_page_id: int | None = None
    confirmation_page_id: int | None = None
    #: The product codes that open its paywall's article (:func:`paywall_access_codes`), or for an offer
    #: of a purchase page's own, the products it grants (:func:`offer_access_codes`).
    access_product_codes: tuple[str, ...] = field(default=())
    #: The products buying this offer grants (:func:`offer_access_codes`): what the buyer holds after.
    grants: tuple[str, ...] = field(default=())


# -- which product codes open an article ---------------------------------------------------------------
#
# Payway's ``me/active_products`` lists the codes of the *products* a reader's packages and campaigns
# contain, never the package or campaign code. So an offer stores the product codes its package or
# campaign includes (copied from the catalogue when the editor chooses it), and a paywall opens for any of
# its offers' products unless the editor lists the codes that grant access. These functions are the one
# place that decides, for block values and for their raw stored form alike (the page render reads the
# raw form so that a cached paywall is never converted to Python).


def _items(value: Any) -> list[Any]:
    """The entries of a ListBlock value: a ListValue, a plain list, or the stored ``[{type: item}]``."""
    if value is None or isinstance(value, (str, bytes)):
        return []
    entries = []
    for entry in value:
        # Block format as ``ListBlock._item_is_in_block_format`` tells it apart; else a bare value.
        if isinstance(entry, dict) and entry.get("type") == "item" and "id" in entry and "value" in entry:
            entry = entry["value"]
        entries.append(entry)
    return entries


def split_codes(text: Any) -> tuple[str, ...]:
    """``"digital, paper_weekend"`` as ``("digital", "paper_weekend")`` (the offer's stored form)."""
    if not isinstance(text, str):
        return ()
    return tuple(dict.fromkeys(code.strip() for code in text.split(",") if code.strip()))


def offer_access_codes(offer_value: Any) -> tuple[str, ...]:
    """The product codes buying this offer grants: those its package or campaign includes, or, when the
    catalogue listed none, the offered code itself (the editor was warned when saving)."""
    if not hasattr(offer_value, "get"):
        return ()
    included = split_codes(offer_value.get("included_product_codes"))
    if included:
        return included
    code = offer_value.get("product_code")
    return (code,) if isinstance(code, str) and code else ()


def _offers(paywall_value: Any) -> list[Any]:
    return [offer for offer in _items(paywall_value.get("offers")) if hasattr(offer, "get")]


def editor_access_codes(paywall_value: Any) -> tuple[str, ...]:
    """The codes the editor listed in the paywall, or ``()`` when the list is not an override.

    Paywalls saved before offers stored their products had the offered package and campaign codes
    copied into this list on save. Such a list is no choice of the editor's, and no reader's
    ``active_products`` holds those codes: it counts as empty.
    """
    if not hasattr(paywall_value, "get"):
        return ()
    listed = tuple(
        dict.fromkeys(
            code.strip()
            for code in _items(paywall_value.get("access_product_codes"))
            if isinstance(code, str) and code.strip()
        )
    )
    offered = {offer.get("product_code") for offer in _offers(paywall_value)}
    return listed if listed and set(listed) != offered else ()


def paywall_access_codes(paywall_value: Any) -> tuple[str, ...]:
    """The product codes that open the content after this paywall: the editor's list when there is one,
    else every product its offers grant."""
    if not hasattr(paywall_value, "get"):
        return ()
    override = editor_access_codes(paywall_value)
    if override:
        return override
    codes: dict[str, None] = {}
    for offer in _offers(paywall_value):
        codes.update(dict.fromkeys(offer_access_codes(offer)))
    return tuple(codes)


PAYMENT_METHOD_CATEGORY_CHOICES = [
    ("", _("Site default")),
    ("direct_debit", _("Direct debit")),
    ("pay_now", _("Pay now (direct debit, card, bank transfer)")),
    ("pay_later", _("Pay later (invoice)")),
    ("pay_over_time", _("Pay over time")),
    ("klarna", _("Pay with Klarna (all methods)")),
]


class ProductChooserBlock(blocks.FieldBlock):
    """A Payway product code, chosen from the live catalogue with the offer chooser (never typed).

    The value is the plain code string, so stored offers keep their shape; choosing also fills the offer's
    kind, name, period and price fields in the browser (``static/wagtail_klarna_paywall/chooser.js``).
    """

    def __init__(
        self, required: bool = True, help_text: Any = None, max_length: int = 1024, **kwargs: Any
    ) -> None:
        self.field_options = {"required": required, "help_text": help_text, "max_length": max_length}
        super().__init__(**kwargs)

    @cached_property
    def field(self) -> forms.Field:
        # Wagtail's pattern for a block's widget (as SnippetChooserBlock does): the admin's widget
        # machinery is imported when the admin first builds the form, not when the models load.
        from .newsroom.chooser_widget import ProductChooserWidget

        return forms.CharField(widget=ProductChooserWidget(), **self.field_options)

    def get_form_state(self, value: Any) -> Any:
        return self.field.widget.get_value_data(value)

    def deconstruct(self) -> tuple[str, tuple, dict]:
        # Stored exactly as a CharBlock (the code string); the chooser is presentation only. Deconstructing
        # as one keeps this package's and every site's migrations unchanged when the widget changes.
        _path, args, kwargs = super().deconstruct()
        return "wagtail.blocks.CharBlock", args, kwargs

    class Meta:
        icon = "tag"


class OfferBlock(blocks.StructBlock):
    """One thing a reader can buy. Choosing the product fills the fields up to ``included_product_codes``,
    which the admin form shows as a summary, not as inputs (``blocks/offer_form.html``)."""

    product_code = ProductChooserBlock(label=_("Payway product code"), max_length=1024)
    product_kind = blocks.ChoiceBlock(
        label=_("Product kind"),
        choices=[("package", _("Package")), ("campaign", _("Campaign"))],
        default="package",
    )
    product_name = blocks.CharBlock(label=_("Product name"), required=False)
    period_type = blocks.ChoiceBlock(
        label=_("Period type"),
        choices=[("recurring", _("Recurring")), ("limited", _("Limited"))],
        default="recurring",
        help_text=_("Campaigns are always recurring."),
    )
    is_trial = blocks.BooleanBlock(label=_("Free trial"), required=False)
    period_id = blocks.CharBlock(
        label=_("Klarna payment period"), required=False, max_length=24, help_text=_("Required for trials.")
    )
    price = blocks.DecimalBlock(label=_("Price per period"), required=False, decimal_places=2)
    price_period = blocks.CharBlock(
        label=_("Period"), required=False, help_text=_("Filled by the chooser, e.g. “month” or “3 month”.")
    )
    included_product_codes = blocks.CharBlock(
        label=_("Product codes it includes"),
        required=False,
        max_length=4096,
        help_text=_(
            "Filled in from Payway when you choose the product: the products this package or campaign "
            "contains, separated by commas. Readers who hold one of them read on."
        ),
    )
    label = blocks.CharBlock(label=_("Label"))
    selling_points = blocks.ListBlock(
        blocks.CharBlock(label=_("Selling point")), label=_("Selling points"), required=False, default=[]
    )
    payment_method_category = blocks.ChoiceBlock(
        label=_("Klarna payment method"),
        choices=PAYMENT_METHOD_CATEGORY_CHOICES,
        required=False,
        help_text=_(
            "Used when Klarna offers it for the purchase. Trials are paid by direct debit, or “Pay now” "
            "when Klarna offers no direct debit."
        ),
    )

    class Meta:
        icon = "tag"
        label = _("Offer")
        form_classname = "struct-block wkp-offer-block"
        form_template = "wagtail_klarna_paywall/blocks/offer_form.html"

    def clean(self, value: Any) -> Any:
        value = super().clean(value)
        errors: dict[str, ValidationError] = {}
        kind = value.get("product_kind")
        if kind == "campaign" and value.get("period_type") == "limited":
            errors["period_type"] = ValidationError(
                _("Payway campaigns are always recurring: choose “Recurring”."), code="campaign_limited"
            )
        if value.get("is_trial"):
            if kind != "campaign":
                errors["is_trial"] = ValidationError(
                    _("A free trial is a Payway campaign: choose a campaign, or untick “free trial”."),
                    code="trial_not_campaign",
                )
            if not value.get("period_id"):
                errors["period_id"] = ValidationError(
                    _("A free trial needs a Klarna payment period: choose the product again, then a period."),
                    code="trial_without_period",
                )
            if (value.get("payment_method_category") or "") not in ("", *TRIAL_PAYMENT_METHOD_CATEGORIES):
                errors["payment_method_category"] = ValidationError(
                    _("Free trials can only be paid by direct debit: choose “Direct debit” or “Pay now”."),
                    code="trial_category",
                )
        code = value.get("product_code")
        product = None
        if "product_code" not in errors and code:
            catalogue_errors, product = offer_checks.check_offer(code, value.get("period_id") or "")
            errors.update(catalogue_errors)
            if product is not None and not split_codes(value.get("included_product_codes")):
                # Chosen without the chooser's script (an API, a copied block), or chosen before offers
                # stored their products: take them from the catalogue now.
                value["included_product_codes"] = ", ".join(product.included_product_codes)
        if errors:
            raise StructBlockValidationError(block_errors=errors)
        if product is not None and not split_codes(value.get("included_product_codes")):
            # Payway answered and lists no products: the offered code stands in (and the editor is told).
            # Unreached, the "unchecked" warning already asks the editor to check the offer later.
            offer_checks.record_fallback(code)
        return value


class PaywallBlock(blocks.StructBlock):
    """A paywall and a cut point: blocks after it in the stream are for subscribers only."""

    heading = blocks.CharBlock(label=_("Heading"))
    teaser = blocks.RichTextBlock(label=_("Teaser"), required=False)
    offers = blocks.ListBlock(OfferBlock(), label=_("Offers"), min_num=1)
    purchase_page = blocks.PageChooserBlock(
        label=_("Purchase page"),
        page_type="wagtail_klarna_paywall.KlarnaPurchasePage",
        required=False,
        help_text=_("Left empty, the site's only live purchase page is used."),
    )
    confirmation_page = blocks.PageChooserBlock(
        label=_("Confirmation page"),
        page_type="wagtail_klarna_paywall.PurchaseConfirmationPage",
        required=False,
        help_text=_("Defaults to the site's confirmation page."),
    )
    # No default text: a default would be stored in the editor's admin language and shown to every reader
    # in it. Empty means DEFAULT_LOGIN_TEXT, rendered in the reader's language.
    login_text = blocks.CharBlock(
        label=_("Log-in text"),
        required=False,
        help_text=_("Leave empty for “Already a subscriber? Log in” in the reader's language."),
    )
    access_product_codes = blocks.ListBlock(
        blocks.CharBlock(label=_("Product code")),
        label=_("Product codes that grant access"),
        required=False,
        default=[],
        help_text=_(
            "Leave empty to let the products of the offers open the article. Readers holding any of "
            "these Payway product codes read on without the paywall."
        ),
    )

    class Meta:
        icon = "lock"
        label = _("Paywall")
        template = "wagtail_klarna_paywall/blocks/paywall.html"
        description = _(
            "Readers without a subscription see what comes before this block, then these offers; "
            "everything after it is for subscribers."
        )
        preview_template = "wagtail_klarna_paywall/blocks/paywall_preview.html"
        preview_value = {
            "heading": _("Read the whole story"),
            "teaser": _("<p>Subscribe to read on, and get every article.</p>"),
            "offers": [
                {
                    "product_code": "digital",
                    "product_kind": "package",
                    "product_name": _("Digital"),
                    "period_type": "recurring",
                    "price": "99",
                    "price_period": "month",
                    "label": _("Digital subscription"),
                    "selling_points": [_("Every article"), _("Cancel any time")],
                },
                {
                    "product_code": "trial",
                    "product_kind": "campaign",
                    "product_name": _("Free trial"),
                    "period_type": "recurring",
                    "is_trial": True,
                    "period_id": "000000000000000000000000",
                    "price": "0",
                    "price_period": "month",
                    "label": _("Try a month for free"),
                    "payment_method_category": "pay_now",
                },
            ],
        }

    def clean(self, value: Any) -> Any:
        if not value.get("purchase_page"):
            # One obvious choice: most sites have a single purchase page, and an editor should not have to
            # find it for every paywall. With none or several, the editor must choose.
            value["purchase_page"] = _only_purchase_page()
            if value["purchase_page"] is None:
                raise StructBlockValidationError(
                    block_errors={
                        "purchase_page": ValidationError(
                            _("Choose the purchase page where readers buy these offers."),
                            code="purchase_page_required",
                        )
                    }
                )
        value = super().clean(value)
        # The list is the editor's override and is stored as given: left empty, the offers' products
        # open the article (``paywall_access_codes``), so choosing another offer later changes access too.
        if editor_access_codes(value):
            # The editor named the codes: no offer falls back to its own code, so no warning about it.
            for offer in value.get("offers") or ():
                if not split_codes(offer.get("included_product_codes")) and offer.get("product_code"):
                    offer_checks.forget_fallback(offer.get("product_code"))
        return value

    def get_context(self, value: Any, parent_context: dict[str, Any] | None = None) -> dict[str, Any]:
        """Offers with their references and the buy URL. Reads pages only: no Payway, no writes."""
        context = super().get_context(value, parent_context=parent_context)
        request = context.get("request")
        block_id = context.get("paywall_block_id") or ""
        offers = []
        for item in value["offers"].bound_blocks:
            ref = f"{block_id}:{item.id}" if block_id and item.id else ""
            offers.append(offer_from_value(ref, item.value, paywall=value))
        context["offers"] = offers
        context.setdefault("reader_state", "anonymous")
        # An anonymous reader's paywalled article must stay cacheable: {% csrf_token %} would set a cookie
        # and Vary: Cookie on it. So for them "buy" is a GET to the purchase page, which shows the chosen
        # offer with the CSRF-protected POST that starts the purchase. A logged-in reader's page is private
        # anyway, and buys in one click.
        one_click = context["reader_state"] == "reader"
        context["buy_method"] = "post" if one_click else "get"
        context["buy_url"] = _buy_url(value.get("purchase_page"), request, route=one_click)
        context.setdefault("login_url", "")
        context["login_text"] = login_text(value.get("login_text"))
        article = context.get("page")
        context["buy_page_id"] = getattr(article, "pk", "") or ""
        return context


def _only_purchase_page() -> Any:
    """The one live Klarna purchase page, or None when there are none or several."""
    # Looked up by name: the models import the blocks.
    pages = list(apps.get_model("wagtail_klarna_paywall", "KlarnaPurchasePage").objects.live()[:2])
    return pages[0] if len(pages) == 1 else None


#: What the paywall's log-in link says when the editor wrote nothing (translated per reader).
DEFAULT_LOGIN_TEXT = _("Already a subscriber? Log in")


def login_text(stored: Any) -> str:
    """The log-in link's text for this reader: the editor's own, or the default in the reader's language.

    Blocks saved before the default stopped being stored hold it in the editor's language; those are
    treated as empty too, so a Swedish site does not show English because its editor's admin was English.
    """
    text = (stored or "").strip() if isinstance(stored, str) else ""
    if not text or text in _stored_default_login_texts():
        return str(DEFAULT_LOGIN_TEXT)
    return text


@functools.cache
def _stored_default_login_texts() -> frozenset[str]:
    texts = set()
    for code, _name in django_settings.LANGUAGES:
        with translation.override(code):
            texts.add(str(DEFAULT_LOGIN_TEXT))
    return frozenset(texts)


def _buy_url(purchase_page: Any, request: Any, *, route: bool = True) -> str:
    """The purchase page's ``buy/`` route (``route``), or the purchase page itself."""
    if purchase_page is None:
        return ""
    page = purchase_page.specific if not hasattr(purchase_page, "reverse_subpage") else purchase_page
    if not hasattr(page, "reverse_subpage"):
        return ""
    base = page.get_url(request=request)
    if not base or not route:
        return base or ""
    return base.rstrip("/") + "/" + page.reverse_subpage("buy")


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
    if is_trial and category not in TRIAL_PAYMENT_METHOD_CATEGORIES:
        # Stored before the trial rule was checked: a trial is paid by direct debit whatever it says.
        category = ""
    return Offer(
        ref=ref,
        product_code=value.get("product_code") or "",
        product_kind=kind,
        period_type="recurring" if kind == "campaign" else (value.get("period_type") or "recurring"),
        label=value.get("label") or "",
        product_name=value.get("product_name") or "",
        period_id=value.get("period_id") or "",
        is_trial=is_trial,
        payment_method_category=category,
        selling_points=tuple(value.get("selling_points") or ()),
        price=price,
        price_period=value.get("price_period") or "",
        purchase_page_id=_page_id(paywall.get("purchase_page")) if paywall else None,
        confirmation_page_id=_page_id(paywall.get("confirmation_page")) if paywall else None,
        access_product_codes=paywall_access_codes(paywall) if paywall else offer_access_codes(value),
        grants=offer_access_codes(value),
    )


def iter_stream_fields(page: Any):
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
    """The offer ``offer_ref`` names on ``page`` (any StreamField), or None if there is no such offer."""
    if not isinstance(offer_ref, str) or len(offer_ref) > 200:
        return None
    page = getattr(page, "specific", page)
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
