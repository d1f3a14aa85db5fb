"""Who the reader is: their Payway identity token (through the identity provider) and their address.

A site that already logs readers into Payway can hand the plugin its own tokens by pointing the
``IDENTITY_PROVIDER`` setting at a class implementing :class:`IdentityProvider`. SSO2 is the default
(``wagtail_klarna_paywall.login.sso.SSO2IdentityProvider``).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Protocol

from django.utils.module_loading import import_string

from ..conf import paywall_settings

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


def get_identity_provider() -> IdentityProvider:
    return import_string(paywall_settings.IDENTITY_PROVIDER)()


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
