"""The production profile as the multi-process tests and the load benchmark serve it.

``sandbox.settings.production`` unchanged, plus what only an observer needs: every response names the
gunicorn worker (process id) that made it, so a test can show that each worker saw an edit; and, with
``WKP_COUNT_PAYWAY_CONNECTS=1`` (the benchmark), every TCP connection the worker's Payway client opens is
counted in Redis per process.
"""

import os

from sandbox.settings.production import *  # noqa: F403
from sandbox.settings.production import CACHES, CSRF_TRUSTED_ORIGINS, MIDDLEWARE

MIDDLEWARE = ["tests.multiprocess.observe.worker_header", *MIDDLEWARE]

if os.environ.get("WKP_COUNT_PAYWAY_CONNECTS") == "1":
    from tests.multiprocess.observe import count_payway_connects

    count_payway_connects(CACHES["default"]["LOCATION"], CACHES["default"]["KEY_PREFIX"])

# Chromium in tests/multiprocess/test_browser_purchase.py talks plain http to gunicorn while its context
# adds the proxy's X-Forwarded-Proto; the one thing a header cannot change is the browser's own idea of the
# page's scheme, which it sends as the Origin of every POST. A real TLS proxy has the browser on https.
CSRF_TRUSTED_ORIGINS = [
    *CSRF_TRUSTED_ORIGINS,
    *(origin.replace("https://", "http://", 1) for origin in CSRF_TRUSTED_ORIGINS),
]
