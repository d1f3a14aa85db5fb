"""One order per reader and product, whatever the entry point, on PostgreSQL with the fake Payway over HTTP.

One reader buys one product ("Digital") through K offers on K pages (the purchase page's own offer, the
article paywall's, more articles' paywalls), so each entry point has an attempt and a Payway session of
its own, then submits them all at once (K = 2 and 10) or one after the other. The fake counts
``place_order``: exactly one may arrive, and every other attempt ends FAILED "already_bought" pointing at
the one that was placed. The same holds for a logged-in reader on two devices (two Django sessions of one
Payway account) and for a new customer typing one e-mail address in several browsers.

Checked by mutation: with the claim check in ``purchase.claims.claim_and_mark_placing`` removed
(``holder`` forced to None), or with its first INSERT told to skip rows that exist
(``ignore_conflicts``), every case here fails (2 or 10 place_order calls instead of 1); with the
claim rows read without ``select_for_update`` in ``purchase.claims._locked_claims``, the "after a
decline" cases fail (the rows exist, so nothing else serialises the submits); with the account key left
out of ``purchase.claims.reader_identities`` the two-device cases fail, and with the e-mail key left out
the several-browser cases fail.
"""

from __future__ import annotations

import threading
import time
from http.cookies import SimpleCookie
from importlib import import_module

import pytest
from django.conf import settings

from tests.concurrency.crowd import (
    PLACE_DELAY,
    Call,
    ReadTogether,
    anonymous_cookies,
    attempt_at,
    authorization,
    browser,
    client_token_in,
    post_buy,
    post_pay,
    record,
    report,
    run_together,
    slow_replies,
    timing,
)
from tests.factories import CUSTOMER, Shop, offer_value, paywalled_article
from wagtail_klarna_paywall.fake import catalogue, state
from wagtail_klarna_paywall.login import sso
from wagtail_klarna_paywall.models import AttemptState, EventKind, PurchaseAttempt

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

DIGITAL = {"product_code": "demo_digital", "product_name": "Digital", "price": "139.00"}
#: The checkout page's "already bought" message (the pages are in Swedish here: the browser asks for sv-SE).
ALREADY_BOUGHT = "wkp-message--already_bought"
_serial = iter(range(1, 10**6))
_serial_lock = threading.Lock()


def entry_points(shop: Shop, k: int) -> list[tuple]:
    """K places selling the same product: the purchase page's own offer, the article's paywall, and
    K - 2 more articles whose paywalls sell it too."""
    entries = [(shop.purchase_page, Shop.package_ref), (shop.article, Shop.article_offer_ref)]
    home = shop.site.root_page.specific
    for i in range(k - 2):
        article = paywalled_article(
            home,
            shop.purchase_page,
            title=f"Another story {i}",
            slug=f"another-story-{i}",
            heading="Subscribe",
            offers={"offer-digital": offer_value(**DIGITAL)},
            access_product_codes=[catalogue.DIGITAL],
            paid=None,
        )
        entries.append((article, Shop.article_offer_ref))
    return entries[:k]


def logged_in_cookies(account_id: str = state.READER_ACCOUNT_ID) -> SimpleCookie:
    """A browser logged in to Payway through SSO2 as ``account_id``: its own Django session, SSO session
    and identity token (another device, or another login, of the same account)."""
    with _serial_lock:
        serial = next(_serial)
    token = state.issue_access_token(account_id)
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    now = time.time()
    store[sso.SESSION_KEY] = {
        "sid": f"device-{serial}-{time.monotonic_ns()}",
        "sts": sso.STATUS_LOGGEDIN,
        "checked": now,
        "since": now,
        "token": token.value,
        "expires": now + 3600,
        "refresh": "",
    }
    store.create()
    cookies = SimpleCookie()
    cookies[settings.SESSION_COOKIE_NAME] = store.session_key
    return cookies


def open_checkout(cookies, shop: Shop, page, ref) -> PurchaseAttempt:
    response = post_buy(browser(cookies), shop, ref, page=page)
    assert response.status_code == 303, response.content.decode()[:500]
    attempt = attempt_at(response["Location"])
    assert attempt.state == AttemptState.SESSION_READY
    return attempt


def pay(cookies, shop: Shop, attempt, customer: dict | None):
    def task() -> Call:
        started = time.perf_counter()
        call = record(post_pay(browser(cookies), shop, attempt, authorization(), customer), started)
        call.extra["attempt"] = attempt.pk
        return call

    return task


def assert_one_order(
    shop: Shop, attempts: list[PurchaseAttempt], calls: list[Call], *, linked: bool, earlier: int = 0
) -> None:
    """Exactly one place_order reached the fake (after ``earlier`` calls that placed nothing); the others
    are "already bought", nothing sent for them."""
    assert not [c for c in calls if c.server_error], [c.error or c.status for c in calls]
    assert state.calls("place_order") - earlier == 1
    assert len(state.orders()) == 1
    for attempt in attempts:
        attempt.refresh_from_db()
    [winner] = [a for a in attempts if a.state == AttemptState.PLACED]
    losers = [a for a in attempts if a.pk != winner.pk]
    assert [order.session_id for order in state.orders()] == [winner.payway_session_id]
    for loser in losers:
        assert (loser.state, loser.error_code, loser.duplicate_of_id) == (
            AttemptState.FAILED,
            "already_bought",
            winner.pk,
        )
        assert loser.placing_at is None  # never marked as being placed: nothing went to Payway
        assert loser.events.filter(kind=EventKind.ERROR, error_code="already_bought").count() == 1
    for call in calls:
        if call.extra["attempt"] == winner.pk:
            assert call.status == 303 and call.location == shop.confirmation_url(winner)
        else:
            assert call.status == 200 and ALREADY_BOUGHT in call.body, (call.status, call.body[:300])
            link = shop.confirmation_url(winner).split("news.example", 1)[-1].replace("&", "&amp;")
            assert (link in call.body) is linked


# -- one browser, K entry points ----------------------------------------------------------------------


def declined_earlier(cookies, shop: Shop) -> PurchaseAttempt:
    """The reader tried before and Klarna said no: the reader's claim rows on the product exist (held by
    a declined attempt, so free), and only the row locks keep two submits from both taking them."""
    attempt = open_checkout(cookies, shop, shop.purchase_page, Shop.package_ref)
    response = post_pay(browser(cookies), shop, attempt, authorization("payment_method_failed"))
    assert response.status_code == 200
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.DECLINED and attempt.claims.exists()
    return attempt


@pytest.mark.parametrize("history", ["first try", "after a decline"])
@pytest.mark.parametrize("k", [2, 10])
def test_one_reader_k_offers_of_one_product_submitted_together(shop, fake_payway, monkeypatch, k, history):
    """A new customer opened "Digital" in K places (tabs): K sessions, K submits at once, 1 order. Also
    when an earlier, declined attempt left the reader's claim rows behind (then the rows exist and the
    ``SELECT ... FOR UPDATE`` is what serialises the submits; on a first try the unique constraint's
    insert does)."""
    cookies = anonymous_cookies()
    if history == "after a decline":
        declined_earlier(cookies, shop)
    before = state.calls("place_order")
    attempts = [open_checkout(cookies, shop, page, ref) for page, ref in entry_points(shop, k)]
    assert len({a.pk for a in attempts}) == k
    slow_replies("place_order", 1, PLACE_DELAY)

    ReadTogether(monkeypatch, k)
    calls = run_together([pay(cookies, shop, attempt, None) for attempt in attempts])

    assert_one_order(shop, attempts, calls, linked=True, earlier=before)
    placed = state.calls("place_order") - before
    report(
        f"one product, one reader, K={k} offers at once ({history}): place_order={placed}; {timing(calls)}"
    )


def test_one_reader_two_offers_of_one_product_one_after_the_other(shop, fake_payway):
    cookies = anonymous_cookies()
    attempts = [open_checkout(cookies, shop, page, ref) for page, ref in entry_points(shop, 2)]

    calls = [pay(cookies, shop, attempt, None)() for attempt in attempts]

    assert_one_order(shop, attempts, calls, linked=True)
    # Buying again from either entry point shows the purchase, with no new Payway session.
    for page, ref in entry_points(shop, 2)[:2]:
        again = post_buy(browser(cookies), shop, ref, page=page)
        assert again.status_code == 303 and attempt_at(again["Location"]).state == AttemptState.PLACED
    assert state.calls("create_session") == 2
    report("one product, one reader, 2 offers in sequence: place_order=1, second attempt already bought")


# -- one Payway account, two devices ------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 10])
def test_a_logged_in_reader_on_two_devices_places_one_order(shop, fake_payway, monkeypatch, k):
    """Two Django sessions logged in to the same Payway account buy "Digital" through K entry points,
    alternating devices, and submit together: 1 order, found by the account and not by the session."""
    devices = [logged_in_cookies(), logged_in_cookies()]
    entries = entry_points(shop, k)
    owners = [devices[i % 2] for i in range(k)]
    attempts = [
        open_checkout(owner, shop, page, ref) for owner, (page, ref) in zip(owners, entries, strict=True)
    ]
    assert all(a.existing_customer for a in attempts)
    assert len({a.reader_key for a in attempts}) == 2 and len({a.account_key for a in attempts}) == 1
    slow_replies("place_order", 1, PLACE_DELAY)

    ReadTogether(monkeypatch, k)
    calls = run_together([pay(owner, shop, a, None) for owner, a in zip(owners, attempts, strict=True)])

    # The same account on any device may open the winning purchase's confirmation: it is linked.
    assert_one_order(shop, attempts, calls, linked=True)
    report(f"one product, one account on two devices, K={k}: place_order={state.calls('place_order')}")


def test_a_logged_in_reader_on_two_devices_one_after_the_other(shop, fake_payway):
    device_a, device_b = logged_in_cookies(), logged_in_cookies()
    (page_a, ref_a), (page_b, ref_b) = entry_points(shop, 2)
    first = open_checkout(device_a, shop, page_a, ref_a)
    second = open_checkout(device_b, shop, page_b, ref_b)

    calls = [pay(device_a, shop, first, None)(), pay(device_b, shop, second, None)()]

    assert_one_order(shop, [first, second], calls, linked=True)
    # A third device (a new login) pressing buy on the purchase page's own offer (which lists no access
    # codes) sees the purchase, found by the account, before any Payway session is made...
    device_c = logged_in_cookies()
    again = post_buy(browser(device_c), shop, ref_a, page=page_a)
    assert again.status_code == 303 and attempt_at(again["Location"]).pk == first.pk
    page = browser(device_c).get(again["Location"], secure=True)
    assert page.status_code == 200 and client_token_in(page.content.decode()) is None
    assert state.calls("create_session") == 2
    confirmation = browser(device_c).get(shop.confirmation_url(first), secure=True)
    assert "data-wkp-confirmation" in confirmation.content.decode()
    # ...and on the article's offer of the same product, which the account now holds, is shown that
    # purchase too (a holder with no recent order of it is told they have it: tests/test_views.py).
    held = post_buy(browser(device_c), shop, ref_b, page=page_b)
    assert held.status_code == 303 and attempt_at(held["Location"]).pk == first.pk
    assert state.calls("create_session") == 2 and state.calls("place_order") == 1
    report("one product, one account on two devices in sequence: place_order=1")


# -- one new customer, several browsers -----------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 10])
def test_a_new_customer_in_several_browsers_places_one_order(shop, fake_payway, monkeypatch, k):
    """K browsers with no login (K Django sessions), one person typing one e-mail address: 1 order."""
    browsers = [anonymous_cookies() for _ in range(k)]
    entries = entry_points(shop, k)
    attempts = [open_checkout(c, shop, page, ref) for c, (page, ref) in zip(browsers, entries, strict=True)]
    assert len({a.reader_key for a in attempts}) == k
    same_person = {**CUSTOMER, "email": "one.person@example.com"}
    slow_replies("place_order", 1, PLACE_DELAY)

    ReadTogether(monkeypatch, k)
    calls = run_together([pay(c, shop, a, same_person) for c, a in zip(browsers, attempts, strict=True)])

    # Another browser's purchase: its confirmation is not linked (it would show nothing there).
    assert_one_order(shop, attempts, calls, linked=False)
    assert not any("one.person@example.com" in c.body for c in calls)
    report(f"one product, one e-mail in K={k} browsers: place_order={state.calls('place_order')}")


def test_a_new_customer_in_two_browsers_one_after_the_other(shop, fake_payway):
    browsers = [anonymous_cookies(), anonymous_cookies()]
    attempts = [
        open_checkout(c, shop, page, ref)
        for c, (page, ref) in zip(browsers, entry_points(shop, 2), strict=True)
    ]
    same_person = {**CUSTOMER, "email": "One.Person@Example.com"}

    calls = [pay(browsers[0], shop, attempts[0], same_person)()]
    calls.append(pay(browsers[1], shop, attempts[1], {**same_person, "email": " one.person@example.COM "})())

    assert_one_order(shop, attempts, calls, linked=False)
