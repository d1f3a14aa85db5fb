"""Server-to-server calls to Payway SSO2 (``sessionstatus``, ``logout``).

Kept apart from :mod:`.client` because SSO2 lives on another host, speaks JWTs instead of bearer
tokens, and needs no access token at all. It follows the same rules: one pooled ``requests.Session``
per process, ``timeout=(connect, read)`` on every call, failures converted into the package's own
exceptions exactly as the API client's are (:mod:`.errors`), and no retries (a logout that may have
reached SSO2 is not re-sent).

The JWTs themselves are built and read by :mod:`wagtail_klarna_paywall.login.sso`; this module only moves
them: ``POST {sso}/<operation>`` with ``{"t": "<jwt>"}`` and back ``{"t": "<jwt>"}``.
"""

from __future__ import annotations

from typing import Any

import requests

from ..conf import paywall_settings
from ..exceptions import MalformedResponse, PaywayAPIError
from . import ProcessWide, errors
from .parsing import ErrorBody

SESSION_STATUS = "sessionstatus"
LOGOUT = "logout"


class SSO2Client:
    """Posts signed JWTs to SSO2 and returns the JWT it answers with (unverified: the caller verifies)."""

    def __init__(
        self,
        *,
        base_url: str,
        connect_timeout: float = 3.05,
        read_timeout: float = 15.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self._session = session or requests.Session()
        self._session.headers.update({"Accept": "application/json"})

    def close(self) -> None:
        self._session.close()

    def session_status(self, token: str) -> str:
        """``POST {sso}/sessionstatus``. Returns SSO2's answer JWT.

        Raises :class:`PaywayConnectError`, :class:`PaywayTimeout`, :class:`PaywayAPIError` subclasses
        on an error status, :class:`MalformedResponse` when the answer holds no ``t``.
        """
        return self._post(SESSION_STATUS, token)

    def logout(self, token: str) -> str:
        """``POST {sso}/logout``: end the reader's SSO session. Same exceptions as :meth:`session_status`."""
        return self._post(LOGOUT, token)

    def _post(self, operation: str, token: str) -> str:
        endpoint = f"/{operation}"
        try:
            response = self._session.post(self.base_url + endpoint, json={"t": token}, timeout=self.timeout)
        except requests.RequestException as err:
            # Read like the Payway API's failures: a connection broken after sending is not "nothing sent".
            raise errors.transport_error(err, endpoint, service="SSO2") from err

        if response.status_code >= 400:
            raise _api_error(response, endpoint)
        try:
            body: Any = response.json()
        except ValueError as err:
            raise MalformedResponse(
                "SSO2 answered with non-JSON", endpoint=endpoint, status=response.status_code
            ) from err
        answer = body.get("t") if isinstance(body, dict) else None
        if not isinstance(answer, str) or not answer:
            raise MalformedResponse(
                "SSO2 answer holds no token", endpoint=endpoint, status=response.status_code
            )
        return answer


def _api_error(response: requests.Response, endpoint: str) -> PaywayAPIError:
    """SSO2's error status as the same exception the Payway API's would be (``message`` or ``err`` kept for
    operators' logs only; it never reaches readers)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    error_body = ErrorBody(
        code=str(body.get("code") or ""), message=str(body.get("message") or body.get("err") or "")
    )
    return errors.api_error(response, error_body, endpoint)


def _build_sso_client() -> SSO2Client:
    return SSO2Client(
        base_url=paywall_settings.SSO_URL,
        connect_timeout=paywall_settings.CONNECT_TIMEOUT,
        read_timeout=paywall_settings.READ_TIMEOUT,
    )


_sso = ProcessWide(_build_sso_client)


def get_sso_client() -> SSO2Client:
    """The process-wide SSO2 client, built from the ``WAGTAIL_KLARNA_PAYWALL`` settings."""
    return _sso.get()


def reset_sso_client() -> None:
    """Forget the process-wide client (after a settings change: :mod:`..signal_handlers`; between tests)."""
    _sso.reset()
