"""Response hardening for the purchase-flow pages (landing, checkout, confirmation).

These pages carry a per-reader Klarna client token and the reader's order summary, host Klarna's widget,
and post a single-use authorization token. So they are:

- never cached by browsers, CDNs or Wagtail's frontend cache (``Cache-Control: private, no-store``);
- never framed (``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``);
- under a Content-Security-Policy that allows our own origin and exactly ``KLARNA_CSP_HOSTS``, with no
  ``'unsafe-inline'`` (the flow's JavaScript is a static file; data reaches it through ``json_script``);
- served over HTTPS only (outside ``DEBUG``), as Klarna and Payway require.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect

from .conf import paywall_settings

CACHE_CONTROL = "private, no-store"


def _static_origin() -> str:
    """The origin of ``STATIC_URL`` when static files come from another host (a CDN), else ''."""
    parts = urlsplit(getattr(settings, "STATIC_URL", "") or "")
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return ""


def _redirect_sources() -> list[str]:
    """CSP sources for ``KLARNA_REDIRECT_HOSTS`` (each host and its subdomains, as the allow-list reads
    them); under ``DEBUG`` also plain http on any port, for the sandbox's fake Klarna hop."""
    sources: list[str] = []
    for host in paywall_settings.KLARNA_REDIRECT_HOSTS:
        host = str(host).lower().strip(".")
        if not host or not all(ch.isalnum() or ch in ".-" for ch in host):
            continue
        is_ip = host.replace(".", "").isdigit()
        names = [host] if is_ip else [host, f"*.{host}"]
        sources += [f"https://{name}" for name in names]
        if settings.DEBUG:
            sources += [f"http://{name}:*" for name in names]
    return sources


def content_security_policy(*, frame_ancestors: str = "'none'") -> str:
    """The CSP of flow pages: ``'self'`` plus ``KLARNA_CSP_HOSTS`` (plus a static-files CDN, if any)."""
    sources = ["'self'", *paywall_settings.KLARNA_CSP_HOSTS]
    static_origin = _static_origin()
    if static_origin:
        sources.append(static_origin)
    allowed = " ".join(sources)
    directives = [
        f"default-src {allowed}",
        f"script-src {allowed}",
        f"style-src {allowed}",
        f"img-src {allowed} data:",
        f"font-src {allowed}",
        f"connect-src {allowed}",
        f"frame-src {allowed}",
        # Chrome applies form-action to the redirect that follows a form post, and placing an order
        # answers with a redirect to Klarna: so the hosts that redirect may go to belong here too.
        f"form-action {' '.join([*sources, *_redirect_sources()])}",
        f"frame-ancestors {frame_ancestors}",
        "base-uri 'none'",
        "object-src 'none'",
    ]
    return "; ".join(directives)


def harden(response: HttpResponse, *, preview: bool = False) -> HttpResponse:
    """Set the flow pages' headers on ``response`` (overriding whatever a middleware would set).

    ``preview``: Wagtail's editor shows page previews in a same-origin iframe, so a preview may be
    framed by our own origin (and only by it).
    """
    response["Cache-Control"] = CACHE_CONTROL
    response["X-Frame-Options"] = "SAMEORIGIN" if preview else "DENY"
    response["Content-Security-Policy"] = content_security_policy(
        frame_ancestors="'self'" if preview else "'none'"
    )
    # The checkout URL holds the attempt reference: keep it out of Referer headers sent to other sites.
    response["Referrer-Policy"] = "same-origin"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def flow_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Decorate a purchase-flow view: HTTPS outside ``DEBUG``, then :func:`harden` its response."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        preview = bool(getattr(request, "is_preview", False))
        if not settings.DEBUG and not request.is_secure() and not preview:
            # get_host() is validated against ALLOWED_HOSTS, so this cannot be steered to another
            # site. A POST is redirected too, unprocessed: nothing happens over plain HTTP.
            secure_url = "https://" + request.get_host() + request.get_full_path()
            return harden(HttpResponsePermanentRedirect(secure_url))
        return harden(view(request, *args, **kwargs), preview=preview)

    return wrapper
