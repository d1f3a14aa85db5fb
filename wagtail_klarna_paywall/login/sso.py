"""Payway SSO2: who the reader is at Payway, and the identity token that goes with it.

SSO2 speaks short-lived JWTs, HS256-signed with our client secret, in both directions:

- ours (to ``identify`` through the browser, to ``sessionstatus``/``logout`` server to server) carry
  ``cid``, ``iss`` = organisation id, ``aud`` = ``"pw-sso"``, ``iat``, ``nbf``, ``exp`` (60 s for identify,
  10 s for the others) and, for an existing session, ``sid``, ``ipa``, ``uas`` (and ``lks`` on sessionstatus);
- SSO2's answers (on our landing URL, in server replies) carry ``sid``, ``sts``, ``at``, ``err``.

The identity token obtained for a logged-in reader (``grant_type=ticket``) lives only in the server-side
Django session under :data:`SESSION_KEY`: never in a cookie value, a template context, a URL or a log.
A reader without a session cookie is never looked up: anonymous paywall views read and write nothing.

This module builds and reads JWTs and keeps the session state. HTTP goes through
:mod:`wagtail_klarna_paywall.payway` (the only code that speaks HTTP).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jwt
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.http import url_has_allowed_host_and_scheme

from ..conf import paywall_settings as conf
from ..exceptions import InvalidSSOToken, PaywallError, PaywayError, SSOLoginFailed
from ..models import SSOLandingClaim
from ..payway import get_client
from ..payway.sso_client import get_sso_client
from ..reading.access import refresh_access
from ..reading.grants import end_grants
from .identity import client_ip
from .protocol import (
    ALGORITHM,
    ANSWER_REQUIRED_CLAIMS,
    ANSWER_STATUSES,
    AUDIENCE,
    CALL_LIFETIME,
    ERR_SESSION_NOT_FOUND,
    IDENTIFY_LIFETIME,
    LEEWAY,
    RESPONSE_ISSUER,
    SHAPE_CLIENT_AUD,
    SHAPE_NONE,
    SHAPE_OTHER,
    SHAPE_PW_SSO_AUD,
    STATUS_LOGGEDIN,
    STATUS_TERMINATED,
)

if TYPE_CHECKING:
    from django.http import HttpRequest

    from ..payway.types import AccessToken

logger = logging.getLogger(__name__)

#: Where the reader's SSO2 state (sid, status, identity token) lives in the Django session.
SESSION_KEY = "wagtail_klarna_paywall.sso"
#: A login this browser started: the nonce SSO2 hands back to us inside ``r``, and where to go after.
PENDING_LOGIN_KEY = "wagtail_klarna_paywall.sso_login"

#: An identity token this close to expiry is renewed before use.
TOKEN_EXPIRY_MARGIN = 60
#: After SSO2 failed to answer, ask again this much sooner than the regular interval.
STATUS_RETRY_AFTER = 60
_SIGNED_COOKIE_ENGINE = "django.contrib.sessions.backends.signed_cookies"


@dataclass(frozen=True)
class SSOStatus:
    """A verified SSO2 answer."""

    sid: str
    sts: str
    at: str = field(default="", repr=False)
    err: str = ""
    raa: int | None = None
    frf: int | None = None
    #: When the answer expires (its ``exp``), for the landing's single-use record.
    exp: int | None = field(default=None, repr=False)

    @property
    def logged_in(self) -> bool:
        return self.sts == STATUS_LOGGEDIN

    @property
    def ended(self) -> bool:
        """The SSO session is gone: the reader must be logged out here too."""
        return self.sts == STATUS_TERMINATED or self.err == ERR_SESSION_NOT_FOUND


# -- JWTs ----------------------------------------------------------------------------------------


def build_token(*, lifetime: int, now: float | None = None, **claims: Any) -> str:
    """Sign a JWT for SSO2 with the standard claims plus ``claims`` (None values are left out)."""
    issued = int(now if now is not None else time.time())
    payload = {
        "cid": conf.CLIENT_ID,
        "iss": conf.ORGANISATION_ID,
        "aud": AUDIENCE,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
    }
    payload.update({key: value for key, value in claims.items() if value is not None})
    return jwt.encode(payload, conf.CLIENT_SECRET, algorithm=ALGORITHM)


def identify_token(now: float | None = None) -> str:
    return build_token(lifetime=IDENTIFY_LIFETIME, now=now)


def session_token(request: HttpRequest, *, sid: str, lks: str | None = None, now: float | None = None) -> str:
    """A JWT for an operation on an existing SSO session (sessionstatus, logout)."""
    return build_token(
        lifetime=CALL_LIFETIME,
        now=now,
        sid=sid,
        ipa=client_ip(request),
        uas=request.META.get("HTTP_USER_AGENT", "")[:512],
        lks=lks,
    )


def read_answer(token: str) -> SSOStatus:
    """Verify an SSO2 answer by the claims that matter (see :data:`ANSWER_REQUIRED_CLAIMS`) and read it.

    Raises :class:`InvalidSSOToken`; the reason is logged, the token never is.
    """
    if not isinstance(token, str) or not token or len(token) > 4096 or not token.isascii():
        raise InvalidSSOToken("missing, oversized or non-ASCII token")
    try:
        claims = jwt.decode(
            token,
            conf.CLIENT_SECRET,
            algorithms=[ALGORITHM],
            leeway=LEEWAY,
            options={"require": list(ANSWER_REQUIRED_CLAIMS), "verify_aud": False, "verify_iss": False},
        )
    except jwt.PyJWTError as err:
        raise InvalidSSOToken(f"SSO2 token rejected: {err.__class__.__name__}") from None
    except (OverflowError, ValueError, TypeError):
        # A time claim such as 1e999 that this PyJWT does not turn into its own error.
        raise InvalidSSOToken("SSO2 token rejected: unreadable time claim") from None
    sts = claims.get("sts")
    if not isinstance(claims.get("sid"), str) or sts not in ANSWER_STATUSES:
        raise InvalidSSOToken("SSO2 token rejected: unreadable sid/sts")
    _note_shape(claims)
    return SSOStatus(
        sid=claims["sid"],
        sts=sts,
        at=str(claims.get("at") or ""),
        err=str(claims.get("err") or ""),
        raa=_int_or_none(claims.get("raa")),
        frf=_int_or_none(claims.get("frf")),
        exp=_int_or_none(claims.get("exp")),
    )


def answer_shape(claims: dict[str, Any]) -> str:
    """Which ``aud``/``iss`` shape an answer's claims have (one of :data:`ANSWER_SHAPES`, or ``other``)."""
    aud, iss = claims.get("aud"), claims.get("iss")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    if aud is None and iss is None:
        return SHAPE_NONE
    if aud == conf.CLIENT_ID and iss == RESPONSE_ISSUER:
        return SHAPE_CLIENT_AUD
    if aud == AUDIENCE and iss == conf.ORGANISATION_ID:
        return SHAPE_PW_SSO_AUD
    return SHAPE_OTHER


_shapes_seen: set[str] = set()
_shapes_lock = threading.Lock()


def _note_shape(claims: dict[str, Any]) -> None:
    """Log the first answer of each ``aud``/``iss`` shape this process sees (nothing else is logged)."""
    shape = answer_shape(claims)
    with _shapes_lock:
        if shape in _shapes_seen:
            return
        _shapes_seen.add(shape)
    if shape == SHAPE_OTHER:
        # Client and organisation ids are configuration, not secrets: showing them helps a site compare.
        logger.warning(
            "SSO2 answers carry an unexpected aud/iss (aud=%.80r, iss=%.80r); accepted, as aud/iss never "
            "decide (docs/payway-contract.md, SSO2 answers)",
            claims.get("aud"),
            claims.get("iss"),
        )
    else:
        logger.info("SSO2 answers carry the aud/iss shape %r", shape)


#: A landing record outlives the token it stands for by this much; then read_answer refuses it anyway.
_LANDING_MARGIN = LEEWAY + 1
#: Far enough for any real token, near enough for a database datetime (year 9999).
_LATEST_EXPIRY = 253_000_000_000


def claim_once(token: str, status: SSOStatus) -> bool:
    """True the first time a landing token is seen, in any process: a landing URL (it may carry a
    ticket) works once.

    The record lives in the database (:class:`~wagtail_klarna_paywall.models.SSOLandingClaim`), shared by
    every worker, so a second process cannot accept the same URL again. The key is a hash of the token's
    signed part (header and payload), which a re-encoded signature cannot change. Expired records are
    pruned on the way: they stand for tokens :func:`read_answer` refuses anyway.
    """

    signed_part = token.rsplit(".", 1)[0]
    digest = hashlib.sha256(signed_part.encode("ascii")).hexdigest()
    now = timezone.now()
    expiry = min(status.exp or int(now.timestamp()), _LATEST_EXPIRY) + _LANDING_MARGIN
    SSOLandingClaim.objects.filter(expires_at__lt=now).delete()
    try:
        with transaction.atomic():
            SSOLandingClaim.objects.create(
                digest=digest, expires_at=dt.datetime.fromtimestamp(expiry, tz=dt.timezone.utc)
            )
    except IntegrityError:
        return False
    return True


def _int_or_none(value: Any) -> int | None:
    """An integer claim (``raa``, ``frf``, ``exp``), or None for anything else (``1e999``, NaN, text)."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


# -- request helpers -----------------------------------------------------------------------------


def has_session_cookie(request: HttpRequest) -> bool:
    return settings.SESSION_COOKIE_NAME in request.COOKIES


def safe_next_url(request: HttpRequest, url: str | None, default: str = "/") -> str:
    """``url`` if it points at this site (https outside DEBUG), else ``default``.

    Relative URLs must be paths (``/...``): a bare ``foo`` would resolve against whichever view redirects.
    """
    if not url or len(url) > 2048 or not (url.startswith("/") or "://" in url):
        return default
    if url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure() or not settings.DEBUG
    ):
        return url
    return default


def login_form_url(return_url: str) -> str:
    base = conf.SSO_LOGIN_URL or f"{conf.SSO_URL.rstrip('/')}/login"
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}{urlencode({conf.SSO_LOGIN_RETURN_PARAM: return_url})}"


def identify_url(return_url: str) -> str:
    return f"{conf.SSO_URL.rstrip('/')}/identify?{urlencode({'t': identify_token(), 'r': return_url})}"


def new_login_nonce() -> str:
    return secrets.token_urlsafe(16)


# -- session state -------------------------------------------------------------------------------


def _state(request: HttpRequest) -> dict[str, Any] | None:
    if not has_session_cookie(request):
        return None
    state = request.session.get(SESSION_KEY)
    return state if isinstance(state, dict) else None


def _save(request: HttpRequest, state: dict[str, Any]) -> None:
    request.session[SESSION_KEY] = state


def reader_key(request: HttpRequest) -> str | None:
    """A stable, opaque key for the logged-in reader (for per-reader caches), or None.

    Derived from the SSO session id and the login time, keyed with SECRET_KEY: never the token.
    """
    state = _state(request)
    if not state or not state.get("token"):
        return None
    return salted_hmac(
        "wagtail_klarna_paywall.reader", f"{state.get('sid')}:{state.get('since')}"
    ).hexdigest()


def remember_session(request: HttpRequest, status: SSOStatus) -> None:
    """Store an SSO session we just learnt about (landing), keeping a token only for the same session."""
    state = _state(request) or {}
    if state.get("sid") != status.sid:
        state = {}
    state.update({"sid": status.sid, "sts": status.sts, "checked": time.time()})
    _save(request, state)


def log_in(request: HttpRequest, status: SSOStatus) -> None:
    """Exchange ``status.at`` for an identity token and log the reader in.

    Raises :class:`SSOLoginFailed` (with its cause) when that cannot be done.
    """
    if not status.logged_in or not status.at:
        raise SSOLoginFailed("no_ticket")
    try:
        token = get_client().exchange_ticket(status.at)
    except PaywallError as err:
        logger.warning("SSO2 ticket exchange failed: %s", err)
        raise SSOLoginFailed("ticket_exchange", detail=err.__class__.__name__) from None
    if not _server_side_sessions():
        logger.error("Identity token not stored: SESSION_ENGINE keeps sessions in cookies")
        raise SSOLoginFailed("cookie_sessions")
    # A new identity in this browser: a new session key, so a key fixed before login is worthless.
    request.session.cycle_key()
    now = time.time()
    _save(
        request,
        {"sid": status.sid, "sts": STATUS_LOGGEDIN, "checked": now, "since": now, **_token_fields(token)},
    )
    logger.info("Reader logged in through SSO2")


def log_out_locally(request: HttpRequest) -> None:
    """Forget the reader's SSO2 state and token here (SSO2 said the session ended)."""

    refresh_access(request)
    # A logout, even one SSO2 started elsewhere: what this browser bought is no longer readable here.
    end_grants(request)
    request.session.pop(SESSION_KEY, None)
    request.session.cycle_key()


def end_session(request: HttpRequest) -> None:
    """Explicit logout: end the SSO session at SSO2 (best effort), then flush the local session.

    Also the logout of a new customer who never logged in: it ends what they read through their purchase
    in this browser (``grants.py``)."""

    state = _state(request)
    if state and state.get("sid"):
        try:
            get_sso_client().logout(session_token(request, sid=state["sid"]))
        except PaywallError as err:
            logger.warning("SSO2 logout failed; logging out locally anyway: %s", err)
    refresh_access(request)
    # The flush drops the grants too; said here so that no session backend can keep them.
    end_grants(request)
    request.session.flush()


def poll_status(request: HttpRequest, state: dict[str, Any]) -> SSOStatus | None:
    """Ask SSO2 for the session's status. None when SSO2 could not answer (retried soon)."""
    try:
        answer = get_sso_client().session_status(
            session_token(request, sid=state["sid"], lks=state.get("sts"))
        )
        status = read_answer(answer)
    except (PaywallError, KeyError) as err:
        logger.warning("SSO2 session status failed: %s", err)
        state["checked"] = time.time() - conf.SSO_STATUS_INTERVAL + STATUS_RETRY_AFTER
        _save(request, state)
        return None
    if status.sid != state["sid"] and not status.ended:
        logger.warning("SSO2 session status answered for another session; ignoring")
        return None
    return status


def _token_fields(token: AccessToken) -> dict[str, Any]:
    return {
        "token": token.access_token,
        "expires": token.expires_at.timestamp(),
        "refresh": token.refresh_token,
    }


def _server_side_sessions() -> bool:
    return settings.SESSION_ENGINE != _SIGNED_COOKIE_ENGINE


# -- the identity provider -----------------------------------------------------------------------


class SSO2IdentityProvider:
    """Identity tokens for readers logged in through Payway SSO2 (the default ``IDENTITY_PROVIDER``)."""

    def get_identity_token(self, request: HttpRequest) -> str | None:
        state = _state(request)
        if not state or state.get("sts") != STATUS_LOGGEDIN:
            return None
        now = time.time()
        if now - float(state.get("checked") or 0) >= conf.SSO_STATUS_INTERVAL:
            status = poll_status(request, state)
            if status is not None:
                if status.ended or not status.logged_in:
                    logger.info("SSO2 session ended elsewhere; logging the reader out here")
                    log_out_locally(request)
                    return None
                state["checked"] = now
                if not state.get("token") or float(state.get("expires") or 0) - now <= TOKEN_EXPIRY_MARGIN:
                    return self._exchange(request, state, status)
                _save(request, state)
        if state.get("token") and float(state.get("expires") or 0) - now > TOKEN_EXPIRY_MARGIN:
            return state["token"]
        return self._renew(request, state)

    def login_url(self, request: HttpRequest, next_url: str) -> str:
        next_url = safe_next_url(request, next_url)
        return f"{reverse('wagtail_klarna_paywall:sso_login')}?{urlencode({'next': next_url})}"

    def forget(self, request: HttpRequest) -> None:
        """Drop the token (Payway refused it). The next request asks SSO2 for a fresh ticket."""
        state = _state(request)
        if not state:
            return
        for key in ("token", "expires", "refresh"):
            state.pop(key, None)
        state["checked"] = 0
        _save(request, state)

    def reader_key(self, request: HttpRequest) -> str | None:
        return reader_key(request)

    def _renew(self, request: HttpRequest, state: dict[str, Any]) -> str | None:
        if state.get("refresh"):
            try:
                token = get_client().refresh_identity_token(state["refresh"])
            except PaywayError as err:
                logger.info("Identity token refresh failed: %s", err)
            else:
                state.update(_token_fields(token))
                _save(request, state)
                return token.access_token
        # No refresh token, or it was refused: a fresh ticket from SSO2 gives a fresh token.
        status = poll_status(request, state)
        if status is None:
            return None
        if status.ended or not status.logged_in:
            log_out_locally(request)
            return None
        state["checked"] = time.time()
        return self._exchange(request, state, status)

    def _exchange(self, request: HttpRequest, state: dict[str, Any], status: SSOStatus) -> str | None:
        if not status.at:
            _save(request, state)
            return state.get("token") if float(state.get("expires") or 0) > time.time() else None
        try:
            token = get_client().exchange_ticket(status.at)
        except PaywallError as err:
            logger.warning("SSO2 ticket exchange failed: %s", err)
            _save(request, state)
            return None
        state.update(_token_fields(token))
        _save(request, state)
        return token.access_token
