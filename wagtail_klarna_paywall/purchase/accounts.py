"""Who a reader is for the money rules: keyed hashes of their Payway account and of a typed e-mail address.

A logged-in reader is their Payway *account*, whatever the browser, device or login: two Django sessions
of one account are one reader, so the one-order-per-product guard
(:func:`wagtail_klarna_paywall.purchase.orders.place_order`) keys on :func:`account_key`. The account id comes
from ``GET /v3/me`` with the reader's identity token and is cached per reader in the Django cache under a
keyed hash of the reader (never under, or next to, the token). What is cached and stored is a keyed hash
of the account id, not the id.

A new customer has no account yet; the e-mail address typed at checkout names the account Payway will
put the order on, so :func:`email_key` (a keyed hash of the normalised address, never the address) also
counts as the reader when the order is placed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.core.cache import caches
from django.utils.crypto import salted_hmac

from ..conf import paywall_settings as conf
from ..exceptions import PaywallError
from ..login.identity import get_identity_provider
from ..payway import get_client

if TYPE_CHECKING:
    from django.http import HttpRequest

    from ..payway.types import Account

logger = logging.getLogger(__name__)

ACCOUNT_PREFIX = "account:"
EMAIL_PREFIX = "email:"
#: The account behind an SSO login never changes, so its key is kept for a day (the cache key already
#: changes with every new login).
ACCOUNT_CACHE_TTL = 24 * 3600


def _digest(namespace: str, value: str) -> str:
    return salted_hmac(f"wagtail_klarna_paywall.{namespace}", value, algorithm="sha256").hexdigest()


def key_for_account_id(account_id: str) -> str:
    """``account:<keyed hash of the Payway account id>``."""
    return ACCOUNT_PREFIX + _digest("account", account_id)


def email_key(email: str) -> str:
    """``email:<keyed hash of the lower-cased, stripped address>``; ``""`` for an empty address."""
    normalised = (email or "").strip().lower()
    return EMAIL_PREFIX + _digest("email", normalised) if normalised else ""


def account_key(request: HttpRequest | None, identity_token: str | None) -> str | None:
    """The reader's account key, or None (no identity token, or Payway could not say whose it is).

    Cached per reader; a failure is not cached, so the next buy or submit asks again.
    """
    if not identity_token:
        return None
    cache = caches[conf.CACHE]
    cache_key = _cache_key(request, identity_token)
    cached = cache.get(cache_key)
    if isinstance(cached, str) and cached.startswith(ACCOUNT_PREFIX):
        return cached
    account = _fetch(request, identity_token)
    return key_for_account_id(account.id) if account is not None else None


def customer_details(request: HttpRequest | None, identity_token: str | None) -> dict[str, str]:
    """A logged-in reader's e-mail and names from their Payway account, to prefill the new-customer form
    (trials go through Payway's v2 ``place_trial_order``, which needs ``customer_info``), so they retype
    nothing. Empty when there is no token or Payway cannot say. Read each time, never cached: personal
    data stays in the request (the account key is cached as a side effect)."""
    account = _fetch(request, identity_token) if identity_token else None
    if account is None:
        return {}
    details = {"email": account.email, "first_name": account.first_name, "last_name": account.last_name}
    return {name: value for name, value in details.items() if value}


def _fetch(request: HttpRequest | None, identity_token: str) -> Account | None:
    """``GET /v3/me``; caches the account's key for :func:`account_key`. None when Payway cannot say."""

    try:
        account = get_client().current_account(identity_token)
    except PaywallError as err:
        logger.warning("Could not read the reader's Payway account: %s", type(err).__name__)
        return None
    caches[conf.CACHE].set(
        _cache_key(request, identity_token), key_for_account_id(account.id), ACCOUNT_CACHE_TTL
    )
    return account


def _cache_key(request: HttpRequest | None, identity_token: str) -> str:
    reader = None
    if request is not None:
        try:
            reader_key = getattr(get_identity_provider(), "reader_key", None)
            reader = reader_key(request) if callable(reader_key) else None
        except (ImportError, PaywallError):
            reader = None
    # Without a provider key: a keyed one-way hash of the token, so the cache key never reveals it.
    reader = reader or _digest("account-token", identity_token)
    return f"wkp:account:{reader}"
