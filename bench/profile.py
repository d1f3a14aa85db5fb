"""(d) The production profile under load: N readers buying at once over W gunicorn workers.

``.venv/bin/python bench/profile.py [--readers 40] [--workers 1,2,4] [--threads 1] [--latency 0.2]``

Serves ``sandbox/run-production`` (gunicorn on PostgreSQL and Redis, the fake Payway as its own process)
once per worker count, on loopback only, on a throwaway database (``--database-url``, DROPPED and
recreated; default ``postgres://postgres@127.0.0.1:5432/wkp_bench_profile``). For each W: a warm-up, then N
new readers released together, each buying the package through the whole flow (buy, checkout, place
order, confirmation) behind the TLS proxy (``X-Forwarded-Proto``, their own ``X-Forwarded-For``), with the
fake answering ``create_session`` and ``place_order`` after ``--latency`` seconds.

Per W it reports per-step p50/p95, errors, ``place_order`` calls and orders at the fake, the TCP
connections each worker's Payway client opened (counted in Redis by ``tests/multiprocess/settings.py``)
against the client's pool size, and throughput (purchases per second of wall time). Targets: 0 errors,
exactly one ``place_order`` per reader, connections per worker at most the pool size, and throughput at
W = 4 at least 3x W = 1. Writes ``profile.json`` under ``bench/results/`` (not committed). Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import summary, write_result  # noqa: E402
from tests.multiprocess.observe import connects_key  # noqa: E402
from tests.multiprocess.profile import (  # noqa: E402
    Profile,
    Reader,
    authorization,
    recreate_database,
    run_together,
    start_profile,
)

STEPS = ("buy", "checkout", "place order", "confirmation")
TARGET_RATIO = 3.0


def one_purchase(profile: Profile, offer: dict[str, str]) -> dict[str, float]:
    """A new reader (who has the purchase page open) buys; returns {step: seconds}."""
    reader = Reader(profile)
    reader.cookies.update(offer["cookies"])
    timings: dict[str, float] = {}

    def step(name: str, expected: int, answer) -> Any:
        timings[name] = answer.seconds
        if answer.status != expected:
            raise RuntimeError(f"{name}: HTTP {answer.status}, expected {expected}")
        return answer

    checkout = step("buy", 303, reader.buy(offer)).location
    started = time.perf_counter()
    form = reader.checkout_form(checkout)
    timings["checkout"] = time.perf_counter() - started
    confirmation = step("place order", 303, reader.pay(checkout, form, authorization())).location
    step("confirmation", 200, reader.get(confirmation))
    return timings


def _offers_for(profile: Profile, count: int) -> list[dict[str, Any]]:
    """Each reader's purchase page, opened before the clock starts (its CSRF cookie and form)."""
    offers = []
    for _ in range(count):
        reader = Reader(profile)
        offer = reader.offers()[0]
        offers.append({**offer, "cookies": dict(reader.cookies)})
    return offers


def _connects(profile: Profile) -> dict[str, int]:
    import redis

    client = redis.Redis.from_url(profile.env["REDIS_URL"])
    raw = client.hgetall(connects_key(profile.env["CACHE_KEY_PREFIX"]))
    return {key.decode(): int(value) for key, value in raw.items()}


def run_one(profile: Profile, readers: int, latency: float) -> dict[str, Any]:
    from wagtail_klarna_paywall.payway.client import POOL_MAXSIZE

    # Warm-up: every worker fetches its system token and opens its database connections.
    warm = _offers_for(profile, profile.workers * profile.threads * 2)
    for outcome in run_together([lambda o=o: one_purchase(profile, o) for o in warm]):
        if isinstance(outcome, BaseException):
            raise RuntimeError(f"warm-up purchase failed: {outcome!r}\n{profile.log_tail()}")
    offers = _offers_for(profile, readers)
    profile.slow("create_session", readers, latency)
    profile.slow("place_order", readers, latency)
    before_calls = profile.control()["calls"]
    before_orders = len(profile.control()["orders"])
    before_connects = _connects(profile)
    started = time.perf_counter()
    outcomes = run_together([lambda o=o: one_purchase(profile, o) for o in offers], timeout=600)
    wall = time.perf_counter() - started
    snapshot = profile.control()
    after_connects = _connects(profile)
    runs = [o for o in outcomes if isinstance(o, dict)]
    errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    connects = {pid: n - before_connects.get(pid, 0) for pid, n in after_connects.items()}
    return {
        "workers": profile.workers,
        "threads": profile.threads,
        "readers": readers,
        "payway_latency_ms": latency * 1000,
        "wall_seconds": round(wall, 2),
        "throughput_per_s": round(len(runs) / wall, 2),
        "errors": len(errors),
        "error_samples": errors[:3],
        "steps": {name: summary([run[name] for run in runs]) for name in STEPS} if runs else {},
        "place_order_calls": snapshot["calls"]["place_order"] - before_calls["place_order"],
        "create_session_calls": snapshot["calls"]["create_session"] - before_calls["create_session"],
        "orders": len(snapshot["orders"]) - before_orders,
        "tcp_connects_per_worker_total": after_connects,
        "tcp_connects_per_worker_timed": connects,
        "pool_maxsize": POOL_MAXSIZE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=40)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--latency", type=float, default=0.2, help="the fake's reply delay, seconds")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/wkp_bench_profile")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()

    recreate_database(args.database_url)
    log_dir = Path(tempfile.mkdtemp(prefix="wkp-bench-profile-"))
    results = []
    setup = True
    for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
        profile = start_profile(
            database_url=args.database_url,
            redis_url=args.redis_url,
            log_dir=log_dir,
            workers=workers,
            threads=args.threads,
            setup=setup,
            extra_env={"WKP_COUNT_PAYWAY_CONNECTS": "1"},
            static_root=log_dir / "static",
        )
        setup = False
        try:
            result = run_one(profile, args.readers, args.latency)
        finally:
            profile.stop()
        results.append(result)
        _print(result)
    base = results[0]["throughput_per_s"] or 1
    ratios = {str(r["workers"]): round(r["throughput_per_s"] / base, 2) for r in results}
    first = results[0]["workers"]
    print(f"\nThroughput relative to W = {first}: {ratios} (target at W = 4: {TARGET_RATIO}x)")
    path = write_result("profile", {"runs": results, "throughput_ratios": ratios, "logs": str(log_dir)})
    print(f"Written to {path}; gunicorn logs in {log_dir}")


def _print(result: dict[str, Any]) -> None:
    print(
        f"\nW = {result['workers']} x {result['threads']} threads, {result['readers']} readers, fake at "
        f"{result['payway_latency_ms']:.0f} ms: wall {result['wall_seconds']} s, "
        f"{result['throughput_per_s']} purchases/s, errors {result['errors']}"
    )
    print(f"  {'step':<14}{'p50':>10}{'p95':>10}")
    for name, s in result["steps"].items():
        print(f"  {name:<14}{s['median_ms']:>8.0f}ms{s['p95_ms']:>8.0f}ms")
    print(
        f"  place_order {result['place_order_calls']}, orders {result['orders']}, "
        f"create_session {result['create_session_calls']}"
    )
    print(
        f"  TCP connections to Payway per worker (timed run): {result['tcp_connects_per_worker_timed']}; "
        f"since start: {result['tcp_connects_per_worker_total']} (pool size {result['pool_maxsize']})"
    )
    if result["error_samples"]:
        print(f"  first errors: {result['error_samples']}")


if __name__ == "__main__":
    main()
