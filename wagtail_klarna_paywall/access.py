"""Does this reader have access to this content? (Payway ``me/active_products``, cached per reader.)

- Anonymous readers (no identity token) have no access, found without any I/O.
- A logged-in reader's product codes are read once per ``ACCESS_CACHE_TTL`` seconds and kept in the
  Django cache under a keyed hash of the reader's SSO session: never under (or next to) the token.
- Any Payway failure means no access (fail closed), logged, never a 500.
- :func:`refresh_access` drops the cached codes, so access is immediate right after a purchase.

Every check on a logged-in reader marks the request as reader-dependent
(:func:`wagtail_klarna_paywall.gating.mark_reader_dependent`), so its response is sent
``Cache-Control: private`` / ``Vary: Cookie``; anonymous responses stay cacheable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django.utils.crypto import salted_hmac

from .conf import paywall_settings as conf
from .exceptions import AuthenticationExpired, NotFound, PaywallError

if TYPE_CHECKING:
    from django.http import HttpRequest

logger = logging.getLogger(__name__)

#: Cached instead of codes when Payway failed, so a Payway outage is not hit on every page view.
_FAILED = "failed"
#: How long a failed lookup is remembered (seconds), at most ACCESS_CACHE_TTL.
FAILURE_TTL = 15
_REQUEST_ATTR = "_klarna_paywall_products"


def reader_has_access(request: HttpRequest, product_codes: Iterable[str]) -> bool:
    """True when the reader holds any of ``product_codes``. Never True for anonymous readers."""
    wanted = {code for code in product_codes if code}
    if not wanted:
        return False
    return bool(wanted & owned_product_codes(request))


def offer_access_codes(offer: Any) -> frozenset[str]:
    """The product codes that mean a reader already has what ``offer`` sells: its access codes, else
    (none listed) its own product code. The product code always counts too, for the catalogues whose
    ``active_products`` list package codes."""
    codes = {code for code in (getattr(offer, "access_product_codes", None) or ()) if isinstance(code, str)}
    codes.add(getattr(offer, "product_code", "") or "")
    return frozenset(code for code in codes if code)


def offer_is_owned(request: HttpRequest | None, offer: Any) -> bool:
    """THE decision "this logged-in reader already holds what ``offer`` sells": the paywall hides such an
    offer, and the purchase page, its ``?page=&offer=`` landing and buy refuse to sell it. Never True for
    anonymous readers (no I/O for them); False on a Payway failure (the database guard on placing an
    order still stops a second order of the same product)."""
    if request is None:
        return False
    wanted = offer_access_codes(offer)
    return bool(wanted) and bool(wanted & owned_product_codes(request))


def owned_product_codes(request: HttpRequest) -> frozenset[str]:
    """The Payway product codes the reader holds now; empty for anonymous readers and on errors.

    Paywalls use it to hide an offer whose product the reader already owns.
    """
    memo = getattr(request, _REQUEST_ATTR, None)
    if memo is not None:
        return memo
    codes = _lookup(request)
    setattr(request, _REQUEST_ATTR, codes)
    return codes


def refresh_access(request: HttpRequest) -> None:
    """Forget the cached access of this reader (right after a purchase)."""
    if hasattr(request, _REQUEST_ATTR):
        delattr(request, _REQUEST_ATTR)
    key = _cache_key(request)
    if key:
        caches[conf.CACHE].delete(key)


def _lookup(request: HttpRequest) -> frozenset[str]:
    from .gating import mark_reader_dependent
    from .identity import get_identity_provider

    provider = get_identity_provider()
    token = provider.get_identity_token(request)
    if not token:
        return frozenset()
    mark_reader_dependent(request)
    key = _cache_key(request, provider=provider, token=token)
    cache = caches[conf.CACHE]
    cached = cache.get(key)
    if cached == _FAILED:
        return frozenset()
    if cached is not None:
        return frozenset(cached)
    try:
        codes = _active_products(request, provider, token)
    except PaywallError as err:
        logger.warning("Access check failed; treating the reader as without access: %s", err)
        cache.set(key, _FAILED, min(FAILURE_TTL, conf.ACCESS_CACHE_TTL))
        return frozenset()
    cache.set(key, sorted(codes), conf.ACCESS_CACHE_TTL)
    return codes


def _active_products(request: HttpRequest, provider, token: str) -> frozenset[str]:
    from .payway import get_client

    client = get_client()
    try:
        return frozenset(client.active_products(token).active_products)
    except NotFound:
        # No Payway account is tied to this token: nothing owned.
        return frozenset()
    except AuthenticationExpired:
        # Payway refused the token: drop it, and try once with a fresh one (401 is rejected before
        # execution, so a retry is harmless).
        provider.forget(request)
        fresh = provider.get_identity_token(request)
        if not fresh:
            return frozenset()
        return frozenset(client.active_products(fresh).active_products)


def _cache_key(request: HttpRequest, *, provider=None, token: str | None = None) -> str | None:
    if provider is None:
        from .identity import get_identity_provider

        provider = get_identity_provider()
    reader = None
    reader_key = getattr(provider, "reader_key", None)
    if callable(reader_key):
        reader = reader_key(request)
    if not reader and token:
        # A provider that cannot name its reader: a keyed one-way hash, so the key never reveals the token.
        reader = salted_hmac("wagtail_klarna_paywall.access", token).hexdigest()
    return f"wkp:access:{reader}" if reader else None
