"""The Payway API client: the only code in the package that speaks HTTP.

``get_client()`` builds one client per process from the ``WAGTAIL_KLARNA_PAYWALL`` settings, so its
``requests.Session`` (and connection pool) and its cached system token are shared by every request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from ..conf import paywall_settings
from .client import PaywayClient

__all__ = ["PaywayClient", "ProcessWide", "get_client", "reset_client"]


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class ProcessWide(Generic[C]):
    """One lazily built client per process, shared by every thread (with its connection pool)."""

    def __init__(self, build: Callable[[], C]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: C | None = None

    def get(self) -> C:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value

    def reset(self) -> None:
        """Close and forget the client (after a settings change, and between tests)."""
        with self._lock:
            if self._value is not None:
                self._value.close()
            self._value = None


def _build_client() -> PaywayClient:
    return PaywayClient(
        base_url=paywall_settings.API_URL,
        client_id=paywall_settings.CLIENT_ID,
        client_secret=paywall_settings.CLIENT_SECRET,
        connect_timeout=paywall_settings.CONNECT_TIMEOUT,
        read_timeout=paywall_settings.READ_TIMEOUT,
    )


_payway = ProcessWide(_build_client)


def get_client() -> PaywayClient:
    """The process-wide Payway client, built from the ``WAGTAIL_KLARNA_PAYWALL`` settings."""
    return _payway.get()


def reset_client() -> None:
    """Forget the process-wide client (after a settings change: :mod:`..signal_handlers`; between tests)."""
    _payway.reset()
