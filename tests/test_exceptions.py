"""exceptions.py: every failure classifies itself once, and its code is a stable stored value."""

from __future__ import annotations

import pytest

from wagtail_klarna_paywall import exceptions as exc
from wagtail_klarna_paywall.exceptions import ErrorCode

API = {"endpoint": "/x", "status": 400}

# (instance, may_have_reached_payway, refused, transient, error_code)
CLASSIFIED = [
    (exc.PaywallError(), True, False, False, "error"),
    (exc.ConfigurationError(), False, False, False, "configuration"),
    (exc.InvalidSSOToken(), False, False, False, "sso_token_invalid"),
    (exc.SSOLoginFailed("exchange"), False, False, False, "sso_login_failed"),
    (exc.PaywayError(), True, False, False, "payway_error"),
    (exc.PaywayTransportError(), True, False, True, "unavailable"),
    (exc.PaywayConnectError(), False, False, True, "unavailable"),
    (exc.PaywayTimeout(), True, False, True, "timeout"),
    (exc.PaywayConnectionLost(), True, False, True, "timeout"),
    (exc.MalformedResponse(), True, False, True, "malformed_response"),
    (exc.PaywayAPIError(**{**API, "status": 409}), True, True, False, "api_error"),
    (exc.ValidationError(**API), False, True, False, "validation"),
    (
        exc.AccountSyncError(sync_error=ErrorCode.SSN_ALREADY_TAKEN, **API),
        False,
        True,
        False,
        "ssn_already_taken",
    ),
    (exc.AuthenticationExpired(**{**API, "status": 401}), False, False, False, "authentication_expired"),
    (exc.PaymentMethodFailed(**{**API, "status": 403}), True, True, False, "payment_method_failed"),
    (exc.PermissionDenied(**{**API, "status": 403}), False, True, False, "permission_denied"),
    (exc.NotFound(**{**API, "status": 404}), False, True, False, "not_found"),
    (exc.RateLimited(**{**API, "status": 429}), True, False, True, "rate_limited"),
    (exc.ServerError(**{**API, "status": 503}), True, False, True, "server_error"),
]


@pytest.mark.parametrize(
    ("error", "may_have_reached", "refused", "transient", "code"),
    CLASSIFIED,
    ids=[type(row[0]).__name__ for row in CLASSIFIED],
)
def test_each_exception_classifies_itself(error, may_have_reached, refused, transient, code):
    assert error.may_have_reached_payway is may_have_reached
    assert error.refused is refused
    assert error.transient is transient
    assert error.error_code == code
    assert isinstance(error.error_code, ErrorCode)


def test_every_exception_class_is_classified():
    listed = {type(row[0]) for row in CLASSIFIED}
    defined = {
        value
        for value in vars(exc).values()
        if isinstance(value, type) and issubclass(value, exc.PaywallError)
    }
    assert defined == listed


def test_a_definite_no_is_never_a_passing_failure():
    assert not [type(error).__name__ for error, *_ in CLASSIFIED if error.refused and error.transient]


def test_transient_codes_are_those_of_the_transient_classes():
    assert {
        "unavailable",
        "timeout",
        "server_error",
        "rate_limited",
        "malformed_response",
    } == exc.TRANSIENT_CODES


def test_codes_are_their_stored_values():
    """PurchaseAttempt.error_code and PurchaseEvent.error_code hold these strings: changing one needs a
    data migration."""
    assert {code.value for code in ErrorCode} == {
        *("bad_request", "offer_not_found", "missing_authorization", "invalid_customer"),
        *("declined_in_widget", "session_expired", "unknown", "in_progress", "already_bought"),
        *("already_bought_elsewhere", "already_subscribed", "login_required", "widget_unavailable"),
        *("no_payment_method", "too_many_attempts", "error", "configuration", "sso_token_invalid"),
        *("sso_login_failed", "payway_error", "unavailable", "timeout", "malformed_response", "api_error"),
        *("validation", "authentication_expired", "payment_method_failed", "permission_denied"),
        *("not_found", "rate_limited", "server_error", "ssn_already_taken", "ssn_already_set"),
        *("account_update", "delivery_address", "redirect_rejected", "foreign_reference"),
    }
    for code in ErrorCode:
        assert len(code.value) <= 50  # the error_code columns


def test_a_code_reads_as_its_value():
    code = ErrorCode.TIMEOUT
    assert (
        code == "timeout" and str(code) == "timeout" and f"{code}" == "timeout" and f"{code:>8}" == " timeout"
    )
    assert code[:3] == "tim" and {"timeout": 1}[code] == 1 and ErrorCode("timeout") is code
