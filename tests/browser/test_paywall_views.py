"""The paywall's script in a real browser: the view beacon and the GA4 dataLayer events.

The sandbox turns analytics events on (build_demo_content). Headless Chromium announces itself as
"HeadlessChrome", which the view counter ignores as a bot, so these readers use an ordinary Chrome
User-Agent. The events are read through an init script that reports every ``dataLayer.push`` to the test
(a binding, so they survive the flow's navigations).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
from playwright.sync_api import expect

from tests.browser.sandbox import REPORTER_SCRIPT, TIMEOUT_MS, Sandbox, Watch
from tests.browser.steps import (
    assert_clean,
    choose_outcome,
    expect_confirmation,
    fill_new_customer,
    open_article,
    pay,
    start_buying,
)
from tests.demo_site import ARTICLE_CAMPAIGN_DIGITAL

pytestmark = pytest.mark.browser

FREE_ARTICLE = "/nyheter/helgens-vader/"
BEACON_PATH = "/klarna-paywall/paywall-view/"
CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
)
EMAIL = "ny.lasare@example.com"

DATALAYER_SCRIPT = """
(() => {
  const layer = window.dataLayer || [];
  const push = layer.push.bind(layer);
  layer.push = function (...items) {
    for (const item of items) {
      try { window.__wkpReportDataLayer(JSON.parse(JSON.stringify(item))); } catch (e) {}
    }
    return push(...items);
  };
  window.dataLayer = layer;
})();
"""


@pytest.fixture
def reader_context(browser, sandbox: Sandbox, watch: Watch):
    """A new reader in an ordinary (not headless-looking) Chrome, with dataLayer and beacon recorders."""
    sandbox.reset_fake()
    ctx = browser.new_context(
        base_url=sandbox.base_url,
        locale="en-GB",
        user_agent=CHROME_UA,
        viewport={"width": 1100, "height": 900},
    )
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.events = []
    ctx.beacons = []
    ctx.expose_function("__wkpReportCsp", lambda violation: watch.csp_violations.append(violation))
    ctx.expose_function("__wkpReportDataLayer", lambda item: ctx.events.append((item, ctx.current_url)))
    ctx.add_init_script(REPORTER_SCRIPT)
    ctx.add_init_script(DATALAYER_SCRIPT)
    ctx.current_url = ""

    def on_page(page) -> None:
        page.on("console", lambda msg: watch.console(page, msg))
        page.on("pageerror", lambda err: watch.page_errors.append(f"{page.url}: {err}"))
        page.on("framenavigated", lambda frame: setattr(ctx, "current_url", frame.url))

    def on_request(request) -> None:
        if BEACON_PATH in request.url:
            ctx.beacons.append(request)

    ctx.on("page", on_page)
    ctx.on("request", on_request)
    yield ctx
    ctx.close()


def beacon_fields(request) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(request.post_data or "").items()}


def test_the_beacon_fires_once_on_a_paywalled_article_and_never_on_a_free_one(
    reader_context, sandbox: Sandbox, watch: Watch
):
    page = reader_context.new_page()
    with page.expect_request(lambda r: BEACON_PATH in r.url) as beacon:
        open_article(page, ARTICLE_CAMPAIGN_DIGITAL)
    request = beacon.value
    assert request.method == "POST"
    response = request.response()
    assert response is not None and response.status == 204, "the beacon was not counted"
    assert response.headers.get("cache-control") == "no-store" and "set-cookie" not in response.headers
    article_id = page.locator("[data-wkp-paywall]").get_attribute("data-wkp-page")
    fields = beacon_fields(request)
    assert fields["page"] == article_id and fields["state"] == "anonymous"
    assert sorted(fields["offers"].split(",")) == ["demo_campaign_3m99", "demo_digital"]
    assert fields["paywall"] == page.locator("[data-wkp-paywall]").get_attribute("data-wkp-block")
    page.wait_for_timeout(500)  # anything sent twice would have gone by now
    assert len(reader_context.beacons) == 1
    assert not page.context.cookies(), "counting a view must not give the reader a cookie"

    page.goto(FREE_ARTICLE)
    expect(page.locator(".story__body")).to_be_visible()
    page.wait_for_timeout(500)
    assert len(reader_context.beacons) == 1, "a free article sent a paywall-view beacon"
    assert page.locator("[data-wkp-paywall]").count() == 0
    # The JSON-LD of the free article says so; the paywalled one names its paid part.
    data = json.loads(page.locator("script[type='application/ld+json']").text_content())
    assert data["isAccessibleForFree"] is True
    assert_clean(watch)


def test_the_datalayer_events_arrive_in_order_through_a_purchase_without_personal_data(
    reader_context, sandbox: Sandbox, watch: Watch
):
    page = reader_context.new_page()
    open_article(page, ARTICLE_CAMPAIGN_DIGITAL)
    data = json.loads(page.locator("script[type='application/ld+json']").text_content())
    assert data["isAccessibleForFree"] is False
    assert page.locator(data["hasPart"]["cssSelector"]).count() == 1
    reference = start_buying(page, "demo_digital")
    fill_new_customer(page, email=EMAIL)
    choose_outcome(page, "ok")
    pay(page)
    expect_confirmation(page, sandbox, "demo_digital")
    page.wait_for_timeout(300)

    events = [item for item, _url in reader_context.events if item.get("event")]
    clears = [item for item, _url in reader_context.events if item == {"ecommerce": None}]
    names = [event["event"] for event in events]
    assert names == ["view_item_list", "select_item", "begin_checkout", "purchase"], names
    assert len(clears) == len(events)  # each event's ecommerce object cleared first, as Google asks

    shown, chosen, checkout, purchase = (event["ecommerce"] for event in events)
    assert {item["item_id"] for item in shown["items"]} == {"demo_campaign_3m99", "demo_digital"}
    assert [item["item_id"] for item in chosen["items"]] == ["demo_digital"]
    for ecommerce in (checkout, purchase):
        assert ecommerce["currency"] == "SEK"
        assert [item["item_id"] for item in ecommerce["items"]] == ["demo_digital"]
        assert ecommerce["value"] == 139
        assert ecommerce["reference"] == reference[:8]
    assert purchase["transaction_id"] == reference[:8]

    text = json.dumps(events, ensure_ascii=False)
    for personal in (EMAIL, "Nina", "Läsare", reference):
        assert personal not in text, f"{personal!r} reached the dataLayer"
    assert_clean(watch)
