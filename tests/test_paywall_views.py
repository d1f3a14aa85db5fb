"""Paywall views: counted once per reader, page and day from the beacon, with no database write per view,
and folded into the daily table idempotently."""

from __future__ import annotations

import os
import pickle
import random
from collections import Counter
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import DESKTOP_USER_AGENT as BROWSER
from tests.factories import PAYWALL_VIEW_URL as URL
from tests.factories import ArticlePageFactory, KlarnaPurchasePageFactory, beacon, paywall_id, paywalled_page
from wagtail_klarna_paywall.models import PaywallViewDay
from wagtail_klarna_paywall.newsroom import paywall_views

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("roomy_cache")]

CODES = ("digital", "paper", "weekend")
WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.fixture
def purchase_page(root):
    return KlarnaPurchasePageFactory(parent=root)


@pytest.fixture
def story(root, purchase_page):
    return paywalled_page(root, purchase_page, ["digital", "paper"])


def rows():
    return {
        (row.page_id, tuple(row.offer_codes), row.reader_state): row.views
        for row in PaywallViewDay.objects.all()
    }


def test_url_is_the_plugins():
    assert reverse("wagtail_klarna_paywall:paywall_view") == URL


def test_a_burst_counts_once_per_reader_page_and_day_without_writes_and_folds_idempotently(
    client, root, purchase_page
):
    """1000 beacons over 20 pages with 3 offers (in three offer sets) from 30 readers, many repeated."""
    offer_sets = [CODES[:2], CODES[1:], CODES]
    pages = [paywalled_page(root, purchase_page, offer_sets[n % 3], title=f"Story {n}") for n in range(20)]
    blocks = {page.pk: paywall_id(page) for page in pages}
    readers = [
        (f"198.51.100.{n}", f"{BROWSER} r{n}", "reader" if n % 4 == 0 else "anonymous") for n in range(30)
    ]
    rng = random.Random(15)
    burst = [(rng.choice(readers), rng.choice(pages)) for _ in range(1000)]

    expected: Counter = Counter()
    seen = set()
    for (ip, ua, state), page in burst:
        if (ip, ua, page.pk) not in seen:
            seen.add((ip, ua, page.pk))
            expected[(page.pk, tuple(sorted(offer_sets[pages.index(page) % 3])), state)] += 1
    assert 300 < len(seen) < 1000  # the burst does repeat readers on pages

    with CaptureQueriesContext(connection) as queries:
        for (ip, ua, state), page in burst:
            codes = offer_sets[pages.index(page) % 3]
            response = client.post(
                URL,
                {"page": str(page.pk), "paywall": blocks[page.pk], "offers": ",".join(codes), "state": state},
                REMOTE_ADDR=ip,
                HTTP_USER_AGENT=ua,
            )
            assert response.status_code == 204
            assert not response.cookies
            assert response["Cache-Control"] == "no-store"
    sql = [q["sql"] for q in queries.captured_queries]
    assert not [q for q in sql if q.lstrip().upper().startswith(WRITES)], "a view wrote to the database"
    # Reads only to learn which paywalls a page holds, once per page (then cached): not per view.
    assert len(sql) <= 2 * len(pages)
    assert PaywallViewDay.objects.count() == 0

    first = paywall_views.fold()
    assert first.written == len(expected)
    assert rows() == dict(expected)
    assert sum(rows().values()) == len(seen)

    with CaptureQueriesContext(connection) as again:
        second = paywall_views.fold()
    assert second.written == 0 and rows() == dict(expected)
    assert not [q["sql"] for q in again.captured_queries if q["sql"].lstrip().upper().startswith(WRITES)]
    call_command("klarna_paywall_fold_views", stdout=StringIO())
    assert rows() == dict(expected)


def test_more_views_after_a_fold_update_the_absolute_count(client, story):
    beacon(client, story, codes=["digital", "paper"], ip="192.0.2.1")
    paywall_views.fold()
    beacon(client, story, codes=["digital", "paper"], ip="192.0.2.2")
    beacon(client, story, codes=["digital", "paper"], ip="192.0.2.1")  # the same reader again
    paywall_views.fold()
    paywall_views.fold()
    assert rows() == {(story.pk, ("digital", "paper"), "anonymous"): 2}


def test_a_lost_cache_loses_only_the_unfolded_views(client, story):
    for n in range(3):
        beacon(client, story, codes=["digital"], ip=f"192.0.2.{n}")
    paywall_views.fold()
    beacon(client, story, codes=["digital"], ip="192.0.2.50")  # never folded
    caches["default"].clear()
    assert paywall_views.fold().counters == 0
    assert rows() == {(story.pk, ("digital",), "anonymous"): 3}
    # After the loss the day starts a new epoch: old readers count again (the salt is gone), on top.
    beacon(client, story, codes=["digital"], ip="192.0.2.1")
    beacon(client, story, codes=["digital"], ip="192.0.2.2")
    paywall_views.fold()
    paywall_views.fold()
    assert rows() == {(story.pk, ("digital",), "anonymous"): 5}


def test_an_evicted_counter_keeps_the_folded_views(client, story):
    for n in range(4):
        beacon(client, story, codes=["digital"], ip=f"192.0.2.{n}")
    paywall_views.fold()
    cache = caches["default"]
    epoch = paywall_views._epoch(cache, paywall_views.timezone.localdate(), create=False)
    view = paywall_views.View(story.pk, paywall_id(story), ("digital",), "anonymous")
    cache.delete(paywall_views._counter_key(paywall_views.timezone.localdate(), epoch, view))
    beacon(client, story, codes=["digital"], ip="192.0.2.99")
    paywall_views.fold()
    paywall_views.fold()
    assert rows() == {(story.pk, ("digital",), "anonymous"): 5}


def test_reader_states_and_offer_sets_are_kept_apart(client, story):
    beacon(client, story, codes=["digital", "paper"], state="anonymous", ip="192.0.2.1")
    # A logged-in reader who owns "paper" is shown "digital" only.
    beacon(client, story, codes=["digital"], state="reader", ip="192.0.2.2")
    paywall_views.fold()
    assert rows() == {
        (story.pk, ("digital", "paper"), "anonymous"): 1,
        (story.pk, ("digital",), "reader"): 1,
    }


@pytest.mark.parametrize(
    "ua",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "facebookexternalhit/1.1",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/130.0",
        "python-requests/2.32",
        "curl/8.5.0",
        "",
    ],
)
def test_bots_are_not_counted(client, story, ua):
    response = beacon(client, story, codes=["digital"], ua=ua)
    assert response.status_code == 202
    paywall_views.fold()
    assert PaywallViewDay.objects.count() == 0


def test_unknown_pages_paywalls_and_offers_are_not_counted(client, root, story):
    free = ArticlePageFactory(parent=root, title="Free", body__0__paragraph__value="<p>Free</p>")
    draft = paywalled_page(root, None, ["digital"], title="Draft")
    draft.unpublish()
    assert beacon(client, free, codes=[], block="0a1b2c3d").status_code == 404
    assert beacon(client, story, codes=["digital"], block="not-this-paywall").status_code == 404
    assert beacon(client, story, codes=["digital", "gold"]).status_code == 404  # an offer it does not have
    assert beacon(client, draft, codes=["digital"]).status_code == 404
    response = client.post(
        URL,
        {"page": "999999", "paywall": paywall_id(story), "offers": "digital", "state": "anonymous"},
        HTTP_USER_AGENT=BROWSER,
    )
    assert response.status_code == 404
    paywall_views.fold()
    assert PaywallViewDay.objects.count() == 0


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"page": "abc", "paywall": "x", "offers": "digital", "state": "anonymous"},
        {"page": "1", "paywall": "<script>", "offers": "digital", "state": "anonymous"},
        {"page": "1", "paywall": "abc", "offers": "digital", "state": "subscriber"},
        {"page": "1", "paywall": "abc", "offers": ",".join(f"c{n}" for n in range(30)), "state": "reader"},
        {"page": "1" * 40, "paywall": "abc", "offers": "", "state": "reader"},
        # Digits str.isdigit() accepts but int() refuses or reads as another page.
        {"page": "\u00b2", "paywall": "abc", "offers": "x", "state": "anonymous"},
        {"page": "\u0663", "paywall": "abc", "offers": "x", "state": "anonymous"},
    ],
)
def test_malformed_beacons_are_refused(client, data):
    response = client.post(URL, data, HTTP_USER_AGENT=BROWSER)
    assert response.status_code == 400
    assert response["Cache-Control"] == "no-store"


def test_only_post_is_accepted(client, story):
    response = client.get(URL, {"page": story.pk}, HTTP_USER_AGENT=BROWSER)
    assert response.status_code == 405 and response["Allow"] == "POST"


def test_beacon_needs_no_cookie_nor_csrf_token_and_sets_none(story):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    response = beacon(client, story, codes=["digital"])
    assert response.status_code == 204
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")


def test_the_endpoint_is_rate_limited_per_ip(client, story, settings):
    settings.WAGTAIL_KLARNA_PAYWALL = {
        **settings.WAGTAIL_KLARNA_PAYWALL,
        "RATE_LIMITS": {"paywall_view_ip": (3, 600)},
    }
    statuses = [beacon(client, story, codes=["digital"], ua=f"{BROWSER} {n}").status_code for n in range(5)]
    assert statuses == [204, 204, 204, 429, 429]
    assert beacon(client, story, codes=["digital"], ip="192.0.2.77").status_code == 204


def test_nothing_personal_is_kept_in_the_cache_or_the_database(client, story):
    ip, ua = "203.0.113.45", f"{BROWSER} unique-agent-marker"
    beacon(client, story, codes=["digital"], ip=ip, ua=ua)
    paywall_views.fold()
    cache = caches["default"]
    # Every key and value the local-memory cache holds (its internals: values are pickled).
    stored = " ".join(f"{key} {pickle.loads(value)!r}" for key, value in list(cache._cache.items()))
    assert "wkp:pv" in stored
    assert ip not in stored and "unique-agent-marker" not in stored
    row = PaywallViewDay.objects.get()
    assert ip not in str(row.__dict__) and "unique-agent-marker" not in str(row.__dict__)


def test_a_saved_page_is_looked_up_again(client, story):
    block = paywall_id(story)
    assert beacon(client, story, codes=["digital"]).status_code == 204
    story.body = [("paragraph", "<p>No paywall any more</p>")]
    story.save_revision().publish()
    assert beacon(client, story, codes=["digital"], block=block, ip="192.0.2.9").status_code == 404


def test_fold_skips_a_deleted_page(client, story):
    beacon(client, story, codes=["digital"])
    story.delete()
    assert paywall_views.fold().written == 0
    assert PaywallViewDay.objects.count() == 0


def test_fold_command_takes_a_day(client, story):
    beacon(client, story, codes=["digital"])
    out = StringIO()
    call_command(
        "klarna_paywall_fold_views", "--day", paywall_views.timezone.localdate().isoformat(), stdout=out
    )
    assert "1 rows written" in out.getvalue()
    assert rows() == {(story.pk, ("digital",), "anonymous"): 1}
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("klarna_paywall_fold_views", "--day", "yesterday")


def _redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, db=13, socket_timeout=0.5).ping())
    except Exception:  # noqa: BLE001 - no Redis here: the test says so and skips
        return False


@pytest.mark.skipif(not _redis_available(), reason="no Redis at 127.0.0.1:6379")
def test_counts_and_folds_on_a_shared_redis_cache(client, story, settings):
    """The production setup: Redis as the shared cache (its own database and key prefix here)."""
    import redis

    prefix = f"wkp-tests-paywall-views-{os.getpid()}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/13",
            "KEY_PREFIX": prefix,
        }
    }
    server = redis.Redis(host="127.0.0.1", port=6379, db=13)

    def forget_own_keys():
        # Only this test's keys: the Redis database may be shared, so no FLUSHDB.
        for key in server.scan_iter(match=f"{prefix}:*"):
            server.delete(key)

    forget_own_keys()
    try:
        for n in range(5):
            for _repeat in range(3):
                assert beacon(client, story, codes=["digital"], ip=f"192.0.2.{n}").status_code == 204
        assert beacon(client, story, codes=["digital"], ua="Googlebot/2.1").status_code == 202
        paywall_views.fold()
        paywall_views.fold()
        assert rows() == {(story.pk, ("digital",), "anonymous"): 5}
        assert any(server.scan_iter(match=f"{prefix}:*wkp:pv*"))  # the counters really were in Redis
    finally:
        forget_own_keys()
