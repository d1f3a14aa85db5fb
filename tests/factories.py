"""Everything the tests share: page and block factories, the shop, Payway's URLs and JSON, readers.

Test modules import what they need from here (fixtures come from ``tests/conftest.py`` by name); no test
module imports another. Sections: the factories; Payway's URLs, tokens and replies; the shop (an article
with a paywall, a purchase page, a confirmation page) and its purchase flow, as functions and over HTTP;
readers (SSO2 sessions and answers); the catalogue; admin forms; paywall views; the embedded fake Payway.

The factories are built the way wagtail-factories 4.5 works on Wagtail 8: the article body is a named
``StreamBlock`` (``ArticleBodyBlock``) built by a ``StreamBlockFactory`` with one ``SubFactory`` per child.
Use::

    ArticlePageFactory(
        parent=root,
        body__0__paragraph__value="<p>Free</p>",
        body__1__paywall__purchase_page=purchase_page,
        body__1__paywall__offers__0__label="Digital",
        body__2__paragraph__value="<p>For subscribers</p>",
    )
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import time
from decimal import Decimal
from importlib import import_module
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import factory
import jwt
import responses
import wagtail_factories
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from responses import matchers
from wagtail import blocks
from wagtail.blocks import CharBlock, ListBlock
from wagtail.blocks.list_block import ListValue
from wagtail.models import Locale, Page, Site
from wagtail.rich_text import RichText
from wagtail.test.utils.form_data import nested_form_data, rich_text, streamfield

from tests.testapp.models import ArticleBodyBlock, ArticlePage
from wagtail_klarna_paywall.blocks import OfferBlock, PaywallBlock, find_offer
from wagtail_klarna_paywall.fake import catalogue as fake_catalogue
from wagtail_klarna_paywall.fake import state as fake_state
from wagtail_klarna_paywall.login import sso
from wagtail_klarna_paywall.models import (
    AttemptState,
    KlarnaPurchasePage,
    PaywallSettings,
    PurchaseAttempt,
    PurchaseConfirmationPage,
)
from wagtail_klarna_paywall.payway.types import BrowserInfo, CustomerInfo
from wagtail_klarna_paywall.purchase import attempts, orders, session


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


def tree_root() -> Site:
    """The default site. Transactional tests flush the database, taking the migrations' root page, site
    and locale with them, so they are rebuilt when missing."""
    Locale.objects.get_or_create(language_code="en")
    site = Site.objects.filter(is_default_site=True).first()
    if site is None:
        root = Page.objects.filter(depth=1).first() or Page.add_root(instance=Page(title="Root", slug="root"))
        home = root.add_child(instance=Page(title="Home", slug="home"))
        site = Site.objects.create(hostname="localhost", root_page=home, is_default_site=True)
    return site


# -- Payway: URLs, tokens and replies ------------------------------------------------------------------

API = "https://payway.test"
TOKEN_URL = f"{API}/api/authorization/access_token"
CREATE_V1 = f"{API}/external/api/v1/klarna_payments/create_session"
CREATE_V2 = f"{API}/external/api/v2/klarna_payments/create_session"
PLACE_V1 = f"{API}/external/api/v1/klarna_payments/place_order"
PLACE_V2 = f"{API}/external/api/v2/klarna_payments/place_order"
PLACE_TRIAL = f"{API}/external/api/v2/klarna_payments/place_trial_order"
ME_URL = f"{API}/external/api/v3/me"
ACTIVE_PRODUCTS_URL = f"{API}/external/api/v1/me/active_products"
TITLES_URL = API + "/external/api/v1/titles/"
PACKAGES_URL = API + "/external/api/v2/products/package/search"
CAMPAIGNS_URL = API + "/external/api/v3/products/campaign/search"
PERIODS_URL = API + "/external/api/v2/klarna_payments/payment_periods"
FIXTURES = Path(__file__).parent / "fixtures" / "payway"
ACCOUNT_ID = "5e1f00000000000000000abc"

SYSTEM_TOKEN = "system-token-SENTINEL-1"
IDENTITY_TOKEN = "identity-token-SENTINEL-2"
CLIENT_TOKEN = "eyJhbGciOiJSUzI1NiJ9.klarna-client-token"
SESSION_ID = "0b1d9815-165e-42e2-8867-35bc03789e00"
KLARNA_REDIRECT = "https://pay.klarna.com/eu/hpp/redirect/abc"
ORDER_ID = "5f0d5a7d5b3e2a0001ab12cd"
TRIAL_PERIOD_ID = "5e4bbd0e09c04c1f6498c57f"
PERSONNUMMER = "19121212-1212"


def session_json(session_id=SESSION_ID, client_token=CLIENT_TOKEN, categories=("pay_now", "pay_later")):
    return {
        "item": {
            "klarna_client_token": client_token,
            "klarna_payments_session_id": session_id,
            "payment_method_categories": [{"identifier": c, "name": c} for c in categories],
        }
    }


def order_json(redirect=KLARNA_REDIRECT, order_id=ORDER_ID):
    return {"item": {"redirect_uri": redirect, "order_id": order_id}}


def calls_to(rsps, url):
    return [call for call in rsps.calls if call.request.url.split("?")[0] == url]


def body_of(call):
    return json.loads(call.request.body)


# -- the shop: an article with a paywall, a purchase page, a confirmation page ---------------------------

OFFER_DEFAULTS = {
    "product_code": "digital",
    "product_kind": "package",
    "product_name": "Digital",
    "period_type": "recurring",
    "is_trial": False,
    "period_id": "",
    "price": "99.00",
    "price_period": "month",
    "label": "Digital, monthly",
    "selling_points": [],
    "payment_method_category": "",
}


def offer_value(**overrides):
    return {**OFFER_DEFAULTS, **overrides}


@dataclasses.dataclass(eq=False)
class Shop:
    """The pages of a small news site: an article with a paywall, a purchase page, a confirmation page,
    and another purchase page selling something else."""

    site: Site
    home: Page
    confirmation: PurchaseConfirmationPage
    purchase_page: KlarnaPurchasePage
    article: ArticlePage
    other_purchase_page: KlarnaPurchasePage

    # Offer references as the paywall block and the purchase page name them.
    article_offer_ref = "paywall-1:offer-digital"
    package_ref = "offer-package"
    campaign_ref = "offer-campaign"
    trial_ref = "offer-trial"

    def offer(self, page, ref):
        return find_offer(Page.objects.get(pk=page.pk), ref)

    def buy_url(self) -> str:
        return self.purchase_page.url + "buy/"

    def checkout_url(self, attempt) -> str:
        return f"{self.purchase_page.url}checkout/{attempt.reference}/"

    def confirmation_url(self, attempt) -> str:
        return f"{self.confirmation.url}?ref={attempt.reference}"


#: What the shop sells, as ``offer_value`` overrides: the purchase page's package, campaign and trial, and
#: the offer of the article's paywall.
SHOP_OFFERS = {
    Shop.package_ref: {},
    Shop.campaign_ref: {
        "product_code": "spring-campaign",
        "product_kind": "campaign",
        "product_name": "Spring campaign",
        "label": "3 months for 1 kr",
        "price": "1.00",
        "period_type": "limited",
    },
    Shop.trial_ref: {
        "product_code": "trial-campaign",
        "product_kind": "campaign",
        "product_name": "Free trial",
        "label": "Try free for 14 days",
        "is_trial": True,
        "period_id": TRIAL_PERIOD_ID,
        "price": "0",
        "payment_method_category": "pay_later",
    },
    Shop.article_offer_ref: {},
}


#: The shop's offers when it sells the embedded fake Payway's products (``fake/catalogue.py``), each
#: containing the products the chooser would copy from that catalogue.
_FAKE_DIGITAL = {
    "product_code": "demo_digital",
    "product_name": "Digital",
    "price": "139.00",
    "included_product_codes": fake_catalogue.DIGITAL,
}
FAKE_SHOP_OFFERS = {
    Shop.package_ref: _FAKE_DIGITAL,
    Shop.campaign_ref: {
        "product_code": "demo_campaign_3m99",
        "product_kind": "campaign",
        "product_name": "3 months for 99 kr",
        "label": "3 months for 99 kr",
        "price": "99.00",
        "included_product_codes": fake_catalogue.DIGITAL,
    },
    Shop.trial_ref: {
        "product_code": "demo_trial_14d",
        "product_kind": "campaign",
        "product_name": "Free trial",
        "label": "Try free for 14 days",
        "is_trial": True,
        "period_id": fake_catalogue.TRIAL_PERIOD_ID,
        "price": "0",
        "included_product_codes": fake_catalogue.DIGITAL,
    },
    Shop.article_offer_ref: _FAKE_DIGITAL,
}


def paywalled_article(
    parent,
    purchase_page,
    *,
    title: str,
    slug: str,
    offers: dict[str, dict],
    access_product_codes=(),
    heading: str = "Subscribe to read on",
    paywall: str = "paywall-1",
    free: tuple[str, str] | None = ("p1", "<p>Free part.</p>"),
    paid: tuple[str, str] | None = ("p2", "<p>Subscriber part.</p>"),
) -> ArticlePage:
    """An article under ``parent``: a free paragraph, a paywall selling ``offers`` (block id: value) through
    ``purchase_page``, a paid paragraph, with the block ids given (offer references name them)."""
    body = []
    if free:
        body.append({"type": "paragraph", "id": free[0], "value": free[1]})
    body.append(
        {
            "type": "paywall",
            "id": paywall,
            "value": {
                "heading": heading,
                "teaser": "",
                "offers": [{"type": "item", "id": key, "value": value} for key, value in offers.items()],
                "purchase_page": purchase_page.pk,
                "confirmation_page": None,
                "login_text": "",
                "access_product_codes": list(access_product_codes),
            },
        }
    )
    if paid:
        body.append({"type": "paragraph", "id": paid[0], "value": paid[1]})
    return ArticlePageFactory(parent=parent, title=title, slug=slug, body=body)


def build_shop(
    *, site: Site | None = None, offers=SHOP_OFFERS, access_product_codes=("digital-access",)
) -> Shop:
    """The shop on ``site`` (default: the default site), selling ``offers`` (see ``SHOP_OFFERS``); the
    article's paywall opens with ``access_product_codes`` besides what its offer contains."""
    site = site or Site.objects.get(is_default_site=True)
    # A canonical https host different from the test client's Host header ("testserver"), so tests see
    # that confirmation URLs come from the Site and never from the request (docs/reliability.md B09).
    site.hostname = "news.example"
    site.port = 443
    site.save()
    home = site.root_page.specific
    confirmation = PurchaseConfirmationPageFactory(
        parent=home, title="Thank you", slug="thanks", body="<p>Welcome aboard.</p>"
    )
    purchase_page = KlarnaPurchasePageFactory(
        parent=home,
        title="Subscribe",
        slug="subscribe",
        intro="<p>Read everything.</p>",
        confirmation_page=confirmation,
        offers=[
            {"type": "offer", "id": ref, "value": offer_value(**offers[ref])}
            for ref in (Shop.package_ref, Shop.campaign_ref, Shop.trial_ref)
        ],
    )
    other_purchase_page = KlarnaPurchasePageFactory(
        parent=home,
        title="Other shop",
        slug="other-shop",
        offers=[{"type": "offer", "id": "other-offer", "value": offer_value(product_code="other")}],
    )
    paywall, offer_id = Shop.article_offer_ref.split(":")
    article = paywalled_article(
        home,
        purchase_page,
        title="Big story",
        slug="big-story",
        paywall=paywall,
        offers={offer_id: offer_value(**offers[Shop.article_offer_ref])},
        access_product_codes=access_product_codes,
    )
    settings_obj = PaywallSettings.for_site(site)
    settings_obj.traffic_source_default = "website"
    settings_obj.save()
    return Shop(site, home, confirmation, purchase_page, article, other_purchase_page)


def stored_attempt(shop: Shop, reader_key: str, state: str, **fields) -> PurchaseAttempt:
    """A purchase attempt of the shop's package in ``state``, stored as the flow would have left it."""
    now = timezone.now()
    values = {
        "reader_key": reader_key,
        "state": state,
        "site": shop.site,
        "page": shop.purchase_page,
        "purchase_page": shop.purchase_page,
        "confirmation_page": shop.confirmation,
        "offer_key": f"{shop.purchase_page.pk}:{Shop.package_ref}",
        "product_code": "digital",
        "product_kind": "package",
        "product_name": "Digital",
        "period_type": "recurring",
        "payway_session_id": SESSION_ID,
        "klarna_client_token": CLIENT_TOKEN,
        "session_created_at": now,
        "session_expires_at": now + dt.timedelta(hours=47),
        **fields,
    }
    return PurchaseAttempt.objects.create(**values)


def placed_article_attempt(shop: Shop) -> PurchaseAttempt:
    """A placed attempt bought in the article's paywall, every field the confirmation shows filled in."""
    now = timezone.now()
    return stored_attempt(
        shop,
        "anon:" + "c" * 64,
        AttemptState.PLACED,
        page=shop.article,
        account_key="account:" + "d" * 64,
        access_codes=["digital", "app"],
        offer_label="Digital, every day",
        selling_points=["Every article", "The app"],
        price=Decimal("139.00"),
        price_period="month",
        placing_at=now - dt.timedelta(seconds=2),
        placed_at=now,
        order_id=ORDER_ID,
    )


def confirmation_read_of(attempt: PurchaseAttempt) -> tuple[dict, dict]:
    """What ``attempts.attempt_to_confirm`` read of ``attempt`` and its article, and what the ORM reads
    of the same columns: (read, stored), each {attname: value}."""
    read = attempts.attempt_to_confirm(str(attempt.reference))
    stored = PurchaseAttempt.objects.select_related("page").get(pk=attempt.pk)
    names = [PurchaseAttempt._meta.get_field(name).attname for name in attempts.CONFIRMATION_FIELDS]
    route = attempts.ARTICLE_ROUTE_FIELDS

    def values(row):
        page = {f"page.{name}": getattr(row.page, name) for name in route} if row.page_id else {}
        return {**{name: getattr(row, name) for name in names}, **page}

    return values(read), values(stored)


# -- the purchase flow as functions (purchase/) ----------------------------------------------------------

READER = attempts.Reader(key="anon:" + "a" * 64)
BROWSER_INFO = BrowserInfo(ip="203.0.113.7", language="sv-SE", user_agent="TestBrowser/1.0")
CUSTOMER_INFO = CustomerInfo(email="reader@example.com", first_name="Rea", last_name="Der")


def start(shop, ref=Shop.package_ref, reader=READER, page=None, **kwargs):
    page = page or shop.purchase_page
    return session.start_purchase(
        reader=reader,
        offer=shop.offer(page, ref),
        offer_page=page,
        purchase_page=shop.purchase_page,
        site=shop.site,
        **kwargs,
    )


def place(attempt, reader=READER, token="auth-token-1", customer=CUSTOMER_INFO, **kwargs):
    return orders.place_order(
        attempt, reader, authorization_token=token, browser=BROWSER_INFO, customer=customer, **kwargs
    )


# -- the purchase flow over HTTP (purchase/views.py) -----------------------------------------------------

#: An authorization token as the Klarna widget hands it to the browser.
AUTH_TOKEN = "b4bd3423-24e3-4c4e-8d9c-3bcb4b7b0aab"
#: The reader's browser: a Swedish one (Payway must receive ``sv-SE``).
BROWSER = {
    "REMOTE_ADDR": "203.0.113.7",
    "HTTP_ACCEPT_LANGUAGE": "sv-SE,sv;q=0.9,en;q=0.5",
    "HTTP_USER_AGENT": "TestBrowser/1.0",
}
#: What a new customer types on the checkout page.
CUSTOMER = {"email": "reader@example.com", "first_name": "Rea", "last_name": "Der"}
UTF16_FORM = "application/x-www-form-urlencoded; charset=utf-16"


class StubIdentityProvider:
    """A tiny identity provider: the token lives in ``StubIdentityProvider.token``."""

    token: str | None = None
    forgotten = 0

    def get_identity_token(self, request):
        return type(self).token

    def login_url(self, request, next_url):
        return "/login/?next=" + quote(next_url)

    def forget(self, request):
        type(self).forgotten += 1
        type(self).token = None


STUB = "tests.factories.StubIdentityProvider"


def landing_url(shop):
    return shop.purchase_page.url


def buy_url(shop):
    return shop.purchase_page.url + "buy/"


def buy(client, shop, page=None, ref=Shop.package_ref, **extra):
    """POST the buy form; ``HTTP_*`` keywords are headers, anything else more form fields."""
    page = page or shop.purchase_page
    headers = {k: v for k, v in extra.items() if k.startswith("HTTP_")}
    fields = {k: v for k, v in extra.items() if not k.startswith("HTTP_")}
    data = {"page": page.pk, "offer": ref, **fields}
    return client.post(buy_url(shop), data, secure=True, **{**BROWSER, **headers})


def checkout_path(attempt):
    return f"/subscribe/checkout/{attempt.reference}/"


def start_checkout(client, shop, **kwargs):
    response = buy(client, shop, **kwargs)
    assert response.status_code == 303, response.content.decode()[:2000]
    attempt = PurchaseAttempt.objects.latest("created_at")
    assert response["Location"] == checkout_path(attempt)
    return attempt


def pay(client, attempt, token=AUTH_TOKEN, customer=CUSTOMER, **extra):
    data = {"klarna_authorization_token": token, **(customer or {})}
    return client.post(checkout_path(attempt), data, secure=True, **{**BROWSER, **extra})


def text(response):
    return response.content.decode()


def klarna_config(html):
    found = re.search(r'<script id="wkp-klarna-config" type="application/json">(.*?)</script>', html, re.S)
    assert found, "no Klarna config in the page"
    return json.loads(found.group(1))


# -- readers: SSO2 sessions and answers (login/, reading/) -----------------------------------------------

SSO_SECRET = settings.WAGTAIL_KLARNA_PAYWALL["CLIENT_SECRET"]
SSO_CLIENT_ID = settings.WAGTAIL_KLARNA_PAYWALL["CLIENT_ID"]
READER_TOKEN = "IDENTITY-SENTINEL-access-42"


def reader_request(
    token: str | None = READER_TOKEN, *, sid: str = "sid-1", since: float = 1_700_000_000.0, path: str = "/"
):
    """A request from a reader logged in through SSO2 (``token`` None: an anonymous reader with a session)."""
    engine = import_module(settings.SESSION_ENGINE)
    store = engine.SessionStore()
    now = time.time()
    if token:
        store[sso.SESSION_KEY] = {
            "sid": sid,
            "sts": "loggedin",
            "checked": now,
            "since": since,
            "token": token,
            "expires": now + 3600,
            "refresh": "",
        }
    else:
        store["something-else"] = 1
    store.save()
    request = RequestFactory().get(path)
    request.COOKIES[settings.SESSION_COOKIE_NAME] = store.session_key
    request.session = engine.SessionStore(store.session_key)
    return request


def as_reader(client, codes):
    """Log ``client`` in as an SSO2 reader holding ``codes`` (Payway answers through ``responses``)."""
    request = reader_request()
    client.cookies[settings.SESSION_COOKIE_NAME] = request.COOKIES[settings.SESSION_COOKIE_NAME]
    rsps = responses.RequestsMock(assert_all_requests_are_fired=False)
    rsps.add(responses.GET, ACTIVE_PRODUCTS_URL, json={"item": {"id": "acc", "active_products": list(codes)}})
    return rsps


def answer(secret: str = SSO_SECRET, lifetime: int = 10, **claims) -> str:
    """A JWT as SSO2 answers: our client id as audience, SSO2 as issuer."""
    now = int(time.time())
    payload = {"iss": "pw-sso", "aud": SSO_CLIENT_ID, "iat": now, "nbf": now, "exp": now + lifetime}
    payload.update(claims)
    payload = {key: value for key, value in payload.items() if value is not None}
    return jwt.encode(payload, secret, algorithm="HS256")


def start_login(client, next_url: str = "/article/") -> tuple[str, str]:
    """GET our login view; returns (identify URL, return URL ``r`` it carries)."""
    response = client.get("/klarna-paywall/sso/login/", {"next": next_url}, secure=True)
    assert response.status_code == 302
    location = response["Location"]
    return location, parse_qs(urlsplit(location).query)["r"][0]


def land(client, token: str, return_url: str):
    return client.get("/klarna-paywall/sso/landing/", {"t": token, "r": return_url}, secure=True)


# -- the gated article: the factories' article with words a test can look for ---------------------------

FREE = "Freeintroword"
TEASER = "Teaserword"
GATED = "Gatedsecretword"
GATED_HEADING = "Gatedheadingword"
PAPER_OFFER = "Paperofferlabel"
DIGITAL_OFFER = "Digitalofferlabel"


def gated_article() -> ArticlePage:
    """A published article on the default site: free intro, teaser, a paywall selling digital and paper
    (only digital opens it), then a gated heading and paragraph."""
    root = Site.objects.get(is_default_site=True).root_page
    purchase_page = KlarnaPurchasePageFactory(parent=root)
    page = ArticlePageFactory(
        parent=root,
        body__0__paragraph__value=f"<p>{FREE} opens the story.</p>",
        body__1__paywall__teaser=RichText(f"<p>{TEASER} for subscribers.</p>"),
        body__1__paywall__purchase_page=purchase_page,
        body__1__paywall__offers__0__label=DIGITAL_OFFER,
        body__1__paywall__offers__1__product_code="paper_package",
        body__1__paywall__offers__1__included_product_codes="paper",
        body__1__paywall__offers__1__label=PAPER_OFFER,
        # The editor's override: only the digital product opens this article, not the paper one sold here.
        body__1__paywall__access_product_codes=ListValue(ListBlock(CharBlock()), values=["digital"]),
        body__2__heading__value=GATED_HEADING,
        body__3__paragraph__value=f"<p>{GATED} is the scoop.</p>",
    )
    page.save_revision().publish()
    return ArticlePage.objects.get(pk=page.pk)


# -- the catalogue (newsroom/catalogue.py) ---------------------------------------------------------------

TRIAL_PERIOD = "5e4bbd0e09c04c1f6498c581"
MONTH_PERIOD = "5e4bbd0e09c04c1f6498c57f"


def product(code: str, name: str, **extra) -> dict:
    return {"id": f"id-{code}", "product_code": code, "title_code": "dagbladet", "name": name, **extra}


#: The product (Payway's "packaged product") that the Digital package and both campaigns contain: what a
#: buyer's ``active_products`` lists, unlike any package or campaign code.
WEB_PRODUCT = "dagbladet_web"

PACKAGES = [
    product(
        "dagbladet_digital",
        "Digital",
        valid_from="2020-05-27T09:40:26+02:00",
        valid_to=None,
        products=[{"id": "id-web", "product_code": WEB_PRODUCT, "type": "product", "name": "Web"}],
    ),
    product("dagbladet_paper", "Paper", expired=True),
    product("dagbladet_old", "Old weekend", valid_to="2021-01-01T00:00:00Z"),
]
# Each campaign lists its products in another of the shapes the client accepts.
CAMPAIGNS = [
    product("dagbladet_trial", "Free month", product_codes=[WEB_PRODUCT]),
    product("dagbladet_summer", "Summer offer", package={"products": [{"code": WEB_PRODUCT}]}),
]
PERIODS = json.loads((FIXTURES / "payment_periods.json").read_text())["items"]


def page_json(items: list[dict], *, page_number: int = 1, more: bool = False) -> dict:
    return {
        "page_info": {"page_size": 25, "page_number": page_number, "more_results_available": more},
        "items": items,
    }


def mock_catalogue(
    rsps: responses.RequestsMock,
    *,
    packages: list[dict] | None = None,
    campaigns: list[dict] | None = None,
    periods: dict[str, list[dict]] | None = None,
) -> None:
    """Payway's catalogue for title ``dagbladet``: a token, titles, one page of each search, periods."""
    rsps.post(TOKEN_URL, json=json.loads((FIXTURES / "token.json").read_text()))
    rsps.get(TITLES_URL, json={"items": [{"name": "Dagbladet", "code": "dagbladet"}]})
    rsps.get(PACKAGES_URL, json=page_json(PACKAGES if packages is None else packages))
    rsps.get(CAMPAIGNS_URL, json=page_json(CAMPAIGNS if campaigns is None else campaigns))
    periods = periods if periods is not None else {"dagbladet_digital": PERIODS, "dagbladet_trial": PERIODS}
    for code, items in periods.items():
        rsps.get(PERIODS_URL, match=[matchers.query_param_matcher({"code": code})], json={"items": items})


# -- editors and the admin's page forms ------------------------------------------------------------------


def staff_user(django_user_model, username, *, admin=True, log=False, superuser=False):
    """A user of the admin: in the Editors group (``admin``), allowed the purchase log (``log``)."""
    if superuser:
        return django_user_model.objects.create_superuser(username, f"{username}@example.com", "pw")
    user = django_user_model.objects.create_user(username, f"{username}@example.com", "pw")
    if admin:
        group, _ = Group.objects.get_or_create(name="Editors")
        group.permissions.add(Permission.objects.get(codename="access_admin"))
        user.groups.add(group)
    if log:
        user.user_permissions.add(Permission.objects.get(codename="view_purchase_log"))
    return user


def listblock(items: list[dict]) -> dict:
    data = {
        str(i): {"value": value, "deleted": "", "order": str(i), "id": ""} for i, value in enumerate(items)
    }
    data["count"] = str(len(items))
    return data


def offer(**overrides) -> dict:
    """What the offer block's form posts once the chooser has filled it."""
    value = {
        "product_code": "dagbladet_digital",
        "product_kind": "package",
        "product_name": "Digital",
        "period_type": "recurring",
        "period_id": MONTH_PERIOD,
        "price": "210",
        "price_period": "month",
        "label": "Digital, 210 kr a month",
        "selling_points": listblock([]),
        "payment_method_category": "",
    }
    value.update(overrides)
    return value


def trial_offer(**overrides) -> dict:
    trial = {
        "product_code": "dagbladet_trial",
        "product_kind": "campaign",
        "product_name": "Free month",
        "period_id": TRIAL_PERIOD,
        "price": "0",
        "is_trial": "on",
        "payment_method_category": "pay_now",
        "label": "Free month",
    }
    return offer(**{**trial, **overrides})


def article_form(purchase_page, offers: list[dict]) -> dict:
    return nested_form_data(
        {
            "title": "Paywalled story",
            "slug": "paywalled-story",
            "body": streamfield(
                [
                    ("paragraph", rich_text("<p>Free opening.</p>")),
                    (
                        "paywall",
                        {
                            "heading": "Read on",
                            "teaser": rich_text("<p>Subscribe.</p>"),
                            "offers": listblock(offers),
                            "purchase_page": str(purchase_page.pk),
                            "confirmation_page": "",
                            "login_text": "Already a subscriber? Log in",
                            "access_product_codes": listblock([]),
                        },
                    ),
                    ("paragraph", rich_text("<p>For subscribers.</p>")),
                ]
            ),
        }
    )


def add_url(parent) -> str:
    return reverse("wagtailadmin_pages:add", args=("testapp", "articlepage", parent.pk))


# -- paywall views (newsroom/paywall_views.py) ------------------------------------------------------------

PAYWALL_VIEW_URL = "/klarna-paywall/paywall-view/"
DESKTOP_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
)


def paywalled_page(root, purchase_page, codes, title="Story"):
    """A published article under ``root`` whose paywall sells one offer per product code in ``codes``."""
    kwargs = {
        "parent": root,
        "title": title,
        "body__0__paragraph__value": "<p>Free</p>",
        "body__1__paywall__purchase_page": purchase_page,
        "body__2__paragraph__value": "<p>Paid</p>",
    }
    for index, code in enumerate(codes):
        kwargs[f"body__1__paywall__offers__{index}__product_code"] = code
        kwargs[f"body__1__paywall__offers__{index}__label"] = code.title()
    page = ArticlePageFactory(**kwargs)
    page.save_revision().publish()
    return ArticlePage.objects.get(pk=page.pk)


def paywall_id(page) -> str:
    return next(raw["id"] for raw in page.body.raw_data if raw["type"] == "paywall")


def beacon(client, page, *, codes, state="anonymous", ip="192.0.2.1", ua=DESKTOP_USER_AGENT, block=None):
    return client.post(
        PAYWALL_VIEW_URL,
        {
            "page": str(page.pk),
            "paywall": block or paywall_id(page),
            "offers": ",".join(codes),
            "state": state,
        },
        REMOTE_ADDR=ip,
        HTTP_USER_AGENT=ua,
    )


# -- the embedded fake Payway (fake/), through Django's test client ---------------------------------------

FAKE_BASE = "/fake-payway/"
FAKE_KP = FAKE_BASE + "external/api/v{}/klarna_payments/"
FAKE_CONFIRM = "https://news.example/kop/tack/?attempt=abc"
FAKE_CUSTOMER = {"email": "ny@example.com", "first_name": "Nora", "last_name": "Ny"}


class FakeApi:
    """The fake Payway's API as a client calls it: tokens, sessions, orders."""

    def __init__(self):
        self.client = Client()

    def token(self, grant_type="none", **fields):
        data = {
            "client_id": "test-client",
            "client_secret": "test-secret-do-not-leak",
            "grant_type": grant_type,
        }
        data.update(fields)
        return self.client.post(
            FAKE_BASE + "api/authorization/access_token",
            urlencode(data),
            content_type="application/x-www-form-urlencoded",
        )

    def system_token(self):
        return fake_state.issue_access_token().value

    def identity_token(self, account_id=fake_state.SUBSCRIBER_ACCOUNT_ID):
        return fake_state.issue_access_token(account_id).value

    def post(self, path, body, token=None, content_type="application/json"):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        data = json.dumps(body) if content_type == "application/json" and not isinstance(body, str) else body
        return self.client.post(path, data, content_type=content_type, **headers)

    def get(self, path, params=None, token=None):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        return self.client.get(path, params or {}, **headers)

    def session(self, version=2, token=None, **body):
        body = {"code": "demo_digital", "period_type": "recurring", "confirmation_url": FAKE_CONFIRM, **body}
        token = token or (self.identity_token() if version == 1 else self.system_token())
        return self.post(FAKE_KP.format(version) + "create_session", body, token)

    def session_id(self, version=2, token=None, **body):
        response = self.session(version, token, **body)
        assert response.status_code == 200, response.content
        return response.json()["item"]["klarna_payments_session_id"]

    def place(self, session_id, scenario="ok", version=2, token=None, endpoint="place_order", **extra):
        body = {
            "klarna_payments_session_id": session_id,
            "klarna_authorization_token": f"fake-auth-{scenario}-{time.monotonic_ns()}",
            "browser_ip": "203.0.113.7",
            "raise_on_ssn_already_taken_error": True,
            "raise_on_ssn_already_set_error": False,
            "raise_on_account_update_error": False,
            "raise_on_delivery_address_error": False,
        }
        if version == 2:
            body["customer_info"] = dict(FAKE_CUSTOMER)
        body.update(extra)
        body = {k: v for k, v in body.items() if v is not None}
        token = token or (self.identity_token() if version == 1 else self.system_token())
        return self.post(FAKE_KP.format(version) + endpoint, body, token)
