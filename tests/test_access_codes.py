"""Access is granted on the products an offer contains, not on its package or campaign code.

Payway's ``me/active_products`` lists product codes. The catalogue's package and campaign search items are
read for the products they include (every plausible shape), the chooser stores them on the offer, and a
paywall opens for them unless the editor lists codes. The fake Payway's product codes differ from its
package codes, so the end-to-end test below fails for an access check on package codes.
"""

from __future__ import annotations

import secrets

import pytest
from django.contrib.auth import get_user_model
from wagtail.models import Site

from tests.factories import add_url, article_form, mock_catalogue, offer, product
from tests.testapp.models import ArticlePage
from wagtail_klarna_paywall.blocks import offer_access_codes, offer_from_value, paywall_access_codes
from wagtail_klarna_paywall.fake import catalogue, state
from wagtail_klarna_paywall.newsroom import catalogue as catalogue_module
from wagtail_klarna_paywall.newsroom.chooser import chosen_data
from wagtail_klarna_paywall.payway.client import PaywayClient
from wagtail_klarna_paywall.payway.parsing import included_product_codes, parse_product_page
from wagtail_klarna_paywall.payway.types import PERIOD_RECURRING, AccountSyncFlags, BrowserInfo, CustomerInfo
from wagtail_klarna_paywall.reading.access import holds


def offer_is_held(offer_value, owned):
    return holds(offer_from_value("", offer_value), owned)


# -- parsing: every plausible shape of "the products it includes" ---------------------------------------


@pytest.mark.parametrize(
    "item",
    [
        {"products": [{"id": "1", "product_code": "web", "type": "product"}, {"product_code": "app"}]},
        {"products": ["web", "app"]},
        {"included_products": [{"code": "web"}, {"code": "app"}]},
        {"packaged_products": [{"product_code": "web"}, "app"]},
        {"product_codes": ["web", "app", "web"]},
        {"package": {"product_code": "base", "products": [{"product_code": "web"}, {"product_code": "app"}]}},
        {"products": [{"product_code": "web"}], "product_codes": ["app"]},
    ],
)
def test_included_products_are_read_from_every_plausible_shape(item):
    assert included_product_codes({"product_code": "pkg", **item}) == ("web", "app")


@pytest.mark.parametrize(
    "item",
    [
        {},
        {"products": None},
        {"products": "web"},
        {"products": {"product_code": "web"}},
        {"products": [None, True, {}, {"name": "no code"}, {"product_code": ""}, [], 1.5]},
        {"package": "base"},
    ],
)
def test_unreadable_or_missing_products_give_none(item):
    assert included_product_codes({"product_code": "pkg", **item}) == ()


def test_product_page_carries_the_included_codes():
    page = parse_product_page(
        {"items": [{"product_code": "pkg", "products": [{"product_code": 10}]}, {"product_code": "other"}]},
        kind="package",
        page_number=1,
        page_size=25,
    )
    assert [p.included_product_codes for p in page.items] == [("10",), ()]


# -- the paywall's decision ---------------------------------------------------------------------------


def test_an_offer_grants_its_products_or_else_its_own_code():
    assert offer_access_codes({"product_code": "pkg", "included_product_codes": "web, app ,web"}) == (
        "web",
        "app",
    )
    assert offer_access_codes({"product_code": "pkg", "included_product_codes": ""}) == ("pkg",)
    assert offer_access_codes({"product_code": "pkg"}) == ("pkg",)
    assert offer_access_codes({}) == () and offer_access_codes(None) == ()


def test_an_offer_is_held_only_when_every_product_it_grants_is():
    weekend = {"product_code": "pkg_weekend", "included_product_codes": "web, paper"}
    assert offer_is_held(weekend, {"web", "paper", "other"})
    assert not offer_is_held(weekend, {"web"}), "an upgrade is still sold"
    assert offer_is_held(weekend, {"pkg_weekend"}), "a catalogue listing package codes"
    assert not offer_is_held({"product_code": "x", "included_product_codes": ""}, set())


def test_stored_and_python_forms_decide_alike():
    raw = {
        "offers": [
            {"type": "item", "id": "a", "value": {"product_code": "pkg", "included_product_codes": "web"}},
            {"type": "item", "id": "b", "value": {"product_code": "camp", "included_product_codes": "web"}},
        ],
        "access_product_codes": [],
    }
    bare = {"offers": [item["value"] for item in raw["offers"]], "access_product_codes": []}
    assert paywall_access_codes(raw) == paywall_access_codes(bare) == ("web",)
    raw["access_product_codes"] = [{"type": "item", "id": "x", "value": "premium"}, {"value": 3}]
    assert paywall_access_codes(raw) == ("premium",)


# -- the fake Payway models what Payway documents -----------------------------------------------------


def test_fake_product_codes_differ_from_every_package_and_campaign_code():
    sold = set(catalogue.PRODUCTS)
    granted = {code for product in catalogue.PRODUCTS.values() for code in product.grants}
    assert granted and not granted & sold
    assert set(catalogue.INCLUDED_PRODUCTS) == granted
    # A campaign grants the same product as a package.
    digital = catalogue.find_product("demo_digital")
    campaign = catalogue.find_product("demo_campaign_3m99")
    assert digital.kind == "package" and campaign.kind == "campaign"
    assert set(campaign.grants) == set(digital.grants) == {catalogue.DIGITAL}


@pytest.fixture
def payway(live_server):
    state.reset()
    client = PaywayClient(
        base_url=live_server.url + "/fake-payway",
        client_id="test-client",
        client_secret="test-secret-do-not-leak",
        connect_timeout=2.0,
        read_timeout=5.0,
    )
    yield client
    client.close()
    state.reset()


def _chosen_offer(payway, kind: str, code: str) -> dict:
    """The offer block value the chooser stores for ``code``, from the fake's live catalogue."""
    search = payway.search_packages if kind == "package" else payway.search_campaigns
    found = next(p for p in search(catalogue.TITLE_CODE).items if p.product_code == code)
    period = payway.payment_periods(code)[0]
    data = chosen_data(found, period)
    return {"product_code": data["id"], **{k: v for k, v in data.items() if k not in ("id", "title")}}


def _buy(payway, code: str, email: str) -> None:
    session = payway.create_session(
        code=code, confirmation_url="https://news.example/thanks/", period_type=PERIOD_RECURRING
    )
    payway.place_order(
        klarna_authorization_token=f"fake-auth-ok-{secrets.token_hex(8)}",
        klarna_payments_session_id=session.klarna_payments_session_id,
        browser=BrowserInfo(ip="203.0.113.7", language="sv-SE", user_agent="test"),
        flags=AccountSyncFlags(),
        customer=CustomerInfo(email=email, first_name="Nora", last_name="Ny"),
    )


@pytest.mark.django_db(transaction=True)
def test_a_campaign_buyer_reads_an_article_that_offers_the_package_and_package_codes_would_fail(payway):
    """Buy the campaign; the article's paywall offers only the Digital package. The buyer's
    active_products (product codes) open it through the codes the chooser stored; compared with the
    offered package code, as before, the same buyer would stay paywalled."""
    paywall = {"offers": [_chosen_offer(payway, "package", "demo_digital")], "access_product_codes": []}
    campaign = _chosen_offer(payway, "campaign", "demo_campaign_3m99")
    assert paywall["offers"][0]["included_product_codes"] == campaign["included_product_codes"] == "digital"

    _buy(payway, "demo_campaign_3m99", "ny-kund@example.com")
    account = state.find_account("ny-kund@example.com")
    token = payway.exchange_ticket(state.issue_ticket(account.id)).access_token
    held = set(payway.active_products(token).active_products)

    assert held == {catalogue.DIGITAL}
    assert held & set(paywall_access_codes(paywall))  # read on
    package_codes = {item["product_code"] for item in paywall["offers"]}
    assert not held & package_codes  # the old check on package codes: still paywalled
    # And the buyer is not offered the campaign again: it grants nothing they lack.
    assert offer_is_held(campaign, held)


# -- editors: the fallback to the offered code is announced -------------------------------------------


@pytest.fixture
def editor(client):
    client.force_login(get_user_model().objects.create_superuser("editor", "editor@example.com", "pw"))
    return client


@pytest.fixture
def purchase_page():
    from tests.factories import KlarnaPurchasePageFactory

    return KlarnaPurchasePageFactory(parent=Site.objects.get(is_default_site=True).root_page)


def _warnings(response) -> list[str]:
    return [str(m) for m in response.context["messages"] if m.level_tag == "warning"]


@pytest.mark.django_db
def test_saving_an_offer_whose_catalogue_lists_no_products_warns_the_editor(editor, rsps, purchase_page):
    mock_catalogue(rsps, packages=[product("dagbladet_digital", "Digital")])
    root = Site.objects.get(is_default_site=True).root_page
    response = editor.post(add_url(root), article_form(purchase_page, [offer()]), follow=True)
    assert response.redirect_chain and response.redirect_chain[0][1] == 302
    [warning] = _warnings(response)
    assert "lists no products" in warning and "dagbladet_digital" in warning
    paywall = ArticlePage.objects.get(slug="paywalled-story").body[1]
    # The offered code stands in for the products the catalogue did not list.
    assert paywall_access_codes(paywall.value) == ("dagbladet_digital",)


@pytest.mark.django_db
def test_no_fallback_warning_when_the_editor_names_the_codes(editor, rsps, purchase_page):
    mock_catalogue(rsps, packages=[product("dagbladet_digital", "Digital")])
    root = Site.objects.get(is_default_site=True).root_page
    form = article_form(purchase_page, [offer()])
    form.update(
        {
            "body-1-value-access_product_codes-count": "1",
            "body-1-value-access_product_codes-0-value": "dagbladet_web",
            "body-1-value-access_product_codes-0-deleted": "",
            "body-1-value-access_product_codes-0-order": "0",
            "body-1-value-access_product_codes-0-id": "",
        }
    )
    response = editor.post(add_url(root), form, follow=True)
    assert response.redirect_chain and response.redirect_chain[0][1] == 302
    assert _warnings(response) == []


@pytest.mark.django_db
def test_rendering_a_paywall_reads_no_catalogue(client, rsps):
    """The codes travel in the block value: a paywall render never asks Payway for them."""
    from tests.factories import ArticlePageFactory

    root = Site.objects.get(is_default_site=True).root_page
    page = ArticlePageFactory(parent=root, body__0__paywall__offers__0__included_product_codes="")
    page.save_revision().publish()
    catalogue_module.refresh()
    assert client.get(page.url).status_code == 200
    assert len(rsps.calls) == 0
