"""PostgreSQL concurrency suite: real threads, real row locks, the fake Payway over real HTTP.

Every test here runs only when ``DATABASE_URL`` points at PostgreSQL; SQLite ignores
``select_for_update``, so a pass there would prove nothing. The suite skips with the reason below
otherwise. Run it with::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/pytest tests/concurrency -q -m postgres

The measured figures (Payway calls, duplicates, timings) are printed in pytest's terminal summary, so
CI logs show them even when output capture is on.
"""

from __future__ import annotations

import hashlib
import re
import statistics
import threading
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.servers.basehttp import WSGIServer
from django.db import connection
from django.test import Client

from tests.test_purchase import offer_value
from wagtail_klarna_paywall.fake import catalogue, state
from wagtail_klarna_paywall.payway import get_client

HERE = Path(__file__).resolve().parent
SKIP_REASON = "set DATABASE_URL=postgres://... to run the concurrency suite; SQLite ignores row locks"

#: Figures collected by the tests, printed at the end of the run.
FIGURES: list[str] = []

# The live server listens with Django's backlog of 10. L03 makes 50 readers' Payway calls at once, and a
# 2-core machine cannot accept that fast: the kernel dropped a connection the client had already sent its
# request on, and a reader got "try again". That is the test server's limit, not the plugin's, so the
# backlog is raised before any live server starts (it only ever makes the test server more forgiving).
WSGIServer.request_queue_size = max(WSGIServer.request_queue_size, 128)


def on_postgres() -> bool:
    return django_settings.DATABASES["default"]["ENGINE"].endswith(("postgresql", "postgis"))


def pytest_collection_modifyitems(config, items):
    if on_postgres():
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("concurrency figures (PostgreSQL, fake Payway over HTTP)")
        for line in FIGURES:
            terminalreporter.write_line(line)


def report(line: str) -> None:
    """Record a figure for the terminal summary (and print it for ``-s`` runs)."""
    FIGURES.append(line)
    print(line)


# -- the fake Payway on the live server ------------------------------------------------------------


@pytest.fixture
def fake_payway(live_server, settings):
    """The real Payway client pointed at the fake Payway on ``live_server``; counters start at zero.

    The system token is fetched before the test so token calls never mix into the counted calls.
    """
    state.reset()
    settings.WAGTAIL_KLARNA_PAYWALL = {
        **settings.WAGTAIL_KLARNA_PAYWALL,
        "API_URL": live_server.url + "/fake-payway",
        "KLARNA_SDK_URL": "wagtail_klarna_paywall_fake/fake-klarna.js",
        # Every thread here comes from 127.0.0.1: the per-IP session limit (S13, tested in
        # tests/test_ratelimit.py) would refuse the crowd these cases need.
        "RATE_LIMITS": None,
        "CONNECT_TIMEOUT": 5.0,
        "READ_TIMEOUT": 10.0,
    }
    get_client().system_token()
    yield state
    # Also wakes any fake reply still sleeping, so the live server stops at once.
    state.reset()


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


# -- the shop ---------------------------------------------------------------------------------------


@dataclass
class Shop:
    site: Any
    confirmation: Any
    purchase_page: Any
    article: Any

    package_ref = "offer-package"
    campaign_ref = "offer-campaign"
    trial_ref = "offer-trial"
    article_offer_ref = "paywall-1:offer-digital"

    def buy_url(self) -> str:
        return self.purchase_page.url + "buy/"

    def checkout_url(self, attempt) -> str:
        return f"{self.purchase_page.url}checkout/{attempt.reference}/"

    def confirmation_url(self, attempt) -> str:
        return f"{self.confirmation.url}?ref={attempt.reference}"


def _tree_root():
    """The site root. Transactional tests flush the database, taking the migrations' root page, site
    and locale with them, so they are rebuilt when missing."""
    from wagtail.models import Locale, Page, Site

    Locale.objects.get_or_create(language_code="en")
    site = Site.objects.filter(is_default_site=True).first()
    if site is None:
        root = Page.objects.filter(depth=1).first() or Page.add_root(instance=Page(title="Root", slug="root"))
        home = root.add_child(instance=Page(title="Home", slug="home"))
        site = Site.objects.create(hostname="localhost", root_page=home, is_default_site=True)
    return site


@pytest.fixture
def shop(transactional_db) -> Shop:
    """A news site selling the fake Payway's products: a purchase page, a confirmation page, and an
    article whose paywall sells the digital package."""
    from tests.testapp.models import ArticlePage
    from wagtail_klarna_paywall.models import KlarnaPurchasePage, PaywallSettings, PurchaseConfirmationPage

    site = _tree_root()
    site.hostname, site.port = "news.example", 443
    site.save()
    home = site.root_page.specific
    confirmation = home.add_child(instance=PurchaseConfirmationPage(title="Thank you", slug="thanks"))
    # The products each offer contains, as the chooser copies them from the fake catalogue.
    digital = {
        "product_code": "demo_digital",
        "product_name": "Digital",
        "price": "139.00",
        "included_product_codes": catalogue.DIGITAL,
    }
    purchase_page = home.add_child(
        instance=KlarnaPurchasePage(
            title="Subscribe",
            slug="subscribe",
            confirmation_page=confirmation,
            offers=[
                {"type": "offer", "id": Shop.package_ref, "value": offer_value(**digital)},
                {
                    "type": "offer",
                    "id": Shop.campaign_ref,
                    "value": offer_value(
                        product_code="demo_campaign_3m99",
                        product_kind="campaign",
                        product_name="3 months for 99 kr",
                        label="3 months for 99 kr",
                        price="99.00",
                        included_product_codes=catalogue.DIGITAL,
                    ),
                },
                {
                    "type": "offer",
                    "id": Shop.trial_ref,
                    "value": offer_value(
                        product_code="demo_trial_14d",
                        product_kind="campaign",
                        product_name="Free trial",
                        label="Try free for 14 days",
                        is_trial=True,
                        period_id=catalogue.TRIAL_PERIOD_ID,
                        price="0",
                        included_product_codes=catalogue.DIGITAL,
                    ),
                },
            ],
        )
    )
    article = home.add_child(
        instance=ArticlePage(
            title="Big story",
            slug="big-story",
            body=[
                {"type": "paragraph", "id": "p1", "value": "<p>Free part.</p>"},
                {
                    "type": "paywall",
                    "id": "paywall-1",
                    "value": {
                        "heading": "Subscribe to read on",
                        "teaser": "",
                        "offers": [{"type": "item", "id": "offer-digital", "value": offer_value(**digital)}],
                        "purchase_page": purchase_page.pk,
                        "confirmation_page": None,
                        "login_text": "",
                        # No override: the digital offer's products open the article.
                        "access_product_codes": [],
                    },
                },
                {"type": "paragraph", "id": "p2", "value": "<p>Subscriber part.</p>"},
            ],
        )
    )
    PaywallSettings.objects.update_or_create(site=site, defaults={"traffic_source_default": "website"})
    return Shop(site, confirmation, purchase_page, article)


# -- readers and their browsers ---------------------------------------------------------------------

CUSTOMER = {"email": "reader@example.com", "first_name": "Rea", "last_name": "Der"}
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
