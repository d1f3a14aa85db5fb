"""One typed hierarchy for every failure the package can raise, and what each failure means.

Upstream text (Payway's ``message``) is kept on the exception for logs an operator reads, never shown to
readers: reader-facing texts come from :mod:`wagtail_klarna_paywall.messages`, keyed by :class:`ErrorCode`.

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

Each class classifies its failure once, so callers read attributes instead of listing classes:

- ``error_code``: the stable :class:`ErrorCode` stored on attempts and events and mapped to reader text;
- ``may_have_reached_payway``: Payway may have executed the request, so it is never re-sent and its
  outcome is settled by reconciliation (docs/payway-contract.md#never-re-send);
- ``refused``: Payway answered this request with a definite no; nothing was bought, and sending the same
  request again gets the same answer;
- ``transient``: Payway (or the way to it) is briefly unable; the same request may work in a while, so the
  reader is told to try again later (HTTP 503).

=======================  ====================  =======  =========
class                    may_have_reached      refused  transient
=======================  ====================  =======  =========
PaywallError (base)      yes (unknown)         no       no
ConfigurationError       no                    no       no
InvalidSSOToken          no                    no       no
SSOLoginFailed           no                    no       no
PaywayError (base)       yes                   no       no
PaywayTransportError     yes                   no       yes
PaywayConnectError       no                    no       yes
PaywayTimeout (+Lost)    yes                   no       yes
MalformedResponse        yes                   no       yes
PaywayAPIError (other)   yes                   yes      no
ValidationError (+Sync)  no                    yes      no
AuthenticationExpired    no                    no       no
PaymentMethodFailed      yes                   yes      no
PermissionDenied         no                    yes      no
NotFound                 no                    yes      no
RateLimited              yes                   no       yes
ServerError              yes                   no       yes
=======================  ====================  =======  =========
"""

from __future__ import annotations

import enum


class ErrorCode(str, enum.Enum):
    """Every code the package stores on a purchase attempt or event and maps to a reader message.

    The values are what the database holds (``PurchaseAttempt.error_code``, ``PurchaseEvent.error_code``):
    never change one without a data migration. A member compares equal to its value, and ``str()`` gives the
    value (``enum.StrEnum`` is Python 3.11+; this package supports 3.10).
    """

    # -- the flow's own outcomes (no exception) -----------------------------------------------------
    BAD_REQUEST = "bad_request"
    OFFER_NOT_FOUND = "offer_not_found"
    MISSING_AUTHORIZATION = "missing_authorization"
    INVALID_CUSTOMER = "invalid_customer"
    DECLINED_IN_WIDGET = "declined_in_widget"
    SESSION_EXPIRED = "session_expired"
    UNKNOWN_OUTCOME = "unknown"
    IN_PROGRESS = "in_progress"
    ALREADY_BOUGHT = "already_bought"
    #: The reader's earlier order of the product was found by the e-mail address typed at checkout, in
    #: another browser: its confirmation cannot be shown here.
    ALREADY_BOUGHT_ELSEWHERE = "already_bought_elsewhere"
    #: A logged-in reader's account already holds what the offer sells (``access.offer_is_owned``).
    ALREADY_SUBSCRIBED = "already_subscribed"
    #: The session was made for the reader's Payway account, and they have logged out since.
    LOGIN_REQUIRED = "login_required"
    WIDGET_UNAVAILABLE = "widget_unavailable"
    NO_PAYMENT_METHOD = "no_payment_method"
    #: Our own limit on new purchases (docs/reliability.md S13), not Payway's RATE_LIMITED.
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    GENERIC = "error"

    # -- the exceptions' codes (below) ----------------------------------------------------------------
    CONFIGURATION = "configuration"
    SSO_TOKEN_INVALID = "sso_token_invalid"
    SSO_LOGIN_FAILED = "sso_login_failed"
    PAYWAY_ERROR = "payway_error"
    #: Payway could not be used just now and nothing happened (also what a refused system token shows).
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    MALFORMED_RESPONSE = "malformed_response"
    API_ERROR = "api_error"
    VALIDATION = "validation"
    AUTHENTICATION_EXPIRED = "authentication_expired"
    PAYMENT_METHOD_FAILED = "payment_method_failed"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"

    # -- the four raise_on_* account sync codes (AccountSyncError) ------------------------------------
    SSN_ALREADY_TAKEN = "ssn_already_taken"
    SSN_ALREADY_SET = "ssn_already_set"
    ACCOUNT_UPDATE = "account_update"
    DELIVERY_ADDRESS = "delivery_address"

    # -- events only the purchase log shows (no reader message) ---------------------------------------
    REDIRECT_REJECTED = "redirect_rejected"
    FOREIGN_REFERENCE = "foreign_reference"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class PaywallError(Exception):
    """Base class of every error this package raises.

    An error of unknown kind is treated as the worst case: it may have reached Payway.
    """

    #: Stable machine code, stored on purchase attempts and mapped to reader messages.
    error_code: ErrorCode = ErrorCode.GENERIC
    #: Whether Payway may have executed the request. A POST that may have been executed is never re-sent
    #: (docs/payway-contract.md#never-re-send): its outcome is unknown until reconciled.
    may_have_reached_payway: bool = True
    #: Whether Payway answered with a definite no: nothing was bought, and the same request would be
    #: refused again.
    refused: bool = False
    #: Whether the failure is a passing one (Payway unreachable, slow or overloaded): the same request may
    #: work in a little while.
    transient: bool = False


class ConfigurationError(PaywallError):
    """Our own settings or content are wrong (raised before anything is sent)."""

    error_code = ErrorCode.CONFIGURATION
    may_have_reached_payway = False


class InvalidSSOToken(PaywallError):
    """An SSO2 JWT (from the landing URL or a server answer) is tampered, expired, replayed or not for us."""

    error_code = ErrorCode.SSO_TOKEN_INVALID
    may_have_reached_payway = False


class SSOLoginFailed(PaywallError):
    """A verified SSO2 login could not be finished (ticket exchange refused, cookie-only sessions).

    ``cause`` is a short code for the editors' error panel; ``detail`` at most an exception class name.
    """

    error_code = ErrorCode.SSO_LOGIN_FAILED
    may_have_reached_payway = False

    def __init__(self, cause: str, *, detail: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        self.detail = detail


class PaywayError(PaywallError):
    """Any failure talking to Payway. ``endpoint`` is the path called (never with secrets)."""

    error_code = ErrorCode.PAYWAY_ERROR

    def __init__(self, message: str = "", *, endpoint: str = "") -> None:
        super().__init__(message or self.__class__.__name__)
        self.endpoint = endpoint


class PaywayTransportError(PaywayError):
    """The exchange failed on the way (no answer to read); whether the request was sent is unknown."""

    error_code = ErrorCode.UNAVAILABLE
    transient = True


class PaywayConnectError(PaywayTransportError):
    """The connection could not be made: nothing reached Payway."""

    error_code = ErrorCode.UNAVAILABLE
    may_have_reached_payway = False


class PaywayTimeout(PaywayTransportError):
    """Payway did not answer in time after the request was sent."""

    error_code = ErrorCode.TIMEOUT


class PaywayConnectionLost(PaywayTimeout):
    """The connection broke after the request was sent (reset, aborted, truncated reply).

    Handled like a read timeout: Payway may have executed the request, so its outcome is unknown.
    """


class MalformedResponse(PaywayError):
    """A 2xx response that is not JSON or lacks a required field."""

    error_code = ErrorCode.MALFORMED_RESPONSE
    transient = True

    def __init__(self, message: str = "", *, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(message, endpoint=endpoint)
        self.status = status


class PaywayAPIError(PaywayError):
    """Payway answered with an error status. ``code``/``field``/``message`` come from its error body.

    A status without a class of its own (a 3xx, a 409, ...) is Payway's answer: refused, and it may
    have been executed.
    """

    error_code = ErrorCode.API_ERROR
    refused = True

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

    error_code = ErrorCode.VALIDATION
    may_have_reached_payway = False


class AccountSyncError(ValidationError):
    """400 raised because one of the ``raise_on_*`` flags was true and account sync hit that problem.

    ``error_code`` is one of ``SSN_ALREADY_TAKEN``, ``SSN_ALREADY_SET``, ``ACCOUNT_UPDATE``,
    ``DELIVERY_ADDRESS`` (see :data:`wagtail_klarna_paywall.payway.types.ACCOUNT_SYNC_ERROR_CODES`).
    """

    def __init__(self, message: str = "", *, sync_error: ErrorCode, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.error_code = sync_error


class AuthenticationExpired(PaywayAPIError):
    """401: the access token is missing, expired or revoked. Rejected before execution."""

    error_code = ErrorCode.AUTHENTICATION_EXPIRED
    may_have_reached_payway = False
    # Not refused: the request was never looked at, and goes through with a fresh token.
    refused = False


class PaymentMethodFailed(PaywayAPIError):
    """403 on place_order / place_trial_order with the documented code, or with none: Klarna refused the
    reader and Payway terminated the subscription (docs/payway-contract.md, "Errors")."""

    error_code = ErrorCode.PAYMENT_METHOD_FAILED


class PermissionDenied(PaywayAPIError):
    """Any other 403 (on every path, order paths included): the token lacks a scope, an identity or a
    permission. A configuration error: editors must see it, readers are told payments cannot be taken."""

    error_code = ErrorCode.PERMISSION_DENIED
    may_have_reached_payway = False


class NotFound(PaywayAPIError):
    error_code = ErrorCode.NOT_FOUND
    may_have_reached_payway = False


class RateLimited(PaywayAPIError):
    """429: Payway asks us to slow down. ``retry_after`` is its ``Retry-After`` in seconds, when given.

    Whether a rate-limited POST was executed is undocumented, so it keeps ``may_have_reached_payway``.
    """

    error_code = ErrorCode.RATE_LIMITED
    refused = False
    transient = True

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(PaywayAPIError):
    """5xx: Payway failed; for a POST the outcome is unknown."""

    error_code = ErrorCode.SERVER_ERROR
    refused = False
    transient = True


def _classes(root: type[PaywallError]) -> list[type[PaywallError]]:
    return [root, *(cls for sub in root.__subclasses__() for cls in _classes(sub))]


#: The codes of the transient failures above (the reader is told to try again in a while, HTTP 503).
#: Read it for a code that outlived its exception (a stored outcome); with the exception at hand, read
#: its ``transient``.
TRANSIENT_CODES: frozenset[ErrorCode] = frozenset(
    cls.error_code for cls in _classes(PaywallError) if cls.transient
)
