"""wagtail-factories for the package's page types and blocks, and the test app's article.

Built the way wagtail-factories 4.5 works on Wagtail 8: the article body is a named ``StreamBlock``
(``ArticleBodyBlock``) built by a ``StreamBlockFactory`` with one ``SubFactory`` per child. Use::

    ArticlePageFactory(
        parent=root,
        body__0__paragraph__value="<p>Free</p>",
        body__1__paywall__purchase_page=purchase_page,
        body__1__paywall__offers__0__label="Digital",
        body__2__paragraph__value="<p>For subscribers</p>",
    )
"""

from __future__ import annotations

from decimal import Decimal

import factory
import wagtail_factories
from wagtail import blocks
from wagtail.rich_text import RichText

from tests.testapp.models import ArticleBodyBlock, ArticlePage
from wagtail_klarna_paywall.blocks import OfferBlock, PaywallBlock
from wagtail_klarna_paywall.models import KlarnaPurchasePage, PurchaseConfirmationPage


class KlarnaPurchasePageFactory(wagtail_factories.PageFactory):
    title = "Subscribe"
    slug = factory.Sequence(lambda n: f"subscribe-{n}")

    class Meta:
        model = KlarnaPurchasePage


class PurchaseConfirmationPageFactory(wagtail_factories.PageFactory):
    title = "Thank you"
    slug = factory.Sequence(lambda n: f"thank-you-{n}")

    class Meta:
        model = PurchaseConfirmationPage


class RichTextBlockFactory(wagtail_factories.blocks.BlockFactory):
    value = "<p>Text</p>"

    class Meta:
        model = blocks.RichTextBlock

    @classmethod
    def _build(cls, block_class, *args, **kwargs):
        return RichText(kwargs["value"])

    _create = _build


class OfferBlockFactory(wagtail_factories.StructBlockFactory):
    product_code = "digital"
    product_kind = "package"
    product_name = "Digital"
    period_type = "recurring"
    is_trial = False
    period_id = ""
    price = Decimal("99")
    price_period = "month"
    #: What the chooser copies from the catalogue: the products the package contains.
    included_product_codes = "digital"
    label = "Digital subscription"
    selling_points = factory.LazyFunction(lambda: ["Every article"])
    payment_method_category = ""

    class Meta:
        model = OfferBlock

    class Params:
        trial = factory.Trait(
            product_code="trial",
            product_kind="campaign",
            product_name="Free month",
            is_trial=True,
            period_id="5e4bbd0e09c04c1f6498c581",
            price=Decimal("0"),
            label="Try a month for free",
            payment_method_category="direct_debit",
        )


class PaywallBlockFactory(wagtail_factories.StructBlockFactory):
    heading = "Read the whole story"
    teaser = factory.LazyFunction(lambda: RichText("<p>Teaserword: subscribe to read on.</p>"))
    offers = wagtail_factories.ListBlockFactory(OfferBlockFactory)
    purchase_page = None
    confirmation_page = None
    login_text = "Already a subscriber? Log in"
    # Empty: the offers' products open the article, as for a paywall whose editor lists no codes.
    access_product_codes = factory.LazyFunction(
        lambda: blocks.list_block.ListValue(blocks.ListBlock(blocks.CharBlock()), values=[])
    )

    class Meta:
        model = PaywallBlock


class ArticleBodyBlockFactory(wagtail_factories.StreamBlockFactory):
    paragraph = factory.SubFactory(RichTextBlockFactory)
    heading = factory.SubFactory(wagtail_factories.CharBlockFactory)
    paywall = factory.SubFactory(PaywallBlockFactory)

    class Meta:
        model = ArticleBodyBlock


class ArticlePageFactory(wagtail_factories.PageFactory):
    title = "A paywalled story"
    slug = factory.Sequence(lambda n: f"story-{n}")
    body = wagtail_factories.StreamFieldFactory(ArticleBodyBlockFactory)

    class Meta:
        model = ArticlePage
