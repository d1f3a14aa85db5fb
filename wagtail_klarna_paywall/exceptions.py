"""One typed hierarchy for every failure the package can raise.

Upstream text (Payway's ``message``) is kept on the exception for logs an operator reads, never shown to
readers: reader-facing texts come from :mod:`wagtail_klarna_paywall.messages`.

::

    PaywallError
    ├── ConfigurationError
    ├── InvalidSSOToken                     an SSO2 JWT failed verification (signature, time, sid/sts)
    ├── SSOLoginFailed                      a verified SSO2 login could not be finished here
    └── PaywayError
        ├── PaywayTransportError            nothing usable came back
        │   ├── PaywayConnectError          nothing was sent (safe to retry)
        │   └── PaywayTimeout               read timeout: the request may have reached Payway
        │       └── PaywayConnectionLost    connection broke after sending: same uncertainty
        ├── MalformedResponse               a 2xx we cannot read
        └── PaywayAPIError                  an HTTP error status with Payway's {code, field, message}
            ├── ValidationError             400
            │   └── AccountSyncError        400 from one of the four raise_on_* flags
            ├── AuthenticationExpired       401
            ├── PaymentMethodFailed         403 on place_order / place_trial_order, documented code or none
            ├── PermissionDenied            any other 403 (missing scope, identity or permission)
            ├── NotFound                    404
            ├── RateLimited                 429 (``retry_after`` from Retry-After)
            └── ServerError                 5xx
"""

from __future__ import annotations


class PaywallError(Exception):
    """Base class of every error this package raises."""

    #: Stable machine code, stored on purchase attempts and mapped to reader messages.
    error_code: str = "error"


class ConfigurationError(PaywallError):
    error_code = "configuration"


class InvalidSSOToken(PaywallError):
    """An SSO2 JWT (from the landing URL or a server answer) is tampered, expired, replayed or not for us."""

    error_code = "sso_token_invalid"


class SSOLoginFailed(PaywallError):
    """A verified SSO2 login could not be finished (ticket exchange refused, cookie-only sessions).

    ``cause`` is a short code for the editors' error panel; ``detail`` at most an exception class name.
    """

    error_code = "sso_login_failed"

    def __init__(self, cause: str, *, detail: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        self.detail = detail


class PaywayError(PaywallError):
    """Any failure talking to Payway. ``endpoint`` is the path called (never with secrets)."""

    error_code = "payway_error"
    #: Whether the request may have been executed by Payway. A POST that may have been executed is
    #: never re-sent (docs/payway-contract.md#never-re-send).
    may_have_reached_payway: bool = True

    def __init__(self, message: str = "", *, endpoint: str = "") -> None:
        super().__init__(message or self.__class__.__name__)
        self.endpoint = endpoint


class PaywayTransportError(PaywayError):
    error_code = "unavailable"


class PaywayConnectError(PaywayTransportError):
    """The connection could not be made: nothing reached Payway."""

    error_code = "unavailable"
    may_have_reached_payway = False


class PaywayTimeout(PaywayTransportError):
    """Payway did not answer in time after the request was sent."""

    error_code = "timeout"


class PaywayConnectionLost(PaywayTimeout):
    """The connection broke after the request was sent (reset, aborted, truncated reply).

    Handled like a read timeout: Payway may have executed the request, so its outcome is unknown.
    """


class MalformedResponse(PaywayError):
    """A 2xx response that is not JSON or lacks a required field."""

    error_code = "malformed_response"

    def __init__(self, message: str = "", *, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(message, endpoint=endpoint)
        self.status = status


class PaywayAPIError(PaywayError):
    """Payway answered with an error status. ``code``/``field``/``message`` come from its error body."""

    error_code = "api_error"

    def __init__(
        self,
        message: str = "",
        *,
        endpoint: str = "",
        status: int,
        code: str = "",
        field: str = "",
    ) -> None:
        # Payway's message can quote what was sent (a personnummer, an e-mail), so it stays out of
        # ``args`` (and so out of repr() and error reports) and lives only on ``upstream_message``.
        super().__init__("", endpoint=endpoint)
        self.status = status
        self.code = code
        self.field = field
        self.upstream_message = message

    def __str__(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.code:
            parts.append(self.code)
        if self.field:
            parts.append(f"field={self.field}")
        return f"{self.__class__.__name__}({', '.join(parts)}) at {self.endpoint}"


class ValidationError(PaywayAPIError):
    """400: a parameter failed Payway's validation; ``field`` names it when Payway says."""

    error_code = "validation"
    may_have_reached_payway = False


class AccountSyncError(ValidationError):
    """400 raised because one of the ``raise_on_*`` flags was true and account sync hit that problem.

    ``error_code`` is one of ``ssn_already_taken``, ``ssn_already_set``, ``account_update``,
    ``delivery_address`` (see :data:`wagtail_klarna_paywall.payway.types.ACCOUNT_SYNC_ERROR_CODES`).
    """

    def __init__(self, message: str = "", *, sync_error: str, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.error_code = sync_error


class AuthenticationExpired(PaywayAPIError):
    """401: the access token is missing, expired or revoked. Rejected before execution."""

    error_code = "authentication_expired"
    may_have_reached_payway = False


class PaymentMethodFailed(PaywayAPIError):
    """403 on place_order / place_trial_order with the documented code, or with none: Klarna refused the
    reader and Payway terminated the subscription (docs/payway-contract.md, "Errors")."""

    error_code = "payment_method_failed"


class PermissionDenied(PaywayAPIError):
    """Any other 403 (on every path, order paths included): the token lacks a scope, an identity or a
    permission. A configuration error: editors must see it, readers are told payments cannot be taken."""

    error_code = "permission_denied"
    may_have_reached_payway = False


class NotFound(PaywayAPIError):
    error_code = "not_found"
    may_have_reached_payway = False


class RateLimited(PaywayAPIError):
    """429: Payway asks us to slow down. ``retry_after`` is its ``Retry-After`` in seconds, when given.

    Whether a rate-limited POST was executed is undocumented, so it keeps ``may_have_reached_payway``.
    """

    error_code = "rate_limited"

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(PaywayAPIError):
    """5xx: Payway failed; for a POST the outcome is unknown."""

    error_code = "server_error"
