"""Concrete models that use the package, as a publisher's site would."""

from wagtail import blocks
from wagtail.admin.panels import FieldPanel
from wagtail.fields import StreamField
from wagtail.models import Page

from wagtail_klarna_paywall.blocks import PaywallBlock


class ArticleBodyBlock(blocks.StreamBlock):
    paragraph = blocks.RichTextBlock()
    heading = blocks.CharBlock()
    paywall = PaywallBlock()


class ArticlePage(Page):
    body = StreamField(ArticleBodyBlock(), blank=True)

    content_panels = Page.content_panels + [FieldPanel("body")]
    template = "testapp/article_page.html"
