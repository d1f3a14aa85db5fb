"""The plugin's page types: the purchase page (with the flow's routes) and the confirmation page."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _
from wagtail.admin.panels import FieldPanel, PageChooserPanel
from wagtail.contrib.routable_page.models import RoutablePageMixin, path
from wagtail.fields import RichTextField, StreamField
from wagtail.models import Page

from ..blocks import OfferBlock
from ..purchase.hardening import HardenedPageMixin, is_unrouted, not_found


def _flow_views() -> Any:
    """The purchase flow's views, imported when a page first routes to them: as in Wagtail's own contrib
    apps, a page's views read the models, so the models reach their views lazily."""
    from ..purchase import views

    return views


class KlarnaPurchasePage(HardenedPageMixin, RoutablePageMixin, Page):
    """Hosts the purchase flow: offer choice, the Klarna widget, placing the order.

    Routes (all but the landing page are per attempt, keyed by its unguessable reference):
    ``""`` landing (GET; ``?offer=<ref>`` preselects), ``buy/`` (POST), ``checkout/<ref>/`` (GET widget,
    POST place order), ``checkout/<ref>/declined/`` (POST).
    """

    intro = RichTextField(_("intro"), blank=True)
    checkout_text = RichTextField(
        _("text beside the Klarna widget"), blank=True, help_text=_("e.g. terms of the subscription.")
    )
    customer_form_intro = RichTextField(_("text above the new-customer form"), blank=True)
    offers = StreamField(
        [("offer", OfferBlock())],
        verbose_name=_("offers"),
        blank=True,
        help_text=_("Offered when the page is opened directly; the first is the default."),
    )
    confirmation_page = models.ForeignKey(
        "wagtailcore.Page",
        verbose_name=_("confirmation page"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    content_panels = Page.content_panels + [
        FieldPanel("intro"),
        FieldPanel("offers"),
        FieldPanel("checkout_text"),
        FieldPanel("customer_form_intro"),
        PageChooserPanel("confirmation_page", "wagtail_klarna_paywall.PurchaseConfirmationPage"),
    ]
    # Any parent: publishers' trees differ, and a site may keep one purchase page per section.
    subpage_types: list[str] = []
    template = "wagtail_klarna_paywall/purchase_page.html"

    class Meta:
        verbose_name = _("Klarna purchase page")

    def serve(self, request, *args, **kwargs):
        if is_unrouted(request):
            return not_found(request)
        return super().serve(request, *args, **kwargs)

    @path("")
    def landing(self, request):
        return _flow_views().purchase_landing(request, self)

    @path("buy/")
    def buy(self, request):
        return _flow_views().buy(request, self)

    @path("checkout/<uuid:reference>/")
    def checkout(self, request, reference):
        return _flow_views().checkout(request, self, reference)

    @path("checkout/<uuid:reference>/declined/")
    def declined(self, request, reference):
        return _flow_views().declined(request, self, reference)


class PurchaseConfirmationPage(HardenedPageMixin, Page):
    """Where Klarna sends the reader after paying (``?ref=<attempt reference>``)."""

    body = RichTextField(_("thank-you text"), blank=True)

    content_panels = Page.content_panels + [FieldPanel("body")]
    subpage_types: list[str] = []
    template = "wagtail_klarna_paywall/confirmation_page.html"

    class Meta:
        verbose_name = _("purchase confirmation page")

    def serve(self, request, *args, **kwargs):
        if is_unrouted(request):
            return not_found(request)
        return _flow_views().confirmation(request, self)
