"""The sandbox as a production site runs it: ``sandbox/run-production`` (gunicorn, several processes).

What differs from ``dev``, and why each matters once a site has more than one process:

- PostgreSQL (``DATABASE_URL``, default the ``wkp_sandbox`` database at 127.0.0.1:5432): the exactly-once
  purchase gate is a conditional UPDATE and a row lock, which SQLite serialises for the whole file.
- Redis as the cache (``REDIS_URL``, default ``redis://127.0.0.1:6379/0``): rate limits, the SSO2 landing's
  single-use record and the paywall render cache's generation token must be seen by every process at once
  (``manage.py check --deploy`` errors on a process-local cache).
- ``cached_db`` sessions: a logged-in reader's session is read from the cache, written through to the
  database (see docs/performance.md for what database sessions cost a paywalled render).
- ``DEBUG`` off, static files collected and served by whitenoise.
- Behind a TLS-terminating proxy: ``X-Forwarded-Proto`` says the request came over https (the flow pages
  insist on it), the proxy's ``X-Forwarded-For`` entry is trusted (``TRUSTED_PROXY_COUNT``), cookies are
  ``Secure`` and the public https origins are trusted for CSRF.
- The fake Payway is its own process (``sandbox.settings.fake_payway``, on ``FAKE_PAYWAY_PORT``), not part
  of this site: the site's URLconf does not route it.

The fake's Klarna hop is plain http on a loopback port, and outside DEBUG the redirect allow-list only
follows https URLs on ``KLARNA_REDIRECT_HOSTS``. The profile keeps the production allow-list
(``["klarna.com"]``) rather than loosening it: after place_order the reader goes straight to the
confirmation page, as with any redirect Klarna's list does not cover, and the purchase log records one
"redirect_rejected" security event per order. That event is expected here and nowhere else.
"""

import os
from importlib.util import find_spec
from pathlib import Path

import dj_database_url

from .base import *  # noqa: F403
from .base import INSTALLED_APPS, MIDDLEWARE, PORT, USE_REAL_PAYWAY, WAGTAIL_KLARNA_PAYWALL

DEBUG = False
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "sandbox-production-profile-not-secret"

#: The host names readers use (behind the proxy); the first is the one the demo site is built for.
PUBLIC_HOSTS = [h for h in os.environ.get("PUBLIC_HOSTS", "localhost,127.0.0.1").split(",") if h]
ALLOWED_HOSTS = PUBLIC_HOSTS
DATABASE_URL = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/wkp_sandbox"
DATABASES = {
    # Persistent connections, checked before reuse: a worker thread keeps its connection between requests
    # instead of paying a PostgreSQL connect (several ms) per request.
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
}

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # One Redis may serve several sites (or test runs): keep each one's keys apart.
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "wkp-sandbox"),
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# -- behind a TLS-terminating proxy ------------------------------------------------------------------------
# The proxy sets X-Forwarded-Proto (and nothing else may reach gunicorn); it passes the Host header through,
# so USE_X_FORWARDED_HOST stays off (a forged X-Forwarded-Host would otherwise pick the host).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = False
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
#: ``PUBLIC_PORT``: the port readers see (443 behind a real proxy; the profile's own port when a test
#: client or browser plays the proxy by sending ``X-Forwarded-Proto: https`` to gunicorn directly).
PUBLIC_PORT = int(os.environ.get("PUBLIC_PORT", str(PORT)))
_PORT_SUFFIX = "" if PUBLIC_PORT == 443 else f":{PUBLIC_PORT}"
CSRF_TRUSTED_ORIGINS = [f"https://{host}{_PORT_SUFFIX}" for host in PUBLIC_HOSTS]
# HSTS is the proxy's business on a real site; on localhost it would stick to every other local server.
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
SECURE_CONTENT_TYPE_NOSNIFF = True
WAGTAILADMIN_BASE_URL = os.environ.get("WAGTAILADMIN_BASE_URL", f"https://{PUBLIC_HOSTS[0]}{_PORT_SUFFIX}")
WAGTAILAPI_BASE_URL = WAGTAILADMIN_BASE_URL

# -- static files ------------------------------------------------------------------------------------------
if os.environ.get("STATIC_ROOT"):
    # Another copy (the tests and benchmark use their own, so two runs never collect into one folder).
    STATIC_ROOT = os.environ["STATIC_ROOT"]
MIDDLEWARE = [
    MIDDLEWARE[0],  # SecurityMiddleware first, as whitenoise's docs ask
    "whitenoise.middleware.WhiteNoiseMiddleware",
    *MIDDLEWARE[1:],
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names, compressed copies, served with far-future cache headers.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# -- the paywall -------------------------------------------------------------------------------------------
#: The fake Payway's own process (``sandbox/run-production`` starts it on this port).
FAKE_PAYWAY_PORT = int(os.environ.get("FAKE_PAYWAY_PORT", str(PORT + 1)))
#: Not routed by this site (``sandbox/urls.py``): the fake runs on its own.
SERVE_FAKE_PAYWAY = False
if not USE_REAL_PAYWAY:
    INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "wagtail_klarna_paywall.fake"]
    # The site still serves the fake Klarna widget (KLARNA_SDK_URL names it, as in base), so collectstatic
    # takes the fake's static files without installing the fake.
    STATICFILES_DIRS = [Path(find_spec("wagtail_klarna_paywall.fake").origin).parent / "static"]
    WAGTAIL_KLARNA_PAYWALL = {
        **WAGTAIL_KLARNA_PAYWALL,
        # Server to server: the site's workers call the fake on loopback.
        "API_URL": f"http://127.0.0.1:{FAKE_PAYWAY_PORT}/fake-payway",
        # The reader's browser is sent to the fake SSO2.
        "SSO_URL": f"http://{PUBLIC_HOSTS[0]}:{FAKE_PAYWAY_PORT}/fake-payway/sso",
        # Production's list: see the module docstring for what that means for the fake's Klarna hop.
        "KLARNA_REDIRECT_HOSTS": ["klarna.com"],
    }
WAGTAIL_KLARNA_PAYWALL = {
    **WAGTAIL_KLARNA_PAYWALL,
    # One proxy in front of gunicorn: the buyer's IP is the last X-Forwarded-For entry it appended.
    "TRUSTED_PROXY_COUNT": int(os.environ.get("TRUSTED_PROXY_COUNT", "1")),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"process": {"format": "[%(process)d] %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "process"}},
    "loggers": {
        "wagtail_klarna_paywall": {"handlers": ["console"], "level": "INFO"},
        "django.request": {"handlers": ["console"], "level": "ERROR"},
    },
}
