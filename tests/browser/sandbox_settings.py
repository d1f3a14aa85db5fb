"""The sandbox as the browser tests serve it: ``sandbox.settings.dev``, with room for a suite of readers.

Every test is a new reader, and every reader comes from 127.0.0.1: the per-IP limits on new Payway sessions
(30 per 10 minutes, 5 trials per hour) are a real site's defence against one address buying on and on, and
a suite of a few dozen purchases in three minutes is exactly that. So they are raised here; the per-reader
limit stays as it is. The limits themselves are tested in tests/test_ratelimit.py.
"""

from sandbox.settings.dev import *  # noqa: F403
from sandbox.settings.dev import WAGTAIL_KLARNA_PAYWALL
from wagtail_klarna_paywall.conf import DEFAULTS

WAGTAIL_KLARNA_PAYWALL = {
    **WAGTAIL_KLARNA_PAYWALL,
    "RATE_LIMITS": {**DEFAULTS["RATE_LIMITS"], "ip": (1000, 600), "trial_ip": (1000, 3600)},
}
