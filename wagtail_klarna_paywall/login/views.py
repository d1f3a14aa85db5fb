"""Reader login and logout through Payway SSO2 (thin views over :mod:`wagtail_klarna_paywall.login.sso`).

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

from ..exceptions import InvalidSSOToken, SSOLoginFailed
from ..models import record_login_failure
from . import sso

logger = logging.getLogger(__name__)


#: Why a login was refused, as the error page explains it: the link (400), or SSO2/Payway (502).
REASON_LINK = "link"
REASON_UNAVAILABLE = "unavailable"
#: A nonce longer than this is not one of ours (``new_login_nonce`` makes 22 characters).
_MAX_NONCE = 64


def _error(
    request: HttpRequest,
    next_url: str = "/",
    status: int = 400,
    *,
    cause: str = "",
    detail: str = "",
    record: bool = False,
) -> HttpResponse:
    """The reader's page for a refused login; with ``record``, also a row in the editors' error panel."""
    if record and cause:
        endpoint = request.resolver_match.url_name if request.resolver_match else "sso"
        record_login_failure(endpoint, cause, http_status=status, detail=detail)
    reason = REASON_UNAVAILABLE if status >= 500 else REASON_LINK
    response = render(
        request,
        "wagtail_klarna_paywall/sso/error.html",
        {"next_url": next_url, "reason": reason},
        status=status,
    )
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
    """The login this browser started, if ``nonce`` is its nonce (so a foreign landing URL is refused).

    Our nonces are short ASCII: anything else (``%C3%A5``, invalid UTF-8 that Django decoded to U+FFFD)
    is refused before the constant-time comparison, which compares bytes.
    """
    if not sso.has_session_cookie(request) or not nonce or len(nonce) > _MAX_NONCE or not nonce.isascii():
        return None
    pending = request.session.get(sso.PENDING_LOGIN_KEY)
    if not isinstance(pending, dict):
        return None
    expected = str(pending.get("state", ""))
    if not expected.isascii() or not secrets.compare_digest(expected.encode(), nonce.encode()):
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
    """SSO2 comes back here with ``?t=<jwt>&r=<return url>``.

    Refusals of a login this browser started are recorded for the editors (a wrong client secret makes
    every login fail here); the rest (no login started, a return URL off the site) are only logged, so
    forged landing URLs write nothing.
    """
    return_url = sso.safe_next_url(request, request.GET.get("r"), default="")
    nonce = parse_qs(urlsplit(return_url).query).get("state", [""])[0] if return_url else ""
    pending = _pending(request, nonce)
    token = request.GET.get("t", "")
    try:
        status = sso.read_answer(token)
    except InvalidSSOToken as err:
        logger.warning("SSO2 landing refused: %s", err)
        next_url = pending.get("next", "/") if pending else "/"
        started = pending is not None
        return _error(request, next_url, cause="sso_token_invalid", detail=str(err), record=started)
    if not return_url:
        logger.warning("SSO2 landing refused: return URL not on this site")
        return _error(request)
    if pending is None:
        logger.warning("SSO2 landing refused: no login was started in this browser")
        return _error(request)
    next_url = pending.get("next", "/")
    if not sso.claim_once(token, status):
        logger.warning("SSO2 landing refused: token replayed")
        return _error(request, next_url, cause="sso_token_replayed", record=True)
    if status.ended:
        return _error(request, next_url, cause="sso_session_ended", record=True)
    sso.remember_session(request, status)
    if status.logged_in and status.at:
        try:
            sso.log_in(request, status)
        except SSOLoginFailed as err:
            return _error(request, next_url, 502, cause=f"sso_{err.cause}", detail=err.detail, record=True)
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
        return _error(request, next_url, cause="sso_no_session", record=True)
    if not pending.get("form"):
        pending["form"] = True
        request.session[sso.PENDING_LOGIN_KEY] = pending
        return HttpResponseRedirect(sso.login_form_url(request.build_absolute_uri()))
    # Back from the login form: SSO2 Session Status gives the ticket.
    request.session.pop(sso.PENDING_LOGIN_KEY, None)
    status = sso.poll_status(request, state)
    if status is None:
        return _error(request, next_url, status=502, cause="sso_status_failed", record=True)
    if status.logged_in and status.at:
        try:
            sso.log_in(request, status)
        except SSOLoginFailed as err:
            return _error(request, next_url, 502, cause=f"sso_{err.cause}", detail=err.detail, record=True)
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
