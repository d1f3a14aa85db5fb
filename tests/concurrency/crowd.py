"""Readers at once, for the PostgreSQL suite: threads released together, each with its own test client,
what each request measured, and the fake Payway's counters read back.

Shared by the modules of ``tests/concurrency``; what they buy from is ``factories.build_shop``
(the ``shop`` fixture in this folder's ``conftest.py``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.test import Client

from tests.factories import CUSTOMER, Shop
from wagtail_klarna_paywall.fake import state
from wagtail_klarna_paywall.models import PurchaseAttempt
from wagtail_klarna_paywall.purchase import attempts

#: Figures collected by the tests, printed at the end of the run (``conftest.pytest_terminal_summary``).
FIGURES: list[str] = []
#: Reply delay of the fake's place_order in the races, so the losers arrive while the winner is placing.
PLACE_DELAY = 0.05


def report(line: str) -> None:
    """Record a figure for the terminal summary (and print it for ``-s`` runs)."""
    FIGURES.append(line)
    print(line)


def slow_replies(endpoint: str, count: int, delay: float) -> None:
    """The next ``count`` calls of ``endpoint`` answer normally after ``delay`` seconds."""
    for _ in range(count):
        state.fail_next(endpoint, status=None, delay=delay)


def orders_by_session() -> dict[str, int]:
    counts: dict[str, int] = {}
    for order in state.orders():
        counts[order.session_id] = counts.get(order.session_id, 0) + 1
    return counts


def duplicate_orders() -> int:
    """Orders beyond the first in any one Payway session (the figure that must be 0)."""
    return sum(n - 1 for n in orders_by_session().values() if n > 1)


# -- readers and their browsers ---------------------------------------------------------------------

BROWSER = {
    "REMOTE_ADDR": "203.0.113.7",
    "HTTP_ACCEPT_LANGUAGE": "sv-SE,sv;q=0.9",
    "HTTP_USER_AGENT": "ConcurrencySuite/1.0",
}

_reader_serial = iter(range(1, 10**9))
_serial_lock = threading.Lock()


def new_reader_cookies() -> SimpleCookie:
    """A logged-in reader (a Django user with a session, no Payway identity: a v2 purchase).

    Returned as cookies so every thread's own ``Client`` can be that same reader (tabs, double clicks).
    """
    with _serial_lock:
        serial = next(_reader_serial)
    user = get_user_model().objects.create_user(username=f"reader-{serial}-{time.monotonic_ns()}")
    client = Client()
    client.force_login(user)
    return client.cookies


def browser(cookies: SimpleCookie | None = None) -> Client:
    """A test client of its own (one per thread), optionally carrying a reader's cookies."""
    client = Client()
    if cookies is not None:
        client.cookies = SimpleCookie()
        client.cookies.load({name: morsel.value for name, morsel in cookies.items()})
    return client


def post_buy(client: Client, shop: Shop, ref: str = Shop.package_ref, page=None):
    page = page or shop.purchase_page
    return client.post(shop.buy_url(), {"page": page.pk, "offer": ref}, secure=True, **BROWSER)


def customer_of(attempt) -> dict:
    """The details a new customer types: one e-mail address per reader, as real readers have. The typed
    address counts as the reader when the order is placed, so readers sharing one would be one buyer."""
    tag = hashlib.sha256(attempt.reader_key.encode()).hexdigest()[:16]
    return {**CUSTOMER, "email": f"reader-{tag}@example.com"}


def post_pay(client: Client, shop: Shop, attempt, token: str, customer: dict | None = None):
    data = {"klarna_authorization_token": token, **(customer or customer_of(attempt))}
    return client.post(shop.checkout_url(attempt), data, secure=True, **BROWSER)


CLIENT_TOKEN_RE = re.compile(r'"clientToken": "([^"]+)"')


def client_token_in(html: str) -> str | None:
    match = CLIENT_TOKEN_RE.search(html)
    return match.group(1) if match else None


# -- threads released together -----------------------------------------------------------------------


@dataclass
class Call:
    """One request made by a worker thread: its status (or the exception it raised) and its duration."""

    status: int | None = None
    location: str = ""
    body: str = ""
    seconds: float = 0.0
    error: BaseException | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def server_error(self) -> bool:
        return self.error is not None or (self.status is not None and self.status >= 500)


def record(response, started: float) -> Call:
    return Call(
        status=response.status_code,
        location=response.get("Location", ""),
        body=response.content.decode(errors="replace"),
        seconds=time.perf_counter() - started,
    )


def run_together(tasks: list, workers: int | None = None, timeout: float = 120.0) -> list[Call]:
    """Run ``tasks`` (callables returning a :class:`Call`) on ``workers`` threads released together by
    a barrier (default: one thread per task). Each thread closes its own database connection."""
    workers = min(workers or len(tasks), len(tasks))
    barrier = threading.Barrier(workers)
    results: list[Call | None] = [None] * len(tasks)
    next_task = iter(range(len(tasks)))
    task_lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait(timeout=timeout)
            while True:
                with task_lock:
                    index = next(next_task, None)
                if index is None:
                    return
                started = time.perf_counter()
                try:
                    results[index] = tasks[index]()
                # A 500 raised through the test client, or a bug: counted, never lost.
                except BaseException as exc:  # noqa: BLE001
                    results[index] = Call(error=exc, seconds=time.perf_counter() - started)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "worker threads did not finish in time"
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def timing(calls: list[Call]) -> str:
    seconds = [c.seconds * 1000 for c in calls]
    p50, p95 = percentile(seconds, 50), percentile(seconds, 95)
    return f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {max(seconds):.0f} ms"


# -- attempts and authorizations ---------------------------------------------------------------------


def authorization(scenario: str = "ok") -> str:
    """An authorization token as the fake Klarna widget hands it to the browser."""
    return f"fake-auth-{scenario}-{secrets.token_hex(8)}"


def anonymous_cookies() -> SimpleCookie:
    """An anonymous reader who already has a Django session (e.g. from an earlier buy click)."""
    session = SessionStore()
    session["wagtail_klarna_paywall_reader"] = True
    session.create()
    cookies = SimpleCookie()
    cookies[settings.SESSION_COOKIE_NAME] = session.session_key
    return cookies


def attempt_at(location: str) -> PurchaseAttempt:
    """The attempt a checkout URL (``.../checkout/<reference>/``) names."""
    reference = uuid.UUID(location.rstrip("/").rsplit("/", 1)[-1])
    return PurchaseAttempt.objects.get(reference=reference)


class ReadTogether:
    """A RunBefore-style hook: every request looks its attempt up, then waits until all ``parties`` have
    read it. So they all hold a ``session_ready`` copy when they go on, and only the database's
    conditional UPDATE stands between them and a second place_order (without the hook, the GIL lets
    the first thread run ahead and most others read ``placing`` already)."""

    def __init__(self, monkeypatch, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=30)
        self.original = attempts.attempt_by_reference
        monkeypatch.setattr(attempts, "attempt_by_reference", self)

    def __call__(self, reference, **kwargs):
        attempt = self.original(reference, **kwargs)
        self.barrier.wait()
        return attempt
