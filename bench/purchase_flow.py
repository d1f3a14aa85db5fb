"""(b) The purchase flow's own cost per step, against baselines measured in the same loop; and the flow
under 50 concurrent readers.

Steps: buy (POST, creates the Payway session), checkout (GET, the Klarna widget page), place order (POST),
confirmation (GET). Every request goes through Django's full stack with CSRF enforced, as a browser's
would; each simulated reader is a new browser with an address of its own (``REMOTE_ADDR``), so the
per-IP rate limits count readers, not the benchmark.

1. Interleaved, zero-latency fake. Every round one new reader buys, and three baselines are requested
   at random places between its steps by a reader who has a Django session: a bare GET (no database),
   a bare CSRF-checked POST that inserts one row (``bench/urls.py``), and the plain article (the test
   app's template, which reads the session as a site's header does). Each step's median is divided by
   the plain article's median of the same run; statements are counted per step. Targets (issue 12):
   checkout and confirmation at most 1.3x the plain article, buy and place order at most 2.5x (they
   write and call Payway); statements at most buy 20, checkout 6, place order 12, confirmation 8.
   The time spent waiting for Payway (inside ``requests``) is reported separately.
2. 50 readers released together, the fake answering create_session and place_order after 200 ms:
   p50/p95 per step, errors, Payway calls, and TCP connections the Payway client opened (a pooled
   client should open at most its pool size, not one per request).
"""

from __future__ import annotations

import gc
import itertools
import random
import secrets
import time
from collections.abc import Callable
from typing import Any

from bench.common import (
    ConnectCounter,
    PaywayTime,
    QueryCounter,
    Site,
    reader_address,
    run_threads,
    slow_replies,
    summary,
    write_result,
)

STEPS = ("buy", "checkout", "place order", "confirmation")
BASELINES = ("bare GET", "bare CSRF POST", "plain article")
#: Each step's median at most this many times the plain article's (issue 12).
RATIO_TARGETS = {"buy": 2.5, "checkout": 1.3, "place order": 2.5, "confirmation": 1.3}
#: SQL statements per step at most (issue 12); tests/test_flow_statements.py pins them too.
STATEMENT_TARGETS = {"buy": 20, "checkout": 6, "place order": 12, "confirmation": 8}
CONCURRENT = 50
LATENCY = 0.2
WARMUP = 10
CUSTOMER = {"first_name": "Bench", "last_name": "Reader"}

_readers = itertools.count(1)


def new_browser() -> Any:
    """A browser that has never been here, with an IP address of its own; CSRF enforced. It sends
    ``Origin`` as browsers do on a form POST (Django's CSRF check on HTTPS needs it, or a Referer)."""
    from django.test import Client

    return Client(
        enforce_csrf_checks=True, REMOTE_ADDR=reader_address(next(_readers)), HTTP_ORIGIN="https://testserver"
    )


def csrf_token(client: Any) -> str:
    from django.conf import settings

    return client.cookies[settings.CSRF_COOKIE_NAME].value


class Purchase:
    """One new reader who has the purchase page open (so holds a CSRF cookie) and buys the package."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.client = new_browser()
        landing = self.client.get(site.purchase_page.url, secure=True)
        if landing.status_code != 200:
            raise RuntimeError(f"purchase page: HTTP {landing.status_code}")
        self.checkout_url = ""
        self.confirmation_url = ""

    def buy(self) -> Any:
        form = {
            "page": self.site.purchase_page.pk,
            "offer": "offer-package",
            "csrfmiddlewaretoken": csrf_token(self.client),
        }
        response = self.client.post(self.site.purchase_page.url + "buy/", form, secure=True)
        self.checkout_url = response.get("Location", "")
        return response

    def checkout(self) -> Any:
        return self.client.get(self.checkout_url, secure=True)

    def place_order(self) -> Any:
        # A new customer with an address of their own (one order per reader and product counts the typed
        # e-mail as the reader).
        pay = {
            "klarna_authorization_token": f"fake-auth-ok-{secrets.token_hex(8)}",
            "email": f"bench-{secrets.token_hex(6)}@example.com",
            "csrfmiddlewaretoken": csrf_token(self.client),
            **CUSTOMER,
        }
        response = self.client.post(self.checkout_url, pay, secure=True)
        # To Klarna's hop (``bench.common.KlarnaHopOnKlarnasHost``), which sends the reader back to the
        # confirmation URL the session was made with: the confirmation page with the attempt's reference.
        reference = self.checkout_url.rstrip("/").rsplit("/", 1)[-1]
        self.confirmation_url = f"{self.site.confirmation.url}?ref={reference}"
        return response

    def confirmation(self) -> Any:
        return self.client.get(self.confirmation_url, secure=True)

    def calls(self) -> dict[str, tuple[Callable[[], Any], int]]:
        return {
            "buy": (self.buy, 303),
            "checkout": (self.checkout, 200),
            "place order": (self.place_order, 303),
            "confirmation": (self.confirmation, 200),
        }


class Baselines:
    """A returning anonymous reader with a Django session and a CSRF cookie: the bare requests and the
    plain article, each through the same middleware as the flow."""

    def __init__(self, site: Site) -> None:
        from django.conf import settings
        from django.contrib.sessions.backends.db import SessionStore

        self.site = site
        self.client = new_browser()
        session = SessionStore()
        session["bench_returning_reader"] = True
        session.create()
        self.client.cookies[settings.SESSION_COOKIE_NAME] = session.session_key
        self.client.get(site.purchase_page.url, secure=True)  # the CSRF cookie, as any form page sets it

    def calls(self) -> dict[str, tuple[Callable[[], Any], int]]:
        token = csrf_token(self.client)
        return {
            "bare GET": (lambda: self.client.get("/bench/bare/", secure=True), 200),
            "bare CSRF POST": (
                lambda: self.client.post("/bench/bare-post/", {"csrfmiddlewaretoken": token}, secure=True),
                200,
            ),
            "plain article": (lambda: self.client.get(self.site.plain.url, secure=True), 200),
        }


def interleaved(site: Site, rounds: int, timer: PaywayTime, *, seed: int = 17) -> dict[str, Any]:
    """``rounds`` purchases with the baselines at random places between their steps."""
    rng = random.Random(seed)
    baselines = Baselines(site)
    names = (*STEPS, *BASELINES)
    times: dict[str, list[float]] = {name: [] for name in names}
    payway: dict[str, list[float]] = {name: [] for name in STEPS}
    counters = {name: QueryCounter() for name in names}
    base_calls = baselines.calls()
    for _ in range(WARMUP):
        purchase = Purchase(site)
        for name, (call, expected) in {**purchase.calls(), **base_calls}.items():
            _check(name, call(), expected)
    gc.collect()
    for _ in range(rounds):
        purchase = Purchase(site)
        order: list[str] = list(STEPS)
        for name in BASELINES:
            order.insert(rng.randint(0, len(order)), name)
        calls = {**purchase.calls(), **base_calls}
        for name in order:
            call, expected = calls[name]
            timer.take()
            with counters[name].counting():
                begin = time.perf_counter()
                response = call()
                elapsed = time.perf_counter() - begin
            if name in payway:
                payway[name].append(timer.take())
            times[name].append(elapsed)
            _check(name, response, expected)
    result: dict[str, Any] = {"rounds": rounds, "variants": {}}
    plain = summary(times["plain article"])["median_ms"]
    for name in names:
        stats = summary(times[name])
        stats["statements"] = round(counters[name].queries / rounds, 2)
        stats["writes"] = round(counters[name].writes / rounds, 2)
        stats["ratio_to_plain_article"] = round(stats["median_ms"] / plain, 3)
        if name in payway:
            stats["payway_median_ms"] = summary(payway[name])["median_ms"]
        result["variants"][name] = stats
    return result


def _check(name: str, response: Any, expected: int) -> None:
    if response.status_code != expected:
        raise RuntimeError(f"{name}: HTTP {response.status_code}, expected {expected}")


def one_purchase(site: Site, timer: PaywayTime) -> dict[str, tuple[float, float]]:
    """A new reader buys; returns {step: (seconds, seconds waiting for Payway)}."""
    purchase = Purchase(site)
    timings: dict[str, tuple[float, float]] = {}
    for name, (call, expected) in purchase.calls().items():
        timer.take()
        started = time.perf_counter()
        response = call()
        timings[name] = (time.perf_counter() - started, timer.take())
        _check(name, response, expected)
    return timings


def _per_step(runs: list[dict[str, tuple[float, float]]]) -> dict[str, Any]:
    steps = {}
    for name in STEPS:
        total = [run[name][0] for run in runs]
        overhead = [run[name][0] - run[name][1] for run in runs]
        steps[name] = {"total": summary(total), "server_overhead": summary(overhead)}
    return steps


def run(site: Site, *, quick: bool) -> dict[str, Any]:
    from django.db import connection

    from wagtail_klarna_paywall.fake import state
    from wagtail_klarna_paywall.payway import get_client

    rounds = 60 if quick else 300
    concurrent = 20 if quick else CONCURRENT
    timer = PaywayTime()
    get_client().system_token()
    result: dict[str, Any] = {"database": connection.vendor}

    with timer.counting():
        before = state.calls()
        result["interleaved"] = interleaved(site, rounds, timer)
        result["interleaved"]["payway_calls"] = _diff(before, state.calls())

        # Many readers at once, Payway answering in 200 ms.
        slow_replies("create_session", concurrent, LATENCY)
        slow_replies("place_order", concurrent, LATENCY)
        connects = ConnectCounter()
        before = state.calls()
        accepted_before = site.fake_server.accepted
        with connects.counting():
            started = time.perf_counter()
            outcomes = run_threads(concurrent, lambda i: one_purchase(site, timer))
            wall = time.perf_counter() - started
        errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
        runs = [o for o in outcomes if isinstance(o, dict)]
        result["concurrent"] = {
            "readers": concurrent,
            "payway_latency_ms": LATENCY * 1000,
            "wall_seconds": round(wall, 2),
            "errors": len(errors),
            "error_samples": errors[:3],
            "steps": _per_step(runs) if runs else {},
            "payway_calls": _diff(before, state.calls()),
            "tcp_connects_by_payway_client": connects.connects,
            "tcp_accepts_by_fake_server": site.fake_server.accepted - accepted_before,
            "client_pool_maxsize": _pool_maxsize(get_client()),
        }
    result["targets"] = {"ratio_to_plain_article": RATIO_TARGETS, "statements": STATEMENT_TARGETS}
    result["missed"] = missed(result)
    _print(result)
    write_result("purchase", result)
    if result["concurrent"]["errors"]:
        raise SystemExit(f"purchase benchmark: {result['concurrent']['errors']} concurrent readers failed")
    return result


def missed(result: dict[str, Any]) -> list[str]:
    """The targets this run missed, in words."""
    out = []
    for name in STEPS:
        stats = result["interleaved"]["variants"][name]
        if stats["ratio_to_plain_article"] > RATIO_TARGETS[name]:
            out.append(f"{name}: {stats['ratio_to_plain_article']:.2f}x > {RATIO_TARGETS[name]}x")
        if stats["statements"] > STATEMENT_TARGETS[name]:
            out.append(f"{name}: {stats['statements']:g} statements > {STATEMENT_TARGETS[name]}")
    return out


def _diff(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}


def _pool_maxsize(client: Any) -> Any:
    session = getattr(client, "_session", None)
    adapter = session.get_adapter("http://") if session is not None else None
    return getattr(adapter, "_pool_maxsize", None)


def _print(result: dict[str, Any]) -> None:
    inter = result["interleaved"]
    print(
        f"\n(b) Purchase flow ({result['database']}), {inter['rounds']} readers, each step interleaved with "
        "the baselines, zero-latency fake, CSRF enforced"
    )
    print(
        f"  {'request':<16}{'median':>9}{'p95':>9}{'x plain':>9}{'target':>8}"
        f"{'statements':>12}{'target':>8}{'writes':>8}{'Payway':>9}"
    )
    for name, s in inter["variants"].items():
        ratio_target = f"{RATIO_TARGETS[name]:.1f}" if name in RATIO_TARGETS else ""
        statement_target = str(STATEMENT_TARGETS.get(name, ""))
        waited = f"{s['payway_median_ms']:.1f}ms" if "payway_median_ms" in s else ""
        print(
            f"  {name:<16}{s['median_ms']:>7.2f}ms{s['p95_ms']:>7.2f}ms{s['ratio_to_plain_article']:>8.2f}x"
            f"{ratio_target:>8}{s['statements']:>12g}{statement_target:>8}{s['writes']:>8g}{waited:>9}"
        )
    print(f"  Payway calls: {inter['payway_calls']}")
    print("  targets: " + ("all met" if not result["missed"] else "MISSED " + "; ".join(result["missed"])))
    conc = result["concurrent"]
    print(
        f"  {conc['readers']} readers at once, fake at {conc['payway_latency_ms']:.0f} ms: "
        f"wall {conc['wall_seconds']} s, errors {conc['errors']}"
    )
    print(f"  {'step':<14}{'p50':>9}{'p95':>9}{'overhead p50':>14}")
    for name, s in conc["steps"].items():
        print(
            f"  {name:<14}{s['total']['median_ms']:>7.0f}ms{s['total']['p95_ms']:>7.0f}ms"
            f"{s['server_overhead']['median_ms']:>12.0f}ms"
        )
    print(f"  Payway calls: {conc['payway_calls']}")
    print(
        f"  TCP connections opened by the Payway client: {conc['tcp_connects_by_payway_client']} "
        f"(pool size {conc['client_pool_maxsize']}); "
        f"accepted by the fake: {conc['tcp_accepts_by_fake_server']}"
    )
    if conc["error_samples"]:
        print(f"  first errors: {conc['error_samples']}")
