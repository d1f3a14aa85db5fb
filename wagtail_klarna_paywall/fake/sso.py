"""A fake Payway SSO2 for the sandbox and tests, mounted under ``<fake-payway>/sso/``.

It speaks what the real SSO2 speaks, as far as it is known (docs/payway-contract.md#sso2-answers):

- ``GET identify?t=&r=``: finds this browser's SSO session (a cookie on the fake's own path) or creates an
  anonymous one, then sends the browser to the site's landing page with ``?t=<signed answer>&r=``;
- ``GET/POST login?r=``: a small login form for the demo readers, which logs the SSO session in and
  returns to ``r``;
- ``POST sessionstatus`` and ``POST logout`` with ``{"t": "<jwt>"}``, answering ``{"t": "<jwt>"}``.

Every JWT in is verified (HS256 with the client secret, ``aud`` = ``"pw-sso"``, ``iss`` = organisation
id, ``cid`` = client id). Every answer is signed with the client secret too; its ``aud``/``iss`` follow the
claim variant, since Payway does not document them for answers: ``client-aud`` (``aud`` = the client id,
``iss`` = ``"pw-sso"``, the default), ``pw-sso-aud`` (``aud`` = ``"pw-sso"``, ``iss`` = the organisation
id) or ``none`` (neither). The variant comes from ``WAGTAIL_KLARNA_PAYWALL_FAKE["SSO2_CLAIMS"]`` and can be
switched at run time with ``POST sso/_control {"claims": "<variant>"}`` (``{"reset": true}`` goes back to
the setting), so a running sandbox exercises every shape. Tickets come from
:func:`wagtail_klarna_paywall.fake.state.issue_ticket`, so the fake token endpoint swaps them for identity
tokens. Sessions live in this process's memory; nothing is logged.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import jwt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..conf import paywall_settings as conf
from ..login.protocol import (
    ANSWER_SHAPES,
    AUDIENCE,
    CALL_LIFETIME,
    RESPONSE_ISSUER,
    SHAPE_CLIENT_AUD,
    SHAPE_PW_SSO_AUD,
    STATUS_ANON,
    STATUS_LOGGEDIN,
    STATUS_TERMINATED,
)
from . import state

COOKIE_NAME = "fake_payway_sso"


@dataclass
class SSOSession:
    sid: str
    sts: str = STATUS_ANON
    account_id: str | None = None


#: The claim variants the fake answers with (named like the shapes ``sso.read_answer`` logs).
CLAIM_VARIANTS = ANSWER_SHAPES


def configured_claims() -> str:
    """The variant ``WAGTAIL_KLARNA_PAYWALL_FAKE["SSO2_CLAIMS"]`` names (default ``client-aud``)."""
    options = getattr(settings, "WAGTAIL_KLARNA_PAYWALL_FAKE", {}) or {}
    variant = options.get("SSO2_CLAIMS") or SHAPE_CLIENT_AUD
    if variant not in CLAIM_VARIANTS:
        raise ImproperlyConfigured(
            f"WAGTAIL_KLARNA_PAYWALL_FAKE['SSO2_CLAIMS'] must be one of {', '.join(CLAIM_VARIANTS)}"
        )
    return variant


_lock = threading.Lock()
_sessions: dict[str, SSOSession] = {}
_calls: dict[str, int] = {}
#: The variant in force; None means "what the setting says" (read when an answer is signed).
_claims: str | None = None


def reset() -> None:
    """Forget sessions and counters, and go back to the configured claim variant."""
    global _claims
    with _lock:
        _sessions.clear()
        _calls.clear()
        _claims = None


def set_claims(variant: str | None) -> None:
    """Answer with ``variant`` from now on (None: the configured one). Raises ValueError if unknown."""
    global _claims
    if variant is not None and variant not in CLAIM_VARIANTS:
        raise ValueError(f"claims must be one of {', '.join(CLAIM_VARIANTS)}")
    with _lock:
        _claims = variant


def claims_variant() -> str:
    with _lock:
        variant = _claims
    return variant or configured_claims()


def calls(operation: str) -> int:
    with _lock:
        return _calls.get(operation, 0)


def get_session(sid: str) -> SSOSession | None:
    with _lock:
        session = _sessions.get(sid)
        return SSOSession(session.sid, session.sts, session.account_id) if session else None


def log_in(sid: str, account_id: str) -> None:
    """Log an SSO session in (tests use it to skip the form)."""
    with _lock:
        _sessions[sid] = SSOSession(sid, STATUS_LOGGEDIN, account_id)


def terminate(sid: str) -> None:
    """End an SSO session, as a logout on another site would."""
    with _lock:
        if sid in _sessions:
            _sessions[sid].sts = STATUS_TERMINATED
            _sessions[sid].account_id = None


def new_session() -> SSOSession:
    session = SSOSession(secrets.token_hex(12))
    with _lock:
        _sessions[session.sid] = session
    return session


def _count(operation: str) -> None:
    with _lock:
        _calls[operation] = _calls.get(operation, 0) + 1


def sign_answer(claims: dict, *, lifetime: int = CALL_LIFETIME) -> str:
    now = int(time.time())
    payload: dict = {"iat": now, "nbf": now, "exp": now + lifetime}
    variant = claims_variant()
    if variant == SHAPE_CLIENT_AUD:
        payload.update(iss=RESPONSE_ISSUER, aud=conf.CLIENT_ID)
    elif variant == SHAPE_PW_SSO_AUD:
        payload.update(iss=conf.ORGANISATION_ID, aud=AUDIENCE)
    # SHAPE_NONE: neither claim.
    payload.update(claims)
    return jwt.encode(payload, conf.CLIENT_SECRET, algorithm="HS256")


def _verify_request(token: str) -> dict | None:
    try:
        claims = jwt.decode(
            token,
            conf.CLIENT_SECRET,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=conf.ORGANISATION_ID,
            leeway=120,
            options={"require": ["exp", "iat", "nbf", "cid"]},
        )
    except jwt.PyJWTError:
        return None
    return claims if claims.get("cid") == conf.CLIENT_ID else None


def _answer_for(session: SSOSession | None, sid: str) -> dict:
    if session is None:
        return {"sid": sid, "sts": STATUS_TERMINATED, "err": "session_not_found"}
    claims = {"sid": session.sid, "sts": session.sts}
    if session.sts == STATUS_LOGGEDIN and session.account_id:
        claims["at"] = state.issue_ticket(session.account_id)
    return claims


def _cookie_path() -> str:
    return reverse("fake_payway:sso_identify").rsplit("/", 2)[0] + "/"


def _json_token(request: HttpRequest) -> dict | None:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return None
    token = body.get("t") if isinstance(body, dict) else None
    return _verify_request(token) if isinstance(token, str) else None


@require_GET
def identify(request: HttpRequest) -> HttpResponse:
    _count("identify")
    if _verify_request(request.GET.get("t", "")) is None:
        return HttpResponse("invalid token", status=400, content_type="text/plain")
    with _lock:
        session = _sessions.get(request.COOKIES.get(COOKIE_NAME, ""))
        if session is None or session.sts == STATUS_TERMINATED:
            session = None
    if session is None:
        session = new_session()
    return_url = request.GET.get("r", "")
    query = urlencode({"t": sign_answer(_answer_for(session, session.sid)), "r": return_url})
    landing = reverse("wagtail_klarna_paywall:sso_landing")
    # Real SSO2 sends the browser to the landing page registered for the client. The fake uses the site
    # the reader came from (the origin of ``r``), so the sandbox works on any host name.
    origin = urlsplit(return_url)
    if origin.scheme in ("http", "https") and origin.netloc:
        landing = f"{origin.scheme}://{origin.netloc}{landing}"
    else:
        landing = request.build_absolute_uri(landing)
    response = HttpResponseRedirect(f"{landing}?{query}")
    response.set_cookie(COOKIE_NAME, session.sid, path=_cookie_path(), httponly=True, samesite="Lax")
    return response


def _return_hosts(request: HttpRequest) -> set[str]:
    """Where the login form may send the reader back to: the fake's own host, and the sites named in
    ``WAGTAIL_KLARNA_PAYWALL_FAKE["RETURN_HOSTS"]`` (a fake served by its own process, as in the sandbox's
    production profile, is another origin than the site it logs readers in for)."""
    options = getattr(settings, "WAGTAIL_KLARNA_PAYWALL_FAKE", {}) or {}
    return {request.get_host(), *options.get("RETURN_HOSTS", ())}


@require_http_methods(["GET", "POST"])
def login_form(request: HttpRequest) -> HttpResponse:
    return_url = request.POST.get("r") or request.GET.get("r") or "/"
    if not url_has_allowed_host_and_scheme(return_url, allowed_hosts=_return_hosts(request)):
        return_url = "/"
    error = False
    if request.method == "POST":
        _count("authenticate")
        sid = request.COOKIES.get(COOKIE_NAME, "")
        account = state.authenticate(request.POST.get("email", ""), request.POST.get("password", ""))
        if account is not None and get_session(sid) is not None:
            log_in(sid, account.id)
            return HttpResponseRedirect(return_url)
        error = True
    return render(
        request,
        "wagtail_klarna_paywall_fake/sso_login.html",
        {"return_url": return_url, "error": error, "accounts": state.accounts()},
        status=400 if error else 200,
    )


@csrf_exempt  # server-to-server, authenticated by the signed JWT in the body
@require_POST
def session_status(request: HttpRequest) -> HttpResponse:
    _count("sessionstatus")
    claims = _json_token(request)
    if claims is None or not claims.get("sid"):
        return JsonResponse({"message": "invalid token"}, status=400)
    return JsonResponse({"t": sign_answer(_answer_for(get_session(claims["sid"]), claims["sid"]))})


@csrf_exempt  # server-to-server, authenticated by the signed JWT in the body
@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    _count("logout")
    claims = _json_token(request)
    if claims is None or not claims.get("sid"):
        return JsonResponse({"message": "invalid token"}, status=400)
    terminate(claims["sid"])
    return JsonResponse({"t": sign_answer({"sid": claims["sid"], "sts": STATUS_TERMINATED})})


@csrf_exempt  # for tests and scripts, like the fake Payway's own control API
@require_http_methods(["GET", "POST"])
def control(request: HttpRequest) -> HttpResponse:
    """``GET``/``POST sso/_control``: the claim variant in force.

    POST ``{"claims": "<variant>"}`` switches it, ``{"reset": true}`` returns to the setting.
    """
    if request.method == "POST":
        try:
            body = json.loads(request.body or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            if body.get("reset"):
                reset()
            if "claims" in body:
                set_claims(body["claims"])
        except (TypeError, ValueError) as err:
            return JsonResponse({"code": "invalid_parameter", "message": str(err)}, status=400)
    return JsonResponse({"claims": claims_variant(), "variants": list(CLAIM_VARIANTS)})
