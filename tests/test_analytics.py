"""Analytics events: off by default, one site switch, GA4 ecommerce names, no personal data, and only
static script on the pages (the flow's CSP stays strict)."""

from __future__ import annotations

import json
import re

import pytest
import responses
from bs4 import BeautifulSoup

from tests.factories import (
    BROWSER,
    CREATE_V2,
    CUSTOMER,
    PLACE_V2,
    Shop,
    buy,
    checkout_path,
    order_json,
    pay,
    session_json,
)
from wagtail_klarna_paywall.models import PaywallSettings, PurchaseAttempt
from wagtail_klarna_paywall.newsroom import analytics

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_pages")]

ALLOWED_ITEM_KEYS = {"item_id", "item_name", "price", "quantity", "index", "item_list_id"}
ALLOWED_ECOMMERCE_KEYS = {"currency", "value", "items", "reference", "transaction_id", "item_list_id"}


def turn_on(shop):
    settings_obj = PaywallSettings.for_site(shop.site)
    settings_obj.analytics_events = True
    settings_obj.save()


def paywall_section(html):
    return BeautifulSoup(html, "html.parser").select_one("[data-wkp-paywall]")


def event_of(html):
    node = BeautifulSoup(html, "html.parser").find("script", id="wkp-analytics-event")
    return json.loads(node.string) if node is not None else None


def assert_no_personal_data(event):
    text = json.dumps(event)
    for secret in (CUSTOMER["email"], CUSTOMER["first_name"], CUSTOMER["last_name"], "203.0.113.7"):
        assert secret not in text
    assert set(event["ecommerce"]) <= ALLOWED_ECOMMERCE_KEYS
    for item in event["ecommerce"]["items"]:
        assert set(item) <= ALLOWED_ITEM_KEYS


def assert_only_static_scripts(html):
    for script in BeautifulSoup(html, "html.parser").find_all("script"):
        assert script.get("src") or script.get("type") in ("application/json", "application/ld+json"), script


def test_off_by_default(shop, reader):
    assert PaywallSettings().analytics_events is False
    html = reader.get(shop.article.url, secure=True).content.decode()
    section = paywall_section(html)
    assert not section.has_attr("data-wkp-analytics")
    # The view beacon is on regardless: it is the funnel's first stage, not analytics.
    assert section["data-wkp-view-url"] == "/klarna-paywall/paywall-view/"
    assert section["data-wkp-page"] == str(shop.article.pk) and section["data-wkp-block"] == "paywall-1"
    assert [li["data-wkp-offer-code"] for li in section.select("[data-wkp-offer-code]")] == ["digital"]
    assert "wagtail_klarna_paywall/paywall.js" in html
    landing = reader.get(shop.purchase_page.url, secure=True).content.decode()
    assert "data-wkp-analytics" not in landing and "paywall.js" not in landing


def test_the_switch_reaches_a_cached_paywall_at_once(shop, reader):
    reader.get(shop.article.url, secure=True)  # the paywall's markup is now cached
    turn_on(shop)
    section = paywall_section(reader.get(shop.article.url, secure=True).content.decode())
    assert section["data-wkp-analytics"] == "paywall" and section["data-wkp-currency"] == "SEK"
    offer = section.select_one("[data-wkp-offer-code]")
    assert offer["data-wkp-offer-name"] and float(offer["data-wkp-offer-price"]) == 99


def test_a_paywalled_page_stays_cacheable_with_analytics_on(shop, reader):
    turn_on(shop)
    response = reader.get(shop.article.url, secure=True)
    assert not response.cookies and "Cookie" not in response.get("Vary", "")
    assert "private" not in response.get("Cache-Control", "")


def test_purchase_page_offers_report_select_item_unless_they_came_from_a_paywall(shop, reader):
    turn_on(shop)
    landing = reader.get(shop.purchase_page.url, secure=True).content.decode()
    offers = BeautifulSoup(landing, "html.parser").select_one("[data-wkp-analytics]")
    assert offers["data-wkp-analytics"] == "purchase_page"
    assert [li["data-wkp-offer-code"] for li in offers.select("[data-wkp-offer-code]")] == [
        "digital",
        "spring-campaign",
        "trial-campaign",
    ]
    assert_only_static_scripts(landing)
    continued = reader.get(
        shop.purchase_page.url, {"page": shop.article.pk, "offer": Shop.article_offer_ref}, secure=True
    ).content.decode()
    assert "data-wkp-analytics" not in continued  # select_item was sent on the article already


def test_checkout_and_confirmation_carry_ga4_events_without_personal_data(shop, payway, reader):
    turn_on(shop)
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())
    buy(reader, shop, page=shop.article, ref=Shop.article_offer_ref)
    attempt = PurchaseAttempt.objects.get()
    html = reader.get(checkout_path(attempt), secure=True).content.decode()
    checkout = event_of(html)
    assert checkout == {
        "event": "begin_checkout",
        "ecommerce": {
            "currency": "SEK",
            "value": 99.0,
            "items": [{"item_id": "digital", "item_name": "Digital", "quantity": 1, "price": 99.0}],
            "reference": str(attempt.reference)[:8],
        },
    }
    assert "wagtail_klarna_paywall/paywall.js" in html
    assert_only_static_scripts(html)
    assert pay(reader, attempt).status_code == 303
    html = reader.get(f"/thanks/?ref={attempt.reference}", secure=True, **BROWSER).content.decode()
    purchase = event_of(html)
    assert purchase["event"] == "purchase"
    assert purchase["ecommerce"]["transaction_id"] == str(attempt.reference)[:8]
    assert purchase["ecommerce"]["value"] == 99.0 and purchase["ecommerce"]["currency"] == "SEK"
    for event in (checkout, purchase):
        assert_no_personal_data(event)
        assert str(attempt.reference) not in json.dumps(event)  # the short reference only
    assert_only_static_scripts(html)


def test_flow_pages_carry_no_events_when_off(shop, payway, reader):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    buy(reader, shop, page=shop.article, ref=Shop.article_offer_ref)
    attempt = PurchaseAttempt.objects.get()
    html = reader.get(checkout_path(attempt), secure=True).content.decode()
    assert event_of(html) is None and "paywall.js" not in html


def test_the_static_script_uses_the_ga4_names_and_no_storage():
    from pathlib import Path

    import wagtail_klarna_paywall

    script = (
        Path(wagtail_klarna_paywall.__file__).parent / "static" / "wagtail_klarna_paywall" / "paywall.js"
    ).read_text()
    for name in ("view_item_list", "select_item"):
        assert f'"{name}"' in script
    assert "sendBeacon" in script
    assert not re.search(r"localStorage|sessionStorage|document\.cookie", script.split("*/", 1)[1])


def test_event_builders_use_only_offer_fields():
    attempt = PurchaseAttempt(product_code="digital", product_name="Digital", price=None)
    event = analytics.purchase_event(attempt)
    assert event["ecommerce"] == {
        "currency": "SEK",
        "items": [{"item_id": "digital", "item_name": "Digital", "quantity": 1}],
        "transaction_id": str(attempt.reference)[:8],
        "reference": str(attempt.reference)[:8],
    }


def test_previews_send_no_beacon_and_no_events(shop):
    from django.contrib.auth.models import AnonymousUser
    from django.template import Context, Template
    from django.test import RequestFactory

    from tests.testapp.models import ArticlePage

    turn_on(shop)
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    request.is_preview = True
    request.klarna_paywall_preview_mode = "anonymous"  # the editor previews what an anonymous reader sees
    html = Template("{% load klarna_paywall_tags %}{% paywalled_stream page.body %}").render(
        Context({"page": ArticlePage.objects.get(pk=shop.article.pk), "request": request})
    )
    section = paywall_section(html)
    assert section is not None
    assert not section.has_attr("data-wkp-view-url") and not section.has_attr("data-wkp-analytics")
    assert "paywall.js" not in html
