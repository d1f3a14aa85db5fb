"""The offer chooser: a Wagtail modal that lets editors pick a Payway product and its Klarna payment period.

Payway products are not Django models, so this is a small modal-workflow chooser built on Wagtail's chooser
conventions (the stock ``Chooser`` widget JS, ``ChooserModal`` steps ``choose``/``chosen``, the search form
and pagination markup), fed by :mod:`wagtail_klarna_paywall.newsroom.catalogue`:

1. ``choose`` lists the title's packages and campaigns (search by name or code, filter by kind, paginate);
2. picking one loads its Klarna payment periods (price per period) as another ``choose`` step;
3. picking a period answers ``chosen`` with the product code as the widget value plus what the offer block
   stores beside it (kind, name, period id, price, period), which ``chooser.js`` copies into the block.

The catalogue is cached; the modal's "Refresh" button (a POST) clears the cache.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST
from wagtail.admin.modal_workflow import render_modal_workflow
from wagtail.admin.viewsets.base import ViewSet
from wagtail.models import Site

from ..exceptions import PaywallError
from ..models import PaywallSettings
from ..payway.types import PRODUCT_CAMPAIGN, PRODUCT_PACKAGE, PaymentPeriod, Product
from ..periods import period_code, period_label
from . import catalogue
from .chooser_widget import VIEWSET_NAME
from .offer_checks import pop_fallback_offer_codes, pop_unchecked_offer_codes, reset_unchecked_offer_codes

logger = logging.getLogger(__name__)

PER_PAGE = 10


def period_text(period: PaymentPeriod) -> str:
    """ "month", "3 months": the period a price is paid for, in the editor's language (the listing)."""
    return period_label(period_code(period.iteration_type, period.iteration_length))


def product_display_title(name: str, code: str) -> str:
    return f"{name} ({code})" if name and name != code else code


# -- views -----------------------------------------------------------------------------------------


class ProductFilterForm(forms.Form):
    # ``id_q`` and ``data-chooser-modal-search-filter`` are what Wagtail's ChooserModal JS listens to.
    q = forms.CharField(
        label=_("Search by name or code"),
        required=False,
        widget=forms.TextInput(attrs={"placeholder": _("Search")}),
    )
    title = forms.ChoiceField(
        label=_("Title"),
        required=False,
        widget=forms.Select(attrs={"data-chooser-modal-search-filter": True}),
    )
    kind = forms.ChoiceField(
        label=_("Kind"),
        required=False,
        choices=[
            ("", _("Packages and campaigns")),
            (PRODUCT_PACKAGE, _("Packages")),
            (PRODUCT_CAMPAIGN, _("Campaigns")),
        ],
        widget=forms.Select(attrs={"data-chooser-modal-search-filter": True}),
    )

    def __init__(self, *args: Any, title_choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["title"].choices = title_choices
        if len(title_choices) <= 1:
            self.fields["title"].widget = forms.HiddenInput()


def _site_title_code(request: HttpRequest) -> str:
    """The title code of the site the admin is served from ("" when none matches: the picker decides)."""

    site = Site.find_for_request(request)
    return PaywallSettings.for_site(site).title_code if site is not None else ""


def _title_choices(request: HttpRequest) -> tuple[list[tuple[str, str]], str]:
    """(choices, default): the site's title first; every title when Payway lists them."""
    site_code = _site_title_code(request)
    try:
        titles = catalogue.titles()
    except PaywallError:
        if not site_code:
            raise
        logger.warning("Payway titles unavailable; using the site's title code", exc_info=True)
        titles = []
    choices = [(title.code, f"{title.name} ({title.code})" if title.name else title.code) for title in titles]
    if site_code and site_code not in {code for code, _label in choices}:
        choices.insert(0, (site_code, site_code))
    default = site_code or (choices[0][0] if choices else "")
    return choices, default


def _listing_context(request: HttpRequest) -> dict[str, Any]:
    """The product listing (filter form, page of products) shared by the choose and results views."""
    context: dict[str, Any] = {"error": None, "results": None, "is_searching": False}
    try:
        title_choices, default_title = _title_choices(request)
    except PaywallError:
        logger.warning("Payway catalogue unavailable for the offer chooser", exc_info=True)
        context["error"] = _("Payway's catalogue cannot be reached right now. Try again, or refresh.")
        context["filter_form"] = ProductFilterForm(title_choices=[])
        return context

    data = request.GET.copy()
    data.setdefault("title", default_title)
    form = ProductFilterForm(data, title_choices=title_choices)
    context["filter_form"] = form
    if not form.is_valid() or not form.cleaned_data["title"]:
        context["error"] = _("Set the Payway title code in the Klarna paywall settings first.")
        return context

    title_code = form.cleaned_data["title"]
    try:
        products = catalogue.products(title_code, kind=form.cleaned_data["kind"] or None)
    except PaywallError:
        logger.warning("Payway product search failed for title %s", title_code, exc_info=True)
        context["error"] = _("Payway's catalogue cannot be reached right now. Try again, or refresh.")
        return context

    query = form.cleaned_data["q"].strip().casefold()
    if query:
        context["is_searching"] = True
        context["search_query"] = form.cleaned_data["q"]
        products = [p for p in products if query in p.name.casefold() or query in p.product_code.casefold()]

    paginator = Paginator(products, PER_PAGE)
    page = paginator.get_page(request.GET.get("p", 1))
    context.update(
        {
            "title_code": title_code,
            "results": page,
            "rows": [_product_row(product, title_code) for product in page.object_list],
            "elided_page_range": paginator.get_elided_page_range(page.number),
            "results_url": reverse(f"{VIEWSET_NAME}:choose_results"),
            "match_count_text": ngettext("%(count)s product", "%(count)s products", paginator.count)
            % {"count": paginator.count},
        }
    )
    return context


def _product_row(product: Product, title_code: str) -> dict[str, Any]:

    return {
        "product": product,
        "expired": catalogue.is_expired(product),
        "kind_label": _("Campaign") if product.kind == PRODUCT_CAMPAIGN else _("Package"),
        "periods_url": reverse(f"{VIEWSET_NAME}:periods")
        + "?"
        + urlencode({"code": product.product_code, "title": title_code}),
    }


def choose(request: HttpRequest) -> HttpResponse:
    context = _listing_context(request)
    context.update(_furniture())
    return render_modal_workflow(
        request, "wagtail_klarna_paywall/chooser/choose.html", None, context, json_data={"step": "choose"}
    )


def choose_results(request: HttpRequest) -> HttpResponse:
    return render(request, "wagtail_klarna_paywall/chooser/results.html", _listing_context(request))


def _furniture() -> dict[str, Any]:
    return {
        "page_title": _("Choose a Payway product"),
        "header_icon": "tag",
        "results_url": reverse(f"{VIEWSET_NAME}:choose_results"),
        "refresh_url": reverse(f"{VIEWSET_NAME}:refresh"),
    }


def _find(request: HttpRequest) -> Product:
    code = request.GET.get("code", "")
    title_code = request.GET.get("title", "")
    if not code or not title_code or len(code) > 1024:
        raise Http404
    product = catalogue.find_product(code, in_titles=[title_code])
    if product is None:
        raise Http404
    return product


def periods(request: HttpRequest) -> HttpResponse:
    """Second step: the chosen product's Klarna payment periods."""

    context = _furniture()
    context["page_title"] = _("Choose a payment period")
    try:
        product = _find(request)
        product_periods = catalogue.payment_periods(product.product_code)
    except PaywallError:
        logger.warning("Payway payment periods unavailable", exc_info=True)
        context["error"] = _("Payway's catalogue cannot be reached right now. Try again, or refresh.")
        product, product_periods = None, []
    context.update(
        {
            "product": product,
            "expired": product is not None and catalogue.is_expired(product),
            "period_rows": [
                {
                    "period": period,
                    "period_text": period_text(period),
                    "chosen_url": reverse(f"{VIEWSET_NAME}:chosen")
                    + "?"
                    + urlencode(
                        {"code": product.product_code, "title": request.GET["title"], "period": period.id}
                    ),
                }
                for period in product_periods
            ]
            if product
            else [],
            "back_url": reverse(f"{VIEWSET_NAME}:choose")
            + "?"
            + urlencode({"title": request.GET.get("title", "")}),
        }
    )
    return render_modal_workflow(
        request, "wagtail_klarna_paywall/chooser/periods.html", None, context, json_data={"step": "choose"}
    )


def chosen_data(product: Product, period: PaymentPeriod) -> dict[str, Any]:
    """What the offer block stores for this choice (and the chooser widget shows)."""
    price = period.price if period.price is not None else None
    free_campaign = product.kind == PRODUCT_CAMPAIGN and price is not None and Decimal(price) == 0
    return {
        "id": product.product_code,
        "title": product_display_title(product.name, product.product_code),
        "edit_url": None,
        "product_kind": product.kind,
        "product_name": product.name,
        "period_id": period.id,
        # Campaign periods are always recurring for Payway, whatever the listing says.
        "period_type": "recurring" if product.kind == PRODUCT_CAMPAIGN else (period.type or "recurring"),
        "price": "" if price is None else str(price),
        # Data, not words: rendered in each reader's language (periods.period_label).
        "price_period": period_code(period.iteration_type, period.iteration_length),
        # A free campaign is a trial: it needs the period id and Klarna's direct debit.
        "is_trial": free_campaign,
        # What a buyer holds afterwards (Payway's active_products), so what opens articles. Empty when the
        # catalogue lists no products: the offered code stands in, and the editor is warned on saving.
        "included_product_codes": ", ".join(product.included_product_codes),
    }


def chosen(request: HttpRequest) -> HttpResponse:
    try:
        product = _find(request)
        period = next(
            (p for p in catalogue.payment_periods(product.product_code) if p.id == request.GET.get("period")),
            None,
        )
    except PaywallError:
        logger.warning("Payway catalogue unavailable while choosing", exc_info=True)
        context = _furniture()
        context["error"] = _("Payway's catalogue cannot be reached right now. Try again, or refresh.")
        return render_modal_workflow(
            request,
            "wagtail_klarna_paywall/chooser/periods.html",
            None,
            context,
            json_data={"step": "choose"},
        )
    if period is None:
        raise Http404
    return render_modal_workflow(
        request, None, None, None, json_data={"step": "chosen", "result": chosen_data(product, period)}
    )


@require_POST
def refresh(request: HttpRequest) -> HttpResponse:
    """Forget the cached catalogue and show the listing afresh."""
    catalogue.refresh()
    return choose(request)


# -- page save hooks (registered in wagtail_hooks.py) ------------------------------------------------------


def forget_unchecked_offers(request: HttpRequest, *args: Any) -> None:
    """``before_create_page`` / ``before_edit_page``: start the request with no unchecked offers (nor
    offers whose own code stands in for products the catalogue did not list)."""

    reset_unchecked_offer_codes()


def warn_about_unchecked_offers(request: HttpRequest, page: Any) -> None:
    """``after_create_page`` / ``after_edit_page``: tell the editor which offers Payway could not confirm,
    and which ones open articles on their own code because the catalogue listed no products."""

    codes = pop_unchecked_offer_codes()
    if codes:
        messages.warning(
            request,
            _(
                "Payway could not be reached, so these offers were saved without checking them against "
                "its catalogue: %(codes)s. Open the page again later to check them."
            )
            % {"codes": ", ".join(codes)},
        )
    fallback = pop_fallback_offer_codes()
    if fallback:
        messages.warning(
            request,
            _(
                "Payway's catalogue lists no products for these offers, so readers holding the offered "
                "code itself read on: %(codes)s. Check the offers' product codes, or list the product "
                "codes that grant access in the paywall."
            )
            % {"codes": ", ".join(fallback)},
        )


class OfferChooserViewSet(ViewSet):
    """Registers the chooser's admin URLs (``register_admin_viewset`` in ``wagtail_hooks.py``)."""

    name = VIEWSET_NAME
    url_prefix = "klarna-paywall/offer-chooser"
    icon = "tag"

    def get_urlpatterns(self) -> list:
        return [
            path("", choose, name="choose"),
            path("results/", choose_results, name="choose_results"),
            path("periods/", periods, name="periods"),
            path("chosen/", chosen, name="chosen"),
            path("refresh/", refresh, name="refresh"),
        ]


offer_chooser_viewset = OfferChooserViewSet()
