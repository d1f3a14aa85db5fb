"""Where the reader may be sent after placing an order: Klarna's hosts, nothing else.

Payway's order answer names a Klarna URL to send the reader to (step 7). The URL comes from upstream, so
it is checked against ``KLARNA_REDIRECT_HOSTS`` before any redirect; one that fails is recorded and the
reader goes to our confirmation page instead (docs/payway-contract.md#klarna-redirect-allow-list).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings

from ..conf import paywall_settings


def is_allowed_klarna_redirect(url: Any, hosts: Any = None, *, debug: bool | None = None) -> bool:
    """An absolute ``https`` URL, no user info, no port, no odd characters, whose host is one of
    ``KLARNA_REDIRECT_HOSTS`` or a subdomain of one. Anything else is refused
    (docs/payway-contract.md#klarna-redirect-allow-list; docs/reliability.md B10, B11).

    Under ``DEBUG`` only (the sandbox, whose fake Klarna hop is served by runserver), ``http`` and an
    explicit port are accepted too; the host must still be on the list.
    """
    if debug is None:
        debug = bool(django_settings.DEBUG)
    if not isinstance(url, str) or not url or len(url) > 2000:
        return False
    if not url.isascii() or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return False
    if "\\" in url:
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    schemes = ("https", "http") if debug else ("https",)
    if parts.scheme not in schemes or not url.startswith(f"{parts.scheme}://"):
        return False
    host = parts.hostname or ""
    expected_netloc = f"{host}:{port}" if (debug and port is not None) else host
    # The netloc must be exactly a lower-case host name: no user info, no port, no upper case, no
    # trailing-dot tricks.
    if "@" in parts.netloc or parts.netloc != expected_netloc:
        return False
    if not host or not re.fullmatch(r"[a-z0-9.-]+", host) or host.endswith("."):
        return False
    if hosts is None:
        hosts = paywall_settings.KLARNA_REDIRECT_HOSTS
    for allowed in hosts:
        allowed = str(allowed).lower().strip(".")
        if allowed and (host == allowed or host.endswith("." + allowed)):
            return True
    return False


def describe_url(url: str) -> str:
    """Scheme and host of an untrusted URL for the purchase log (never its path or query)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}"
    except ValueError:
        return "?"
