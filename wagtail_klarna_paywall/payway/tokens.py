"""The system-token cache (docs/payway-contract.md#tokens).

A system token (``grant_type=none``) is shared by every request of the process, so it is cached in the
client object, in memory only: never in Django's cache, where another process or a cache dump could read it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .types import AccessToken

#: A cached token is replaced this many seconds before Payway says it expires, so a call never starts
#: with a token that runs out on the way.
TOKEN_REFRESH_MARGIN = 60


class SystemTokenCache:
    """Holds one token and fetches a new one through ``fetch`` when it is missing or about to expire.

    The lock is held while fetching, so concurrent requests that find the token expired wait for one
    fetch instead of each asking Payway for a token.
    """

    def __init__(self, fetch: Callable[[], AccessToken], *, margin: float = TOKEN_REFRESH_MARGIN) -> None:
        self._fetch = fetch
        self._margin = margin
        self._lock = threading.Lock()
        self._token: AccessToken | None = None

    def get(self) -> AccessToken:
        with self._lock:
            if self._token is None or self._token.expires_within(self._margin):
                self._token = self._fetch()
            return self._token

    def invalidate(self, token: AccessToken) -> None:
        """Forget ``token`` (Payway rejected it). A newer token another thread already fetched is kept."""
        with self._lock:
            if self._token is token:
                self._token = None

    def clear(self) -> None:
        with self._lock:
            self._token = None
