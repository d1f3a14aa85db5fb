"""Concurrency cases C01-C10 on PostgreSQL: real threads released together, the fake Payway over HTTP.

Each thread is a browser of its own (a Django test ``Client``); threads that share a reader's cookies are
that reader's tabs or double clicks. Payway calls are counted by the fake, orders are read from its
state, so "one call" and "no duplicate order" are measured at the other end of the wire.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections import Counter

import pytest
from django.utils import timezone

from tests.concurrency.crowd import (
    PLACE_DELAY,
    Call,
    ReadTogether,
    anonymous_cookies,
    attempt_at,
    authorization,
    browser,
    client_token_in,
    duplicate_orders,
    new_reader_cookies,
    post_buy,
    post_pay,
    record,
    report,
    run_together,
    slow_replies,
    timing,
)
from tests.factories import Shop
from wagtail_klarna_paywall import signals
from wagtail_klarna_paywall.fake import state
from wagtail_klarna_paywall.models import ALLOWED_TRANSITIONS, AttemptState, PurchaseAttempt
from wagtail_klarna_paywall.payway.types import BrowserInfo, CustomerInfo
from wagtail_klarna_paywall.purchase import attempts, orders

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def start_checkout(cookies, shop: Shop, ref: str = Shop.package_ref) -> PurchaseAttempt:
    response = post_buy(browser(cookies), shop, ref)
    assert response.status_code == 303, response.content.decode()[:500]
    attempt = attempt_at(response["Location"])
    assert attempt.state == AttemptState.SESSION_READY
    return attempt


def click_and_render(cookies, shop: Shop, ref: str = Shop.package_ref):
    """A buy click followed by the checkout page it leads to; notes the client token rendered."""

    def task() -> Call:
        client = browser(cookies)
        started = time.perf_counter()
        response = post_buy(client, shop, ref)
        call = record(response, started)
        if response.status_code == 303:
            page = client.get(response["Location"], secure=True)
            call.extra["page_status"] = page.status_code
            call.extra["token"] = client_token_in(page.content.decode())
        return call

    return task


def pay_task(cookies, shop: Shop, attempt: PurchaseAttempt, token: str):
    def task() -> Call:
        started = time.perf_counter()
        return record(post_pay(browser(cookies), shop, attempt, token), started)

    return task


def in_progress(call: Call) -> bool:
    return call.status == 200 and 'http-equiv="refresh"' in call.body


def assert_monotonic(history: list[str]) -> None:
    """Every change of state in ``history`` is a transition the state machine allows."""
    changes = [(a, b) for a, b in itertools.pairwise(history) if a != b]
    for before, after in changes:
        assert after in ALLOWED_TRANSITIONS[before], f"{before} -> {after} in {history}"


def event_states(attempt: PurchaseAttempt) -> list[str]:
    return list(attempt.events.order_by("created_at", "pk").values_list("state", flat=True))


# -- C01 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("clicks", [2, 10])
@pytest.mark.parametrize("reader", ["logged-in", "anonymous"])
def test_c01_double_click_on_buy_is_single_flight(shop, fake_payway, clicks, reader):
    """C01: 2-10 buy clicks of one reader released together: 1 create_session, 1 attempt, and every click
    renders the same client token."""
    cookies = new_reader_cookies() if reader == "logged-in" else anonymous_cookies()
    # The first click is still waiting for Payway when the others arrive.
    slow_replies("create_session", 1, 0.2)

    calls = run_together([click_and_render(cookies, shop)] * clicks)

    assert [c.status for c in calls] == [303] * clicks, [c.error or c.body[:300] for c in calls]
    assert {c.location for c in calls} == {calls[0].location}
    assert all(c.extra["page_status"] == 200 for c in calls)
    assert state.calls("create_session") == 1
    assert PurchaseAttempt.objects.count() == 1
    [session] = state.sessions()
    assert {c.extra["token"] for c in calls} == {session.client_token}
    report(
        f"C01 {reader} x{clicks}: create_session={state.calls('create_session')} "
        f"attempts={PurchaseAttempt.objects.count()} distinct client tokens=1; {timing(calls)}"
    )


# -- C02 ---------------------------------------------------------------------------------------------


def test_c02_sequential_double_submit_places_once_and_replays_the_outcome(shop, fake_payway):
    """C02: the same authorization posted twice in a row: 1 place_order, the same redirect twice."""
    cookies = new_reader_cookies()
    attempt = start_checkout(cookies, shop)
    token = authorization()
    client = browser(cookies)

    first = post_pay(client, shop, attempt, token)
    second = post_pay(client, shop, attempt, token)

    assert first.status_code == second.status_code == 303
    assert first["Location"] == second["Location"] == shop.confirmation_url(attempt)
    assert state.calls("place_order") == 1
    assert len(state.orders()) == 1
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.PLACED
    report(f"C02 sequential double submit: place_order={state.calls('place_order')} orders=1")


# -- C03 ---------------------------------------------------------------------------------------------

REPETITIONS = 20


@pytest.mark.parametrize("k", [2, 10, 50])
def test_c03_same_authorization_submitted_concurrently(shop, fake_payway, monkeypatch, k):
    """C03: K threads post the same authorization at once, K = 2, 10, 50, each repeated 20 times on a fresh
    attempt: exactly one place_order per attempt, 0 x 5xx, 0 duplicate orders. The others get the stored
    outcome (a redirect to the same confirmation) or the "in progress" page.

    Odd repetitions release the threads as they come; even ones also make every thread read the attempt
    as ``session_ready`` before any of them goes on (:class:`ReadTogether`), the hardest case for I1."""
    outcomes: Counter[str] = Counter()
    all_calls: list[Call] = []
    per_attempt_calls = []
    for repetition in range(REPETITIONS):
        cookies = new_reader_cookies()
        attempt = start_checkout(cookies, shop)
        before = state.calls("place_order")
        slow_replies("place_order", 1, PLACE_DELAY)
        token = authorization()

        with monkeypatch.context() as patch:
            if repetition % 2 == 0:
                ReadTogether(patch, k)
            calls = run_together([pay_task(cookies, shop, attempt, token)] * k)

        per_attempt_calls.append(state.calls("place_order") - before)
        assert not [c for c in calls if c.server_error], [c.error or c.status for c in calls]
        for call in calls:
            if call.status == 303:
                assert call.location == shop.confirmation_url(attempt)
                outcomes["stored or placed: redirect"] += 1
            else:
                assert in_progress(call), (call.status, call.body[:500])
                outcomes["in progress page"] += 1
        attempt.refresh_from_db()
        assert attempt.state == AttemptState.PLACED
        all_calls.extend(calls)

    assert per_attempt_calls == [1] * REPETITIONS
    assert duplicate_orders() == 0
    assert len(state.orders()) == REPETITIONS
    report(
        f"C03 K={k} x {REPETITIONS} attempts: place_order calls per attempt={set(per_attempt_calls)}, "
        f"duplicate orders={duplicate_orders()}, 5xx=0, answers={dict(outcomes)}; {timing(all_calls)}"
    )


# -- C04 ---------------------------------------------------------------------------------------------


def test_c04_two_authorizations_for_one_attempt(shop, fake_payway, monkeypatch):
    """C04: the reader authorized in two tabs and both tabs submit, at once (10 times) and one after the
    other: only the first reaches Payway; the second gets the stored outcome."""
    for _ in range(10):
        cookies = new_reader_cookies()
        attempt = start_checkout(cookies, shop)
        before = state.calls("place_order")
        slow_replies("place_order", 1, PLACE_DELAY)
        with monkeypatch.context() as patch:
            ReadTogether(patch, 2)
            calls = run_together([pay_task(cookies, shop, attempt, authorization()) for _ in range(2)])
        assert state.calls("place_order") - before == 1
        assert not [c for c in calls if c.server_error]
        assert all(c.status == 303 or in_progress(c) for c in calls)

    cookies = new_reader_cookies()
    attempt = start_checkout(cookies, shop)
    first = post_pay(browser(cookies), shop, attempt, authorization())
    second = post_pay(browser(cookies), shop, attempt, authorization())
    assert first.status_code == second.status_code == 303
    assert second["Location"] == first["Location"] == shop.confirmation_url(attempt)
    # The second tab, reloaded, says the purchase is done and links to its confirmation.
    page = browser(cookies).get(shop.checkout_url(attempt), secure=True).content.decode()
    assert shop.confirmation_url(attempt).replace("&", "&amp;") in page
    assert state.calls("place_order") == 11
    assert duplicate_orders() == 0
    report(f"C04 two tokens, one attempt (x11): place_order={state.calls('place_order')} duplicates=0")


# -- C05 ---------------------------------------------------------------------------------------------


def test_c05_two_tabs_same_offer(shop, fake_payway):
    """C05: two tabs open the offer (same session, same client token); tab A buys; tab B's later submit
    places nothing, its reload says "already bought", and buying again shows that purchase."""
    cookies = new_reader_cookies()
    tabs = run_together([click_and_render(cookies, shop), click_and_render(cookies, shop)])
    assert tabs[0].location == tabs[1].location
    assert tabs[0].extra["token"] == tabs[1].extra["token"] is not None
    attempt = attempt_at(tabs[0].location)
    assert state.calls("create_session") == 1

    paid = post_pay(browser(cookies), shop, attempt, authorization())
    assert paid.status_code == 303
    late = post_pay(browser(cookies), shop, attempt, authorization())
    assert late.status_code == 303 and late["Location"] == paid["Location"]
    assert state.calls("place_order") == 1

    attempt.refresh_from_db()
    assert not attempts.is_session_reusable(attempt)  # the session is dropped after the purchase
    reload = browser(cookies).get(shop.checkout_url(attempt), secure=True)
    assert reload.status_code == 200
    assert client_token_in(reload.content.decode()) is None  # no widget for a bought attempt
    again = post_buy(browser(cookies), shop)
    assert again.status_code == 303 and attempt_at(again["Location"]).pk == attempt.pk
    assert state.calls("create_session") == 1
    assert len(state.orders()) == 1
    report("C05 two tabs: create_session=1 place_order=1 orders=1")


# -- C06 ---------------------------------------------------------------------------------------------


def test_c06_confirmation_reloads_confirm_once_and_call_nothing(shop, fake_payway, monkeypatch):
    """C06: the confirmation page loaded 10 times at once, then 10 times in a row: CONFIRMED once (one
    request's conditional UPDATE made it), the same page every time, and no Payway call of any kind."""
    completed = []
    confirmed = []
    confirm = orders.confirm

    def counted_confirm(attempt, now=None):
        made = confirm(attempt, now)
        confirmed.append(made)
        return made

    monkeypatch.setattr(orders, "confirm", counted_confirm)

    def on_completed(sender, attempt, **kwargs):
        completed.append(attempt.reference)

    signals.purchase_completed.connect(on_completed)
    try:
        cookies = new_reader_cookies()
        attempt = start_checkout(cookies, shop)
        assert post_pay(browser(cookies), shop, attempt, authorization()).status_code == 303
        before = state.calls()

        def load() -> Call:
            started = time.perf_counter()
            return record(browser(cookies).get(shop.confirmation_url(attempt), secure=True), started)

        calls = run_together([load] * 10)
        calls += [load() for _ in range(10)]
    finally:
        signals.purchase_completed.disconnect(on_completed)

    assert [c.status for c in calls] == [200] * 20
    assert len({c.body for c in calls}) == 1
    assert "data-wkp-confirmation" in calls[0].body
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.CONFIRMED and attempt.confirmed_at is not None
    assert confirmed.count(True) == 1 and len(confirmed) == 20
    assert state.calls() == before
    assert completed == [attempt.reference]
    report(f"C06 confirmation x20 (10 concurrent): confirmed once, Payway calls=0; {timing(calls)}")


# -- C07 / C08 ---------------------------------------------------------------------------------------


def _age_session(attempt: PurchaseAttempt, age: dt.timedelta) -> None:
    """Make the attempt's Payway session ``age`` old (the reader comes back later). The clock is not
    frozen: freezegun does not reach the other threads, the database timestamps do."""
    created = timezone.now() - age
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(
        session_created_at=created, session_expires_at=created + attempts.SESSION_LIFETIME
    )


def test_c07_session_reused_after_1_and_45_hours(shop, fake_payway):
    """C07: the reader comes back after 1 h and after 45 h and clicks buy (5 clicks at once): the same
    Payway session and client token, 0 new create_session."""
    cookies = new_reader_cookies()
    attempt = start_checkout(cookies, shop)
    [session] = state.sessions()
    for hours in (1, 45):
        _age_session(attempt, dt.timedelta(hours=hours))
        calls = run_together([click_and_render(cookies, shop)] * 5)
        assert {c.location for c in calls} == {shop.checkout_url(attempt)}
        assert {c.extra["token"] for c in calls} == {session.client_token}
    assert state.calls("create_session") == 1
    attempt.refresh_from_db()
    assert attempt.payway_session_id == session.id
    report("C07 reuse at 1 h and 45 h (5 concurrent clicks each): create_session=1")


def test_c08_new_session_near_and_after_expiry(shop, fake_payway):
    """C08: at 46 h 01 min (inside the 2 h margin) and after 48 h, 5 clicks at once make exactly one new
    create_session each time; the stale client token is never rendered again; an order on an expired
    session is not sent."""
    cookies = new_reader_cookies()
    attempt = start_checkout(cookies, shop)
    seen = {state.sessions()[0].client_token}
    ages = ((dt.timedelta(hours=46, minutes=1), 2), (dt.timedelta(hours=48, minutes=5), 3))
    for age, expected_sessions in ages:
        stale = set(seen)
        _age_session(attempt, age)
        calls = run_together([click_and_render(cookies, shop)] * 5)
        assert state.calls("create_session") == expected_sessions
        tokens = {c.extra["token"] for c in calls}
        assert len(tokens) == 1 and not tokens & stale and None not in tokens
        seen |= tokens
        attempt.refresh_from_db()
        assert attempt.session_expires_at > timezone.now() + dt.timedelta(hours=47)

    # A submit on a session past its 48 hours is not sent to Payway.
    _age_session(attempt, dt.timedelta(hours=48, minutes=1))
    response = post_pay(browser(cookies), shop, attempt, authorization())
    assert response.status_code < 500
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.EXPIRED
    assert state.calls("place_order") == 0
    report("C08 renewal at 46h01 and 48h+ (5 concurrent clicks each): 1 create_session each, place_order=0")


# -- C09 ---------------------------------------------------------------------------------------------


def test_c09_after_a_purchase_an_offer_of_the_same_product_sells_nothing(shop, fake_payway):
    """C09: after buying the package the reader opens the campaign, which grants the same product (3 clicks
    at once): nothing is sold and no session is made, never the old one reused, since the reader holds what
    it sells. Buying the package again shows the existing purchase, with no new session."""
    cookies = new_reader_cookies()
    bought = start_checkout(cookies, shop)
    assert post_pay(browser(cookies), shop, bought, authorization()).status_code == 303

    calls = run_together(
        [lambda: record(post_buy(browser(cookies), shop, Shop.campaign_ref), time.perf_counter())] * 3
    )
    assert {c.status for c in calls} == {200}, "the campaign is refused: the reader holds its product"
    assert state.calls("create_session") == 1
    assert PurchaseAttempt.objects.filter(product_code="demo_campaign_3m99").count() == 0

    again = run_together([lambda: record(post_buy(browser(cookies), shop), time.perf_counter())] * 3)
    assert {c.status for c in again} == {303}
    assert {attempt_at(c.location).pk for c in again} == {bought.pk}
    assert state.calls("create_session") == 1
    page = browser(cookies).get(shop.checkout_url(bought), secure=True).content.decode()
    assert client_token_in(page) is None
    report("C09 same product, other offer after a purchase: 0 sessions; same offer again: order shown")


# -- C10 ---------------------------------------------------------------------------------------------


class Pause:
    """Holds the fake Payway between doing a place_order and answering it (a RunAfter-style hook)."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()

    def sleep(self, seconds: float) -> None:  # replaces state.sleep inside the fake
        self.arrived.set()
        assert self.release.wait(30), "the test never released the paused reply"


INTERLEAVINGS = {
    # What happens while the fake holds the reply, in order.
    "reply first": [],
    "confirmation while placing": ["confirm", "confirm"],
    "second tab while placing": ["submit", "confirm"],
    "lease runs out while placing": ["expire lease", "confirm", "submit"],
}


@pytest.mark.parametrize("interleaving", list(INTERLEAVINGS))
def test_c10_states_are_monotonic_under_forced_interleavings(shop, fake_payway, monkeypatch, interleaving):
    """C10: the confirmation page, a second tab and a lost worker's lease expiry arrive while Payway is
    still answering place_order. States only move along allowed transitions (PLACED never back to
    PLACING, CONFIRMED never back to FAILED), one order is placed, and the final state is the same
    whatever the interleaving: CONFIRMED."""
    pause = Pause()
    monkeypatch.setattr(state, "sleep", pause.sleep)
    cookies = new_reader_cookies()
    attempt = start_checkout(cookies, shop)
    history = [attempt.state]

    def snapshot() -> None:
        attempt.refresh_from_db()
        history.append(attempt.state)

    state.fail_next("place_order", status=None, delay=0.01, execute=True)
    submit = run_together_async(pay_task(cookies, shop, attempt, authorization()))
    assert pause.arrived.wait(10), "place_order never reached the fake"
    snapshot()
    assert attempt.state == AttemptState.PLACING
    side_answers = []
    for step in INTERLEAVINGS[interleaving]:
        if step == "confirm":
            response = browser(cookies).get(shop.confirmation_url(attempt), secure=True)
            side_answers.append(response.status_code)
        elif step == "submit":
            response = post_pay(browser(cookies), shop, attempt, authorization())
            side_answers.append(response.status_code)
        elif step == "expire lease":
            PurchaseAttempt.objects.filter(pk=attempt.pk).update(
                placing_at=timezone.now() - attempts.PLACING_LEASE - dt.timedelta(seconds=1)
            )
        snapshot()
        assert attempt.state in (AttemptState.PLACING, AttemptState.UNKNOWN)
    pause.release.set()
    [placed] = submit()
    assert placed.status == 303, placed.error or placed.body[:500]
    snapshot()
    assert attempt.state == AttemptState.PLACED
    for _ in range(2):
        assert browser(cookies).get(shop.confirmation_url(attempt), secure=True).status_code == 200
        snapshot()

    assert all(status < 500 for status in side_answers)
    assert attempt.state == AttemptState.CONFIRMED
    assert_monotonic(history)
    assert_monotonic(event_states(attempt))
    assert state.calls("place_order") == 1
    assert len(state.orders()) == 1
    report(f"C10 {interleaving}: states {' > '.join(dict.fromkeys(history))}; place_order=1")


def test_c10_a_stale_worker_after_confirmation_changes_nothing(shop, fake_payway):
    """C10: a worker that read the attempt before the order (still session_ready in its memory) submits
    after the purchase was confirmed: no Payway call, and CONFIRMED stays CONFIRMED."""
    cookies = new_reader_cookies()
    attempt = start_checkout(cookies, shop)
    stale = PurchaseAttempt.objects.get(pk=attempt.pk)
    assert post_pay(browser(cookies), shop, attempt, authorization()).status_code == 303
    assert browser(cookies).get(shop.confirmation_url(attempt), secure=True).status_code == 200

    reader = attempts.Reader(key=stale.reader_key, user_id=stale.user_id)
    results = run_together(
        [
            lambda: Call(
                extra={
                    "result": orders.place_order(
                        PurchaseAttempt.objects.get(pk=stale.pk) if i else stale,
                        reader,
                        authorization_token=authorization(),
                        browser=BrowserInfo(ip="203.0.113.9", language="sv", user_agent="x"),
                        customer=CustomerInfo(email="a@example.com", first_name="A", last_name="B"),
                    )
                }
            )
            for i in range(2)
        ]
    )
    assert [r.error for r in results] == [None, None]
    assert {r.extra["result"].called_payway for r in results} == {False}
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.CONFIRMED
    assert state.calls("place_order") == 1


def run_together_async(task):
    """Start ``task`` on its own thread now; the returned function waits for it and gives its result."""
    box: list = []
    thread = threading.Thread(target=lambda: box.extend(run_together([task])), daemon=True)
    thread.start()

    def wait():
        thread.join(60)
        assert not thread.is_alive()
        return box

    return wait
