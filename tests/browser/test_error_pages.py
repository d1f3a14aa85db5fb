"""Every page a failed purchase can end on, in Swedish: a way back to the article and the site's
customer-service line (issue 13's "no dead ends"), seen in Chromium as a Swedish reader sees them.

The view tests (``tests/test_flow_pages.py``) cover each outcome's text; these walk the real pages: the
paywall's one-click buy, the fake Klarna widget, and the answer the fake Payway gives to ``place_order``.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser.sandbox import Sandbox, Watch
from tests.browser.steps import assert_clean, choose_outcome, open_article, pay, start_buying
from tests.demo_site import ARTICLE_CAMPAIGN_DIGITAL as ARTICLE

CUSTOMER_SERVICE = "Kundservice: kundservice@ekbytidning.se, 010-123 45 67"

#: (the fake widget's outcome, a phrase of the Swedish page the reader lands on)
OUTCOMES = [
    ("decline", "Klarna"),
    ("payment_method_failed", "Klarna"),
    ("validation", "Köpet"),
    ("server_error", "du debiteras inte två gånger"),
    ("garbage", "du debiteras inte två gånger"),
    ("ssn_already_taken", "konto"),
]


def buy_digital_as_a_new_customer(page: Page) -> None:
    open_article(page, ARTICLE)
    start_buying(page, "demo_digital")
    page.get_by_label("E-postadress").fill(f"ny.lasare.{secrets.token_hex(4)}@example.com")
    page.get_by_label("Förnamn").fill("Nina")
    page.get_by_label("Efternamn").fill("Läsare")


@pytest.mark.parametrize(("outcome", "phrase"), OUTCOMES, ids=[outcome for outcome, _ in OUTCOMES])
def test_every_failed_purchase_page_leads_back_to_the_article_and_names_customer_service(
    swedish_page: Page, sandbox: Sandbox, watch: Watch, outcome: str, phrase: str
):
    page = swedish_page
    buy_digital_as_a_new_customer(page)
    choose_outcome(page, outcome)
    pay(page)
    page.wait_for_load_state()

    main = page.locator("main")
    expect(main).to_contain_text(phrase)
    expect(page.locator("[data-wkp-customer-service]")).to_have_text(CUSTOMER_SERVICE)
    back = page.get_by_role("link", name="Tillbaka till artikeln")
    expect(back).to_have_attribute("href", re.compile(re.escape(ARTICLE) + "$"))
    if outcome == "ssn_already_taken":
        # "Log in with that account": a real login that returns to the article.
        login = main.get_by_role("link", name="Logga in med det kontot")
        expect(login).to_have_attribute(
            "href", re.compile(r"next=" + re.escape(quote(ARTICLE, safe="")) + "$")
        )
    for english in ("Back to the article", "Customer service", "Try again", "Log in"):
        expect(main).not_to_contain_text(english)

    with page.expect_navigation():
        back.click()
    assert urlsplit(page.url).path == ARTICLE
    assert_clean(watch)
