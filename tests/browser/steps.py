"""What a reader does in the demo site, in Chromium: open an article, buy, fill in the widget's form, pay,
and land on the confirmation. Shared by the browser flows and the production profile's browser test.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

from tests.browser.sandbox import Sandbox, Watch
from tests.demo_site import CHECKOUT_PATH, FREE_TEXT, OFFER_LABELS, PAID_TEXT, PRODUCT_NAMES


def checkout_reference(page: Page) -> str:
    match = CHECKOUT_PATH.search(urlsplit(page.url).path)
    assert match, f"expected the checkout page, got {page.url}"
    return match["ref"]


def offer_box(page: Page, product_code: str):
    """The innermost element holding the offer's label and a buy form (paywall block or purchase page)."""
    label = OFFER_LABELS[product_code]
    boxes = (
        page.locator("li, article, section, div")
        .filter(has_text=label)
        .filter(has=page.locator("form:has(input[name='offer'])"))
    )
    expect(boxes.first, f"an offer box for {label!r} with a buy form").to_be_visible()
    return boxes.last


def buy_button(page: Page, product_code: str):
    box = offer_box(page, product_code)
    button = box.locator("form:has(input[name='offer']) [type=submit]")
    expect(button).to_have_count(1)
    return button


def open_article(page: Page, path: str) -> None:
    """Open an article as a reader without access: the free text and the paywall, not the paid text."""
    response = page.goto(path)
    assert response is not None and response.status == 200, (
        f"the article {path} answered {response and response.status}: the paywall cannot be shown"
    )
    expect(page.get_by_text(FREE_TEXT[path])).to_be_visible()
    expect(page.get_by_text(PAID_TEXT[path]), "paid text is hidden behind the paywall").to_have_count(0)
    expect(page.locator("form:has(input[name='offer'])").first, "the paywall's buy forms").to_be_visible()


def start_buying(page: Page, product_code: str) -> str:
    """Click buy on the offer and wait for the checkout with the loaded widget; the attempt's reference.

    One click everywhere: on a paywall an anonymous reader's buy is a GET to the purchase page (the article
    stays cacheable), whose script posts that offer's buy form for the click (tests/browser/test_one_click.py
    has the two-click fallback without JavaScript); a logged-in reader's buy, and the purchase page's own,
    post at once.
    """
    buy_button(page, product_code).click()
    page.wait_for_url(CHECKOUT_PATH)
    wait_for_widget(page)
    return checkout_reference(page)


def wait_for_widget(page: Page) -> None:
    expect(page.locator("[data-fake-klarna=widget]"), "the (fake) Klarna widget").to_be_visible()
    expect(page.locator("[data-wkp-pay]"), "the pay button, enabled once the widget loaded").to_be_enabled()


def fill_new_customer(page: Page, email: str | None = None) -> str:
    """Type a new customer's details; returns the e-mail address typed. Each test is another person by
    default: the typed address counts as the reader when the order is placed, and the sandbox keeps its
    database between tests."""
    email = email or f"ny.lasare.{secrets.token_hex(4)}@example.com"
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("First name").fill("Nina")
    page.get_by_label("Last name").fill("Läsare")
    return email


def choose_outcome(page: Page, outcome: str) -> None:
    page.locator(f"input[data-fake-klarna-outcome='{outcome}']").check()


def pay(page: Page) -> None:
    page.locator("[data-wkp-pay]").click()


def expect_confirmation(page: Page, sandbox: Sandbox, product_code: str) -> str:
    """The confirmation page with the purchase summary; the reference of the confirmed attempt."""
    page.wait_for_url(re.compile(r"/tack/\?"))
    summary = page.locator("[data-wkp-confirmation]")
    expect(summary).to_be_visible()
    lead = (
        "Thank you! Your free trial has started."
        if product_code == "demo_trial_14d"
        else "Thank you! Your purchase is complete."
    )
    expect(summary).to_contain_text(lead)
    expect(summary.locator(".wkp-offer-summary__name")).to_have_text(OFFER_LABELS[product_code])
    if PRODUCT_NAMES[product_code] != OFFER_LABELS[product_code]:
        expect(summary.locator(".wkp-offer-summary__product")).to_have_text(PRODUCT_NAMES[product_code])
    refs = parse_qs(urlsplit(page.url).query).get("ref")
    assert refs, f"the confirmation URL carries no attempt reference: {page.url}"
    return refs[0]


def assert_clean(watch: Watch) -> None:
    """S07: no CSP violation, no console error, no uncaught script error on any page of the flow."""
    assert not watch.problems(), "\n".join(watch.problems())
