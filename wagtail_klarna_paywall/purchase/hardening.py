"""Response hardening for the purchase-flow pages (landing, checkout, confirmation).

These pages carry a per-reader Klarna client token and the reader's order summary, host Klarna's widget,
and post a single-use authorization token. So they are, on EVERY response (404, CSRF failure, 405, 429,
503 and 400 included):

- never cached by browsers, CDNs or Wagtail's frontend cache (``Cache-Control: private, no-store``);
- never framed (``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``);
- under a Content-Security-Policy that allows our own origin and what Klarna asks for
  (:data:`KLARNA_CSP`, plus ``KLARNA_CSP_HOSTS``), with no ``'unsafe-inline'`` script (the flow's JavaScript
  is a static file; data reaches it through ``json_script``);
- under ``Cross-Origin-Opener-Policy: same-origin-allow-popups`` (:data:`KLARNA_COOP`), so Klarna's popup
  (login, BankID) keeps its opener;
- served over HTTPS only (outside ``DEBUG``), as Klarna and Payway require.

docs/klarna-browser.md shows the same table and what a site must leave alone for it to hold.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.handlers.exception import response_for_exception
from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.http.multipartparser import MultiPartParserError
from django.template.response import TemplateResponse
from django.views.csrf import csrf_failure as django_csrf_failure
from wagtail.models import Page

from .. import messages
from ..conf import paywall_settings

CACHE_CONTROL = "private, no-store"

#: Klarna's browser requirements for a page that loads its SDK: every CSP directive Klarna lists, with its
#: sources, from "Browser security configuration for the Klarna web SDK"
#: (https://docs.klarna.com/klarna-network-distribution/payment-presentation/web-sdk-configuration/browser-security-configuration/).
#: Klarna's sources extend a policy; ours adds ``'self'`` and ``KLARNA_CSP_HOSTS`` to each directive.
#: ``style-src`` needs ``'unsafe-inline'``: Klarna's SDK styles its elements inline. Scripts never do.
#: The same table is in docs/klarna-browser.md; tests compare every flow page's header with it.
KLARNA_CSP: dict[str, tuple[str, ...]] = {
    "script-src": (
        "'self'",
        "https://x.klarnacdn.net",
        "https://js.klarna.com",
        "https://js.playground.klarna.com",
    ),
    "style-src": ("'self'", "'unsafe-inline'", "https://x.klarnacdn.net"),
    "font-src": ("https://x.klarnacdn.net",),
    "connect-src": ("'self'", "https://*.klarna.com", "https://*.klarnaevt.com", "https://x.klarnacdn.net"),
    "frame-src": ("https://*.klarna.com", "https://x.klarnacdn.net"),
    # Klarna's img-src line could not be read in full (docs/klarna-browser.md): its two host families
    # and data: (the widget's inline images) cover what the SDK loads. Compare when updating the table.
    "img-src": ("'self'", "data:", "https://*.klarna.com", "https://x.klarnacdn.net"),
}
#: Klarna opens a popup (login, BankID) that must keep its opener; Django's default ``same-origin``
#: (SECURE_CROSS_ORIGIN_OPENER_POLICY) cuts it off.
KLARNA_COOP = "same-origin-allow-popups"
#: The fetch directives the flow pages send: Klarna's, plus default-src.
FETCH_DIRECTIVES = ("default-src", *KLARNA_CSP)


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


def _unique(sources: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for source in sources:
        seen.setdefault(source, None)
    return list(seen)


def content_security_policy(*, frame_ancestors: str = "'none'") -> str:
    """The CSP of flow pages: per fetch directive, ``'self'``, Klarna's sources (:data:`KLARNA_CSP`) and
    ``KLARNA_CSP_HOSTS`` (plus a static-files CDN, if any)."""
    sources = ["'self'", *paywall_settings.KLARNA_CSP_HOSTS]
    static_origin = _static_origin()
    if static_origin:
        sources.append(static_origin)
    directives = [
        f"{name} {' '.join(_unique([*sources[:1], *KLARNA_CSP.get(name, ()), *sources[1:]]))}"
        for name in FETCH_DIRECTIVES
    ]
    directives += [
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
    response["Cross-Origin-Opener-Policy"] = KLARNA_COOP
    # The checkout URL holds the attempt reference: keep it out of Referer headers sent to other sites.
    response["Referrer-Policy"] = "same-origin"
    response["X-Content-Type-Options"] = "nosniff"
    # A site-wide CSP middleware never overwrites a header that is already set, but it would ADD its
    # report-only policy, which Klarna's widget breaks on every load. Opt these responses out: Django's own
    # middleware reads these attributes (an empty config adds no header; what csp_override sets), and
    # django-csp skips a response marked exempt (what its csp_exempt sets).
    response._csp_config = {}  # type: ignore[attr-defined]
    response._csp_ro_config = {}  # type: ignore[attr-defined]
    response._csp_exempt = True  # type: ignore[attr-defined]
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
        try:
            response = view(request, *args, **kwargs)
        except _CLIENT_ERRORS as exc:
            # Http404 and friends would otherwise leave the view unhardened and be rendered by Django's
            # handlers further out; render them here (the same handler404/403/400) and harden the result.
            response = response_for_exception(request, exc)
        return harden(response, preview=preview)

    return wrapper


#: Exceptions Django answers with a 4xx page (``response_for_exception``); anything else stays a 500.
_CLIENT_ERRORS = (Http404, DjangoPermissionDenied, BadRequest, SuspiciousOperation, MultiPartParserError)


# -- responses made before a flow view runs ----------------------------------------------------------


class HardenedPageMixin:
    """For the flow's page models: what Wagtail answers before the page's view runs is hardened too.

    That is a subpath no route of the page matches (a 404, answered by :func:`not_found` through
    ``serve``), an ``OPTIONS`` request, and a method the page does not allow (405).
    """

    def route(self, request: HttpRequest, path_components: list[str]) -> Any:
        from wagtail.url_routing import RouteResult

        try:
            return super().route(request, path_components)  # type: ignore[misc]
        except Http404:
            if not path_components:
                raise
            # Ours to answer: mark the request, and serve() answers the hardened 404.
            request._wkp_unrouted = True  # type: ignore[attr-defined]
            return RouteResult(self)

    def check_request_method(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse | None:
        response = super().check_request_method(request, *args, **kwargs)  # type: ignore[misc]
        return None if response is None else harden(response)

    def handle_options_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return harden(super().handle_options_request(request, *args, **kwargs))  # type: ignore[misc]


def is_unrouted(request: HttpRequest) -> bool:
    """Whether :class:`HardenedPageMixin` routed ``request`` to its page only to answer 404."""
    return bool(getattr(request, "_wkp_unrouted", False))


@flow_page
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """The site's 404 page (handler404), hardened like the flow page it stands for."""
    raise Http404


def is_flow_request(request: HttpRequest) -> bool:
    """Whether ``request`` is for a purchase-flow page (purchase page, any of its routes, confirmation).

    For answers made before the flow view runs (a CSRF failure): routed the way Wagtail routes it, at most
    once per request. False when the path is not a page or cannot be routed.
    """
    try:
        page = Page.find_for_request(request, request.path)
    except Exception:  # noqa: BLE001 - an error page must never fail for a broken route
        return False
    # The flow's pages are the pages this module hardens (the purchase and confirmation pages).
    return isinstance(page, HardenedPageMixin)


def hardens_flow_pages(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Decorate a ``CSRF_FAILURE_VIEW``: on flow pages its answer is hardened like the pages themselves.

    For a site with its own CSRF failure view: ``CSRF_FAILURE_VIEW = "mysite.views.csrf_failure"`` with
    that view decorated by this. Check ``wagtail_klarna_paywall.W011`` warns when the site's view is not.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if is_flow_request(request):
            harden(response)
        return response

    wrapper.hardens_flow_pages = True  # type: ignore[attr-defined]
    return wrapper


@hardens_flow_pages
def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW = "wagtail_klarna_paywall.purchase.hardening.csrf_failure"``: Django's own CSRF
    failure page, hardened on flow pages (CsrfViewMiddleware answers before the flow view runs)."""
    return django_csrf_failure(request, reason=reason)


class UnreadableFormMiddleware:
    """Answer a form POST whose body Django refuses to read (``application/x-www-form-urlencoded`` with a
    charset other than UTF-8) with the flow's 400 page instead of a 500 or a bare error page.

    Django raises ``BadRequest`` on the first read of ``request.POST``, which CsrfViewMiddleware does before
    any view: so this must come before ``django.middleware.csrf.CsrfViewMiddleware`` in ``MIDDLEWARE``
    (check ``wagtail_klarna_paywall.W012``). Only the request's headers are looked at; the body is not read.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_unreadable_form(request):
            return bad_request_page(request)
        return self.get_response(request)


def is_unreadable_form(request: HttpRequest) -> bool:
    """Django's own test (HttpRequest._load_post_and_files): a form body in another charset than UTF-8."""
    if request.method != "POST" or request.content_type != "application/x-www-form-urlencoded":
        return False
    encoding = request.encoding
    return encoding is not None and encoding.lower() != "utf-8"


def bad_request_page(request: HttpRequest) -> HttpResponse:
    """The flow's humane 400 page ("we could not read what was sent"), hardened."""
    # Looked up by name: the models import this module (their pages are hardened by it).
    settings_model = apps.get_model("wagtail_klarna_paywall", "PaywallSettings")
    try:
        customer_service = settings_model.for_request(request).customer_service
    except Exception:  # noqa: BLE001  - no site (or no database) still gets the page, without the line
        customer_service = ""
    response = TemplateResponse(
        request,
        "wagtail_klarna_paywall/bad_request.html",
        {"message": messages.reader_message(messages.BAD_REQUEST), "customer_service": customer_service},
        status=400,
    )
    return harden(response.render())
