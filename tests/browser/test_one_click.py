"""One click from the paywall to Klarna's widget, for a Swedish reader, in Chromium.

The paywalled article stays cacheable (no session, no CSRF cookie): its buy button is a GET to the purchase
page. With JavaScript the purchase page posts its own buy form once, for the click the reader made on the
paywall, so the reader lands on the checkout with the widget; without JavaScript the reader clicks the
purchase page's button. Going back, reloading, or opening the purchase page's address never posts again.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser.sandbox import Sandbox, Watch

pytestmark = pytest.mark.browser

ARTICLE = "/nyheter/ny-cykelbana-langs-an/"  # the demo article offering the campaign and Digital
FREE_TEXT = "Den fyra kilometer långa sträckan"
DIGITAL = "Digital – 139 kr/mån"
PURCHASE_PAGE = "/kop/"
CHECKOUT_PATH = re.compile(r"/kop/checkout/[0-9a-f-]{36}/")


@pytest.fixture
def reader(swedish_page: Page) -> Page:
    return swedish_page


@pytest.fixture
def reader_without_javascript(swedish_page_without_javascript: Page) -> Page:
    return swedish_page_without_javascript


def buy_posts(watch: Watch) -> list[str]:
    return [url for url in watch.posts if urlsplit(url).path == PURCHASE_PAGE + "buy/"]


def open_cacheable_article(page: Page) -> None:
    """The article with its paywall, which set no cookie (no session, no CSRF token): cacheable."""
    response = page.goto(ARTICLE)
    assert response is not None and response.status == 200
    expect(page.get_by_text(FREE_TEXT)).to_be_visible()
    assert "set-cookie" not in response.headers, response.headers.get("set-cookie")
    assert page.context.cookies() == [], "the article gave the reader a cookie"


def paywall_buy(page: Page):
    offer = page.locator("[data-wkp-paywall] li").filter(has_text=DIGITAL)
    button = offer.get_by_role("button", name="Köp")
    expect(button).to_have_count(1)
    return button


def landing_buy(page: Page):
    offer = page.locator("[data-wkp-one-click] li").filter(has_text=DIGITAL)
    button = offer.get_by_role("button", name="Köp")
    expect(button).to_have_count(1)
    return button


def expect_widget(page: Page) -> None:
    expect(page.locator("[data-fake-klarna=widget]"), "the (fake) Klarna widget").to_be_visible()
    expect(page.locator("[data-wkp-pay]")).to_be_enabled()
    expect(page.get_by_role("button", name="Betala med Klarna")).to_be_visible()


def settle(page: Page) -> None:
    """Give a script that would post the page the time to do it."""
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(700)


def test_one_click_on_the_paywall_reaches_the_widget(reader: Page, sandbox: Sandbox, watch: Watch):
    page = reader
    open_cacheable_article(page)
    attempts_before = sandbox.attempt_count()

    paywall_buy(page).click()
    page.wait_for_url(CHECKOUT_PATH)
    expect_widget(page)

    assert len(buy_posts(watch)) == 1, watch.posts
    assert sandbox.attempt_count() == attempts_before + 1
    assert sandbox.payway()["sessions"] == 1
    # The paywall's click travelled to the purchase page as a token in its address.
    landings = [r.url for r in watch.responses if urlsplit(r.url).path == PURCHASE_PAGE]
    assert len(landings) == 1 and "wkp_click=" in landings[0], landings
    assert not watch.problems(), "\n".join(watch.problems())


def test_without_javascript_the_reader_clicks_twice(
    reader_without_javascript: Page, sandbox: Sandbox, watch: Watch
):
    page = reader_without_javascript
    open_cacheable_article(page)
    attempts_before = sandbox.attempt_count()

    with page.expect_navigation():
        paywall_buy(page).click()
    assert urlsplit(page.url).path == PURCHASE_PAGE
    query = parse_qs(urlsplit(page.url).query)
    assert set(query) == {"page", "offer"}, "nothing but the offer travels without a script"
    # The purchase page shows the one offer with its own "Köp": nothing started yet.
    expect(page.get_by_role("heading", name=DIGITAL)).to_be_visible()
    assert buy_posts(watch) == [] and sandbox.attempt_count() == attempts_before

    with page.expect_navigation(url=CHECKOUT_PATH):
        landing_buy(page).click()
    assert len(buy_posts(watch)) == 1
    assert sandbox.attempt_count() == attempts_before + 1
    assert sandbox.payway()["sessions"] == 1


def test_back_reload_and_a_copied_address_never_post_again(reader: Page, sandbox: Sandbox, watch: Watch):
    page = reader
    open_cacheable_article(page)
    paywall_buy(page).click()
    page.wait_for_url(CHECKOUT_PATH)
    expect_widget(page)
    attempts = sandbox.attempt_count()
    assert len(buy_posts(watch)) == 1

    # Back from the checkout: the purchase page was posted while it loaded, so the browser replaced its
    # history entry with the checkout's, and back is the article. Nothing is posted either way.
    page.go_back()
    settle(page)
    assert urlsplit(page.url).path in (ARTICLE, PURCHASE_PAGE), page.url
    assert len(buy_posts(watch)) == 1, f"going back posted the form again: {watch.posts}"

    # The address as the paywall's click made it, opened again (a bookmark, a link, another tab): the
    # purchase page waits for a click.
    clicked = next(r.url for r in watch.responses if "wkp_click" in r.url)
    page.goto(clicked)
    settle(page)
    assert urlsplit(page.url).path == PURCHASE_PAGE
    assert "wkp_click" not in page.url, "the click's token was taken out of the address"
    expect(landing_buy(page)).to_be_enabled()
    other = page.context.new_page()
    other.goto(clicked)
    settle(other)
    assert urlsplit(other.url).path == PURCHASE_PAGE
    other.close()
    assert len(buy_posts(watch)) == 1, f"an opened address posted the form: {watch.posts}"

    # Back to that purchase page from the next page, and a reload of it: still waiting for a click.
    page.goto(ARTICLE)
    page.go_back()
    settle(page)
    assert urlsplit(page.url).path == PURCHASE_PAGE
    expect(landing_buy(page)).to_be_enabled()
    page.reload()
    settle(page)
    assert urlsplit(page.url).path == PURCHASE_PAGE
    assert len(buy_posts(watch)) == 1, f"back or reload posted the form: {watch.posts}"
    assert sandbox.attempt_count() == attempts
    assert sandbox.payway()["sessions"] == 1

    # A new click on the paywall takes one click again.
    page.goto(ARTICLE)
    paywall_buy(page).click()
    page.wait_for_url(CHECKOUT_PATH)
    expect_widget(page)
    assert len(buy_posts(watch)) == 2
    assert sandbox.payway()["sessions"] == 1, "the open session of the same offer is reused"
    assert not watch.problems(), "\n".join(watch.problems())
