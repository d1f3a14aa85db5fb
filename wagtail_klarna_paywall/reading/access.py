"""Does this reader have access to this content? (Payway ``me/active_products``, cached per reader.)

- Anonymous readers (no identity token) have no access, found without any I/O.
- A logged-in reader's product codes are read once per ``ACCESS_CACHE_TTL`` seconds and kept in the
  Django cache under a keyed hash of the reader's SSO session: never under (or next to) the token.
- Any Payway failure means no access (fail closed), logged, never a 500.
- :func:`refresh_access` drops the cached codes, so access is immediate right after a purchase.
- A purchase made in this browser adds the codes it opens for a while (:mod:`.grants`), logged in or not.

:func:`reading` is THE decision of who may read what behind a paywall, preview modes included: the
paywall tag, the API serializer, search and feeds (:mod:`.gating`) all ask it, so the page, the API, search
and feeds agree. It is made from :func:`reader_access` (what the reader holds, asked once per request),
which the purchase pages also use through :func:`offer_is_owned`.

Every check on a logged-in reader, and on a browser holding a grant, marks the request as
reader-dependent (:func:`.cache_headers.mark_reader_dependent`), so its response is sent
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
from ..login.identity import get_identity_provider
from ..payway import get_client
from .cache_headers import mark_reader_dependent
from .grants import Grant, active_grants

if TYPE_CHECKING:
    from django.http import HttpRequest

logger = logging.getLogger(__name__)

#: Cached instead of codes when Payway failed, so a Payway outage is not hit on every page view.
_FAILED = "failed"
#: How long a failed lookup is remembered (seconds), at most ACCESS_CACHE_TTL.
FAILURE_TTL = 15
_REQUEST_ATTR = "_klarna_paywall_products"

#: Reader states the paywall template knows (and preview modes simulate).
ANONYMOUS, READER, SUBSCRIBER = "anonymous", "reader", "subscriber"
#: A reader who reads through a purchase made in this browser (:mod:`.grants`), not a Payway login.
GRANTED = "granted"
#: Request attribute set by ``PaywallPreviewMixin.serve_preview``: "" (editor: everything) or a state.
PREVIEW_MODE_ATTR = "klarna_paywall_preview_mode"


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


@dataclass(frozen=True)
class Reading:
    """How one request's reader meets one paywall: :func:`reading`'s answer."""

    #: ANONYMOUS, READER, SUBSCRIBER or GRANTED.
    state: str
    #: The reader may read what the paywall cuts off.
    reads: bool
    #: In a preview: the editor's chosen mode ("" is the editor's own view: everything, and where it
    #: cuts). None outside previews, and in previews of page models without the preview modes.
    preview_mode: str | None = None


def is_preview(request: HttpRequest | None) -> bool:
    return bool(getattr(request, "is_preview", False))


def reading(request: HttpRequest | None, product_codes: Iterable[str]) -> Reading:
    """THE decision: may this request's reader read past a paywall that opens for ``product_codes``?

    Editors previewing a page read everything, unless they chose a preview mode, which simulates that
    reader without calling Payway. Everyone else reads when they hold one of the codes, by a Payway
    subscription or by a purchase made in this browser (then the state is GRANTED).
    """
    if request is None:
        return Reading(ANONYMOUS, False)
    if is_preview(request):
        mode = getattr(request, PREVIEW_MODE_ATTR, None)
        if mode == "":
            return Reading(SUBSCRIBER, True, preview_mode="")
        if mode in (ANONYMOUS, READER, SUBSCRIBER):
            return Reading(mode, mode == SUBSCRIBER, preview_mode=mode)
        # A preview of a page model without the preview modes: never gate editors.
        return Reading(SUBSCRIBER, True)
    codes = tuple(product_codes)
    decision = reader_access(request)
    if decision.reads(codes):
        return Reading(GRANTED if decision.grant_for(codes) is not None else SUBSCRIBER, True)
    return Reading(READER if decision.logged_in else ANONYMOUS, False)


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
    """Who this reader is for the paywall, and what they hold: Payway is asked once per request, the
    browser's grants are read once per request (and again after :func:`.grants.grant` changed them).

    No I/O at all for a request without a session cookie (no identity token, no grant).
    """
    if request is None:
        return ReaderAccess()
    memo = getattr(request, _REQUEST_ATTR, None)
    if memo is None:
        logged_in, codes = _lookup(request)
        memo = ReaderAccess(logged_in=logged_in, subscribed=codes)
    grants = active_grants(request)
    if memo.grants is not grants:
        memo = ReaderAccess(logged_in=memo.logged_in, subscribed=memo.subscribed, grants=grants)
    setattr(request, _REQUEST_ATTR, memo)
    return memo


def reader_has_access(request: HttpRequest, product_codes: Iterable[str]) -> bool:
    """True when the reader holds any of ``product_codes``. Never True for anonymous readers."""
    return reader_access(request).reads(product_codes)


def owned_product_codes(request: HttpRequest) -> frozenset[str]:
    """The product codes the reader holds now (Payway's and this browser's purchases); empty for
    anonymous readers, on errors, and in previews (which show what a kind of reader sees, whatever the
    editor holds, and never consult the editor's access).

    Paywalls use it to hide an offer whose product the reader already owns.
    """
    if is_preview(request):
        return frozenset()
    return reader_access(request).codes


def forget_request_access(request: HttpRequest) -> None:
    """Forget what this request learnt from Payway: the next check asks again."""
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
        provider = get_identity_provider()
    reader = None
    reader_key = getattr(provider, "reader_key", None)
    if callable(reader_key):
        reader = reader_key(request)
    if not reader and token:
        # A provider that cannot name its reader: a keyed one-way hash, so the key never reveals the token.
        reader = salted_hmac("wagtail_klarna_paywall.access", token).hexdigest()
    return f"wkp:access:{reader}" if reader else None
