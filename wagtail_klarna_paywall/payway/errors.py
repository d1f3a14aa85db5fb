"""How a failed HTTP exchange becomes one of :mod:`wagtail_klarna_paywall.exceptions`, for both clients.

:mod:`.client` (the Payway API) and :mod:`.sso_client` (SSO2) read failures the same way: a transport
error is "nothing sent" only when the connection was never made, and an error status maps to the same
class whichever host answered. Which retries are then safe is each client's business
(docs/payway-contract.md#never-re-send).
"""

from __future__ import annotations

from typing import Any

import requests
import urllib3.exceptions

from ..exceptions import (
    AccountSyncError,
    AuthenticationExpired,
    NotFound,
    PaymentMethodFailed,
    PaywayAPIError,
    PaywayConnectError,
    PaywayConnectionLost,
    PaywayError,
    PaywayTimeout,
    PermissionDenied,
    RateLimited,
    ServerError,
    ValidationError,
)
from .parsing import ErrorBody
from .types import ACCOUNT_SYNC_ERROR_CODES


def was_sent(err: requests.RequestException) -> bool:
    """Whether a transport failure happened after the request may have reached the server.

    urllib3 re-raises read-phase errors (``ProtocolError``: reset, aborted, remote closed; a read timeout
    while reading the body) directly; connect-phase errors arrive wrapped in ``MaxRetryError`` once the
    connect retries are spent. Anything unrecognised counts as not sent, which is only ever retried by
    callers for idempotent reads.
    """
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return True
    cause = err.args[0] if err.args else None
    return isinstance(cause, (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError))


def transport_error(err: requests.RequestException, endpoint: str, *, service: str = "Payway") -> PaywayError:
    """The exception for a request that got no answer. Its message names the failure's class only:
    requests' own text can quote the URL and the request."""
    kind = type(err).__name__
    if isinstance(err, requests.ConnectTimeout):
        return PaywayConnectError(f"Connecting to {service} timed out ({kind})", endpoint=endpoint)
    if isinstance(err, requests.ReadTimeout):
        return PaywayTimeout(f"{service} did not answer in time ({kind})", endpoint=endpoint)
    if was_sent(err):
        return PaywayConnectionLost(
            f"The connection to {service} broke after sending ({kind})", endpoint=endpoint
        )
    return PaywayConnectError(f"Could not connect to {service} ({kind})", endpoint=endpoint)


def retry_after(response: requests.Response) -> float | None:
    """A ``Retry-After`` given in seconds, or None."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def api_error(
    response: requests.Response, body: ErrorBody, endpoint: str, *, payment_refusal: bool = False
) -> PaywayAPIError:
    """Map an error status to the hierarchy. ``payment_refusal``: a 403 here means Klarna refused the
    reader (an order path, with no code or a documented one), not a missing permission."""
    status = response.status_code
    kwargs: dict[str, Any] = {"endpoint": endpoint, "status": status, "code": body.code, "field": body.field}
    if status == 400:
        sync_error = ACCOUNT_SYNC_ERROR_CODES.get(body.code)
        if sync_error is not None:
            return AccountSyncError(body.message, sync_error=sync_error, **kwargs)
        return ValidationError(body.message, **kwargs)
    if status == 401:
        return AuthenticationExpired(body.message, **kwargs)
    if status == 403:
        if payment_refusal:
            return PaymentMethodFailed(body.message, **kwargs)
        # A missing scope, identity or permission, on any path: a configuration error for the editors,
        # never "Klarna refused you" for the reader.
        return PermissionDenied(body.message, **kwargs)
    if status == 404:
        return NotFound(body.message, **kwargs)
    if status == 429:
        return RateLimited(body.message, retry_after=retry_after(response), **kwargs)
    if status >= 500:
        return ServerError(body.message, **kwargs)
    return PaywayAPIError(body.message, **kwargs)
