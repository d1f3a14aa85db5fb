"""The purchase end to end in Chromium against the production profile (gunicorn workers, PostgreSQL, Redis,
static files from whitenoise, the fake Payway in its own process).

Chromium talks plain http to gunicorn, and the browser context plays the TLS proxy: every request to the
site gets ``X-Forwarded-Proto: https`` and an ``X-Forwarded-For``. What no header can change is the
browser's own idea of the page's scheme, which it sends as the ``Origin`` of a POST: the tests' settings
(tests/multiprocess/settings.py) also trust the http spelling of the site's origins for CSRF. The fake's
Klarna hop is plain http on a loopback port, which the production allow-list refuses, so the reader goes
straight from "pay" to the confirmation page (sandbox/sandbox/settings/production.py explains why).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser.sandbox import CHROMIUM_ARGS, CHROMIUM_PATH, TIMEOUT_MS
from tests.demo_site import ARTICLE_CAMPAIGN_DIGITAL
from tests.multiprocess.profile import Profile

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.multiprocess,
    pytest.mark.browser,
    pytest.mark.skipif(
        sync_playwright is None or not Path(CHROMIUM_PATH).is_file(),
        reason=f"no Playwright or no Chromium at {CHROMIUM_PATH}",
    ),
]


def test_a_new_reader_buys_in_chromium_against_the_profile(fake: Profile):
    from tests.browser.steps import (
        choose_outcome,
        expect_confirmation,
        fill_new_customer,
        open_article,
        pay,
        start_buying,
    )

    site = urlsplit(fake.base_url).netloc
    problems: list[str] = []

    def as_proxy(route, request) -> None:
        if urlsplit(request.url).netloc != site:
            route.continue_()
            return
        headers = {**request.headers, "x-forwarded-proto": "https", "x-forwarded-for": "198.51.100.23"}
        route.continue_(headers=headers)

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = chromium.new_context(base_url=fake.base_url, locale="en-GB")
            context.set_default_timeout(TIMEOUT_MS)
            context.route("**/*", as_proxy)
            page = context.new_page()
            page.on("pageerror", lambda err: problems.append(f"{page.url}: {err}"))
            page.on(
                "console",
                lambda msg: msg.type == "error" and "favicon" not in msg.text and problems.append(msg.text),
            )
            open_article(page, ARTICLE_CAMPAIGN_DIGITAL)
            reference = start_buying(page, "demo_digital")
            fill_new_customer(page)
            choose_outcome(page, "ok")
            pay(page)
            confirmed = expect_confirmation(page, None, "demo_digital")
            expect(page.locator("[data-wkp-confirmation]")).to_be_visible()
            context.close()
        finally:
            chromium.close()

    assert confirmed.replace("-", "") == reference.replace("-", "")
    [(state, order_id, session_id)] = fake.sql(
        "SELECT state, order_id, payway_session_id FROM wagtail_klarna_paywall_purchaseattempt"
        " WHERE reference = %s",
        (reference,),
    )
    assert state == "confirmed" and order_id
    # The fake holds the orders of the whole session's tests: this attempt's Payway session has one.
    orders = [o for o in fake.control()["orders"] if o["session_id"] == session_id]
    assert [(o["code"], o["id"]) for o in orders] == [("demo_digital", order_id)]
    assert not problems, problems
