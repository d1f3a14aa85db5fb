"""Read on after paying: the browser that bought a product reads what it opens, before any Payway login.

A new customer (Payway's v2 flow) has no Payway login in this browser when their order is placed, so
``me/active_products`` cannot tell us they may read. Instead, the Django session of the browser that
placed the order remembers the attempt (a *grant*), and :mod:`.access` adds the access codes of every
granted attempt to what the reader holds. A logged-in buyer gets the same grant, in case Payway's account
update is not yet visible in ``active_products``.

What keeps it safe:

- The grant lives only in the server-side session, as attempt references with an end time. The browser
  holds nothing but its session cookie: no value it could forge or copy into a URL.
- Only the request that placed the order (the checkout POST) or that found the reader's own attempt (the
  confirmation page, through ``purchase.attempts.is_readers``) adds a grant.
- At read time a grant counts only while its attempt is in :data:`GRANTING_STATES`: when reconciliation
  settles an ``unknown`` attempt as failed (or an attempt ends any other way), its grant ends at once.
- It ends :data:`PaywallSettings.purchase_grant_hours` after the order was sent to Payway (visiting the
  confirmation page again does not extend it), on logout (Django's ``user_logged_out`` and the plugin's
  SSO2 logout drop it), and with the session.

``unknown`` grants too: the reader did everything right and Klarna authorized the payment; most often a
timeout hides an order that exists. Letting them read while the outcome is settled costs little (the grant
is bounded and ends when the attempt is settled as failed); keeping a paying reader out costs a customer.

The buyer's e-mail address is kept here only in masked form (``a•••@example.com``), in the session next
to the grant, so the confirmation page and the article can say which address to log in with on other
devices. Not on the attempt: the purchase log is kept for the newsroom for good and holds no personal
data, while the session belongs to the buyer's browser and ends with the grant.

A request without a session cookie never touches the session here: anonymous pages stay cacheable.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from ..models import AttemptState, PurchaseAttempt
from ..purchase.attempts import site_settings
from .cache_headers import mark_reader_dependent

if TYPE_CHECKING:
    from django.http import HttpRequest

#: Where the grants live in the Django session: a list of {"ref", "until" (epoch seconds), "email"}.
SESSION_KEY = "wagtail_klarna_paywall.grants"
#: Grants remembered per browser at most (the newest win), so the session stays small.
MAX_GRANTS = 10
#: Attempts whose order exists or may exist (see the module docstring for ``unknown``).
GRANTING_STATES = (AttemptState.PLACED, AttemptState.CONFIRMED, AttemptState.UNKNOWN)
_MASK = "\u2022\u2022\u2022"
#: This request's grants, read once (see :func:`active_grants`).
_REQUEST_ATTR = "_klarna_paywall_grants"


@dataclass(frozen=True)
class Grant:
    """One purchase this browser may read through."""

    reference: str
    codes: frozenset[str]
    until: dt.datetime
    #: The buyer's e-mail address, masked (``a•••@example.com``), or "" (an existing customer).
    email: str = ""


def mask_email(email: Any) -> str:
    """``anna@example.com`` -> ``a•••@example.com``; "" for anything that is not an address."""
    if not isinstance(email, str):
        return ""
    local, at, domain = email.strip().rpartition("@")
    if not at or not local or not domain:
        return ""
    return f"{local[0]}{_MASK}@{domain}"[:254]


def _has_session_cookie(request: HttpRequest) -> bool:
    return settings.SESSION_COOKIE_NAME in getattr(request, "COOKIES", {})


def _entries(request: HttpRequest) -> list[dict[str, Any]]:
    entries = request.session.get(SESSION_KEY)
    if not isinstance(entries, list):
        return []
    return [
        entry
        for entry in entries
        if isinstance(entry, dict)
        and isinstance(entry.get("ref"), str)
        and isinstance(entry.get("until"), (int, float))
    ]


def has_grants(request: HttpRequest) -> bool:
    """Whether this browser's session names a purchase to read through (no database query; a grant
    may still turn out to have ended). For a site's "log out" link, say."""
    if request is None or not _has_session_cookie(request) or getattr(request, "session", None) is None:
        return False
    return bool(_entries(request))


def grant_hours(attempt: PurchaseAttempt) -> int:
    return site_settings(attempt.site).purchase_grant_hours


def grant(
    request: HttpRequest, attempt: PurchaseAttempt, *, email: str = "", now: dt.datetime | None = None
) -> bool:
    """Let this browser read what ``attempt`` opens; True when a grant is (now) in the session.

    The caller has made sure ``attempt`` is this reader's own (it placed it, or ``is_readers`` held
    for it). Idempotent: a second call keeps the first end time, and only adds the masked e-mail if missing.
    """
    session = getattr(request, "session", None)
    if session is None or attempt.state not in GRANTING_STATES:
        return False
    now = now or timezone.now()
    # Bounded from the moment the order was sent, whenever the reader comes back to the confirmation.
    start = attempt.placing_at or attempt.placed_at or now
    until = start + dt.timedelta(hours=grant_hours(attempt))
    if until <= now:
        return False
    ref = str(attempt.reference)
    masked = mask_email(email)
    entries = _entries(request)
    existing = next((entry for entry in entries if entry["ref"] == ref), None)
    if existing is not None:
        if masked and not existing.get("email"):
            existing["email"] = masked
            session[SESSION_KEY] = entries
        return True
    entries.append({"ref": ref, "until": until.timestamp(), "email": masked})
    session[SESSION_KEY] = entries[-MAX_GRANTS:]
    _forget(request)
    return True


def active_grants(request: HttpRequest, now: dt.datetime | None = None) -> tuple[Grant, ...]:
    """This browser's grants that count now (newest first), read once per request (and again after
    :func:`grant` or :func:`end_grants`). No session I/O without a session cookie."""
    if request is None or not _has_session_cookie(request) or getattr(request, "session", None) is None:
        return ()
    if now is None:
        memo = getattr(request, _REQUEST_ATTR, None)
        if memo is None:
            memo = _read_grants(request, timezone.now())
            setattr(request, _REQUEST_ATTR, memo)
        return memo
    return _read_grants(request, now)


def _forget(request: HttpRequest) -> None:
    if hasattr(request, _REQUEST_ATTR):
        delattr(request, _REQUEST_ATTR)


def _read_grants(request: HttpRequest, now: dt.datetime) -> tuple[Grant, ...]:
    entries = _entries(request)
    if not entries:
        return ()
    # Whatever the answer, it came from this browser's session: the response must not be shared.
    mark_reader_dependent(request)
    now_ts = now.timestamp()
    live = [entry for entry in entries if entry["until"] > now_ts]
    rows = {
        str(reference): (codes, product_code)
        for reference, codes, product_code in PurchaseAttempt.objects.filter(
            reference__in=[entry["ref"] for entry in live], state__in=GRANTING_STATES
        ).values_list("reference", "access_codes", "product_code")
    }
    kept = [entry for entry in live if entry["ref"] in rows]
    if len(kept) != len(entries):
        # Expired or settled as failed: forget it, so later requests skip the query.
        if kept:
            request.session[SESSION_KEY] = kept
        else:
            request.session.pop(SESSION_KEY, None)
    return tuple(_grant(entry, *rows[entry["ref"]]) for entry in reversed(kept))


def _grant(entry: dict[str, Any], codes: Any, product_code: str) -> Grant:
    codes = [code for code in (codes or ()) if isinstance(code, str) and code] or [product_code]
    return Grant(
        reference=entry["ref"],
        codes=frozenset(codes),
        until=dt.datetime.fromtimestamp(entry["until"], tz=dt.timezone.utc),
        email=str(entry.get("email") or ""),
    )


def grant_of(request: HttpRequest, attempt: PurchaseAttempt, now: dt.datetime | None = None) -> Grant | None:
    """The grant this browser holds for ``attempt``, if it counts now. Made from ``attempt`` itself, which
    the caller has just read: no query."""
    session = getattr(request, "session", None)
    if session is None or attempt.state not in GRANTING_STATES:
        return None
    ref = str(attempt.reference)
    entry = next((entry for entry in _entries(request) if entry["ref"] == ref), None)
    if entry is None or entry["until"] <= (now or timezone.now()).timestamp():
        return None
    return _grant(entry, attempt.access_codes, attempt.product_code)


def end_grants(request: HttpRequest) -> None:
    """Drop every grant of this browser (logout)."""
    session = getattr(request, "session", None)
    if session is not None:
        session.pop(SESSION_KEY, None)
    _forget(request)


def on_user_logged_out(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """``user_logged_out`` receiver: a Django logout ends the grants too (connected in signal_handlers)."""
    if request is not None:
        end_grants(request)
