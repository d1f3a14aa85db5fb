"""Who the reader is: their Payway identity token (through the identity provider) and their address.

A site that already logs readers into Payway can hand the plugin its own tokens by pointing the
``IDENTITY_PROVIDER`` setting at a class implementing :class:`IdentityProvider`. SSO2 is the default
(``wagtail_klarna_paywall.login.sso.SSO2IdentityProvider``); an empty setting means readers never log in.

One policy for a wrong setting: the system check ``wagtail_klarna_paywall.E014`` reports a path that does
not import at startup, and at run time :func:`get_identity_provider` raises :class:`ConfigurationError`
for it wherever it is asked (the paywall, the purchase flow and the access check alike), instead of one
caller failing while another quietly carries on as if the reader were anonymous.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import TYPE_CHECKING, Protocol

from django.utils.module_loading import import_string

from ..conf import SETTINGS_NAME, paywall_settings
from ..exceptions import ConfigurationError

if TYPE_CHECKING:
    from django.http import HttpRequest


class IdentityProvider(Protocol):
    def get_identity_token(self, request: HttpRequest) -> str | None:
        """A valid Payway access token *with identity* for this reader, or None if not logged in."""

    def login_url(self, request: HttpRequest, next_url: str) -> str:
        """Where to send the reader to log in to Payway, returning to ``next_url``."""

    def forget(self, request: HttpRequest) -> None:
        """Drop the reader's token (Payway answered 401 to it)."""

    # Optional: ``reader_key(request) -> str | None``, a stable opaque key for the logged-in reader (never
    # the token). Per-reader caches (access checks) use it; without it they key on a one-way hash of the
    # token instead, which changes whenever the token does.


@functools.cache
def get_identity_provider() -> IdentityProvider | None:
    """The site's identity provider, built once per process (and again after the setting changes, see
    :mod:`wagtail_klarna_paywall.signal_handlers`); None when ``IDENTITY_PROVIDER`` is empty.

    Raises :class:`ConfigurationError` when the setting names nothing that imports.
    """
    path = paywall_settings.IDENTITY_PROVIDER
    if not path:
        return None
    if not isinstance(path, str):
        raise ConfigurationError(f"{SETTINGS_NAME}['IDENTITY_PROVIDER'] must be a dotted path")
    try:
        provider_class = import_string(path)
    except ImportError as err:
        raise ConfigurationError(f"{SETTINGS_NAME}['IDENTITY_PROVIDER'] {path!r} cannot be imported") from err
    return provider_class()


def reset_identity_provider() -> None:
    """Forget the cached provider (after a settings change, and between tests)."""
    get_identity_provider.cache_clear()


def client_ip(request: HttpRequest) -> str:
    """The reader's IP address, normalised, or "" when none can be read.

    X-Forwarded-For is honoured for exactly ``TRUSTED_PROXY_COUNT`` hops; a hop that is not an address
    falls back to REMOTE_ADDR. THE reading of the reader's address: sent to Payway with an order, signed
    into SSO2's session tokens, and counted by the rate limits.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    candidate = remote
    proxies = int(paywall_settings.TRUSTED_PROXY_COUNT or 0)
    if proxies > 0:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= proxies:
            candidate = hops[-proxies]
    for value in (candidate, remote):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            continue
    return ""
