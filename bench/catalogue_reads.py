"""(c) The offer chooser's catalogue reads: cold (cache just refreshed) vs cached.

Cold and cached reads alternate on every round, so both see the same machine. A cold read of the
product list costs Payway one search per kind and page (packages, campaigns); a cached one costs none.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import summary, write_result


def run(*, quick: bool) -> dict[str, Any]:
    from django.conf import settings

    from wagtail_klarna_paywall.fake import catalogue as fake_catalogue
    from wagtail_klarna_paywall.fake import state
    from wagtail_klarna_paywall.newsroom import catalogue
    from wagtail_klarna_paywall.payway import get_client

    rounds = 30 if quick else 200
    title = fake_catalogue.TITLE_CODE
    get_client().system_token()
    reads = {
        "products": lambda: catalogue.products(title),
        "payment_periods": lambda: catalogue.payment_periods("demo_digital"),
    }
    result: dict[str, Any] = {
        "rounds": rounds,
        "cache_backend": settings.CACHES["default"]["BACKEND"],
        "reads": {},
    }
    for name, read in reads.items():
        read()  # warm-up (imports, connection)
        cold, cached = [], []
        cold_calls = cached_calls = 0
        for _ in range(rounds):
            catalogue.refresh()
            before = sum(state.calls().values())
            started = time.perf_counter()
            read()
            cold.append(time.perf_counter() - started)
            middle = sum(state.calls().values())
            started = time.perf_counter()
            read()
            cached.append(time.perf_counter() - started)
            cold_calls += middle - before
            cached_calls += sum(state.calls().values()) - middle
        cold_stats, cached_stats = summary(cold), summary(cached)
        result["reads"][name] = {
            "cold": {**cold_stats, "payway_calls_per_read": cold_calls / rounds},
            "cached": {**cached_stats, "payway_calls_per_read": cached_calls / rounds},
            "speedup_median": round(cold_stats["median_ms"] / cached_stats["median_ms"], 1),
        }
    _print(result)
    write_result("catalogue", result)
    return result


def _print(result: dict[str, Any]) -> None:
    print(
        f"\n(c) Chooser catalogue, {result['rounds']} rounds, "
        f"cache {result['cache_backend'].rsplit('.', 1)[-1]}"
    )
    print(
        f"  {'read':<17}{'cold p50':>10}{'cold p95':>10}{'cached p50':>12}{'cached p95':>12}"
        f"{'calls cold/cached':>20}{'speed-up':>10}"
    )
    for name, r in result["reads"].items():
        print(
            f"  {name:<17}{r['cold']['median_ms']:>8.2f}ms{r['cold']['p95_ms']:>8.2f}ms"
            f"{r['cached']['median_ms']:>10.3f}ms{r['cached']['p95_ms']:>10.3f}ms"
            f"{r['cold']['payway_calls_per_read']:>12.1f} / {r['cached']['payway_calls_per_read']:<5.1f}"
            f"{r['speedup_median']:>9.0f}x"
        )
