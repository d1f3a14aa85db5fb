"""Concrete models that use the package, as a publisher's site would."""

from wagtail import blocks
from wagtail.admin.panels import FieldPanel
from wagtail.api import APIField
from wagtail.fields import StreamField
from wagtail.models import Page
from wagtail.search import index

from wagtail_klarna_paywall.blocks import PaywallBlock
from wagtail_klarna_paywall.reading.gating import PaywalledPageMixin, PaywalledStreamFieldSerializer
from wagtail_klarna_paywall.reading.preview import PaywallPreviewMixin


class ArticleBodyBlock(blocks.StreamBlock):
    paragraph = blocks.RichTextBlock()
    heading = blocks.CharBlock()
    paywall = PaywallBlock()


class ArticlePage(PaywallPreviewMixin, PaywalledPageMixin, Page):
    body = StreamField(ArticleBodyBlock(), blank=True)

    content_panels = Page.content_panels + [FieldPanel("body")]
    # Only the free text is indexed, and the API cuts the body at the paywall (gating.py).
    search_fields = Page.search_fields + [index.SearchField("paywall_free_text")]
    api_fields = [APIField("body", serializer=PaywalledStreamFieldSerializer())]
    template = "testapp/article_page.html"
