"""The Payway API client: the only code in the package that speaks HTTP.

``get_client()`` builds one client per process from the ``WAGTAIL_KLARNA_PAYWALL`` settings, so its
``requests.Session`` (and connection pool) and its cached system token are shared by every request.
"""

from __future__ import annotations

import threading

from .client import PaywayClient

__all__ = ["PaywayClient", "get_client", "reset_client"]

_lock = threading.Lock()
_client: PaywayClient | None = None


def get_client() -> PaywayClient:
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                from ..conf import paywall_settings as conf

                _client = PaywayClient(
                    base_url=conf.API_URL,
                    client_id=conf.CLIENT_ID,
                    client_secret=conf.CLIENT_SECRET,
                    connect_timeout=conf.CONNECT_TIMEOUT,
                    read_timeout=conf.READ_TIMEOUT,
                )
    return _client


def reset_client() -> None:
    """Forget the process-wide client (after a settings change, and between tests)."""
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None
