"""(b) The purchase flow's own cost per step, and the flow under 50 concurrent readers.

Steps: buy (POST, creates the Payway session), checkout (GET, the Klarna widget page), place order (POST),
confirmation (GET). Each step is timed through Django's full stack; the time spent waiting for Payway
(inside ``requests``) is measured separately, so "server overhead" = step time - Payway time.

1. Sequential readers against a zero-latency fake: the baseline.
2. 50 readers released together, the fake answering create_session and place_order after 200 ms:
   p50/p95 per step, errors, Payway calls, and TCP connections the Payway client opened (a pooled
   client should open at most its pool size, not one per request).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from bench.common import ConnectCounter, PaywayTime, Site, run_threads, slow_replies, summary, write_result

STEPS = ("buy", "checkout", "place order", "confirmation")
CONCURRENT = 50
LATENCY = 0.2
CUSTOMER = {"email": "bench@example.com", "first_name": "Bench", "last_name": "Reader"}


def one_purchase(site: Site, timer: PaywayTime) -> dict[str, tuple[float, float]]:
    """A new anonymous reader buys the package; returns {step: (seconds, seconds waiting for Payway)}."""
    from django.test import Client

    client = Client()
    timings: dict[str, tuple[float, float]] = {}

    def step(name: str, expected: int, call) -> Any:
        timer.take()
        started = time.perf_counter()
        response = call()
        timings[name] = (time.perf_counter() - started, timer.take())
        if response.status_code != expected:
            raise RuntimeError(f"{name}: HTTP {response.status_code}, expected {expected}")
        return response

    buy_url = site.purchase_page.url + "buy/"
    form = {"page": site.purchase_page.pk, "offer": "offer-package"}
    checkout = step("buy", 303, lambda: client.post(buy_url, form, secure=True))["Location"]
    step("checkout", 200, lambda: client.get(checkout, secure=True))
    # Each simulated reader is a new customer with an address of their own (one order per reader and
    # product counts the typed e-mail as the reader).
    email = f"bench-{secrets.token_hex(6)}@example.com"
    pay = {"klarna_authorization_token": f"fake-auth-ok-{secrets.token_hex(8)}", **CUSTOMER, "email": email}
    confirmation = step("place order", 303, lambda: client.post(checkout, pay, secure=True))["Location"]
    step("confirmation", 200, lambda: client.get(confirmation, secure=True))
    return timings


def _per_step(runs: list[dict[str, tuple[float, float]]]) -> dict[str, Any]:
    steps = {}
    for name in STEPS:
        total = [run[name][0] for run in runs]
        overhead = [run[name][0] - run[name][1] for run in runs]
        payway = [run[name][1] for run in runs]
        steps[name] = {
            "total": summary(total),
            "server_overhead": summary(overhead),
            "payway": summary(payway),
        }
    return steps


def run(site: Site, *, quick: bool) -> dict[str, Any]:
    from django.db import connection

    from wagtail_klarna_paywall.fake import state
    from wagtail_klarna_paywall.payway import get_client

    sequential = 30 if quick else 100
    timer = PaywayTime()
    get_client().system_token()
    result: dict[str, Any] = {"database": connection.vendor}

    with timer.counting():
        for _ in range(5):  # warm-up
            one_purchase(site, timer)
        before = state.calls()
        runs = [one_purchase(site, timer) for _ in range(sequential)]
        calls = {k: v - before[k] for k, v in state.calls().items() if v != before[k]}
        result["zero_latency"] = {"readers": sequential, "steps": _per_step(runs), "payway_calls": calls}

        # 50 readers at once, Payway answering in 200 ms.
        slow_replies("create_session", CONCURRENT, LATENCY)
        slow_replies("place_order", CONCURRENT, LATENCY)
        connects = ConnectCounter()
        before = state.calls()
        accepted_before = site.fake_server.accepted
        with connects.counting():
            started = time.perf_counter()
            outcomes = run_threads(CONCURRENT, lambda i: one_purchase(site, timer))
            wall = time.perf_counter() - started
        errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
        runs = [o for o in outcomes if isinstance(o, dict)]
        calls = {k: v - before[k] for k, v in state.calls().items() if v != before[k]}
        result["concurrent"] = {
            "readers": CONCURRENT,
            "payway_latency_ms": LATENCY * 1000,
            "wall_seconds": round(wall, 2),
            "errors": len(errors),
            "error_samples": errors[:3],
            "steps": _per_step(runs) if runs else {},
            "payway_calls": calls,
            "tcp_connects_by_payway_client": connects.connects,
            "tcp_accepts_by_fake_server": site.fake_server.accepted - accepted_before,
            "client_pool_maxsize": _pool_maxsize(get_client()),
        }
    result["ratios_concurrent_vs_zero_latency_p50"] = {
        name: round(
            result["concurrent"]["steps"][name]["total"]["median_ms"]
            / result["zero_latency"]["steps"][name]["total"]["median_ms"],
            2,
        )
        for name in STEPS
        if result["concurrent"]["steps"]
    }
    _print(result)
    write_result("purchase", result)
    return result


def _pool_maxsize(client: Any) -> Any:
    session = getattr(client, "_session", None)
    adapter = session.get_adapter("http://") if session is not None else None
    return getattr(adapter, "_pool_maxsize", None)


def _print(result: dict[str, Any]) -> None:
    zero = result["zero_latency"]
    print(
        f"\n(b) Purchase flow ({result['database']}), {zero['readers']} sequential readers, zero-latency fake"
    )
    print(f"  {'step':<14}{'p50':>9}{'p95':>9}{'overhead p50':>14}{'overhead p95':>14}")
    for name, s in zero["steps"].items():
        print(
            f"  {name:<14}{s['total']['median_ms']:>7.1f}ms{s['total']['p95_ms']:>7.1f}ms"
            f"{s['server_overhead']['median_ms']:>12.1f}ms{s['server_overhead']['p95_ms']:>12.1f}ms"
        )
    print(f"  Payway calls: {zero['payway_calls']}")
    conc = result["concurrent"]
    print(
        f"  {conc['readers']} readers at once, fake at {conc['payway_latency_ms']:.0f} ms: "
        f"wall {conc['wall_seconds']} s, errors {conc['errors']}"
    )
    print(f"  {'step':<14}{'p50':>9}{'p95':>9}{'overhead p50':>14}{'x zero-lat p50':>16}")
    for name, s in conc["steps"].items():
        ratio = result["ratios_concurrent_vs_zero_latency_p50"].get(name, 0)
        print(
            f"  {name:<14}{s['total']['median_ms']:>7.0f}ms{s['total']['p95_ms']:>7.0f}ms"
            f"{s['server_overhead']['median_ms']:>12.0f}ms{ratio:>15.1f}x"
        )
    print(f"  Payway calls: {conc['payway_calls']}")
    print(
        f"  TCP connections opened by the Payway client: {conc['tcp_connects_by_payway_client']} "
        f"(pool size {conc['client_pool_maxsize']}); "
        f"accepted by the fake: {conc['tcp_accepts_by_fake_server']}"
    )
    if conc["error_samples"]:
        print(f"  first errors: {conc['error_samples']}")
