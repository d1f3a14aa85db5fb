"""Reader login and logout through Payway SSO2 (thin views over :mod:`wagtail_klarna_paywall.sso`).

The login dance (Payway's "alternative login form" sequence):

1. ``login`` remembers a nonce and where to go next, and sends the browser to SSO2 Identify, asking to
   come back to ``complete`` (the nonce rides along in that return URL).
2. SSO2 sends the browser to ``landing`` with a signed ``t`` (``sid``, ``sts`` and, when the reader is
   already logged in at Payway, a ticket ``at``) and our return URL ``r``. The landing verifies both,
   stores the SSO session, exchanges the ticket if there is one, and goes on to ``r``.
3. ``complete`` finishes: logged in → the article; otherwise once to the central login form, which
   returns here; then SSO2 Session Status gives the ticket for the identity token.
"""

from __future__ import annotations

import functools
import logging
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from . import sso
from .exceptions import InvalidSSOToken

logger = logging.getLogger(__name__)


def _error(request: HttpRequest, next_url: str = "/", status: int = 400) -> HttpResponse:
    response = render(request, "wagtail_klarna_paywall/sso/error.html", {"next_url": next_url}, status=status)
    add_never_cache_headers(response)
    return response


def _complete_url(request: HttpRequest, next_url: str, nonce: str) -> str:
    path = reverse("wagtail_klarna_paywall:sso_complete")
    return request.build_absolute_uri(f"{path}?{urlencode({'next': next_url, 'state': nonce})}")


@never_cache
@require_GET
def login(request: HttpRequest) -> HttpResponse:
    """Start a login: remember the nonce, then SSO2 Identify."""
    next_url = sso.safe_next_url(request, request.GET.get("next"))
    if sso.SSO2IdentityProvider().get_identity_token(request):
        return HttpResponseRedirect(next_url)
    nonce = sso.new_login_nonce()
    request.session[sso.PENDING_LOGIN_KEY] = {"state": nonce, "next": next_url, "form": False}
    return HttpResponseRedirect(sso.identify_url(_complete_url(request, next_url, nonce)))


def _pending(request: HttpRequest, nonce: str | None) -> dict | None:
    """The login this browser started, if ``nonce`` is its nonce (so a foreign landing URL is refused)."""
    if not sso.has_session_cookie(request) or not nonce:
        return None
    pending = request.session.get(sso.PENDING_LOGIN_KEY)
    if not isinstance(pending, dict) or not secrets.compare_digest(str(pending.get("state", "")), nonce):
        return None
    return pending


def _no_referrer(view):
    """The landing URL carries SSO2's token (with a ticket): never hand it on in a Referer header."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Referrer-Policy"] = "no-referrer"
        return response

    return wrapper


@never_cache
@require_GET
@_no_referrer
def landing(request: HttpRequest) -> HttpResponse:
    """SSO2 comes back here with ``?t=<jwt>&r=<return url>``."""
    return_url = sso.safe_next_url(request, request.GET.get("r"), default="")
    try:
        status = sso.read_answer(request.GET.get("t", ""))
    except InvalidSSOToken as err:
        logger.warning("SSO2 landing refused: %s", err)
        return _error(request)
    if not return_url:
        logger.warning("SSO2 landing refused: return URL not on this site")
        return _error(request)
    nonce = parse_qs(urlsplit(return_url).query).get("state", [""])[0]
    pending = _pending(request, nonce)
    if pending is None:
        logger.warning("SSO2 landing refused: no login was started in this browser")
        return _error(request)
    if not sso.claim_once(request.GET["t"]):
        logger.warning("SSO2 landing refused: token replayed")
        return _error(request, pending.get("next", "/"))
    if status.ended:
        return _error(request, pending.get("next", "/"))
    sso.remember_session(request, status)
    if status.logged_in and status.at and not sso.log_in(request, status):
        return _error(request, pending.get("next", "/"), status=502)
    return HttpResponseRedirect(return_url)


@never_cache
@require_GET
def complete(request: HttpRequest) -> HttpResponse:
    """Finish the login started by :func:`login` (after the landing, and after the login form)."""
    pending = _pending(request, request.GET.get("state"))
    if pending is None:
        return _error(request, sso.safe_next_url(request, request.GET.get("next")))
    next_url = sso.safe_next_url(request, pending.get("next"))
    state = request.session.get(sso.SESSION_KEY) or {}
    if state.get("token"):
        request.session.pop(sso.PENDING_LOGIN_KEY, None)
        return HttpResponseRedirect(next_url)
    if not state.get("sid"):
        return _error(request, next_url)
    if not pending.get("form"):
        pending["form"] = True
        request.session[sso.PENDING_LOGIN_KEY] = pending
        return HttpResponseRedirect(sso.login_form_url(request.build_absolute_uri()))
    # Back from the login form: SSO2 Session Status gives the ticket.
    request.session.pop(sso.PENDING_LOGIN_KEY, None)
    status = sso.poll_status(request, state)
    if status is None:
        return _error(request, next_url, status=502)
    if status.logged_in and status.at:
        if not sso.log_in(request, status):
            return _error(request, next_url, status=502)
        return HttpResponseRedirect(next_url)
    # The reader left the login form without logging in: back to the article, still anonymous.
    if not status.ended:
        sso.remember_session(request, status)
    return HttpResponseRedirect(next_url)


@never_cache
@require_http_methods(["GET", "POST"])
def logout(request: HttpRequest) -> HttpResponse:
    """GET asks to confirm (a link must not log anyone out); POST ends the session here and at SSO2."""
    next_url = sso.safe_next_url(request, request.POST.get("next") or request.GET.get("next"))
    if request.method == "POST":
        if sso.has_session_cookie(request):
            sso.end_session(request)
        return HttpResponseRedirect(next_url)
    return render(request, "wagtail_klarna_paywall/sso/logout.html", {"next_url": next_url})
