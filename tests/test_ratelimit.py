"""S13: limits on how often a reader or an IP can make us create a Payway session.

The buy view is driven through HTTP with Payway faked by ``responses``; the counters live in the test
settings' local-memory cache, which ``conftest`` empties before each test.
"""

from __future__ import annotations

import logging

import pytest
import responses
from django.core.cache import caches
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from tests.factories import BROWSER, CREATE_V2, Shop, buy, calls_to, landing_url, session_json, text
from wagtail_klarna_paywall.models import PurchaseAttempt, PurchaseEvent
from wagtail_klarna_paywall.purchase import attempts, ratelimit, session

# Anonymous readers (the stub identity provider holds no token) and English pages.
pytestmark = pytest.mark.usefixtures("english_pages", "no_identity")

IP = BROWSER["REMOTE_ADDR"]
WAIT_TITLE = "Please wait a little"


@pytest.fixture
def limits(settings):
    """Set ``RATE_LIMITS`` for one test."""

    def apply(value):
        settings.WAGTAIL_KLARNA_PAYWALL = {**settings.WAGTAIL_KLARNA_PAYWALL, "RATE_LIMITS": value}

    return apply


@pytest.fixture
def sessions(payway):
    """create_session always succeeds."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    return payway


def created(rsps) -> int:
    return len(calls_to(rsps, CREATE_V2))


def end_open_sessions():
    """Make every open session too old to reuse, so the reader's next buy needs a new one."""
    PurchaseAttempt.objects.update(session_expires_at=timezone.now())


def rate_limit_keys() -> list[str]:
    cache = caches["default"]
    return [key for key in cache._cache if ":wkp:rl:" in key]


def assert_refused(response, *, retry_after=None):
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    if retry_after is not None:
        assert response["Retry-After"] == str(retry_after)
    assert WAIT_TITLE in text(response)
    assert "Location" not in response


# -- per reader --------------------------------------------------------------------------------------


@freeze_time("2026-11-25 12:03:20")
def test_sixth_new_session_from_one_reader_is_refused_without_calling_payway(shop, sessions, caplog):
    """S13: the default allows 5 new sessions per reader in 10 minutes; the 6th gets 429, Retry-After up to
    the end of the fixed window, our own message on the landing page, and no Payway call, attempt or
    event."""
    reader = Client()
    for _ in range(5):
        assert buy(reader, shop).status_code == 303
        end_open_sessions()
    attempts, events = PurchaseAttempt.objects.count(), PurchaseEvent.objects.count()

    with caplog.at_level(logging.WARNING, logger="wagtail_klarna_paywall.purchase.ratelimit"):
        response = buy(reader, shop)

    # 12:03:20 is 200 s into the window that started at 12:00:00.
    assert_refused(response, retry_after=400)
    assert created(sessions) == 5
    assert (PurchaseAttempt.objects.count(), PurchaseEvent.objects.count()) == (attempts, events)
    assert "limit=reader" in caplog.text
    assert IP not in caplog.text


def test_repeated_clicks_that_reuse_the_session_do_not_count(shop, sessions):
    """S13 with docs/payway-contract.md#session-reuse: the same reader and offer reuse the open
    session, so twenty clicks are one Payway call and leave the budget for new sessions untouched."""
    reader = Client()
    for _ in range(20):
        assert buy(reader, shop).status_code == 303
    assert created(sessions) == 1
    for _ in range(4):  # the remaining four of five
        end_open_sessions()
        assert buy(reader, shop).status_code == 303
    # With the budget spent, the reader can still go back to the live session.
    assert buy(reader, shop).status_code == 303
    end_open_sessions()

    assert_refused(buy(reader, shop))
    assert created(sessions) == 5


def test_another_reader_is_not_held_back_by_the_first(shop, sessions, limits):
    """S13: the reader limit is per reader; the IP limit (30) is far away."""
    limits({"reader": (1, 600)})
    first = Client()
    assert buy(first, shop).status_code == 303
    end_open_sessions()
    assert_refused(buy(first, shop))

    assert buy(Client(), shop).status_code == 303
    assert created(sessions) == 2


def test_a_failed_create_session_counts(shop, payway, limits):
    """S13: a call that reached Payway counts even when it failed (hammering a failing buy is no cheaper),
    and the limit then stops the calls."""
    limits({"ip": (2, 600)})
    payway.add(responses.POST, CREATE_V2, status=503)
    reader = Client()
    assert buy(reader, shop).status_code == 503
    assert buy(reader, shop).status_code == 503

    assert_refused(buy(reader, shop))
    assert created(payway) == 2


# -- per IP ----------------------------------------------------------------------------------------------


def test_many_readers_from_one_ip_hit_the_ip_limit(shop, sessions, limits):
    """S13: new readers (fresh Django sessions) from one IP share the IP's budget; another IP does not."""
    limits({"ip": (3, 600)})
    for _ in range(3):
        assert buy(Client(), shop).status_code == 303

    assert_refused(buy(Client(), shop))
    assert created(sessions) == 3
    assert buy(Client(), shop, HTTP_X_FORWARDED_FOR="ignored").status_code == 429  # no proxy trusted

    other = Client(REMOTE_ADDR="198.51.100.23")
    response = other.post(
        shop.purchase_page.url + "buy/",
        {"page": shop.purchase_page.pk, "offer": Shop.package_ref},
        secure=True,
        **{**BROWSER, "REMOTE_ADDR": "198.51.100.23"},
    )
    assert response.status_code == 303
    assert created(sessions) == 4


def test_ip_behind_trusted_proxy_is_the_forwarded_one(shop, sessions, limits, settings):
    """S13 uses the same buyer IP as the rest of the flow: X-Forwarded-For, TRUSTED_PROXY_COUNT hops back."""
    settings.WAGTAIL_KLARNA_PAYWALL = {**settings.WAGTAIL_KLARNA_PAYWALL, "TRUSTED_PROXY_COUNT": 1}
    limits({"ip": (1, 600)})
    assert buy(Client(), shop, HTTP_X_FORWARDED_FOR="192.0.2.1").status_code == 303
    assert buy(Client(), shop, HTTP_X_FORWARDED_FOR="192.0.2.2").status_code == 303
    assert_refused(buy(Client(), shop, HTTP_X_FORWARDED_FOR="192.0.2.1"))
    assert created(sessions) == 2


@freeze_time("2026-11-25 12:10:00")
def test_free_trials_have_a_stricter_ip_limit(shop, sessions):
    """S13/A11: by default 5 trial sessions per IP an hour, while ordinary offers still have 30 per 10 min."""
    for _ in range(5):
        assert buy(Client(), shop, ref=Shop.trial_ref).status_code == 303

    # 12:10 is 600 s into the hour-long trial window.
    assert_refused(buy(Client(), shop, ref=Shop.trial_ref), retry_after=3000)
    assert created(sessions) == 5
    assert buy(Client(), shop).status_code == 303
    assert created(sessions) == 6


# -- windows, page views, storage, settings --------------------------------------------------------------


def test_the_next_window_starts_afresh(shop, sessions, limits):
    """S13: fixed windows; once the window is over, the reader may start new sessions again."""
    limits({"reader": (1, 600)})
    reader = Client()
    with freeze_time("2026-11-25 12:00:05") as frozen:
        assert buy(reader, shop).status_code == 303
        end_open_sessions()
        assert_refused(buy(reader, shop), retry_after=595)
        frozen.move_to("2026-11-25 12:09:59")
        assert_refused(buy(reader, shop), retry_after=1)
        frozen.move_to("2026-11-25 12:10:00")
        assert buy(reader, shop).status_code == 303
    assert created(sessions) == 2


def test_page_views_do_not_count(shop, sessions, limits):
    """S13/L01: reading articles and the purchase page never touches the budget."""
    limits({"reader": (1, 600), "ip": (1, 600)})
    reader = Client()
    for _ in range(10):
        assert reader.get(shop.article.url, secure=True, **BROWSER).status_code == 200
        assert reader.get(landing_url(shop), secure=True, **BROWSER).status_code == 200
    assert rate_limit_keys() == []

    assert buy(reader, shop).status_code == 303
    assert created(sessions) == 1


def test_cache_holds_no_raw_ip_or_reader_key(shop, sessions):
    """S13/S10: the counters are keyed by HMACs; neither the IP nor the reader's key appears in the cache."""
    reader = Client()
    buy(reader, shop, ref=Shop.trial_ref)
    keys = rate_limit_keys()
    reader_key = PurchaseAttempt.objects.get().reader_key
    session_key = reader.session.session_key

    assert len(keys) == 3  # reader, ip, trial_ip
    for key in keys:
        for raw in (IP, IP.replace(".", ""), reader_key, reader_key.split(":", 1)[1], session_key):
            assert raw not in key
    assert any(ratelimit.hashed(IP) in key for key in keys)


@pytest.mark.parametrize(
    "value",
    [
        {"reader": None},
        None,
    ],
)
def test_none_disables(shop, sessions, limits, value):
    """S13: ``None`` turns one limit (or, for RATE_LIMITS itself, all of them) off."""
    limits(value)
    reader = Client()
    for _ in range(7):
        assert buy(reader, shop).status_code == 303
        end_open_sessions()
    assert created(sessions) == 7


def test_a_partial_setting_keeps_the_other_defaults(limits):
    """S13: a site that changes one limit keeps the others."""
    limits({"ip": (100, 60)})
    assert ratelimit.limits() == {
        "reader": (5, 600),
        "ip": (100, 60),
        "trial_ip": (5, 3600),
        "paywall_view_ip": (600, 600),
    }


def test_a_refused_reservation_counts_nothing(limits):
    """S13: a buy refused by the reader limit does not use up the IP's budget (no Payway call followed)."""
    limits({"reader": (1, 600), "ip": (2, 600)})
    assert ratelimit.reserve_session(reader_key="anon:a", ip=IP, trial=False).allowed
    for _ in range(5):
        assert not ratelimit.reserve_session(reader_key="anon:a", ip=IP, trial=False).allowed
    assert ratelimit.reserve_session(reader_key="anon:b", ip=IP, trial=False).allowed
    refused = ratelimit.reserve_session(reader_key="anon:c", ip=IP, trial=False)
    assert (refused.allowed, refused.limit) == (False, "ip")


def test_only_the_flow_reserves_and_only_right_before_create_session(shop, sessions, limits, monkeypatch):
    """S13, issue 12: the purchase flow decides when a new session is needed and tells the limiter; clicks
    that reuse the open session never reserve anything, so every reservation is one create_session call."""
    limits({"reader": (2, 600)})
    reservations = []
    reserve = ratelimit.reserve_session

    def counting(**kwargs):
        decision = reserve(**kwargs)
        reservations.append((kwargs["reader_key"], kwargs["ip"], decision.allowed))
        return decision

    monkeypatch.setattr(ratelimit, "reserve_session", counting)
    reader = Client()
    for _ in range(5):
        assert buy(reader, shop).status_code == 303
    assert created(sessions) == 1
    assert len(reservations) == 1 and reservations[0][1:] == (IP, True)

    end_open_sessions()
    assert buy(reader, shop).status_code == 303
    assert created(sessions) == 2
    end_open_sessions()
    assert_refused(buy(reader, shop))
    assert created(sessions) == 2
    assert [allowed for _key, _ip, allowed in reservations] == [True, True, False]


def test_a_refused_first_buy_leaves_no_attempt_behind(shop, sessions, limits):
    """S13: a new reader refused by the IP limit gets 429 and nothing is written: no attempt, no event
    (the attempt the flow created for the session is rolled back with the refusal)."""
    limits({"ip": (1, 600)})
    assert buy(Client(), shop).status_code == 303
    before = PurchaseAttempt.objects.count(), PurchaseEvent.objects.count()

    assert_refused(buy(Client(), shop))
    assert (PurchaseAttempt.objects.count(), PurchaseEvent.objects.count()) == before
    assert created(sessions) == 1


def test_start_purchase_returns_rate_limited_with_the_wait(shop, sessions, limits):
    """The limiter's answer is part of what start_purchase returns: RATE_LIMITED and the seconds to wait."""
    limits({"ip": (1, 600)})
    offer = shop.offer(shop.purchase_page, Shop.package_ref)

    def start(key):
        return session.start_purchase(
            reader=attempts.Reader(key),
            offer=offer,
            offer_page=shop.purchase_page,
            purchase_page=shop.purchase_page,
            site=shop.site,
            ip=IP,
        )

    with freeze_time("2026-11-25 12:01:40"):
        assert start("anon:first").status == session.BuyStatus.READY
        refused = start("anon:second")
    assert refused.status == session.BuyStatus.RATE_LIMITED
    assert (refused.attempt, refused.retry_after) == (None, 500)
    assert created(sessions) == 1
    assert not PurchaseAttempt.objects.filter(reader_key="anon:second").exists()
