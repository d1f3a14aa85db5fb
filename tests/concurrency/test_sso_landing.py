"""The SSO2 landing's single-use record on PostgreSQL: one landing URL works once, whatever the process.

Each thread has its own database connection, as each worker process of a deployed site has. The old
record lived in the process-local cache, so every worker accepted the same URL once.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.core.cache import caches
from django.db import connection, transaction
from django.test import Client

from tests.factories import answer, land, start_login
from wagtail_klarna_paywall.login import sso
from wagtail_klarna_paywall.models import SSOLandingClaim

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def in_thread(target, *args) -> threading.Thread:
    def run() -> None:
        try:
            target(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("parties", [2, 8])
def test_a_landing_token_is_claimed_once_across_connections(parties):
    token = answer(sid="sid-race", sts="anon")
    status = sso.read_answer(token)
    barrier = threading.Barrier(parties, timeout=30)
    results: list[bool] = []

    def claim() -> None:
        barrier.wait()
        results.append(sso.claim_once(token, status))

    for thread in [in_thread(claim) for _ in range(parties)]:
        thread.join(timeout=60)
    assert sorted(results) == [False] * (parties - 1) + [True]
    assert SSOLandingClaim.objects.count() == 1


def test_a_claim_not_yet_committed_makes_the_other_connection_wait_then_refuse():
    """A request running in a transaction (ATOMIC_REQUESTS) holds its claim until it commits; a replay
    on another connection waits for that outcome instead of slipping past it."""
    token = answer(sid="sid-tx", sts="anon")
    status = sso.read_answer(token)
    claimed, release = threading.Event(), threading.Event()
    results: dict[str, bool] = {}

    def first() -> None:
        with transaction.atomic():
            results["first"] = sso.claim_once(token, status)
            claimed.set()
            release.wait(timeout=30)

    def second() -> None:
        claimed.wait(timeout=30)
        results["second"] = sso.claim_once(token, status)

    one = in_thread(first)
    two = in_thread(second)
    claimed.wait(timeout=30)
    time.sleep(0.5)
    assert "second" not in results, "the replay did not wait for the first claim's transaction"
    release.set()
    one.join(timeout=30)
    two.join(timeout=30)
    assert results == {"first": True, "second": False}


def test_a_replayed_landing_url_is_refused_by_another_worker():
    """The whole landing, twice, from the same browser on two connections with empty caches between."""
    browser = Client()
    _identify, r = start_login(browser)
    token = answer(sid="sid-view", sts="anon")
    statuses: list[int] = []

    def visit() -> None:
        statuses.append(land(browser, token, r).status_code)

    in_thread(visit).join(timeout=60)
    for cache in caches.all():
        cache.clear()  # another worker: nothing in its local cache
    in_thread(visit).join(timeout=60)
    assert statuses == [302, 400]
