"""Load cases L03 and L04 on PostgreSQL: many readers at once against the fake Payway over HTTP."""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter

import pytest
import urllib3.connection

from tests.concurrency.crowd import (
    Call,
    attempt_at,
    browser,
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
from wagtail_klarna_paywall.models import AttemptState, PurchaseAttempt

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

READERS = 50
LATENCY = 0.2


@pytest.fixture
def tcp_connects(monkeypatch):
    """Counts TCP connections the Payway client opens (urllib3 connects once per new pooled socket)."""
    counter = Counter()
    lock = threading.Lock()
    original = urllib3.connection.HTTPConnection.connect

    def connect(self):
        with lock:
            counter["connects"] += 1
        return original(self)

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", connect)
    return counter


def buy_task(cookies, shop: Shop):
    def task() -> Call:
        started = time.perf_counter()
        return record(post_buy(browser(cookies), shop), started)

    return task


def test_l03_fifty_readers_click_buy_at_once(shop, fake_payway, tcp_connects):
    """L03: 50 different readers click buy at once with Payway answering in 200 ms: 50 create_session,
    50 attempts, 0 errors. Then 50 clicks of one reader at once: 1 create_session."""
    slow_replies("create_session", READERS, LATENCY)
    started = time.perf_counter()
    calls = run_together([buy_task(None, shop) for _ in range(READERS)])
    wall = time.perf_counter() - started

    assert [c.status for c in calls] == [303] * READERS, [c.error or c.body[:300] for c in calls]
    assert state_calls("create_session") == READERS
    assert PurchaseAttempt.objects.filter(state=AttemptState.SESSION_READY).count() == READERS
    assert len({c.location for c in calls}) == READERS
    connects = tcp_connects["connects"]
    report(
        f"L03 {READERS} readers x 1 click, fake at {LATENCY * 1000:.0f} ms: create_session="
        f"{state_calls('create_session')}, errors=0, wall {wall:.2f} s, {timing(calls)}, "
        f"TCP connects by the Payway client={connects}"
    )

    one_reader = new_reader_cookies()
    before = state_calls("create_session")
    slow_replies("create_session", 1, LATENCY)
    calls = run_together([buy_task(one_reader, shop) for _ in range(READERS)])
    assert [c.status for c in calls] == [303] * READERS, [c.error or c.body[:300] for c in calls]
    assert {c.location for c in calls} == {calls[0].location}
    assert state_calls("create_session") - before == 1
    report(f"L03 1 reader x {READERS} clicks: create_session=1, errors=0, {timing(calls)}")


def test_l04_place_order_storm(shop, fake_payway):
    """L04: 50 readers submit at once, each also 10 duplicate submits (550 requests on 60 threads, in
    random order): exactly 50 place_order, 0 duplicate orders, 0 x 5xx, every attempt placed."""
    readers = [new_reader_cookies() for _ in range(READERS)]
    setup = run_together([buy_task(cookies, shop) for cookies in readers], workers=25)
    assert [c.status for c in setup] == [303] * READERS
    attempts = [attempt_at(c.location) for c in setup]
    slow_replies("place_order", READERS, 0.05)
    tasks = []
    for cookies, attempt in zip(readers, attempts, strict=True):
        token = f"fake-auth-ok-{secrets.token_hex(8)}"
        for _ in range(11):
            tasks.append(pay(cookies, shop, attempt, token))
    random.Random(4).shuffle(tasks)

    started = time.perf_counter()
    calls = run_together(tasks, workers=60)
    wall = time.perf_counter() - started

    errors = [c for c in calls if c.server_error]
    assert not errors, [c.error or c.status for c in errors][:5]
    answers = Counter(c.status for c in calls)
    assert set(answers) <= {200, 303}
    assert state_calls("place_order") == READERS
    assert duplicate_orders() == 0
    states = Counter(
        PurchaseAttempt.objects.filter(pk__in=[a.pk for a in attempts]).values_list("state", flat=True)
    )
    assert states == {AttemptState.PLACED: READERS}
    report(
        f"L04 {READERS} readers x 11 submits ({len(tasks)} requests, 60 threads): place_order="
        f"{state_calls('place_order')}, duplicate orders=0, 5xx=0, answers={dict(answers)}, "
        f"wall {wall:.2f} s, {timing(calls)}"
    )


def pay(cookies, shop, attempt, token):
    def task() -> Call:
        started = time.perf_counter()
        return record(post_pay(browser(cookies), shop, attempt, token), started)

    return task


def state_calls(endpoint: str) -> int:
    from wagtail_klarna_paywall.fake import state

    return state.calls(endpoint)
