"""Limits on how often readers may make us create a Payway session (docs/reliability.md S13).

Each ``create_session`` costs a Payway call and opens a Klarna session; free trials are abuse magnets
(OWASP's payment gateway cheat sheet). :func:`~.session.start_purchase` calls :func:`reserve_session`
right before ``create_session``, and only then: the flow decides when a new session is needed, the
limiter is told; repeated clicks that reuse the open session never count.
Counters are fixed windows in Django's cache (``CACHE``): ``cache.add`` then ``cache.incr`` is atomic on
Redis and memcached and good enough on the local-memory cache of a single process.

Neither the reader key nor the IP is stored as it is: every cache key holds a keyed hash (HMAC with
``SECRET_KEY``), so the cache never holds a buyer's IP address.

Usage (as ``start_purchase`` does)::

    decision = ratelimit.reserve_session(reader_key=reader.key, ip=ip, trial=offer.is_trial)
    if not decision.allowed:
        ...  # nothing is sent; the buy view answers 429, Retry-After: decision.retry_after
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field

from django.core.cache import caches
from django.utils.crypto import salted_hmac

from ..conf import DEFAULTS, paywall_settings

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
    taken: list[str] = []
    refusal: tuple[str, int] | None = None
    for name, subject in checks:
        limit = configured.get(name)
        if limit is None or not subject:
            continue
        key, within, retry_after = _count(name, subject, limit, now)
        taken.append(key)
        if not within and (refusal is None or retry_after > refusal[1]):
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
    _key, within, retry_after = _count(name, subject, limit, time.time() if now is None else now)
    if not within:
        return Decision(False, retry_after=retry_after, limit=name)
    return Decision(True)


def _count(name: str, subject: str, limit: tuple[int, int], now: float) -> tuple[str, bool, int]:
    """Count one more for ``subject`` in the current fixed window of limit ``name``: (the counter's key,
    whether the count is within the limit, seconds until the window ends)."""
    allowed, period = limit
    window = int(now // period)
    key = _counter_key(name, subject, window)
    window_end = (window + 1) * period
    cache = caches[paywall_settings.CACHE]
    # The counter outlives its window by a little, never less: a key that vanished early would reset the
    # count in the middle of a window.
    cache.add(key, 0, timeout=int(window_end - now) + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=int(window_end - now) + 1)
        count = 1
    return key, count <= allowed, max(1, int(window_end - now + 0.999))


def release(decision: Decision) -> None:
    """Give back what ``decision`` counted (a refused reservation counts nothing)."""
    cache = caches[paywall_settings.CACHE]
    for key in decision.keys:
        with contextlib.suppress(ValueError):  # the window ended meanwhile
            cache.decr(key)
