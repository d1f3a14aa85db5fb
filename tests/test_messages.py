"""messages.py is THE mapping from error codes to reader messages (and never upstream text)."""

from __future__ import annotations

import inspect

import pytest
from django.utils import translation
from django.utils.functional import Promise

from wagtail_klarna_paywall import exceptions, messages
from wagtail_klarna_paywall.exceptions import ErrorCode
from wagtail_klarna_paywall.payway.types import ACCOUNT_SYNC_ERROR_CODES


def exception_codes() -> set[str]:
    return {
        cls.error_code
        for _name, cls in inspect.getmembers(exceptions, inspect.isclass)
        if issubclass(cls, exceptions.PaywallError)
    }


FLOW_CODES = {
    messages.BAD_REQUEST,
    messages.OFFER_NOT_FOUND,
    messages.MISSING_AUTHORIZATION,
    messages.INVALID_CUSTOMER,
    messages.DECLINED_IN_WIDGET,
    messages.SESSION_EXPIRED,
    messages.UNKNOWN_OUTCOME,
    messages.IN_PROGRESS,
    messages.ALREADY_BOUGHT,
    messages.LOGIN_REQUIRED,
    messages.WIDGET_UNAVAILABLE,
}
SYNC_CODES = set(ACCOUNT_SYNC_ERROR_CODES.values())


def test_every_code_has_its_own_message():
    expected = exception_codes() | SYNC_CODES | FLOW_CODES
    assert expected <= set(messages.MESSAGES), expected - set(messages.MESSAGES)


def test_every_code_but_the_purchase_log_only_events_has_a_reader_message():
    events_only = {ErrorCode.REDIRECT_REJECTED, ErrorCode.FOREIGN_REFERENCE}
    assert set(messages.MESSAGES) == set(ErrorCode) - events_only


def test_each_account_sync_error_has_a_distinct_message():
    """docs/reliability.md F10: each raise_on_* error tells the reader what happened, in its own words."""
    bodies = {str(messages.reader_message(code).body) for code in SYNC_CODES}
    titles = {str(messages.reader_message(code).title) for code in SYNC_CODES}
    assert len(bodies) == len(titles) == 4


@pytest.mark.parametrize("code", sorted(messages.MESSAGES))
def test_messages_are_lazy_and_not_empty(code):
    message = messages.MESSAGES[code]
    assert isinstance(message.title, Promise) and isinstance(message.body, Promise)
    assert str(message.title).strip() and str(message.body).strip()


def test_unknown_codes_get_the_generic_message():
    assert messages.reader_message("something_new") is messages.MESSAGES[messages.GENERIC]
    assert messages.reader_message("") is messages.MESSAGES[messages.GENERIC]
    assert messages.reader_message(None) is messages.MESSAGES[messages.GENERIC]


def test_unknown_outcome_promises_no_double_charge_and_no_retry():
    message = messages.reader_message(messages.UNKNOWN_OUTCOME)
    assert "not be charged twice" in str(message.body)
    assert message.retry is False


def test_payment_method_failed_explains_the_reasons_and_allows_a_retry():
    message = messages.reader_message("payment_method_failed")
    assert "risk assessment" in str(message.body) and "debt" in str(message.body)
    assert message.retry is True


def test_messages_follow_the_active_language():
    """Swedish comes from the compiled catalogue; English is the source. Both render without error."""
    with translation.override("sv"):
        swedish = str(messages.reader_message("payment_method_failed").title)
    with translation.override("en"):
        english = str(messages.reader_message("payment_method_failed").title)
    assert english == "Klarna could not approve the payment"
    assert swedish  # equal to the English source until the Swedish catalogue is compiled
