"""The demo newspaper: a home page, news sections and articles whose body can hold a paywall block."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from wagtail import blocks
from wagtail.admin.panels import FieldPanel
from wagtail.api import APIField
from wagtail.fields import StreamField
from wagtail.models import Page
from wagtail.search import index

from wagtail_klarna_paywall.blocks import PaywallBlock
from wagtail_klarna_paywall.reading.gating import (
    PaywalledPageMixin,
    PaywalledStreamFieldSerializer,
    split_at_paywall,
)
from wagtail_klarna_paywall.reading.preview import PaywallPreviewMixin


class ArticleBodyBlock(blocks.StreamBlock):
    """An article body: text blocks, and at most one paywall (everything after it is for subscribers)."""

    paragraph = blocks.RichTextBlock(
        label=_("paragraph"), features=["bold", "italic", "link", "ol", "ul"], icon="pilcrow"
    )
    heading = blocks.CharBlock(label=_("heading"), icon="title", form_classname="title")
    quote = blocks.BlockQuoteBlock(label=_("quote"))
    paywall = PaywallBlock()

    class Meta:
        block_counts = {"paywall": {"max_num": 1}}


class HomePage(Page):
    intro = models.CharField(_("intro"), max_length=255, blank=True)

    content_panels = Page.content_panels + [FieldPanel("intro")]
    subpage_types = [
        "demo.ArticleIndexPage",
        "wagtail_klarna_paywall.KlarnaPurchasePage",
        "wagtail_klarna_paywall.PurchaseConfirmationPage",
    ]
    max_count = 1

    class Meta:
        verbose_name = _("home page")

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        context["articles"] = (
            ArticlePage.objects.live().public().descendant_of(self).order_by("-date", "-pk")[:12]
        )
        return context


class ArticleIndexPage(Page):
    """A news section, e.g. “Nyheter”."""

    intro = models.CharField(_("intro"), max_length=255, blank=True)

    content_panels = Page.content_panels + [FieldPanel("intro")]
    parent_page_types = ["demo.HomePage"]
    subpage_types = ["demo.ArticlePage"]

    class Meta:
        verbose_name = _("section")

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        context["articles"] = ArticlePage.objects.live().public().child_of(self).order_by("-date", "-pk")
        return context


class ArticlePage(PaywallPreviewMixin, PaywalledPageMixin, Page):
    date = models.DateField(_("date"), default=timezone.localdate)
    author = models.CharField(_("author"), max_length=100, blank=True)
    intro = models.TextField(_("intro"), blank=True)
    body = StreamField(ArticleBodyBlock(), verbose_name=_("body"), blank=True)

    content_panels = Page.content_panels + [
        FieldPanel("date"),
        FieldPanel("author"),
        FieldPanel("intro"),
        FieldPanel("body"),
    ]
    parent_page_types = ["demo.ArticleIndexPage"]
    subpage_types: list[str] = []

    # The paywalled part never leaves through the search index, the API or the feed: the index holds only
    # the free text, and the API cuts the body at the paywall for readers without access.
    search_fields = Page.search_fields + [
        index.SearchField("intro"),
        index.SearchField("paywall_free_text"),
        index.FilterField("date"),
    ]
    api_fields = [
        APIField("date"),
        APIField("author"),
        APIField("intro"),
        APIField("is_paywalled"),
        APIField("body", serializer=PaywalledStreamFieldSerializer()),
    ]

    class Meta:
        verbose_name = _("article")

    @property
    def is_paywalled(self) -> bool:
        return split_at_paywall(self.body)[1] is not None
