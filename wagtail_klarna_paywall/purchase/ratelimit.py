"""Limits on how often readers may make us create a Payway session (docs/reliability.md S13).

Each ``create_session`` costs a Payway call and opens a Klarna session; free trials are abuse magnets
(OWASP's payment gateway cheat sheet). The buy view asks :func:`reserve_session` before any call that
would create a session.
Counters are fixed windows in Django's cache (``CACHE``): ``cache.add`` then ``cache.incr`` is atomic on
Redis and memcached and good enough on the local-memory cache of a single process.

Neither the reader key nor the IP is stored as it is: every cache key holds a keyed hash (HMAC with
``SECRET_KEY``), so the cache never holds a buyer's IP address.

Usage::

    decision = ratelimit.reserve_session(reader_key=reader.key, ip=browser_ip(request), trial=offer.is_trial)
    if not decision.allowed:
        ...  # 429, Retry-After: decision.retry_after
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.core.cache import caches
from django.utils import timezone
from django.utils.crypto import salted_hmac

from ..conf import DEFAULTS, paywall_settings
from ..models import OPEN_STATES, EventKind, PurchaseAttempt
from . import attempts, session

if TYPE_CHECKING:
    from wagtail.models import Page

    from ..blocks import Offer

logger = logging.getLogger("wagtail_klarna_paywall.purchase.ratelimit")

#: Limit names in ``RATE_LIMITS``.
READER = "reader"
IP = "ip"
TRIAL_IP = "trial_ip"
#: Paywall-view beacons per IP (see ``paywall_views``).
PAYWALL_VIEW_IP = "paywall_view_ip"

_KEY_PREFIX = "wkp:rl"
_HMAC_SALT = "wagtail_klarna_paywall.ratelimit"


@dataclass(frozen=True)
class Decision:
    """The answer to "may this buy create a session?". ``retry_after`` (seconds) and ``limit`` (the name
    of the limit that was hit) are set when it may not."""

    allowed: bool
    retry_after: int = 0
    limit: str = ""
    #: The counters this decision incremented, for :func:`release`.
    keys: tuple[str, ...] = field(default=(), repr=False)


def limits() -> dict[str, tuple[int, int] | None]:
    """``RATE_LIMITS`` merged over the defaults, so a site can change or disable (``None``) one limit
    without restating the others. ``RATE_LIMITS = None`` disables them all."""
    configured = paywall_settings.RATE_LIMITS
    if configured is None:
        return {}
    merged = {**DEFAULTS["RATE_LIMITS"], **configured}
    result: dict[str, tuple[int, int] | None] = {}
    for name, value in merged.items():
        if value is None:
            result[name] = None
            continue
        count, seconds = value
        result[name] = (int(count), int(seconds))
    return result


def hashed(value: str) -> str:
    """A keyed hash of ``value`` (an IP or a reader key): stable per site, useless without SECRET_KEY."""
    return salted_hmac(_HMAC_SALT, value, algorithm="sha256").hexdigest()[:32]


def _counter_key(name: str, subject: str, window: int) -> str:
    return f"{_KEY_PREFIX}:{name}:{window}:{hashed(subject)}"


def reserve_session(*, reader_key: str, ip: str, trial: bool, now: float | None = None) -> Decision:
    """Count one new Payway session for this reader and IP; refuse if any limit is over.

    A refused reservation counts nothing (no Payway call follows it). An empty ``ip`` (no valid address
    could be read) is not limited per IP: all such requests would otherwise share one counter.
    """
    now = time.time() if now is None else now
    configured = limits()
    checks: list[tuple[str, str]] = [(READER, reader_key)]
    if ip:
        checks.append((IP, ip))
        if trial:
            checks.append((TRIAL_IP, ip))
    cache = caches[paywall_settings.CACHE]
    taken: list[str] = []
    refusal: tuple[str, int] | None = None
    for name, subject in checks:
        limit = configured.get(name)
        if limit is None or not subject:
            continue
        allowed, period = limit
        window = int(now // period)
        key = _counter_key(name, subject, window)
        window_end = (window + 1) * period
        # The counter outlives its window by a little, never less: a key that vanished early would reset
        # the count in the middle of a window.
        cache.add(key, 0, timeout=int(window_end - now) + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, timeout=int(window_end - now) + 1)
            count = 1
        taken.append(key)
        if count > allowed:
            retry_after = max(1, int(window_end - now + 0.999))
            if refusal is None or retry_after > refusal[1]:
                refusal = (name, retry_after)
    if refusal is None:
        return Decision(True, keys=tuple(taken))
    release(Decision(False, keys=tuple(taken)))
    name, retry_after = refusal
    # No raw IP and no raw reader key in the log; the hash prefix still lets an operator see one source.
    logger.warning(
        "Session creation rate-limited: limit=%s reader=%s ip=%s retry_after=%ss",
        name,
        hashed(reader_key)[:12],
        hashed(ip)[:12] if ip else "-",
        retry_after,
    )
    return Decision(False, retry_after=retry_after, limit=name)


def hit(name: str, subject: str, *, now: float | None = None) -> Decision:
    """Count one request against the limit ``name`` for ``subject`` (stored only as a keyed hash).

    The same fixed windows as :func:`reserve_session`, for one limit; nothing to give back afterwards. An
    empty subject, or a limit that is off (``None``), is always allowed.
    """
    limit = limits().get(name)
    if limit is None or not subject:
        return Decision(True)
    now = time.time() if now is None else now
    allowed, period = limit
    window = int(now // period)
    key = _counter_key(name, subject, window)
    window_end = (window + 1) * period
    cache = caches[paywall_settings.CACHE]
    cache.add(key, 0, timeout=int(window_end - now) + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=int(window_end - now) + 1)
        count = 1
    if count > allowed:
        return Decision(False, retry_after=max(1, int(window_end - now + 0.999)), limit=name)
    return Decision(True)


def release(decision: Decision) -> None:
    """Give back what ``decision`` counted: the call it reserved never reached Payway, or it turned out
    to reuse a session after all (two tabs racing)."""
    cache = caches[paywall_settings.CACHE]
    for key in decision.keys:
        with contextlib.suppress(ValueError):  # the window ended meanwhile
            cache.decr(key)


# -- which buys count -------------------------------------------------------------------------------


def needs_new_session(reader: attempts.Reader, offer: Offer, offer_page: Page) -> bool:
    """Whether :func:`session.start_purchase` would call ``create_session`` for this buy.

    Repeated clicks on the same offer reuse the open attempt's session and must not use up the reader's
    budget. Uses the purchase flow's own reuse rule and rebuy guard; a race that makes the guess wrong is
    put right by :func:`settle`.
    """
    now = timezone.now()
    if attempts.previous_order(reader, offer, now, offer_page.get_site()) is not None:
        return False
    attempt = PurchaseAttempt.objects.filter(
        reader_key=reader.key, offer_key=attempts.offer_key(offer_page, offer), state__in=OPEN_STATES
    ).first()
    return attempt is None or not attempts.can_reuse_session(attempt, reader, offer, now)


def created_a_session(result: session.BuyResult) -> bool:
    """Whether the buy that returned ``result`` reached Payway's ``create_session``: a fresh session, a
    failed call, or an identity refused. Not: a reused session, an existing order, a configuration error."""
    if result.attempt is None or result.status == session.BuyStatus.EXISTING:
        return False
    if result.status != session.BuyStatus.READY:
        return True
    # The latest session event of the attempt is the one this buy wrote under the attempt's row lock.
    last = (
        result.attempt.events.filter(kind__in=(EventKind.SESSION_CREATED, EventKind.SESSION_REUSED))
        .order_by("-pk")
        .values_list("kind", flat=True)
        .first()
    )
    return last == EventKind.SESSION_CREATED


def settle(decision: Decision, result: session.BuyResult) -> None:
    """After the buy: give back a reservation that did not end in a ``create_session`` call."""
    if decision.keys and not created_a_session(result):
        release(decision)
