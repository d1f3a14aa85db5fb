"""The concurrency guarantees across processes: the production profile under gunicorn, over HTTP.

One profile (``sandbox/run-production``: 4 gunicorn workers x 4 threads on PostgreSQL and Redis, the fake
Payway as its own process) is started for the whole session on free ports, on its own database, which is
dropped and recreated first. Every test talks to it over HTTP as readers behind the TLS proxy would, and
reads the outcome from the fake's control API and the profile's database. Run it with::

    KLARNA_PAYWALL_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
        .venv/bin/pytest tests/multiprocess -q

Environment: ``KLARNA_PAYWALL_TEST_DATABASE_URL`` (the server; the profile uses the database
``KLARNA_PAYWALL_MP_DB_NAME``, default ``<KLARNA_PAYWALL_TEST_DB_NAME>_mp`` or ``test_wkp_multiprocess``),
``KLARNA_PAYWALL_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``; keys get a fresh prefix per run).
Without PostgreSQL, Redis or gunicorn the suite skips, saying which; with ``CI=true`` that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.multiprocess.profile import (
    FIGURES,
    THREADS,
    WORKERS,
    Profile,
    answers,
    have_gunicorn,
    recreate_database,
    start_profile,
)

HERE = Path(__file__).resolve().parent
ARTIFACTS_DIR = Path(os.environ.get("KLARNA_PAYWALL_ARTIFACTS", "test-artifacts")) / "multiprocess"


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("multi-process figures (gunicorn, PostgreSQL, Redis)")
        for line in FIGURES:
            terminalreporter.write_line(line)


def _database_url() -> str:
    server = os.environ.get("KLARNA_PAYWALL_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    if not server.startswith(("postgres://", "postgresql://")):
        server = "postgres://postgres@127.0.0.1:5432/postgres"
    # Its own database, next to the one pytest-django would use when a run names that.
    own = os.environ.get("KLARNA_PAYWALL_TEST_DB_NAME")
    name = os.environ.get("KLARNA_PAYWALL_MP_DB_NAME") or (f"{own}_mp" if own else "test_wkp_multiprocess")
    return urlsplit(server)._replace(path=f"/{name}").geturl()


def _redis_url() -> str:
    return os.environ.get("KLARNA_PAYWALL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _missing(database_url: str, redis_url: str) -> str:
    if not have_gunicorn():
        return "gunicorn is not installed (pip install -e '.[test]')"
    db, cache = urlsplit(database_url), urlsplit(redis_url)
    if not answers(db.hostname or "127.0.0.1", db.port or 5432):
        return f"PostgreSQL does not answer at {db.hostname}:{db.port or 5432}"
    if not answers(cache.hostname or "127.0.0.1", cache.port or 6379):
        return f"Redis does not answer at {cache.hostname}:{cache.port or 6379}"
    return ""


@pytest.fixture(scope="session")
def profile() -> Iterator[Profile]:
    """The production profile, served by gunicorn workers, for the whole session."""
    database_url, redis_url = _database_url(), _redis_url()
    missing = _missing(database_url, redis_url)
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the multi-process suite must run in CI: {missing}")
        pytest.skip(missing)
    recreate_database(database_url)
    started = start_profile(
        database_url=database_url,
        redis_url=redis_url,
        log_dir=ARTIFACTS_DIR,
        workers=WORKERS,
        threads=THREADS,
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def fake(profile: Profile) -> Profile:
    """The profile, its fake Payway as the earlier tests left it: tests count what changes.

    Never reset between tests: a reset makes the fake forget every worker's system token, and the next
    call of each worker is refused (401, nothing done) and sent again, which would count as a second
    place_order request where there was none.
    """
    return profile


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed test shows the tail of the profile's log (gunicorn's access log names the worker)."""
    outcome = yield
    result = outcome.get_result()
    if result.failed and result.when in ("setup", "call"):
        running = item.funcargs.get("profile") or item.funcargs.get("fake")
        if isinstance(running, Profile):
            result.sections.append(("profile log (tail)", running.log_tail()))
