"""The purchase flow end to end in headless Chromium, against the sandbox with its fake Payway and widget.

Each test is a fresh reader (a new browser context) on a freshly reset fake Payway. It asserts what the
reader sees, the resulting purchase attempt in the sandbox's database, and the Payway calls the fake counted.
Every flow also asserts that the browser reported no CSP violation and no script error (S07).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser.sandbox import ARTIFACTS_DIR, Sandbox, Watch
from tests.browser.steps import (
    assert_clean,
    buy_button,
    checkout_reference,
    choose_outcome,
    expect_confirmation,
    fill_new_customer,
    offer_box,
    open_article,
    pay,
    start_buying,
    wait_for_widget,
)
from tests.demo_site import (
    ARTICLE_CAMPAIGN_DIGITAL,
    ARTICLE_TRIAL_DIGITAL,
    CHECKOUT_PATH,
    OFFER_LABELS,
    PAID_TEXT,
    PURCHASE_PAGE,
)

pytestmark = pytest.mark.browser

#: The paywall's default log-in text, in the reader's language (these contexts browse in English; the demo's
#: paywalls leave the text empty, so no editor's language shows through).
LOGIN_TEXT = "Already a subscriber? Log in"
FLOW_PATHS = ("/kop/", "/tack/")
READER = "reader@example.com"
DEMO_PASSWORD = "demo"
#: The fake Payway's answer shapes where Payway's docs are silent (wagtail_klarna_paywall/fake/variants.py,
#: VARIANTS), flipped through its control API after the per-test reset.
SHAPES = {
    "item": {},
    "flat": {"envelope": "flat"},
    "redirect_url": {"redirect_field": "redirect_url"},
    "direct_debit": {"categories": "direct_debit"},
}


# -- helpers -------------------------------------------------------------------------------------------


def save_screenshot(page: Page, name: str) -> None:
    """Keep a picture of a flow page as a CI artifact, for a person to look at."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS_DIR / f"{name}.png"), full_page=True)


def assert_flow_headers(watch: Watch) -> None:
    """Flow pages (purchase page, buy, checkout, confirmation) are uncacheable and carry a strict CSP."""
    documents = [
        r
        for r in watch.responses
        if r.request.resource_type == "document" and urlsplit(r.url).path.startswith(FLOW_PATHS)
    ]
    assert documents, "no flow page was loaded"
    for response in documents:
        headers = response.headers
        cache_control = {part.strip() for part in headers.get("cache-control", "").split(",")}
        assert {"private", "no-store"} <= cache_control, f"{response.url}: Cache-Control {cache_control}"
        csp = headers.get("content-security-policy", "")
        assert csp, f"{response.url}: no Content-Security-Policy header"
        directives = {d.strip().split(" ")[0]: d.strip().split(" ")[1:] for d in csp.split(";") if d.strip()}
        script_src = directives.get("script-src") or directives.get("default-src") or []
        for bad in ("'unsafe-inline'", "'unsafe-eval'", "*"):
            assert bad not in script_src, f"{response.url}: script-src allows {bad}: {csp}"
        assert directives.get("frame-ancestors") == ["'none'"], f"{response.url}: framable: {csp}"


def payway(sandbox: Sandbox, *names: str) -> dict[str, int]:
    """The fake Payway's counts (see :meth:`Sandbox.payway`), only ``names``."""
    counts = sandbox.payway()
    return {name: counts[name] for name in names}


# -- flows ---------------------------------------------------------------------------------------------


def use_shape(sandbox: Sandbox, shape: str) -> None:
    variants = sandbox.control({"variants": SHAPES[shape]})["variants"]
    assert {name: variants[name] for name in SHAPES[shape]} == SHAPES[shape]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_new_customer_buys_a_package(page: Page, sandbox: Sandbox, watch: Watch, shape: str):
    """A reader without an account opens an article, buys Digital from the paywall, fills in the customer
    form, approves in the widget and pays: confirmation with the summary, one order (v2). S07. Once per
    answer shape the fake can take (item-wrapped or flat, redirect_uri or redirect_url, direct_debit)."""
    use_shape(sandbox, shape)
    open_article(page, ARTICLE_CAMPAIGN_DIGITAL)
    save_screenshot(page, "article-paywall")
    reference = start_buying(page, "demo_digital")
    expect(page.locator("[data-wkp-test-mode]"), "the test-mode ribbon").to_be_visible()
    expect(page.locator(".wkp-offer-summary__name")).to_have_text(OFFER_LABELS["demo_digital"])
    expect(page.locator("[data-wkp-pay]")).to_have_text("Pay with Klarna")
    expect(
        page.get_by_role("link", name="Log in"), "a buyer who never logged in is not shown as logged in"
    ).to_be_visible()
    assert sandbox.attempt(reference)["state"] == "session_ready"

    # Empty customer fields: the browser refuses before Klarna is asked, and nothing is posted.
    posts_before = len(watch.posts)
    pay(page)
    expect(page.locator("[data-fake-klarna=widget]")).not_to_have_attribute(
        "data-fake-klarna-state", "authorizing"
    )
    assert page.get_by_label("E-mail address").evaluate("input => !input.validity.valid")
    assert watch.posts[posts_before:] == []
    expect(page.locator("[data-wkp-pay]")).to_be_enabled()

    email = fill_new_customer(page)
    choose_outcome(page, "ok")
    save_screenshot(page, "checkout")
    pay(page)
    confirmed_ref = expect_confirmation(page, sandbox, "demo_digital")
    save_screenshot(page, "confirmation")
    expect(page.locator("[data-wkp-back]"), "a link back to the article").to_have_attribute(
        "href", re.compile(re.escape(ARTICLE_CAMPAIGN_DIGITAL))
    )

    attempt = sandbox.attempt(reference)
    assert confirmed_ref.replace("-", "") == reference.replace("-", "")
    assert attempt["state"] == "confirmed"
    assert attempt["product_code"] == "demo_digital"
    assert not attempt["existing_customer"]
    assert attempt["order_id"]
    assert payway(sandbox, "sessions", "place_order", "place_trial_order") == {
        "sessions": 1,
        "place_order": 1,
        "place_trial_order": 0,
    }
    orders = sandbox.control()["orders"]
    assert [(o["code"], o["version"], o["trial"]) for o in orders] == [("demo_digital", 2, False)]
    # No customer data is kept: the attempt has no column for it, and the e-mail is nowhere in the row.
    assert email not in " ".join(str(v) for v in tuple(attempt))
    assert_flow_headers(watch)
    assert_clean(watch)


def log_in_through_article(page: Page, sandbox: Sandbox, article: str, email: str) -> None:
    """Log in with the paywall's own login link, through the fake SSO2's login form, back to the article."""
    open_article(page, article)
    page.get_by_role("link", name=LOGIN_TEXT).click()
    page.wait_for_url(re.compile(r"/fake-payway/sso/login"))
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/fake-payway/sso/login" not in url)
    page.wait_for_load_state()
    assert page.url.startswith(sandbox.base_url + article), (
        f"after the SSO2 login form the reader should be back on {sandbox.base_url + article}, but is on "
        f"{page.url}: the fake SSO2 (wagtail_klarna_paywall/fake/sso.py) refuses a return URL on another "
        "host than its own, so the sandbox's SSO_URL must use the host the reader browses"
    )


def test_logged_in_reader_buys_a_campaign_and_reads_on(page: Page, sandbox: Sandbox, watch: Watch):
    """A reader logs in through SSO2 from the article, buys the campaign (v1: no customer form), sees the
    confirmation, and the article then shows the paid text at once. S07."""
    log_in_through_article(page, sandbox, ARTICLE_CAMPAIGN_DIGITAL, READER)
    expect(page.get_by_text(PAID_TEXT[ARTICLE_CAMPAIGN_DIGITAL]), "no access yet").to_have_count(0)
    expect(page.get_by_role("button", name="Log out"), "the reader is shown as logged in").to_be_visible()

    reference = start_buying(page, "demo_campaign_3m99")
    expect(page.get_by_label("E-mail address"), "an existing customer fills in nothing").to_have_count(0)
    choose_outcome(page, "ok")
    pay(page)
    expect_confirmation(page, sandbox, "demo_campaign_3m99")

    attempt = sandbox.attempt(reference)
    assert attempt["state"] == "confirmed"
    assert attempt["existing_customer"], "a logged-in reader buys through v1 with their identity"
    assert attempt["user_id"] is None or attempt["user_id"]  # a user or an anonymous key, never a token
    orders = sandbox.control()["orders"]
    assert [(o["code"], o["version"]) for o in orders] == [("demo_campaign_3m99", 1)]
    assert sandbox.calls()["place_order"] == 1

    page.locator("[data-wkp-back]").click()
    page.wait_for_url(re.compile(re.escape(ARTICLE_CAMPAIGN_DIGITAL)))
    expect(page.get_by_text(PAID_TEXT[ARTICLE_CAMPAIGN_DIGITAL]), "access is immediate").to_be_visible()
    expect(page.locator("form:has(input[name='offer'])"), "no paywall any more").to_have_count(0)
    assert_flow_headers(watch)
    assert_clean(watch)


@pytest.fixture
def sso2_claims(sandbox: Sandbox):
    """Switches the fake SSO2's answer claims for one test, and back to the sandbox's setting after."""
    yield sandbox.sso_claims
    sandbox.sso_claims(None)


#: A JWT (or its first segment) right after a token-like query parameter in a logged request line.
LOGGED_TOKEN = re.compile(r"[?&;](?:t|at|ticket|token)=eyJ", re.IGNORECASE)


@pytest.mark.parametrize("claims", ["none", "pw-sso-aud", "client-aud"])
def test_login_and_v1_purchase_under_every_sso2_claim_variant(
    page: Page, sandbox: Sandbox, watch: Watch, sso2_claims, claims: str
):
    """Payway documents no aud/iss for SSO2's answers, so the site must log in whichever shape they have
    (none; aud "pw-sso" with iss the organisation; aud the client id with iss "pw-sso"), and the logged-in
    reader then buys a non-trial offer through v1. The landing's token never reaches the server's log."""
    assert sso2_claims(claims) == claims
    log_in_through_article(page, sandbox, ARTICLE_CAMPAIGN_DIGITAL, READER)
    expect(page.get_by_role("button", name="Log out"), f"logged in with {claims} answers").to_be_visible()

    reference = start_buying(page, "demo_digital")
    expect(page.get_by_label("E-mail address"), "an existing customer fills in nothing").to_have_count(0)
    choose_outcome(page, "ok")
    pay(page)
    expect_confirmation(page, sandbox, "demo_digital")

    attempt = sandbox.attempt(reference)
    assert attempt["state"] == "confirmed"
    assert attempt["existing_customer"], "a logged-in reader buys through v1 with their identity"
    orders = sandbox.control()["orders"]
    assert [(o["code"], o["version"], o["trial"]) for o in orders] == [("demo_digital", 1, False)]

    log = sandbox.log_path.read_text(errors="replace")
    assert "/klarna-paywall/sso/landing/?t=[redacted]" in log, "the landing's request line was not logged"
    assert not LOGGED_TOKEN.search(log), f"a token in the server log: {LOGGED_TOKEN.search(log)}"
    assert f"SSO2 answers carry the aud/iss shape '{claims}'" in log, "the shape seen is logged"
    assert_flow_headers(watch)
    assert_clean(watch)


@pytest.mark.parametrize("shape", ["item", "flat", "direct_debit"])
def test_trial_uses_place_trial_order(page: Page, sandbox: Sandbox, watch: Watch, shape: str):
    """The free trial: direct debit (pay_now) in the widget, place_trial_order (never place_order). S07."""
    use_shape(sandbox, shape)
    open_article(page, ARTICLE_TRIAL_DIGITAL)
    reference = start_buying(page, "demo_trial_14d")
    # Direct debit: "pay_now" (Klarna's group for it), or "direct_debit" where the session lists that.
    categories = "pay_now|direct_debit" if shape == "direct_debit" else "pay_now"
    expect(page.locator("[data-fake-klarna=widget]")).to_have_attribute(
        "data-fake-klarna-category", re.compile(f"^({categories})$")
    )
    expect(page.locator(".wkp-offer-summary")).to_contain_text("Free trial for 14 days")
    expect(page.locator("[data-wkp-trial-note]")).to_contain_text("Nothing is charged during the free trial")
    expect(page.locator("[data-wkp-pay]")).to_have_text("Start the free trial with Klarna")

    fill_new_customer(page, f"provare-{shape}@example.com")  # one new customer per run
    choose_outcome(page, "ok")
    pay(page)
    expect_confirmation(page, sandbox, "demo_trial_14d")

    attempt = sandbox.attempt(reference)
    assert attempt["state"] == "confirmed"
    assert attempt["is_trial"]
    assert payway(sandbox, "place_order", "place_trial_order") == {"place_order": 0, "place_trial_order": 1}
    assert [o["trial"] for o in sandbox.control()["orders"]] == [True]
    assert_flow_headers(watch)
    assert_clean(watch)


def test_trial_loads_direct_debit_when_the_session_lists_it(page: Page, sandbox: Sandbox, watch: Watch):
    """A trial session listing pay_now and direct_debit: the widget loads direct_debit, and pays with it."""
    sandbox.control({"session_categories": {"trial": ["pay_now", "direct_debit"]}})
    open_article(page, ARTICLE_TRIAL_DIGITAL)
    start_buying(page, "demo_trial_14d")
    expect(page.locator("[data-fake-klarna=widget]")).to_have_attribute(
        "data-fake-klarna-category", "direct_debit"
    )
    fill_new_customer(page, "autogiro@example.com")
    choose_outcome(page, "ok")
    pay(page)
    expect_confirmation(page, sandbox, "demo_trial_14d")
    assert payway(sandbox, "place_order", "place_trial_order") == {"place_order": 0, "place_trial_order": 1}
    assert_clean(watch)


def test_trial_session_without_a_trial_category_shows_the_fallback(
    page: Page, sandbox: Sandbox, watch: Watch
):
    """A trial session listing only pay_later: Klarna is never loaded (so nothing can be authorized), the
    reader is told why, and no order is attempted."""
    sandbox.control({"session_categories": {"trial": ["pay_later"]}})
    open_article(page, ARTICLE_TRIAL_DIGITAL)
    buy_button(page, "demo_trial_14d").click()
    page.wait_for_url(CHECKOUT_PATH)
    reference = checkout_reference(page)

    fallback = page.locator("[data-wkp-fallback-reason=no_payment_method]")
    expect(fallback).to_be_visible()
    expect(fallback).to_contain_text("Klarna cannot be used for this offer")
    expect(page.locator("[data-wkp-pay]"), "nothing to pay with").to_be_disabled()
    expect(page.locator("[data-fake-klarna=widget]"), "no widget").to_have_count(0)
    assert page.evaluate("typeof window.Klarna") == "undefined", "Klarna's SDK was loaded"

    attempt = sandbox.attempt(reference)
    assert attempt["state"] == "session_ready" and attempt["payment_method_category"] == ""
    [event] = sandbox.query(
        "SELECT kind FROM wagtail_klarna_paywall_purchaseevent WHERE attempt_id = ? AND error_code = ?",
        (attempt["id"], "no_payment_method"),
    )
    assert event["kind"] == "error"  # what an editor finds in the purchase log
    assert payway(sandbox, "place_order", "place_trial_order") == {"place_order": 0, "place_trial_order": 0}
    assert_clean(watch)


def test_decline_in_the_widget(page: Page, sandbox: Sandbox, watch: Watch):
    """F14: authorize answers approved:false, show_form:false. The reader is told Klarna cannot be offered,
    the attempt is declined, and no order is placed. S07."""
    page.goto(PURCHASE_PAGE)
    reference = start_buying(page, "demo_digital")
    fill_new_customer(page)
    choose_outcome(page, "decline")
    pay(page)

    message = page.locator("[data-wkp-message]")
    expect(message).to_contain_text("Klarna cannot be offered this time")
    expect(message).to_contain_text("Nothing has been charged")
    expect(page.locator("[data-fake-klarna=widget]"), "the widget is gone").to_have_count(0)
    expect(page.get_by_role("button", name="Try again")).to_be_visible()

    attempt = sandbox.attempt(reference)
    assert attempt["state"] == "declined"
    assert attempt["error_code"] == "declined_in_widget"
    assert payway(sandbox, "sessions", "place_order") == {"sessions": 1, "place_order": 0}
    assert_flow_headers(watch)
    assert_clean(watch)


def test_abort_in_the_widget_lets_the_reader_retry_the_same_session(
    page: Page, sandbox: Sandbox, watch: Watch
):
    """F14: approved:false with show_form:true (a field to fix, or the reader aborted) re-enables the form
    without posting anything; the same session is then paid."""
    page.goto(PURCHASE_PAGE)
    reference = start_buying(page, "demo_digital")
    fill_new_customer(page)
    posts_before = len(watch.posts)
    choose_outcome(page, "invalid_fields")
    pay(page)
    expect(page.locator("[data-wkp-status]")).to_contain_text(
        "Please check the details you entered in Klarna"
    )
    expect(page.locator("[data-wkp-pay]")).to_be_enabled()
    choose_outcome(page, "abort")
    pay(page)
    expect(page.locator("[data-wkp-status]")).to_contain_text("The payment was not completed")
    expect(page.locator("[data-wkp-pay]")).to_be_enabled()
    assert len(watch.posts) == posts_before, f"an aborted authorization posted: {watch.posts[posts_before:]}"
    assert sandbox.attempt(reference)["state"] == "session_ready"

    choose_outcome(page, "ok")
    pay(page)
    expect_confirmation(page, sandbox, "demo_digital")
    assert sandbox.attempt(reference)["state"] == "confirmed"
    assert payway(sandbox, "sessions", "place_order") == {"sessions": 1, "place_order": 1}
    assert_clean(watch)


def test_payment_method_failed_explains_and_retry_starts_a_new_attempt(
    page: Page, sandbox: Sandbox, watch: Watch
):
    """A 403 payment_method_failed on place_order: a plain explanation, a terminal attempt, and a retry
    button that starts a new attempt with a new Payway session."""
    page.goto(PURCHASE_PAGE)
    reference = start_buying(page, "demo_digital")
    fill_new_customer(page)
    choose_outcome(page, "payment_method_failed")
    pay(page)

    message = page.locator("[data-wkp-message]")
    expect(message).to_contain_text("Klarna could not approve the payment")
    expect(message).to_contain_text("nothing has been charged")
    expect(message).to_contain_text("credit check")
    save_screenshot(page, "payment-method-failed")
    attempt = sandbox.attempt(reference)
    assert attempt["state"] in ("declined", "failed"), attempt["state"]
    assert attempt["error_code"] == "payment_method_failed"
    assert sandbox.calls()["place_order"] == 1

    with page.expect_navigation(url=CHECKOUT_PATH):
        page.get_by_role("button", name="Try again").click()
    wait_for_widget(page)
    new_reference = checkout_reference(page)
    assert new_reference != reference, "a retry must start a new attempt"
    assert sandbox.attempt(new_reference)["state"] == "session_ready"
    assert sandbox.attempt(reference)["state"] == attempt["state"], "the failed attempt stays terminal"
    assert payway(sandbox, "sessions", "place_order") == {"sessions": 2, "place_order": 1}
    assert_clean(watch)


def test_a_scope_error_on_the_order_says_payments_cannot_be_taken(page: Page, sandbox: Sandbox, watch: Watch):
    """A 403 that is not "payment method failed" (the fake's order_scope_error switch): the reader is told
    payments cannot be taken just now, not that Klarna refused them; the attempt fails, never declined."""
    page.goto(PURCHASE_PAGE)
    reference = start_buying(page, "demo_digital")
    sandbox.control({"variants": {"order_scope_error": True}})
    fill_new_customer(page)
    choose_outcome(page, "ok")
    pay(page)

    message = page.locator("[data-wkp-message]")
    expect(message).to_contain_text("Payments cannot be taken right now")
    expect(message).not_to_contain_text("Klarna")
    save_screenshot(page, "order-scope-error")
    attempt = sandbox.attempt(reference)
    assert (attempt["state"], attempt["error_code"]) == ("failed", "permission_denied")
    assert sandbox.events(reference, "declined") == 0
    assert sandbox.events(reference, "error") == 1
    assert payway(sandbox, "place_order", "orders") == {"place_order": 1, "orders": 0}
    assert_flow_headers(watch)
    assert_clean(watch)


def test_double_click_on_buy_and_on_pay(page: Page, sandbox: Sandbox, watch: Watch):
    """C01/C02 in the browser: a double-click on buy makes one attempt and one Payway session; a
    double-click on pay authorizes once and places one order."""
    page.goto(PURCHASE_PAGE)
    attempts_before = sandbox.attempt_count()
    # The second click submits the form again, which aborts the first navigation: wait for where the
    # browser ends up, not for the first navigation (waiting for that one failed now and then).
    buy_button(page, "demo_digital").dblclick()
    page.wait_for_url(CHECKOUT_PATH)
    wait_for_widget(page)
    reference = checkout_reference(page)
    assert sandbox.attempt_count() == attempts_before + 1, "a double-click on buy made two attempts"
    assert sandbox.payway()["sessions"] == 1, "a double-click on buy made two Payway sessions"

    fill_new_customer(page)
    choose_outcome(page, "ok")
    page.locator("[data-wkp-pay]").dblclick()
    expect_confirmation(page, sandbox, "demo_digital")
    assert sandbox.attempt(reference)["state"] == "confirmed"
    checkout_posts = [url for url in watch.posts if CHECKOUT_PATH.search(url)]
    assert len(checkout_posts) == 1, f"the checkout form was posted {len(checkout_posts)} times"
    assert payway(sandbox, "sessions", "place_order") == {"sessions": 1, "place_order": 1}
    assert len(sandbox.control()["orders"]) == 1
    assert_clean(watch)


def test_widget_that_fails_to_load_shows_a_fallback(page: Page, sandbox: Sandbox, watch: Watch):
    """F13: the Klarna script never loads. Within the load timeout the reader sees a fallback with a retry
    (enabled after a few seconds); the pay button stays disabled; nothing is posted."""
    page.goto(PURCHASE_PAGE)
    page.route("**/fake-klarna.js", lambda route: route.abort())
    with page.expect_navigation(url=CHECKOUT_PATH):
        buy_button(page, "demo_digital").click()
    reference = checkout_reference(page)
    posts_before = len(watch.posts)

    fallback = page.locator("[data-wkp-fallback]")
    expect(fallback).to_be_visible(timeout=15_000)
    expect(fallback).to_contain_text("Klarna's payment form did not load")
    save_screenshot(page, "widget-fallback")
    expect(page.locator("[data-wkp-pay]")).to_be_disabled()
    retry = page.locator("[data-wkp-retry]")
    expect(retry).to_be_enabled(timeout=6_000)
    expect(page.locator("[data-wkp-pay]")).to_be_disabled()

    # The retry reloads the page (a GET: no new Payway session, no post); the script is still blocked.
    with page.expect_navigation(url=CHECKOUT_PATH):
        retry.click()
    expect(page.locator("[data-wkp-pay]")).to_be_disabled()
    assert watch.posts[posts_before:] == [], f"posts reached the server: {watch.posts[posts_before:]}"
    assert checkout_reference(page) == reference
    assert sandbox.attempt(reference)["state"] == "session_ready"
    assert payway(sandbox, "sessions", "place_order") == {"sessions": 1, "place_order": 0}
    # The blocked script is the only failure the browser reports.
    unexpected = [p for p in watch.problems() if "fake-klarna.js" not in p and "ERR_FAILED" not in p]
    assert not unexpected, "\n".join(unexpected)


def test_two_tabs_place_one_order(context, sandbox: Sandbox, watch: Watch):
    """C05 (and C04): two tabs of one reader buy the same offer. Both show the same (reused) session; tab A
    pays; tab B's later pay does not place a second order and tells the reader it is already bought."""
    tab_a, tab_b = context.new_page(), context.new_page()
    tab_a.goto(PURCHASE_PAGE)
    reference = start_buying(tab_a, "demo_digital")
    tab_b.goto(PURCHASE_PAGE)
    assert start_buying(tab_b, "demo_digital") == reference, "the second tab should resume the same attempt"
    assert sandbox.payway()["sessions"] == 1

    for tab in (tab_a, tab_b):
        fill_new_customer(tab)
        choose_outcome(tab, "ok")
    pay(tab_a)
    expect_confirmation(tab_a, sandbox, "demo_digital")

    # Tab B's own authorization reaches a bought attempt: the stored outcome (a replay of the redirect to
    # the confirmation) or an "already bought" page with a link to it; never a second order.
    with tab_b.expect_navigation():
        pay(tab_b)
    tab_b.wait_for_load_state()
    if "/tack/" in tab_b.url:
        assert expect_confirmation(tab_b, sandbox, "demo_digital").replace("-", "") == reference.replace(
            "-", ""
        )
    else:
        expect(tab_b.locator("[data-wkp-message]")).to_contain_text("You have already bought this")
        expect(tab_b.get_by_role("link", name="Go to your confirmation")).to_be_visible()
    assert sandbox.attempt(reference)["state"] == "confirmed"
    assert payway(sandbox, "sessions", "place_order", "orders") == {
        "sessions": 1,
        "place_order": 1,
        "orders": 1,
    }
    assert_clean(watch)


def test_confirmation_reload_and_back_change_nothing(page: Page, sandbox: Sandbox, watch: Watch):
    """C06: reloading the confirmation, going back to the checkout and forward again shows the same
    summary, records the confirmation once and makes no Payway write."""
    page.goto(PURCHASE_PAGE)
    reference = start_buying(page, "demo_digital")
    fill_new_customer(page)
    choose_outcome(page, "ok")
    pay(page)
    expect_confirmation(page, sandbox, "demo_digital")
    after_purchase = sandbox.payway()

    for _ in range(3):
        page.reload()
        expect_confirmation(page, sandbox, "demo_digital")
    # Back to the checkout: never cached (no-store), so the browser asks again and is told it is bought.
    page.go_back()
    page.wait_for_url(CHECKOUT_PATH)
    expect(page.locator("[data-wkp-message]")).to_contain_text("You have already bought this")
    expect(page.locator("[data-fake-klarna=widget]"), "no widget for a bought attempt").to_have_count(0)
    page.go_forward()
    expect_confirmation(page, sandbox, "demo_digital")

    assert sandbox.payway() == after_purchase, "a reload or back/forward made a Payway call"
    assert sandbox.attempt(reference)["state"] == "confirmed"
    assert sandbox.attempt(reference)["confirmed_at"], "confirmed, at the first visit of the page"
    assert_flow_headers(watch)
    assert_clean(watch)


def test_finalize_required_is_finalized_before_paying(page: Page, sandbox: Sandbox, watch: Watch):
    """F14: authorize answers approved with finalize_required and no token; the page finalizes and only
    then posts the token it gets: one order."""
    page.goto(PURCHASE_PAGE)
    reference = start_buying(page, "demo_digital")
    fill_new_customer(page)
    choose_outcome(page, "finalize_required")
    pay(page)
    expect_confirmation(page, sandbox, "demo_digital")
    assert sandbox.attempt(reference)["state"] == "confirmed"
    assert payway(sandbox, "sessions", "place_order") == {"sessions": 1, "place_order": 1}
    assert_clean(watch)


def test_racing_buy_posts_make_one_attempt(page: Page, sandbox: Sandbox, watch: Watch):
    """C01 at the server: Chromium sends only one of a double-click's submits, so here ten buy posts leave
    the reader's page at once (its cookies, its CSRF token). All land on the one attempt and its one
    Payway session, and none fails."""
    page.goto(PURCHASE_PAGE)
    reference = start_buying(page, "demo_digital")  # the reader now has a session: one reader, one key
    attempts_before = sandbox.attempt_count()
    page.goto(PURCHASE_PAGE)
    form = buy_button(page, "demo_digital").locator("xpath=ancestor::form")
    answers = form.evaluate(
        """async (form) => {
            const post = () => fetch(form.action, {method: "POST", body: new FormData(form)});
            const responses = await Promise.all(Array.from({length: 10}, post));
            return responses.map((r) => [r.status, r.url]);
        }"""
    )
    failed = [answer for answer in answers if answer[0] != 200]
    assert not failed, (
        f"racing buy posts answered {failed}. A 500 with 'database is locked' in the sandbox log is SQLite "
        "upgrading a deferred transaction under concurrent writers: the sandbox's SQLite database needs "
        "OPTIONS transaction_mode IMMEDIATE (sandbox/sandbox/settings/base.py)"
    )
    assert {CHECKOUT_PATH.search(url)["ref"] for _status, url in answers} == {reference}, answers
    assert sandbox.attempt_count() == attempts_before
    assert sandbox.payway()["sessions"] == 1
    assert_clean(watch)


def test_new_customer_reads_on_at_once_in_this_browser_only(
    browser, page: Page, sandbox: Sandbox, watch: Watch
):
    """A new customer buys Digital from an article's paywall and reads on at once, without logging in:
    this article, and another one the same product opens. The confirmation and the article say how to
    read on other devices (a login back to the article, the masked e-mail). A fresh browser still meets
    the paywall, and logging out ends the reading in this one."""
    open_article(page, ARTICLE_CAMPAIGN_DIGITAL)
    reference = start_buying(page, "demo_digital")
    fill_new_customer(page, "ny.lasare@example.com")
    choose_outcome(page, "ok")
    pay(page)
    expect_confirmation(page, sandbox, "demo_digital")
    notice = page.locator("[data-wkp-grant]")
    expect(notice).to_contain_text("You can read on now in this browser")
    expect(notice).to_contain_text("n\u2022\u2022\u2022@example.com")
    expect(notice.locator("[data-wkp-grant-login]")).to_have_attribute(
        "href", re.compile(r"/sso/login/\?next=%2Fnyheter%2Fny-cykelbana-langs-an%2F")
    )
    expect(page.get_by_text("ny.lasare@example.com")).to_have_count(0)
    save_screenshot(page, "confirmation-new-customer")

    page.locator("[data-wkp-back]").click()
    page.wait_for_url(re.compile(re.escape(ARTICLE_CAMPAIGN_DIGITAL)))
    expect(page.get_by_text(PAID_TEXT[ARTICLE_CAMPAIGN_DIGITAL]), "access is immediate").to_be_visible()
    expect(page.locator("form:has(input[name='offer'])"), "no paywall any more").to_have_count(0)
    expect(page.locator("[data-wkp-grant]")).to_contain_text("n\u2022\u2022\u2022@example.com")
    save_screenshot(page, "article-read-through-purchase")

    # Another article that the same product opens.
    response = page.goto(ARTICLE_TRIAL_DIGITAL)
    assert response is not None and response.status == 200
    expect(page.get_by_text(PAID_TEXT[ARTICLE_TRIAL_DIGITAL])).to_be_visible()
    cache_control = response.headers.get("cache-control", "")
    assert "private" in cache_control and "cookie" in response.headers.get("vary", "").lower(), (
        response.headers
    )

    # Another browser (no cookies) still meets the paywall.
    stranger = browser.new_context(base_url=sandbox.base_url, locale="en-GB")
    try:
        open_article(stranger.new_page(), ARTICLE_CAMPAIGN_DIGITAL)
    finally:
        stranger.close()

    # Logging out (the site's "Log out", the plugin's logout) ends it in this browser.
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()
    open_article(page, ARTICLE_TRIAL_DIGITAL)
    open_article(page, ARTICLE_CAMPAIGN_DIGITAL)
    assert sandbox.attempt(reference)["state"] == "confirmed"
    assert payway(sandbox, "sessions", "place_order") == {"sessions": 1, "place_order": 1}
    assert_clean(watch)


def test_confirmation_without_a_purchase_of_this_browser_claims_none(page: Page, sandbox: Sandbox):
    """The confirmation page opened without a reference, or with another browser's: a neutral page with a
    login and the front page, neither the editor's thank-you nor anything about the attempt."""
    for url in ("/tack/", f"/tack/?ref={'0' * 8}-0000-4000-8000-{'0' * 12}"):
        page.goto(url)
        expect(page.locator("[data-wkp-neutral]")).to_be_visible()
        expect(page.locator("[data-wkp-confirmation]")).to_have_count(0)
        expect(page.get_by_text("Din prenumeration är klar")).to_have_count(0)
        expect(page.locator("[data-wkp-login]")).to_be_visible()
        expect(page.locator("[data-wkp-home]")).to_have_attribute("href", "/")


def test_a_slow_order_says_it_is_being_placed_while_pay_is_disabled(
    page: Page, sandbox: Sandbox, watch: Watch
):
    """Payway takes its time over place_order: between the click and the answer the reader is told the
    order is being placed (in the status line, a polite live region), and cannot pay again."""
    page.goto(PURCHASE_PAGE)
    reference = start_buying(page, "demo_digital")
    # The fake answers normally, after two seconds.
    sandbox.control({"fail_next": {"endpoint": "place_order", "status": None, "delay": 2}})
    fill_new_customer(page)
    choose_outcome(page, "ok")
    # The checkout page is mid-navigation while the order is placed, where Playwright cannot read it:
    # note what the status line says, and whether pay is disabled then, in sessionStorage (same origin,
    # so it survives the navigation to the confirmation).
    page.evaluate(
        """() => {
            const status = document.querySelector("[data-wkp-status]");
            const pay = document.querySelector("[data-wkp-pay]");
            new MutationObserver(() => {
                sessionStorage.setItem("wkpStatus", JSON.stringify([status.textContent, pay.disabled]));
            }).observe(status, {childList: true, characterData: true, subtree: true});
        }"""
    )
    pay(page)

    expect_confirmation(page, sandbox, "demo_digital")
    text, disabled = page.evaluate("JSON.parse(sessionStorage.getItem('wkpStatus') || '[null, null]')")
    assert text is not None and text.startswith("Placing your order"), text
    assert disabled is True
    assert sandbox.attempt(reference)["state"] == "confirmed"
    assert payway(sandbox, "place_order") == {"place_order": 1}
    assert_clean(watch)


def test_a_declined_payment_leads_back_to_the_article_and_its_other_offers(
    page: Page, sandbox: Sandbox, watch: Watch
):
    """The reader is never stranded: after Klarna declines, the page names the demo's customer service
    and links to the article's other offers and back to the article, which shows its paywall again."""
    open_article(page, ARTICLE_CAMPAIGN_DIGITAL)
    start_buying(page, "demo_digital")
    fill_new_customer(page)
    choose_outcome(page, "payment_method_failed")
    pay(page)

    expect(page.locator("[data-wkp-customer-service]")).to_have_text(
        "Kundservice: kundservice@ekbytidning.se, 010-123 45 67"
    )
    expect(page.get_by_role("link", name="Back to the article")).to_have_attribute(
        "href", re.compile(re.escape(ARTICLE_CAMPAIGN_DIGITAL) + "$")
    )
    with page.expect_navigation():
        page.get_by_role("link", name="Choose another offer").click()
    assert urlsplit(page.url).path == ARTICLE_CAMPAIGN_DIGITAL
    expect(offer_box(page, "demo_campaign_3m99")).to_be_visible()
    assert_clean(watch)
