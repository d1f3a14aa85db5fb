"""Sandbox settings: a small Swedish news site that sells subscriptions through the paywall block.

With no ``PAYWAY_CLIENT_ID`` in the environment the site talks to the embedded fake Payway (served by this
same process under /fake-payway/) and loads the fake Klarna widget. With the ``PAYWAY_*`` variables set it
talks to that Payway (stage, say) and loads Klarna's real SDK.
"""

import os
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

SANDBOX_DIR = Path(__file__).resolve().parents[2]
REPO_DIR = SANDBOX_DIR.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "sandbox-not-secret")
DEBUG = False
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

INSTALLED_APPS = [
    "demo",
    "wagtail_klarna_paywall",
    "wagtail_klarna_paywall.fake",
    "wagtail.contrib.settings",
    "wagtail.contrib.routable_page",
    "wagtail.contrib.redirects",
    "wagtail.api.v2",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "rest_framework",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.syndication",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    # A form POST Django cannot read (a charset other than UTF-8) gets the flow's 400 page; before CSRF,
    # which reads the form first.
    "wagtail_klarna_paywall.purchase.hardening.UnreadableFormMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
    # Cache-Control: private / Vary: Cookie on API and feed responses that depended on the reader.
    "wagtail_klarna_paywall.reading.cache_headers.ReaderDependentCacheMiddleware",
]

# CSRF failures of the purchase-flow pages keep their hardening (no-store, CSP, no framing).
CSRF_FAILURE_VIEW = "wagtail_klarna_paywall.purchase.hardening.csrf_failure"

ROOT_URLCONF = "sandbox.urls"
WSGI_APPLICATION = "sandbox.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "wagtail.contrib.settings.context_processors.settings",
                "demo.context_processors.sandbox",
            ]
        },
    }
]

# SQLite in the sandbox folder unless DATABASE_URL says otherwise (PostgreSQL or SQLite).
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{SANDBOX_DIR / 'db.sqlite3'}", conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # runserver is threaded and readers buy at the same time: take SQLite's write lock when a transaction
    # begins, and wait for it, rather than failing with "database is locked" when a read upgrades to a write.
    DATABASES["default"].setdefault("OPTIONS", {}).update(transaction_mode="IMMEDIATE", timeout=20)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = []

LANGUAGE_CODE = "sv"
LANGUAGES = [("sv", _("Swedish")), ("en", _("English"))]
TIME_ZONE = "Europe/Stockholm"
USE_I18N = True
USE_TZ = True
WAGTAIL_I18N_ENABLED = False

STATIC_URL = "/static/"
STATIC_ROOT = SANDBOX_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = SANDBOX_DIR / "media"

WAGTAIL_SITE_NAME = "Ekby Tidning"
PORT = int(os.environ.get("PORT", "8000"))
WAGTAILADMIN_BASE_URL = os.environ.get("WAGTAILADMIN_BASE_URL", f"http://localhost:{PORT}")
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
WAGTAILAPI_BASE_URL = WAGTAILADMIN_BASE_URL
# The demo works offline: no avatars from gravatar.com, no release check against wagtail.org.
WAGTAIL_GRAVATAR_PROVIDER_URL = None
WAGTAIL_ENABLE_UPDATE_CHECK = False

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# The identity token lives only in the server-side session (database sessions).
SESSION_ENGINE = "django.contrib.sessions.backends.db"

# SSO2's landing URL carries a signed token (with the reader's ticket): the plugin's filter takes tokens
# out of every logged request line. ``django.server`` is runserver's access log; it is configured again
# here (Django's own handler and format) because naming a logger replaces its handlers.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_sso2": {"()": "wagtail_klarna_paywall.login.logfilters.RedactSSO2Tokens"}},
    "formatters": {
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact_sso2"]},
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["redact_sso2"],
        },
    },
    "loggers": {
        "wagtail_klarna_paywall": {"handlers": ["console"], "level": "INFO"},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
        # Only the filter: its records still go on to Django's own handlers.
        "django.request": {"filters": ["redact_sso2"]},
    },
}

# -- the paywall -------------------------------------------------------------------------------------------

#: True when the sandbox talks to a real Payway (stage) instead of the embedded fake.
USE_REAL_PAYWAY = bool(os.environ.get("PAYWAY_CLIENT_ID"))

if USE_REAL_PAYWAY:
    WAGTAIL_KLARNA_PAYWALL = {
        "API_URL": os.environ.get("PAYWAY_API_URL", "https://payway-api.stage.adeprimo.se"),
        "SSO_URL": os.environ.get("PAYWAY_SSO_URL", "https://payway-sso-stage.azurewebsites.net"),
        "CLIENT_ID": os.environ["PAYWAY_CLIENT_ID"],
        "CLIENT_SECRET": os.environ.get("PAYWAY_CLIENT_SECRET", ""),
        "ORGANISATION_ID": os.environ.get("PAYWAY_ORGANISATION_ID", ""),
    }
else:
    # The fake Payway is served by this same process, and the site calls it over real HTTP, so runserver
    # must be threaded (its default). PORT must match the port runserver listens on.
    # The browser is sent to the fake SSO2, and readers open the site at http://localhost:<port>/ (the
    # demo Site's host), so SSO_URL names localhost too: the fake login form only returns to its own host.
    _FAKE = f"http://127.0.0.1:{PORT}/fake-payway"
    WAGTAIL_KLARNA_PAYWALL = {
        "API_URL": _FAKE,
        "SSO_URL": f"http://localhost:{PORT}/fake-payway/sso",
        "CLIENT_ID": "sandbox",
        "CLIENT_SECRET": "sandbox-secret",
        "ORGANISATION_ID": "sandbox-org",
        # The fake Klarna widget (a static file of wagtail_klarna_paywall.fake) instead of Klarna's SDK.
        "KLARNA_SDK_URL": "wagtail_klarna_paywall_fake/fake-klarna.js",
        "KLARNA_REDIRECT_HOSTS": ["klarna.com", "127.0.0.1", "localhost"],
    }

#: Switches of the fake Payway (wagtail_klarna_paywall/fake/variants.py, VARIANTS) from the environment, e.g.
#: FAKE_PAYWAY_ENVELOPE=flat FAKE_PAYWAY_REDIRECT_FIELD=redirect_url FAKE_PAYWAY_CATEGORIES=direct_debit
#: FAKE_PAYWAY_ORDER_SCOPE_ERROR=1 sandbox/run. The control page and API flip them at runtime too.
WAGTAIL_KLARNA_PAYWALL_FAKE = {
    name: os.environ[f"FAKE_PAYWAY_{name}"]
    for name in ("ENVELOPE", "REDIRECT_FIELD", "CATEGORIES", "ORDER_SCOPE_ERROR")
    if os.environ.get(f"FAKE_PAYWAY_{name}")
}
#: Route the embedded fake Payway under /fake-payway/ (the production profile runs it as its own process).
SERVE_FAKE_PAYWAY = True

#: Title code the demo content is built for (the fake's catalogue is "demo").
PAYWAY_TITLE_CODE = os.environ.get("PAYWAY_TITLE_CODE", "" if USE_REAL_PAYWAY else "demo")

# -- the fake Payway ----------------------------------------------------------------------------------------

#: How the fake SSO2 signs its answers' aud/iss (Payway does not document them): client-aud (aud = client
#: id, iss = "pw-sso"), pw-sso-aud (aud = "pw-sso", iss = organisation id) or none. Also switchable while
#: the sandbox runs: POST {"claims": "..."} to /fake-payway/sso/_control.
WAGTAIL_KLARNA_PAYWALL_FAKE["SSO2_CLAIMS"] = os.environ.get("FAKE_SSO2_CLAIMS") or "client-aud"
