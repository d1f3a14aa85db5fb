"""The fake Payway as its own process, for the production profile (``sandbox/run-production``).

A model of Payway: the API, the fake SSO2 and the fake Klarna hop under ``/fake-payway/``, and nothing of
the site. Its state lives in memory, so it runs as ONE gunicorn process with many threads; every site
worker talks to it over HTTP, as a site's workers talk to Payway.
"""

import os

from .base import PORT, WAGTAIL_KLARNA_PAYWALL

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "sandbox-fake-payway-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["wagtail_klarna_paywall.fake"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "sandbox.fake_payway_urls"
WSGI_APPLICATION = "sandbox.wsgi.application"
DATABASES = {}
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The fake's pages (SSO2 login form, control page, Klarna hop) are the fake app's own templates.
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
# The fake signs its SSO2 answers with the site's client credentials, as Payway does.
WAGTAIL_KLARNA_PAYWALL = {
    key: WAGTAIL_KLARNA_PAYWALL[key] for key in ("CLIENT_ID", "CLIENT_SECRET", "ORGANISATION_ID")
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}

# The fake's login form sends readers back to the site, which is another origin (another port) here.
_PUBLIC_HOSTS = [h for h in os.environ.get("PUBLIC_HOSTS", "localhost,127.0.0.1").split(",") if h]
_PUBLIC_PORT = int(os.environ.get("PUBLIC_PORT", str(PORT)))
WAGTAIL_KLARNA_PAYWALL_FAKE = {
    "RETURN_HOSTS": [host if _PUBLIC_PORT == 443 else f"{host}:{_PUBLIC_PORT}" for host in _PUBLIC_HOSTS]
}
