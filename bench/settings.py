"""Settings of the benchmarks: the test settings, a database and fake Payway chosen by ``bench/run.py``.

``run.py`` sets ``BENCH_DATABASE_URL`` (a throwaway SQLite file by default) and ``BENCH_FAKE_URL`` (the
fake Payway it serves on a local thread server) before Django starts.
"""

import os

import dj_database_url

from tests.settings import *  # noqa: F403
from tests.settings import WAGTAIL_KLARNA_PAYWALL as _TEST_PAYWALL

DEBUG = False
# The site's URLs plus the purchase benchmark's bare baselines (bench/urls.py).
ROOT_URLCONF = "bench.urls"
DATABASES = {"default": dj_database_url.parse(os.environ["BENCH_DATABASE_URL"])}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"] = {
        # 50 threads share one file: wait for the write lock instead of failing, and let readers
        # read while one thread writes.
        "timeout": 60,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;",
    }

WAGTAIL_KLARNA_PAYWALL = {
    **_TEST_PAYWALL,
    "API_URL": os.environ["BENCH_FAKE_URL"].rstrip("/") + "/fake-payway",
    "KLARNA_SDK_URL": "wagtail_klarna_paywall_fake/fake-klarna.js",
    "CONNECT_TIMEOUT": 5.0,
    "READ_TIMEOUT": 15.0,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    # The fake's Klarna hop is plain http on 127.0.0.1, so every order logs "redirect not on the allow-list";
    # urllib3 logs each connection it discards. Neither is what is measured here.
    "loggers": {
        "wagtail_klarna_paywall": {"handlers": ["null"], "propagate": False},
        "urllib3": {"handlers": ["null"], "propagate": False},
        "django.request": {"handlers": ["null"], "propagate": False},
    },
}
