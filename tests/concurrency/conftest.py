"""PostgreSQL concurrency suite: real threads, real row locks, the fake Payway over real HTTP.

Every test here runs only when ``DATABASE_URL`` points at PostgreSQL; SQLite ignores
``select_for_update``, so a pass there would prove nothing. The suite skips with the reason below
otherwise. Run it with::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/pytest tests/concurrency -q -m postgres

The measured figures (Payway calls, duplicates, timings) are printed in pytest's terminal summary, so
CI logs show them even when output capture is on. The readers, threads and figures are in ``crowd.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.servers.basehttp import WSGIServer

from tests.concurrency.crowd import FIGURES
from tests.factories import FAKE_SHOP_OFFERS, Shop, build_shop, tree_root
from wagtail_klarna_paywall.fake import state
from wagtail_klarna_paywall.payway import get_client

HERE = Path(__file__).resolve().parent
SKIP_REASON = "set DATABASE_URL=postgres://... to run the concurrency suite; SQLite ignores row locks"

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


# -- the shop ---------------------------------------------------------------------------------------


@pytest.fixture
def shop(transactional_db) -> Shop:
    """The shop (``factories.build_shop``) selling the fake Payway's products; transactional tests flush
    the database, so the site is rebuilt when missing."""
    return build_shop(site=tree_root(), offers=FAKE_SHOP_OFFERS, access_product_codes=())
