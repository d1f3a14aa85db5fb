"""What every benchmark shares: the fake Payway server, the demo pages, counters and statistics."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


# -- statistics --------------------------------------------------------------------------------------


def ms(seconds: list[float]) -> list[float]:
    return [s * 1000 for s in seconds]


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def summary(seconds: list[float]) -> dict[str, float]:
    values = ms(seconds)
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 3),
        "p95_ms": round(percentile(values, 95), 3),
        "min_ms": round(min(values), 3),
        "max_ms": round(max(values), 3),
    }


def machine() -> dict[str, Any]:
    import django
    import wagtail
    from django.db import connection

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "django": django.get_version(),
        "wagtail": wagtail.__version__,
        "database": connection.vendor,
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


# -- counters ----------------------------------------------------------------------------------------


#: Transaction control, which only SQLite's ``transaction_mode`` sends through Django's cursor (psycopg
#: begins and commits on the connection): not counted, so the counts compare across databases and with
#: the test suite's ``django_assert_max_num_queries``. Savepoints are counted, as there.
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


class QueryCounter:
    """Counts SQL statements (and writes among them) through ``connection.execute_wrapper``, except
    :data:`TRANSACTION_CONTROL`. Wraps the connection of the thread that opens the context."""

    def __init__(self) -> None:
        self.queries = 0
        self.writes = 0
        self.lock = threading.Lock()

    def __call__(self, execute, sql, params, many, context):
        verb = sql.lstrip().split(None, 1)[0].upper()
        if verb not in TRANSACTION_CONTROL:
            with self.lock:
                self.queries += 1
                if verb in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
                    self.writes += 1
        return execute(sql, params, many, context)

    @contextmanager
    def counting(self) -> Iterator[QueryCounter]:
        from django.db import connection

        with connection.execute_wrapper(self):
            yield self


class ConnectCounter:
    """TCP connections opened by the Payway client (urllib3 connects once per new pooled socket)."""

    def __init__(self) -> None:
        self.connects = 0
        self._lock = threading.Lock()

    @contextmanager
    def counting(self) -> Iterator[ConnectCounter]:
        import urllib3.connection

        original = urllib3.connection.HTTPConnection.connect
        counter = self

        def connect(conn):
            with counter._lock:
                counter.connects += 1
            return original(conn)

        urllib3.connection.HTTPConnection.connect = connect
        try:
            yield self
        finally:
            urllib3.connection.HTTPConnection.connect = original


class PaywayTime:
    """Time each thread spends waiting for Payway (inside ``requests.Session.send``)."""

    def __init__(self) -> None:
        self.local = threading.local()

    def take(self) -> float:
        spent = getattr(self.local, "spent", 0.0)
        self.local.spent = 0.0
        return spent

    @contextmanager
    def counting(self) -> Iterator[PaywayTime]:
        import requests

        original = requests.Session.send
        timer = self

        def send(session, request, **kwargs):
            started = time.perf_counter()
            try:
                return original(session, request, **kwargs)
            finally:
                timer.local.spent = getattr(timer.local, "spent", 0.0) + time.perf_counter() - started

        requests.Session.send = send
        try:
            yield self
        finally:
            requests.Session.send = original


# -- the fake Payway on a local thread server --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakePaywayServer:
    """The site's WSGI app (which routes the fake Payway under ``fake-payway/``) on a threaded server.

    The listen backlog is raised from Django's 10 so 50 simultaneous connects are not dropped and
    retried by the kernel (which would add whole seconds that are not the plugin's). Counts accepts.
    Every accepted socket gets ``TCP_NODELAY`` (the fake's ``NoDelayWSGIServer``): the handler writes a
    reply's headers and body in separate sends, and with Nagle's algorithm on, the body waits for the
    client's delayed ACK of the headers (about 40 ms on Linux) on every keep-alive reply, a stall that is
    the benchmark's, not the plugin's.
    """

    def __init__(self, port: int) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.servers.basehttp import WSGIRequestHandler

        from wagtail_klarna_paywall.fake.server import NoDelayWSGIServer

        class QuietHandler(WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        outer = self
        self.accepted = 0

        class Server(NoDelayWSGIServer):
            request_queue_size = 256

            def get_request(self):
                sock, address = super().get_request()
                outer.accepted += 1
                return sock, address

        self.server = Server(("127.0.0.1", port), QuietHandler, allow_reuse_address=True)
        self.server.set_app(KlarnaHopOnKlarnasHost(WSGIHandler()))
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.daemon = True

    def __enter__(self) -> FakePaywayServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        from wagtail_klarna_paywall.fake import state

        state.reset()
        self.server.shutdown()
        self.server.server_close()


class KlarnaHopOnKlarnasHost:
    """The fake answers ``place_order`` with a Klarna hop built from the request's own scheme and host,
    here ``http://127.0.0.1:<port>``, which the flow rightly refuses (not https, not Klarna) and answers
    with a security event and a redirect to the confirmation page instead. Real Klarna hops are https on
    ``klarna.com`` and pass: so the fake's order calls are served as if on Klarna's host, and the
    benchmark measures the path every real purchase takes. The hop itself is never followed."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO", "").endswith(("/place_order", "/place_trial_order")):
            environ = {
                **environ,
                "wsgi.url_scheme": "https",
                "HTTP_HOST": "pay.klarna.com",
                "SERVER_PORT": "443",
            }
        return self.app(environ, start_response)


def reader_address(number: int) -> str:
    """The IP address of simulated reader ``number``: each reader its own (10.0.0.0/8), as on a real site,
    so the per-IP rate limits (30 new sessions per 10 minutes) see readers, not the benchmark."""
    number %= 1 << 24
    return f"10.{number >> 16}.{(number >> 8) & 255}.{number & 255}"


def slow_replies(endpoint: str, count: int, delay: float) -> None:
    from wagtail_klarna_paywall.fake import state

    for _ in range(count):
        state.fail_next(endpoint, status=None, delay=delay)


# -- the demo pages ----------------------------------------------------------------------------------

ARTICLE_PARAGRAPHS = 10
PAYWALL_AFTER = 3


def _offer(**overrides: Any) -> dict[str, Any]:
    value = {
        "product_code": "demo_digital",
        "product_kind": "package",
        "product_name": "Digital",
        "period_type": "recurring",
        "is_trial": False,
        "period_id": "",
        "price": "139.00",
        "price_period": "month",
        "label": "Digital, 139 kr a month",
        "selling_points": ["Every article", "The app"],
        "payment_method_category": "",
    }
    value.update(overrides)
    return value


def paragraphs(first: int, last: int) -> list[dict[str, Any]]:
    text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. " * 6
    return [
        {"type": "paragraph", "id": f"p{i}", "value": f"<p>{i}. {text}</p>"} for i in range(first, last + 1)
    ]


class Site:
    """The pages the benchmarks use, built once on the default Wagtail site."""

    def __init__(self) -> None:
        from wagtail.models import Site as WagtailSite

        from tests.testapp.models import ArticlePage
        from wagtail_klarna_paywall.fake import catalogue
        from wagtail_klarna_paywall.models import KlarnaPurchasePage, PurchaseConfirmationPage

        site = WagtailSite.objects.get(is_default_site=True)
        home = site.root_page.specific
        self.confirmation = home.add_child(instance=PurchaseConfirmationPage(title="Thanks", slug="thanks"))
        self.purchase_page = home.add_child(
            instance=KlarnaPurchasePage(
                title="Subscribe",
                slug="subscribe",
                confirmation_page=self.confirmation,
                offers=[{"type": "offer", "id": "offer-package", "value": _offer()}],
            )
        )
        paywall = {
            "type": "paywall",
            "id": "paywall-1",
            "value": {
                "heading": "Read on with Digital",
                "teaser": "<p>Subscribe to read the whole story.</p>",
                "offers": [
                    {"type": "item", "id": "offer-digital", "value": _offer()},
                    {
                        "type": "item",
                        "id": "offer-campaign",
                        "value": _offer(
                            product_code="demo_campaign_3m99",
                            product_kind="campaign",
                            label="3 months for 99 kr",
                            price="99.00",
                        ),
                    },
                ],
                "purchase_page": self.purchase_page.pk,
                "confirmation_page": None,
                "login_text": "Already a subscriber? Log in.",
                "access_product_codes": [catalogue.DIGITAL],
            },
        }
        free, rest = paragraphs(1, PAYWALL_AFTER), paragraphs(PAYWALL_AFTER + 1, ARTICLE_PARAGRAPHS)
        self.paywalled = home.add_child(
            instance=ArticlePage(title="Big story", slug="big-story", body=[*free, paywall, *rest])
        )
        # The same article without the paywall block: the baseline.
        self.plain = home.add_child(
            instance=ArticlePage(title="Big story", slug="big-story-free", body=[*free, *rest])
        )


def logged_in_cookies() -> dict[str, str]:
    """A reader logged in through SSO2 (the fake's demo reader, who owns nothing): the session the SSO2
    landing view would have stored."""
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore

    from wagtail_klarna_paywall.fake import state
    from wagtail_klarna_paywall.login import sso

    token = state.issue_access_token(state.READER_ACCOUNT_ID)
    session = SessionStore()
    now = time.time()
    session[sso.SESSION_KEY] = {
        "sid": "bench-sso-session",
        "sts": sso.STATUS_LOGGEDIN,
        "checked": now,
        "since": now,
        "token": token.value,
        "expires": token.expires_at.timestamp(),
        "refresh": "",
    }
    session.create()
    return {settings.SESSION_COOKIE_NAME: session.session_key}


def run_threads(count: int, target: Callable[[int], Any], timeout: float = 300) -> list[Any]:
    """Run ``target(i)`` on ``count`` threads released together; each closes its DB connection."""
    from django.db import connection

    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def work(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[index] = target(index)
        except BaseException as exc:  # noqa: BLE001 - reported as a failure of that thread
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results
