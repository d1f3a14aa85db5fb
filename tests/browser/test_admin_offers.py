"""The offer block in the real admin, in Chromium: what editors see and what readers get from it.

- A Swedish editor sees the chosen product as a summary; what the chooser copies from Payway (kind, name,
  period, trial, price, the products it includes) is not an input anyone can type into.
- An editor whose admin is in English chooses an offer and publishes: the Swedish public article shows no
  English (the chooser stores data, and the block's default texts are rendered in the reader's language).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.sandbox import TIMEOUT_MS, Sandbox

pytestmark = pytest.mark.browser

ADMIN = ("admin", "admin")
#: A demo article no other browser test reads, so one of these tests may republish it.
ARTICLE = "/nyheter/400-nya-bostader-vid-hamnen/"
ARTICLE_SEARCH = "bostäder"
DERIVED_FIELDS = (
    "product_kind",
    "product_name",
    "period_type",
    "is_trial",
    "period_id",
    "price",
    "price_period",
    "included_product_codes",
)
EDITOR_FIELDS = ("label", "payment_method_category")
#: English words a Swedish reader must not meet on the article (the issue's "249 kr/month", "Already a
#: subscriber? Log in"), as whole words.
ENGLISH = re.compile(r"\b(month|months|week|day|days|Log in|Already a subscriber|Buy|Free trial|per)\b")


def _admin(browser, sandbox: Sandbox, locale: str):
    ctx = browser.new_context(
        base_url=sandbox.base_url, locale=locale, viewport={"width": 1280, "height": 900}
    )
    ctx.set_default_timeout(TIMEOUT_MS)
    page = ctx.new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", ADMIN[0])
    page.fill("#id_password", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/")
    return ctx, page


@pytest.fixture
def swedish_editor(browser, sandbox: Sandbox, request: pytest.FixtureRequest):
    ctx, page = _admin(browser, sandbox, "sv-SE")
    request.node._wkp_context = ctx
    yield page
    ctx.close()


@pytest.fixture
def english_editor(browser, sandbox: Sandbox, request: pytest.FixtureRequest):
    ctx, page = _admin(browser, sandbox, "en-GB")
    request.node._wkp_context = ctx
    yield page
    ctx.close()


def open_editor(page: Page, query: str) -> None:
    page.goto(f"/admin/pages/search/?q={query}")
    page.goto(page.locator("a[href*='/admin/pages/'][href$='/edit/']").first.get_attribute("href"))
    page.wait_for_load_state("networkidle")


def offer_blocks(page: Page):
    blocks = page.locator(".wkp-offer-block")
    expect(blocks.first).to_be_attached()
    return blocks


def field(block, name: str):
    return block.locator(f"[name$='-{name}']").first


def choose_product(page: Page, block, product_name: str) -> None:
    """The offer chooser: the product in Payway's catalogue, then its (first) payment period."""
    block.locator(".chooser__choose-button").first.dispatch_event("click")
    modal = page.locator(".modal-dialog")
    modal.get_by_role("link", name=product_name, exact=True).click()
    modal.locator("td.title a[data-chooser-modal-choice]").first.click()
    expect(modal).to_be_hidden()


def test_the_offer_block_shows_a_summary_not_payways_fields(swedish_editor: Page):
    page = swedish_editor
    open_editor(page, "cykelbana")
    blocks = offer_blocks(page)
    assert blocks.count() == 2
    for index in range(blocks.count()):
        block = blocks.nth(index)
        for name in DERIVED_FIELDS:
            element = field(block, name)
            expect(element, f"{name} is stored in the block").to_have_count(1)
            expect(element, f"{name} is no input an editor can reach").to_be_hidden()
        for name in EDITOR_FIELDS:
            expect(field(block, name), f"the editor's own {name}").to_be_visible()
        expect(block.get_by_text("Säljargument", exact=True).first).to_be_visible()

    # The demo's second offer is Digital, 139 kr a month: summarised in the editor's Swedish.
    digital = blocks.nth(1).locator("[data-wkp-offer-summary]")
    expect(digital).to_contain_text("Vald produkt")
    expect(digital).to_contain_text("Digital (demo_digital)")
    expect(digital).to_contain_text("Paket")
    expect(digital).to_contain_text("139 kr/månad")
    expect(digital).to_contain_text("Ger tillgång till: digital")

    # Choosing another product changes the summary (and the stored fields behind it), nothing else.
    label_before = field(blocks.nth(1), "label").input_value()
    choose_product(page, blocks.nth(1), "Digital + helg")
    expect(digital).to_contain_text("Digital + helg (demo_digital_weekend)")
    expect(digital).to_contain_text("249 kr/månad")
    expect(digital).to_contain_text("Ger tillgång till: digital, paper_weekend")
    assert field(blocks.nth(1), "product_name").input_value() == "Digital + helg"
    assert field(blocks.nth(1), "price").input_value() in ("249", "249.00")
    assert field(blocks.nth(1), "price_period").input_value() == "month"
    assert field(blocks.nth(1), "label").input_value() == label_before, "the editor's label is kept"
    expect(field(blocks.nth(1), "product_name")).to_be_hidden()


def test_an_english_editors_offer_shows_no_english_on_the_swedish_site(
    english_editor: Page, browser, sandbox: Sandbox
):
    page = english_editor
    open_editor(page, ARTICLE_SEARCH)
    block = offer_blocks(page).first
    # A new label comes from Payway's product name (the catalogue's, not the admin's language).
    field(block, "label").fill("")
    choose_product(page, block, "Digital + helg")
    expect(block.locator("[data-wkp-offer-summary]")).to_contain_text("249 kr / month")
    assert field(block, "label").input_value() == "Digital + helg"

    page.locator("[data-w-dropdown-target=toggle]", has=page.locator(".icon-arrow-up")).last.click()
    page.get_by_role("button", name="Publish").click()
    page.wait_for_url(re.compile(r"/admin/pages/\d+/"))
    expect(page.locator(".messages")).to_contain_text("published")

    reader = browser.new_context(base_url=sandbox.base_url, locale="sv-SE")
    try:
        article = reader.new_page()
        article.goto(ARTICLE)
        paywall = article.locator("[data-wkp-paywall]")
        expect(paywall).to_contain_text("Digital + helg")
        expect(paywall).to_contain_text("249 kr/månad")
        expect(paywall).to_contain_text("Redan prenumerant? Logga in")
        text = article.locator("body").inner_text()
        assert not ENGLISH.findall(text), f"English on the Swedish article: {ENGLISH.findall(text)}"
    finally:
        reader.close()
