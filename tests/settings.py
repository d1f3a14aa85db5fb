"""Settings for the test suite. DATABASE_URL selects PostgreSQL (the concurrency suite needs it)."""

import os

import dj_database_url

BASE_DIR = os.path.dirname(os.path.abspath(__file__))
SECRET_KEY = "tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "Europe/Stockholm"
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("sv", "Svenska")]
USE_I18N = True

INSTALLED_APPS = [
    "tests.testapp",
    "wagtail_klarna_paywall",
    "wagtail_klarna_paywall.fake",
    "wagtail.contrib.settings",
    "wagtail.contrib.routable_page",
    "wagtail.contrib.forms",
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
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Cache-Control: private / Vary: Cookie on responses that depend on the logged-in reader (API, feeds).
    "wagtail_klarna_paywall.reading.cache_headers.ReaderDependentCacheMiddleware",
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
]

# CSRF failures of the purchase-flow pages keep their hardening (no-store, CSP, no framing).
CSRF_FAILURE_VIEW = "wagtail_klarna_paywall.purchase.hardening.csrf_failure"

ROOT_URLCONF = "tests.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(BASE_DIR, "templates")],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "wagtail.contrib.settings.context_processors.settings",
            ]
        },
    }
]

DATABASES = {"default": dj_database_url.config(default=f"sqlite:///{os.path.join(BASE_DIR, 'test.sqlite3')}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {"NAME": ":memory:"}
elif os.environ.get("KLARNA_PAYWALL_TEST_DB_NAME"):
    # Two runs against one PostgreSQL server (a CI clone and a checkout) would drop each other's
    # test_<name> database; give one of them its own.
    DATABASES["default"]["TEST"] = {"NAME": os.environ["KLARNA_PAYWALL_TEST_DB_NAME"]}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STATIC_URL = "/static/"
STATIC_ROOT = os.path.join(BASE_DIR, "static-collected")
MEDIA_ROOT = os.path.join(BASE_DIR, "media")
MEDIA_URL = "/media/"
WAGTAIL_SITE_NAME = "Test site"
WAGTAILADMIN_BASE_URL = "http://testserver"

WAGTAIL_KLARNA_PAYWALL = {
    "API_URL": "https://payway.test",
    "CLIENT_ID": "test-client",
    "CLIENT_SECRET": "test-secret-do-not-leak",
    "ORGANISATION_ID": "test-org",
    "SSO_URL": "https://sso.payway.test",
}
