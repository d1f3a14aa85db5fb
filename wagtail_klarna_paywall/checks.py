"""Django system checks for the WAGTAIL_KLARNA_PAYWALL settings (ids wagtail_klarna_paywall.E0xx/W0xx).

They run with ``manage.py check`` (and so at ``runserver`` and ``migrate``), so a missing secret, a plain-HTTP
Payway host or a missing timeout is reported at startup instead of on a reader's first purchase.

A loopback host (``localhost``, ``127.0.0.0/8``, ``::1``) is the embedded fake Payway of the sandbox and the
tests: it needs no credentials and may use plain HTTP.

=====================================  ===========================================================
E001                                   CLIENT_ID or CLIENT_SECRET missing
E002 / E003                            API_URL / SSO_URL not an absolute https URL (outside DEBUG)
E004                                   CONNECT_TIMEOUT or READ_TIMEOUT missing, zero or not a number
E005                                   KLARNA_REDIRECT_HOSTS empty, or not a list of bare host names
E006                                   KLARNA_SDK_URL neither https, loopback nor a static file path
E007                                   KLARNA_SDK_URL not Klarna's SDK while API_URL is Payway production
E009                                   WAGTAIL_KLARNA_PAYWALL is not a dict
E010                                   a database has ATOMIC_REQUESTS (the exactly-once gate needs autocommit)
E011                                   cookie-based sessions while SSO2 keeps identity tokens in the session
E014                                   IDENTITY_PROVIDER names a class that cannot be imported or built
W001                                   READ_TIMEOUT above 60 seconds
W002                                   unknown key in WAGTAIL_KLARNA_PAYWALL (a typo is otherwise silent)
W003                                   ORGANISATION_ID missing while SSO2 is the identity provider
W010                                   a middleware overwrites the flow pages' Klarna headers (CSP, COOP,
                                       caching, framing; see docs/klarna-browser.md)
W011                                   CSRF_FAILURE_VIEW leaves the flow pages' CSRF failures unhardened
W012                                   UnreadableFormMiddleware missing, or after CsrfViewMiddleware
E012 (deploy)                          CACHE is process-local (local-memory, dummy) while a guarantee
                                       needs a cache every process shares
E013 (deploy)                          cache-backed sessions on a process-local cache
W004 (deploy)                          sessions not cache-backed while readers log in (a slower paywall)
W005 (deploy)                          CACHE is file-based: shared by one host's processes only, and its
                                       add() is not atomic
=====================================  ===========================================================

The deployment checks (``manage.py check --deploy``) are about running more than one process: what a
multi-process site needs is listed in the README's deployment section and in docs/deployment.md.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import InvalidCacheBackendError, caches
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils import translation

from .conf import DEFAULTS, KLARNA_SDK_URL, PAYWAY_PRODUCTION_API_URL, SETTINGS_NAME, paywall_settings
from .login import identity, sso
from .purchase import hardening as security

ID_PREFIX = "wagtail_klarna_paywall"
TAG = "wagtail_klarna_paywall"

#: Longest read timeout that still leaves a web worker (commonly 30-120 s) room to answer the reader.
MAX_READ_TIMEOUT = 60

SSO2_PROVIDER = "wagtail_klarna_paywall.login.sso.SSO2IdentityProvider"

#: Where Klarna serves its Payments SDK (and subdomains): the only SDK that can pay against production.
KLARNA_SDK_HOSTS = ("klarnacdn.net", "klarna.com")


def _id(code: str) -> str:
    return f"{ID_PREFIX}.{code}"


def is_loopback_url(url: Any) -> bool:
    """Whether ``url`` points at this machine (the embedded fake Payway)."""
    if not isinstance(url, str):
        return False
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(name: str, code: str, *, allow_http: bool) -> list[CheckMessage]:
    url = getattr(paywall_settings, name)
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return [
            Error(
                # The value is not echoed: a mistyped URL may carry credentials.
                f"{SETTINGS_NAME}['{name}'] must be an absolute https:// URL.",
                id=_id(code),
            )
        ]
    if parts.scheme == "http" and not (allow_http or is_loopback_url(url)):
        return [
            Error(
                f"{SETTINGS_NAME}['{name}'] uses plain http://.",
                hint="Payway access tokens and client secrets travel on this connection: use https://.",
                id=_id(code),
            )
        ]
    return []


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_timeouts() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name in ("CONNECT_TIMEOUT", "READ_TIMEOUT"):
        value = getattr(paywall_settings, name)
        if not _is_number(value) or value <= 0:
            messages.append(
                Error(
                    f"{SETTINGS_NAME}['{name}'] must be a positive number of seconds, not {value!r}.",
                    hint="Without a timeout a slow Payway holds a web worker indefinitely.",
                    id=_id("E004"),
                )
            )
    read = paywall_settings.READ_TIMEOUT
    if _is_number(read) and read > MAX_READ_TIMEOUT:
        messages.append(
            Warning(
                f"{SETTINGS_NAME}['READ_TIMEOUT'] is {read} seconds.",
                hint=f"Keep it at or below {MAX_READ_TIMEOUT} s, under the web worker's own timeout, "
                "so a slow Payway cannot take the worker down with it.",
                id=_id("W001"),
            )
        )
    return messages


def _is_bare_host(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not any(char in value for char in ":/@ ")


def _check_redirect_hosts() -> list[CheckMessage]:
    hosts = paywall_settings.KLARNA_REDIRECT_HOSTS
    if isinstance(hosts, str) or not isinstance(hosts, Iterable) or not list(hosts):
        return [
            Error(
                f"{SETTINGS_NAME}['KLARNA_REDIRECT_HOSTS'] must be a non-empty list of host names.",
                hint='Use the default ["klarna.com"]: after place_order readers go only to these hosts.',
                id=_id("E005"),
            )
        ]
    bad = [host for host in hosts if not _is_bare_host(host)]
    if bad:
        return [
            Error(
                f"{SETTINGS_NAME}['KLARNA_REDIRECT_HOSTS'] holds entries that are not host names: {bad!r}.",
                hint='Give bare host names such as "klarna.com", without scheme, port or path.',
                id=_id("E005"),
            )
        ]
    return []


def _check_sdk_url() -> list[CheckMessage]:
    url = paywall_settings.KLARNA_SDK_URL
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is not None and not parts.scheme and not parts.netloc and parts.path:
        # A path on this site (``/...``) or a static file path: served from our own origin.
        return []
    if parts is None or not parts.hostname or (parts.scheme != "https" and not is_loopback_url(url)):
        return [
            Error(
                f"{SETTINGS_NAME}['KLARNA_SDK_URL'] must be an absolute https:// URL or a static file path.",
                hint="The purchase page runs this script with access to the payment form.",
                id=_id("E006"),
            )
        ]
    return []


def is_klarna_sdk_url(url: Any) -> bool:
    """Whether ``url`` is an https URL on one of Klarna's hosts (:data:`KLARNA_SDK_HOSTS`)."""
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and any(
        host == name or host.endswith("." + name) for name in KLARNA_SDK_HOSTS
    )


def _check_sdk_against_production() -> list[CheckMessage]:
    api_url = paywall_settings.API_URL
    if not isinstance(api_url, str) or api_url.rstrip("/") != PAYWAY_PRODUCTION_API_URL:
        return []
    if is_klarna_sdk_url(paywall_settings.KLARNA_SDK_URL):
        return []
    return [
        Error(
            f"{SETTINGS_NAME}['KLARNA_SDK_URL'] is not Klarna's SDK while API_URL is Payway production.",
            hint=f"A fake or self-hosted widget cannot authorize real purchases; use {KLARNA_SDK_URL}.",
            id=_id("E007"),
        )
    ]


def _check_unknown_keys(user_settings: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for key in sorted(set(user_settings) - set(DEFAULTS), key=str):
        close = difflib.get_close_matches(str(key), list(DEFAULTS), n=1)
        messages.append(
            Warning(
                f"Unknown key {key!r} in {SETTINGS_NAME}; it is ignored.",
                hint=f"Did you mean {close[0]!r}?"
                if close
                else f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id=_id("W002"),
            )
        )
    return messages


@register(Tags.security, TAG)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Validate ``settings.WAGTAIL_KLARNA_PAYWALL`` (see the module docstring for the ids)."""
    user_settings = getattr(settings, SETTINGS_NAME, None)
    if user_settings is not None and not isinstance(user_settings, dict):
        return [Error(f"{SETTINGS_NAME} must be a dict, not {type(user_settings).__name__}.", id=_id("E009"))]
    user_settings = user_settings or {}
    messages: list[CheckMessage] = []
    fake_payway = is_loopback_url(paywall_settings.API_URL)

    missing = [name for name in ("CLIENT_ID", "CLIENT_SECRET") if not getattr(paywall_settings, name)]
    if missing and not fake_payway:
        messages.append(
            Error(
                f"{SETTINGS_NAME} lacks {' and '.join(missing)}.",
                hint="Create an API client in the Payway Admin Portal (Security) and set both; "
                "read them from the environment, never from the repository.",
                id=_id("E001"),
            )
        )
    messages += _check_url("API_URL", "E002", allow_http=settings.DEBUG)
    messages += _check_url("SSO_URL", "E003", allow_http=settings.DEBUG)
    messages += _check_timeouts()
    messages += _check_redirect_hosts()
    messages += _check_sdk_url()
    messages += _check_sdk_against_production()
    if (
        paywall_settings.IDENTITY_PROVIDER == SSO2_PROVIDER
        and not paywall_settings.ORGANISATION_ID
        and not fake_payway
    ):
        messages.append(
            Warning(
                f"{SETTINGS_NAME}['ORGANISATION_ID'] is empty while SSO2 is the identity provider.",
                hint="SSO2 needs the organisation id for its JWT 'iss' claim: logged-in purchases will fail.",
                id=_id("W003"),
            )
        )
    messages += _check_unknown_keys(user_settings)
    messages += _check_identity_provider()
    return messages


def _check_identity_provider() -> list[CheckMessage]:
    """E014: what the purchase flow, the paywall and the access check would raise on every request,
    reported once at startup instead (through the same loader they use)."""
    try:
        identity.get_identity_provider()
    except Exception as err:  # noqa: BLE001 - any failure to build the provider is this check's finding
        return [
            Error(
                f"{SETTINGS_NAME}['IDENTITY_PROVIDER'] {paywall_settings.IDENTITY_PROVIDER!r} cannot be "
                f"loaded ({type(err).__name__}).",
                hint="Give the dotted path of a class that takes no arguments and implements "
                "wagtail_klarna_paywall.login.identity.IdentityProvider, e.g. the default "
                f"{SSO2_PROVIDER!r}; an empty value means readers never log in.",
                id=_id("E014"),
            )
        ]
    return []


SIGNED_COOKIE_SESSIONS = "django.contrib.sessions.backends.signed_cookies"


@register(Tags.database, TAG)
def check_environment(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Project settings outside the plugin's dict that would break its promises (E010, E011)."""
    messages: list[CheckMessage] = []
    atomic = sorted(alias for alias, db in settings.DATABASES.items() if db.get("ATOMIC_REQUESTS"))
    if atomic:
        messages.append(
            Error(
                f"ATOMIC_REQUESTS is on for the database(s) {', '.join(atomic)}.",
                hint="The plugin commits a purchase's 'placing' mark before it calls Payway's place_order, "
                "so a lost reply or a crash can never lead to a second order. Inside a request-wide "
                "transaction that mark is not committed in time; the plugin then refuses to place orders. "
                "Turn ATOMIC_REQUESTS off.",
                id=_id("E010"),
            )
        )
    if (
        getattr(settings, "SESSION_ENGINE", "") == SIGNED_COOKIE_SESSIONS
        and paywall_settings.IDENTITY_PROVIDER == SSO2_PROVIDER
    ):
        messages.append(
            Error(
                "SESSION_ENGINE stores sessions in signed cookies, but SSO2 keeps the reader's Payway "
                "identity token in the session.",
                hint="Use a server-side session engine (database, cache or cached_db): access tokens must "
                "never reach the browser.",
                id=_id("E011"),
            )
        )
    return messages


# -- W010-W012: the flow pages' browser headers ------------------------------------------------------

UNREADABLE_FORM_MIDDLEWARE = "wagtail_klarna_paywall.purchase.hardening.UnreadableFormMiddleware"
CSRF_MIDDLEWARE = "django.middleware.csrf.CsrfViewMiddleware"
#: The headers a flow page must keep, whatever the site's middleware does (security.harden sets them).
GUARDED_HEADERS = (
    "Content-Security-Policy",
    "Cross-Origin-Opener-Policy",
    "Cache-Control",
    "X-Frame-Options",
)


def _headers_after_middleware() -> dict[str, str | None] | None:
    """Send a hardened stub response out through the site's MIDDLEWARE and return the guarded headers as
    they leave; None when the chain cannot be built or run here (then nothing is claimed).

    Only ``__call__``/``process_request``/``process_response`` run (no URL resolving, no view middleware),
    which is where a middleware would overwrite a header.
    """
    from django.core.exceptions import MiddlewareNotUsed
    from django.http import HttpResponse
    from django.test import RequestFactory
    from django.utils.module_loading import import_string

    def stub(request):
        return security.harden(HttpResponse("flow page"))

    handler: Any = stub
    try:
        for path in reversed(settings.MIDDLEWARE):
            try:
                handler = import_string(path)(handler)
            except MiddlewareNotUsed:
                continue
        hosts = [h for h in settings.ALLOWED_HOSTS if h and not h.startswith(".") and h != "*"]
        request = RequestFactory().get("/", secure=True, HTTP_HOST=hosts[0] if hosts else "localhost")
        # LocaleMiddleware activates a language for the thread: give it back afterwards.
        with translation.override(translation.get_language()):
            response = handler(request)
    except Exception:  # noqa: BLE001 - a check must never crash startup; it only warns what it can see
        return None
    return {name: response.get(name) for name in GUARDED_HEADERS}


def _check_flow_headers() -> list[CheckMessage]:
    from django.http import HttpResponse

    try:
        expected = security.harden(HttpResponse())
    except Exception:  # noqa: BLE001 - broken plugin settings: their own checks (E005, ...) report them
        return []
    seen = _headers_after_middleware()
    if seen is None:
        return []
    changed = [name for name in GUARDED_HEADERS if seen[name] != expected.get(name)]
    if not changed:
        return []
    return [
        Warning(
            f"A middleware in MIDDLEWARE changes the purchase-flow pages' {', '.join(changed)}.",
            hint="Klarna's widget needs the plugin's Content-Security-Policy and "
            f"'Cross-Origin-Opener-Policy: {security.KLARNA_COOP}' on the checkout (its popup for login and "
            "BankID), and flow pages must stay uncacheable and unframeable. Let the middleware keep a "
            "header that is already set (as Django's SecurityMiddleware and CSP middleware do); see "
            "docs/klarna-browser.md.",
            id=_id("W010"),
        )
    ]


def _check_csrf_failure_view() -> list[CheckMessage]:
    from django.utils.module_loading import import_string

    path = getattr(settings, "CSRF_FAILURE_VIEW", "django.views.csrf.csrf_failure")
    try:
        view = import_string(path) if isinstance(path, str) else path
    except ImportError:
        return []  # Django's own check reports an unimportable CSRF_FAILURE_VIEW
    if getattr(view, "hardens_flow_pages", False):
        return []
    return [
        Warning(
            f"CSRF_FAILURE_VIEW ({path}) answers the purchase-flow pages' CSRF failures without their "
            "hardening (no-store, CSP frame-ancestors, no framing).",
            hint='Set CSRF_FAILURE_VIEW = "wagtail_klarna_paywall.purchase.hardening.csrf_failure", '
            "or decorate your "
            "own view with wagtail_klarna_paywall.purchase.hardening.hardens_flow_pages.",
            id=_id("W011"),
        )
    ]


def _check_unreadable_form_middleware() -> list[CheckMessage]:
    middleware = list(settings.MIDDLEWARE)
    missing = UNREADABLE_FORM_MIDDLEWARE not in middleware
    late = (
        not missing
        and CSRF_MIDDLEWARE in middleware
        and middleware.index(UNREADABLE_FORM_MIDDLEWARE) > middleware.index(CSRF_MIDDLEWARE)
    )
    if not (missing or late):
        return []
    return [
        Warning(
            f"{UNREADABLE_FORM_MIDDLEWARE} is "
            f"{'not in MIDDLEWARE' if missing else 'after ' + CSRF_MIDDLEWARE}.",
            hint="A form POST in another charset than UTF-8 then gets Django's bare error page instead of "
            f"the flow's 400 page. Put it before {CSRF_MIDDLEWARE} (and after LocaleMiddleware, so the page "
            "speaks the reader's language).",
            id=_id("W012"),
        )
    ]


@register(Tags.security, TAG)
def check_flow_hardening(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The site settings that would take the flow pages' browser headers away (W010-W012)."""
    return _check_flow_headers() + _check_csrf_failure_view() + _check_unreadable_form_middleware()


# -- deployment: more than one process ----------------------------------------------------------------------

#: Cache backends whose entries live in one process (the dummy keeps nothing, so ``add`` always succeeds).
PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)
#: Shared by the processes of one host only, and ``add`` is a read then a write (not atomic).
HOST_LOCAL_CACHES = ("django.core.cache.backends.filebased.FileBasedCache",)
CACHE_SESSION_ENGINES = (
    "django.contrib.sessions.backends.cache",
    "django.contrib.sessions.backends.cached_db",
)
#: Session engines that read the session without a database query (docs/performance.md).
FAST_SESSION_ENGINES = (*CACHE_SESSION_ENGINES, SIGNED_COOKIE_SESSIONS)


def _cache_backend(alias: str) -> str:
    """The dotted backend path of the cache ``alias`` ('' if there is no such cache)."""
    try:
        backend = caches[alias]
    except (InvalidCacheBackendError, TypeError):
        return ""
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def _landing_single_use_in_cache() -> bool:
    """Whether SSO2's landing single-use record is kept in ``CACHE`` (it is when ``sso.claim_once`` reads
    Django's caches; a record kept in the database needs no shared cache)."""
    code = getattr(getattr(sso, "claim_once", None), "__code__", None)
    return code is not None and "caches" in code.co_names


def _rate_limits_on() -> bool:
    limits = paywall_settings.RATE_LIMITS
    return isinstance(limits, dict) and any(value is not None for value in limits.values())


def _cache_guarantees() -> list[str]:
    """What the plugin promises that holds only if every process sees the same ``CACHE``."""
    needs = []
    if paywall_settings.IDENTITY_PROVIDER == SSO2_PROVIDER and _landing_single_use_in_cache():
        needs.append("an SSO2 landing URL works once (otherwise once per process)")
    if _rate_limits_on():
        needs.append(
            "RATE_LIMITS count every process's new Payway sessions (otherwise each process "
            "allows the full limit)"
        )
    needs.append(
        "an editor's change to a page shows in every process's cached paywall at once "
        "(otherwise up to 300 s later)"
    )
    return needs


@register(Tags.caches, TAG, deploy=True)
def check_multiprocess(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``check --deploy``: settings that break a promise once the site runs more than one process."""
    messages: list[CheckMessage] = []
    alias = paywall_settings.CACHE
    backend = _cache_backend(alias)
    if backend in PROCESS_LOCAL_CACHES:
        messages.append(
            Error(
                f"{SETTINGS_NAME}['CACHE'] is the {alias!r} cache, {backend.rsplit('.', 1)[-1]}, "
                "which each process keeps for itself.",
                hint="Use a cache every web process shares (Redis: "
                "django.core.cache.backends.redis.RedisCache, or memcached) so that: "
                + "; ".join(_cache_guarantees())
                + ". Nothing is ever bought twice without one: that guarantee is in the database.",
                id=_id("E012"),
            )
        )
    elif backend in HOST_LOCAL_CACHES:
        messages.append(
            Warning(
                f"{SETTINGS_NAME}['CACHE'] is the file-based {alias!r} cache: shared by the processes of one "
                "host only, and its add() is not atomic.",
                hint="With more than one host, or concurrent requests, use Redis or memcached so that: "
                + "; ".join(_cache_guarantees())
                + ".",
                id=_id("W005"),
            )
        )
    engine = getattr(settings, "SESSION_ENGINE", "")
    if engine in CACHE_SESSION_ENGINES:
        session_alias = getattr(settings, "SESSION_CACHE_ALIAS", "default")
        session_backend = _cache_backend(session_alias)
        if session_backend in PROCESS_LOCAL_CACHES:
            messages.append(
                Error(
                    f"SESSION_ENGINE keeps sessions in the {session_alias!r} cache, "
                    f"{session_backend.rsplit('.', 1)[-1]}, which each process keeps for itself.",
                    hint="A reader's login (and SSO2's pending-login record) would be seen by one process "
                    "and missing or stale in the others. Point SESSION_CACHE_ALIAS at a shared cache.",
                    id=_id("E013"),
                )
            )
    elif paywall_settings.IDENTITY_PROVIDER and engine not in FAST_SESSION_ENGINES:
        messages.append(
            Warning(
                "Readers log in (IDENTITY_PROVIDER is set) but SESSION_ENGINE is not cache-backed.",
                hint="Every paywalled render for a logged-in reader then reads the session from the "
                "database: measured at 1.17x the cost of the same article without a paywall, against "
                "1.05x with 'django.contrib.sessions.backends.cached_db' (docs/performance.md). Use "
                "cached_db on a shared cache.",
                id=_id("W004"),
            )
        )
    return messages
