"""The ``WAGTAIL_KLARNA_PAYWALL`` settings dict, read through one object with defaults.

Secrets and hosts live here (Django settings), never in a database setting that templates can reach.
Editorial knobs per site live in :class:`wagtail_klarna_paywall.models.PaywallSettings`.

Usage::

    from wagtail_klarna_paywall.conf import paywall_settings
    paywall_settings.API_URL
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.templatetags.static import static

SETTINGS_NAME = "WAGTAIL_KLARNA_PAYWALL"

#: Payway API hosts (the token endpoint lives on the same host).
PAYWAY_STAGE_API_URL = "https://payway-api.stage.adeprimo.se"
PAYWAY_PRODUCTION_API_URL = "https://backend.worldoftulo.com"

#: Payway SSO2 hosts.
PAYWAY_STAGE_SSO_URL = "https://payway-sso-stage.azurewebsites.net"
PAYWAY_PRODUCTION_SSO_URL = "https://sso.worldoftulo.com"

#: Klarna Payments JS SDK.
KLARNA_SDK_URL = "https://x.klarnacdn.net/kp/lib/v1/api.js"

DEFAULTS: dict[str, Any] = {
    # Payway API host, e.g. PAYWAY_STAGE_API_URL. The sandbox points it at the embedded fake Payway
    # (``wagtail_klarna_paywall.fake``) served by the site itself.
    "API_URL": PAYWAY_STAGE_API_URL,
    "CLIENT_ID": "",
    "CLIENT_SECRET": "",
    # Needed for the SSO2 JWT ``iss`` claim.
    "ORGANISATION_ID": "",
    "SSO_URL": PAYWAY_STAGE_SSO_URL,
    # (connect, read) seconds for every outbound call. The read timeout stays well below a web
    # worker's own timeout so a slow Payway cannot take the worker down with it.
    "CONNECT_TIMEOUT": 3.05,
    "READ_TIMEOUT": 15.0,
    # Klarna's redirect after place_order is followed only to these hosts (and their subdomains).
    "KLARNA_REDIRECT_HOSTS": ["klarna.com"],
    # The Klarna Payments SDK the checkout loads: an absolute URL, or a static file path resolved by
    # staticfiles (as form Media resolves its paths). The sandbox and tests name the fake widget of
    # ``wagtail_klarna_paywall.fake`` here; check E007 refuses anything but Klarna's SDK against production.
    "KLARNA_SDK_URL": KLARNA_SDK_URL,
    # Hosts allowed in the Content-Security-Policy of the purchase pages (Klarna's widget).
    "KLARNA_CSP_HOSTS": ["https://*.klarna.com", "https://*.klarnacdn.net", "https://*.klarnaservices.com"],
    # How many trusted reverse proxies sit in front of Django; used to read the buyer's IP from
    # X-Forwarded-For. 0 means REMOTE_ADDR is the buyer.
    "TRUSTED_PROXY_COUNT": 0,
    # Django cache alias for catalogue reads and access checks.
    "CACHE": "default",
    "CATALOGUE_CACHE_TTL": 300,
    "ACCESS_CACHE_TTL": 60,
    # A Payway session is reused while at least this many seconds of its 48 hours are left.
    "SESSION_REUSE_MARGIN": 2 * 60 * 60,
    # New Payway sessions a buyer may start: (count, seconds) per fixed window, per reader, per IP, and
    # per IP for free trials (abuse magnets). A reused session does not count; ``None`` disables a limit
    # (``RATE_LIMITS: None`` all of them). Counted in ``CACHE``; the IP only ever as a keyed hash.
    # ``paywall_view_ip``: paywall-view beacons per IP (views count once per reader, page and day anyway;
    # the limit only keeps a flood from filling the cache).
    "RATE_LIMITS": {
        "reader": (5, 600),
        "ip": (30, 600),
        "trial_ip": (5, 3600),
        "paywall_view_ip": (600, 600),
    },
    # Dotted path to the identity provider class (SSO2 by default), or "" when readers never log in; see
    # ``login/identity.py``. Checked at startup (wagtail_klarna_paywall.E014).
    "IDENTITY_PROVIDER": "wagtail_klarna_paywall.login.sso.SSO2IdentityProvider",
    # Seconds between SSO2 session-status polls for a logged-in reader.
    "SSO_STATUS_INTERVAL": 300,
    # The central login form readers are sent to after SSO2 Identify (Payway's own or a shared one),
    # and the query parameter that carries the URL to return to. Empty means ``{SSO_URL}/login``.
    "SSO_LOGIN_URL": "",
    "SSO_LOGIN_RETURN_PARAM": "r",
}


class PluginSettings:
    """Attribute access to ``settings.WAGTAIL_KLARNA_PAYWALL`` merged over :data:`DEFAULTS`.

    Not to be confused with the per-site editorial settings, the model
    :class:`wagtail_klarna_paywall.models.PaywallSettings`. Values are cached until :meth:`reload`, which
    :mod:`wagtail_klarna_paywall.signal_handlers` calls when the setting changes.
    """

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        return getattr(settings, SETTINGS_NAME, {}) or {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown {SETTINGS_NAME} setting: {name}")
        if name not in self._cache:
            self._cache[name] = self.user_settings.get(name, DEFAULTS[name])
        return self._cache[name]

    @property
    def is_production(self) -> bool:
        return self.API_URL.rstrip("/") == PAYWAY_PRODUCTION_API_URL

    @property
    def klarna_sdk_src(self) -> str:
        """``KLARNA_SDK_URL`` as the checkout's ``<script src>``, by Django's rule for form Media: a value
        starting with ``http://``, ``https://`` or ``/`` as given, any other a static file path (so it gets
        the hashed name under a manifest storage, or the CDN's host under STATIC_URL)."""
        url = self.KLARNA_SDK_URL
        if url.startswith(("http://", "https://", "/")):
            return url
        return static(url)

    def reload(self) -> None:
        self._cache.clear()


paywall_settings = PluginSettings()
