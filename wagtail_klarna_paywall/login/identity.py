"""Where the reader's Payway identity token comes from.

A site that already logs readers into Payway can hand the plugin its own tokens by pointing the
``IDENTITY_PROVIDER`` setting at a class implementing :class:`IdentityProvider`. SSO2 is the default
(``wagtail_klarna_paywall.login.sso.SSO2IdentityProvider``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from django.utils.module_loading import import_string

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
    from ..conf import paywall_settings

    return import_string(paywall_settings.IDENTITY_PROVIDER)()
