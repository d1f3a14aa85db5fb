"""Does this reader have access to this content? (Payway ``me/active_products``, cached per reader.)

- Anonymous readers (no identity token) have no access, found without any I/O.
- A logged-in reader's product codes are read once per ``ACCESS_CACHE_TTL`` seconds and kept in the
  Django cache under a keyed hash of the reader's SSO session: never under (or next to) the token.
- Any Payway failure means no access (fail closed), logged, never a 500.
- :func:`refresh_access` drops the cached codes, so access is immediate right after a purchase.
- A purchase made in this browser adds the codes it opens for a while (:mod:`.grants`), logged in or not.

:func:`reader_access` is THE decision of who may read what: the paywall tag, the API serializer and every
other gate (:mod:`.gating`) go through it (or through :func:`reader_has_access` and
:func:`owned_product_codes`, which are made from it), so the page, the API, search and feeds agree.

Every check on a logged-in reader, and on a browser holding a grant, marks the request as
reader-dependent (:func:`wagtail_klarna_paywall.reading.gating.mark_reader_dependent`), so its response is
sent
``Cache-Control: private`` / ``Vary: Cookie``; anonymous responses stay cacheable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django.utils.crypto import salted_hmac

from ..conf import paywall_settings as conf
from ..exceptions import AuthenticationExpired, NotFound, PaywallError

if TYPE_CHECKING:
    from django.http import HttpRequest

    from .grants import Grant

logger = logging.getLogger(__name__)

#: Cached instead of codes when Payway failed, so a Payway outage is not hit on every page view.
_FAILED = "failed"
#: How long a failed lookup is remembered (seconds), at most ACCESS_CACHE_TTL.
FAILURE_TTL = 15
_REQUEST_ATTR = "_klarna_paywall_products"


@dataclass(frozen=True)
class ReaderAccess:
    """What one reader may read, decided once per request by :func:`reader_access`."""

    #: The reader has a Payway identity here (``active_products`` was asked).
    logged_in: bool = False
    #: Product codes Payway's ``me/active_products`` lists for the reader.
    subscribed: frozenset[str] = frozenset()
    #: Purchases made in this browser that count now (:mod:`.grants`), newest first.
    grants: tuple[Grant, ...] = ()

    @property
    def granted(self) -> frozenset[str]:
        return frozenset().union(*(grant.codes for grant in self.grants))

    @property
    def codes(self) -> frozenset[str]:
        """Every code the reader holds now: subscribed or granted."""
        return self.subscribed | self.granted

    def reads(self, product_codes: Iterable[str]) -> bool:
        """True when the reader holds any of ``product_codes`` (never for an empty list)."""
        wanted = {code for code in product_codes if code}
        return bool(wanted & self.codes)

    def grant_for(self, product_codes: Iterable[str]) -> Grant | None:
        """The grant the reader reads ``product_codes`` through, when their subscription does not."""
        wanted = {code for code in product_codes if code}
        if not wanted or wanted & self.subscribed:
            return None
        return next((grant for grant in self.grants if wanted & grant.codes), None)


def offer_is_owned(request: HttpRequest | None, offer: Any) -> bool:
    """THE decision "this reader already holds what ``offer`` sells": the paywall hides such an offer, and
    the purchase page, its ``?page=&offer=`` landing and buy refuse to sell it.

    Held means every product the offer grants (``Offer.grants``, from the catalogue) is among the reader's
    codes, so an upgrade (a package with one product more) is still sold; or the offered code itself is,
    for catalogues whose ``active_products`` list package codes. Never True for a reader without a
    session (no I/O for them); False on a Payway failure (the database guard on placing an order still
    stops a second order of the same product).
    """
    if request is None:
        return False
    owned = owned_product_codes(request)
    return bool(owned) and holds(offer, owned)


def holds(offer: Any, owned: frozenset[str] | set[str]) -> bool:
    """:func:`offer_is_owned` for a known set of codes the reader holds."""
    granted = {code for code in (getattr(offer, "grants", None) or ()) if isinstance(code, str) and code}
    return (bool(granted) and granted <= set(owned)) or (getattr(offer, "product_code", "") or "") in owned


def reader_access(request: HttpRequest | None) -> ReaderAccess:
    """Who this reader is for the paywall, and what they may read: asked once per request.

    No I/O at all for a request without a session cookie (no identity token, no grant).
    """
    if request is None:
        return ReaderAccess()
    memo = getattr(request, _REQUEST_ATTR, None)
    if memo is not None:
        return memo
    from .grants import active_grants

    logged_in, codes = _lookup(request)
    decision = ReaderAccess(logged_in=logged_in, subscribed=codes, grants=active_grants(request))
    setattr(request, _REQUEST_ATTR, decision)
    return decision


def reader_has_access(request: HttpRequest, product_codes: Iterable[str]) -> bool:
    """True when the reader holds any of ``product_codes``. Never True for anonymous readers."""
    return reader_access(request).reads(product_codes)


def owned_product_codes(request: HttpRequest) -> frozenset[str]:
    """The product codes the reader holds now (Payway's and this browser's purchases); empty for
    anonymous readers and on errors.

    Paywalls use it to hide an offer whose product the reader already owns.
    """
    return reader_access(request).codes


def forget_request_access(request: HttpRequest) -> None:
    """Forget this request's decision (a grant was added or dropped): the next check decides again."""
    if hasattr(request, _REQUEST_ATTR):
        delattr(request, _REQUEST_ATTR)


def refresh_access(request: HttpRequest) -> None:
    """Forget the cached access of this reader (right after a purchase)."""
    forget_request_access(request)
    key = _cache_key(request)
    if key:
        caches[conf.CACHE].delete(key)


def _lookup(request: HttpRequest) -> tuple[bool, frozenset[str]]:
    """(logged in, Payway's active products) for the reader."""
    from ..login.identity import get_identity_provider
    from .gating import mark_reader_dependent

    provider = get_identity_provider()
    token = provider.get_identity_token(request) if provider is not None else None
    if not token:
        return False, frozenset()
    mark_reader_dependent(request)
    key = _cache_key(request, provider=provider, token=token)
    cache = caches[conf.CACHE]
    cached = cache.get(key)
    if cached == _FAILED:
        return True, frozenset()
    if cached is not None:
        return True, frozenset(cached)
    try:
        codes = _active_products(request, provider, token)
    except PaywallError as err:
        logger.warning("Access check failed; treating the reader as without access: %s", err)
        cache.set(key, _FAILED, min(FAILURE_TTL, conf.ACCESS_CACHE_TTL))
        return True, frozenset()
    cache.set(key, sorted(codes), conf.ACCESS_CACHE_TTL)
    return True, codes


def _active_products(request: HttpRequest, provider, token: str) -> frozenset[str]:
    from ..payway import get_client

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
        from ..login.identity import get_identity_provider

        provider = get_identity_provider()
    reader = None
    reader_key = getattr(provider, "reader_key", None)
    if callable(reader_key):
        reader = reader_key(request)
    if not reader and token:
        # A provider that cannot name its reader: a keyed one-way hash, so the key never reveals the token.
        reader = salted_hmac("wagtail_klarna_paywall.reading.access", token).hexdigest()
    return f"wkp:access:{reader}" if reader else None
