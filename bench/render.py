"""(a) Rendering a paywalled article vs the same article without the paywall block.

Four variants, interleaved in a shuffled order on every round so machine noise hits them alike:
paywalled and plain, each for an anonymous reader and for a reader logged in through SSO2 who owns
nothing (so both see the paywall). Reported per variant: median and p95 render time through Django's
full stack (test client: middleware, session, routing, template), SQL statements and writes per render,
Payway calls; and the ratio paywalled / plain of the medians, per reader (target: at most 1.05).
The test app's template reads the session on every page (the header's "log in" or "my account", as
real sites have), so a logged-in reader's plain page loads the session too and the baseline is fair.

Steady state, as in production: the warm-up fills the template, URL and access caches and the paywall's
rendered-HTML cache (``wagtail_klarna_paywall.reading.render_cache``) before anything is timed. The
breakdown also
times the paywall tag with that cache emptied before every call (a page's first view after an edit).
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from typing import Any

from bench.common import QueryCounter, Site, logged_in_cookies, summary, write_result

WARMUP = 30
TARGET_RATIO = 1.05


def run(site: Site, *, quick: bool) -> dict[str, Any]:
    from django.test import Client

    from wagtail_klarna_paywall.fake import state

    rounds = 200 if quick else 1000
    anonymous, logged_in = Client(), Client()
    logged_in.cookies.load(logged_in_cookies())
    variants = {
        "paywalled/anonymous": (anonymous, site.paywalled.url),
        "plain/anonymous": (anonymous, site.plain.url),
        "paywalled/logged-in": (logged_in, site.paywalled.url),
        "plain/logged-in": (logged_in, site.plain.url),
    }

    # Warm-up: template and URL caches, the reader's access answer (one me/active_products call, then
    # cached for ACCESS_CACHE_TTL), the paywall HTML cache, and a check that each variant renders what
    # it should.
    calls_before = state.calls()
    for name, (client, url) in variants.items():
        for _ in range(WARMUP):
            response = client.get(url)
        _check(name, response)
    warmup_calls = _diff(calls_before, state.calls())

    times: dict[str, list[float]] = {name: [] for name in variants}
    counters = {name: QueryCounter() for name in variants}
    headers: dict[str, dict[str, str]] = {}
    order = list(variants)
    rng = random.Random(7)
    calls_before = state.calls()
    gc.collect()
    started = time.perf_counter()
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            client, url = variants[name]
            with counters[name].counting():
                begin = time.perf_counter()
                response = client.get(url)
                times[name].append(time.perf_counter() - begin)
            if response.status_code != 200:
                raise RuntimeError(f"{name}: HTTP {response.status_code}")
            headers[name] = {
                "Cache-Control": response.get("Cache-Control", ""),
                "Vary": response.get("Vary", ""),
                "Set-Cookie": "yes" if response.cookies else "no",
            }
    elapsed = time.perf_counter() - started
    loop_calls = _diff(calls_before, state.calls())

    result: dict[str, Any] = {"rounds": rounds, "variants": {}, "ratios": {}}
    for name in variants:
        stats = summary(times[name])
        stats["queries_per_render"] = counters[name].queries / rounds
        stats["writes_total"] = counters[name].writes
        stats["headers"] = headers[name]
        result["variants"][name] = stats
    for reader in ("anonymous", "logged-in"):
        paywalled = result["variants"][f"paywalled/{reader}"]["median_ms"]
        plain = result["variants"][f"plain/{reader}"]["median_ms"]
        result["ratios"][reader] = round(paywalled / plain, 3)
    result["payway_calls_during_warmup"] = warmup_calls
    result["payway_calls_during_timed_renders"] = loop_calls
    result["timed_renders"] = rounds * len(variants)
    result["wall_seconds"] = round(elapsed, 1)
    result["target_ratio"] = TARGET_RATIO
    result["logged_in_cache_sessions"] = logged_in_with_cache_sessions(site, rounds=rounds)
    result["breakdown"] = breakdown(site, rounds=100 if quick else 300)
    _print(result)
    write_result("render", result)
    return result


def logged_in_with_cache_sessions(site: Site, *, rounds: int) -> dict[str, Any]:
    """The logged-in variants again with ``SESSION_ENGINE = "...cached_db"``.

    A logged-in reader's paywalled page must read the session (who is this reader?); the plain page never
    does. With the database session backend that read is one SQL query per render; with a cache-backed
    one it is a cache read. Measured the same way as above, paywalled and plain interleaved.
    """
    from django.test import Client, override_settings

    from wagtail_klarna_paywall.fake import state

    engine = "django.contrib.sessions.backends.cached_db"
    calls_before = state.calls()
    with override_settings(SESSION_ENGINE=engine):
        client = Client()  # its handler builds SessionMiddleware, which reads SESSION_ENGINE, on first use
        client.cookies.load(logged_in_cookies())
        urls = {"paywalled": site.paywalled.url, "plain": site.plain.url}
        for url in urls.values():
            for _ in range(WARMUP):
                client.get(url)
        times: dict[str, list[float]] = {name: [] for name in urls}
        counters = {name: QueryCounter() for name in urls}
        order = list(urls)
        rng = random.Random(13)
        for _ in range(rounds):
            rng.shuffle(order)
            for name in order:
                with counters[name].counting():
                    begin = time.perf_counter()
                    response = client.get(urls[name])
                    times[name].append(time.perf_counter() - begin)
                if response.status_code != 200:
                    raise RuntimeError(f"{name} (cached_db sessions): HTTP {response.status_code}")
    result: dict[str, Any] = {
        "session_engine": engine,
        "variants": {},
        "payway_calls": _diff(calls_before, state.calls()),
    }
    for name in urls:
        stats = summary(times[name])
        stats["queries_per_render"] = counters[name].queries / rounds
        stats["writes_total"] = counters[name].writes
        result["variants"][name] = stats
    result["ratio"] = round(
        result["variants"]["paywalled"]["median_ms"] / result["variants"]["plain"]["median_ms"], 3
    )
    return result


def breakdown(site: Site, *, rounds: int) -> dict[str, dict[str, float]]:
    """Where a paywalled render spends its extra time: each part timed on a freshly loaded page (as a
    request sees it), paywalled and plain interleaved, anonymous reader. Medians in ms. "convert every
    block" is what iterating the whole stream would cost; the tag itself converts only what it renders."""
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore
    from django.middleware.csrf import get_token
    from django.template import RequestContext, Template
    from django.test import RequestFactory
    from wagtail.models import Site as WagtailSite

    from tests.testapp.models import ArticlePage
    from wagtail_klarna_paywall.reading import render_cache

    tag = Template("{% load klarna_paywall_tags %}{% paywalled_stream page.body %}")

    wagtail_site = WagtailSite.objects.get(is_default_site=True)

    def request(url: str) -> Any:
        req = RequestFactory().get(url)
        req.session, req.user = SessionStore(), AnonymousUser()
        req._wagtail_site = wagtail_site  # found once per request by Wagtail's routing, before any template
        return req

    def load(pk: int) -> Any:
        return ArticlePage.objects.get(pk=pk)

    def convert(pk: int) -> None:
        list(load(pk).body)

    def render_tag(pk: int) -> None:
        page = load(pk)
        req = request(page.url)
        tag.render(RequestContext(req, {"page": page, "request": req}))

    def render_tag_cold(pk: int) -> None:
        render_cache.invalidate()
        render_tag(pk)

    parts = {
        "load the page": load,
        "load + convert every block": convert,
        "load + tag, paywall HTML cached": render_tag,
        "load + tag, cache emptied": render_tag_cold,
        "csrf token for one form": lambda pk: get_token(request("/")),
    }
    pages = {"paywalled": site.paywalled.pk, "plain": site.plain.pk}
    times: dict[tuple[str, str], list[float]] = {}
    items = [(part, kind) for part in parts for kind in pages]
    rng = random.Random(11)
    for round_number in range(rounds + 10):
        rng.shuffle(items)
        for part, kind in items:
            begin = time.perf_counter()
            parts[part](pages[kind])
            if round_number >= 10:  # the first rounds warm up
                times.setdefault((part, kind), []).append(time.perf_counter() - begin)
    result: dict[str, dict[str, float]] = {}
    for part in parts:
        for kind in pages:
            result.setdefault(part, {})[kind] = round(statistics.median(times[part, kind]) * 1000, 3)
    return result


def _check(name: str, response: Any) -> None:
    html = response.content.decode()
    if response.status_code != 200:
        raise RuntimeError(f"{name}: HTTP {response.status_code}")
    paywalled = name.startswith("paywalled")
    if paywalled != ("Read on with Digital" in html) or paywalled == ("10. Lorem" in html):
        raise RuntimeError(f"{name}: the page does not show what this variant is meant to measure")


def _diff(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}


def _print(result: dict[str, Any]) -> None:
    print(f"\n(a) Article render, {result['rounds']} interleaved rounds ({result['wall_seconds']} s)")
    print(f"  {'variant':<22}{'median':>10}{'p95':>10}{'queries':>9}{'writes':>8}  cache headers")
    for name, stats in result["variants"].items():
        h = stats["headers"]
        print(
            f"  {name:<22}{stats['median_ms']:>8.2f}ms{stats['p95_ms']:>8.2f}ms"
            f"{stats['queries_per_render']:>9.1f}{stats['writes_total']:>8}  "
            f"Cache-Control={h['Cache-Control'] or '-'} Vary={h['Vary'] or '-'} Set-Cookie={h['Set-Cookie']}"
        )
    for reader, ratio in result["ratios"].items():
        verdict = "within" if ratio <= result["target_ratio"] else "OVER"
        target = result["target_ratio"]
        print(f"  ratio paywalled/plain ({reader}): {ratio:.3f}  ({verdict} the {target:.2f} target)")
    cached = result["logged_in_cache_sessions"]
    print(f"  logged in again, SESSION_ENGINE={cached['session_engine']}:")
    for name, stats in cached["variants"].items():
        print(
            f"    {name:<20}{stats['median_ms']:>8.2f}ms{stats['p95_ms']:>8.2f}ms"
            f"{stats['queries_per_render']:>9.1f}{stats['writes_total']:>8}"
        )
    verdict = "within" if cached["ratio"] <= result["target_ratio"] else "OVER"
    target = result["target_ratio"]
    print(f"    ratio paywalled/plain: {cached['ratio']:.3f}  ({verdict} the {target:.2f} target)")
    print(f"    Payway calls (warm-up and timed renders): {cached['payway_calls'] or 0}")
    print("  where the time goes (median ms, fresh page per call, anonymous):")
    for part, kinds in result["breakdown"].items():
        print(f"    {part:<30} paywalled {kinds['paywalled']:>7.2f}   plain {kinds['plain']:>7.2f}")
    print(f"  Payway calls during warm-up: {result['payway_calls_during_warmup'] or 0}")
    print(
        f"  Payway calls during the {result['timed_renders']} timed renders: "
        f"{result['payway_calls_during_timed_renders'] or 0}"
    )
