"""THE mapping from error codes to what a reader is told.

Every failure the purchase flow can meet ends in a stable code, an
:class:`~wagtail_klarna_paywall.exceptions.ErrorCode` (``PaywallError.error_code``, the ``raise_on_*`` sync
codes, and the flow's own codes). This module turns a code into a short title
and a plain explanation, translated lazily so each reader gets their own language. Upstream text
(Payway's ``message``, Klarna's errors) is never shown: it is written for operators, may be in another
language, and may echo personal data such as a personnummer.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from .exceptions import ErrorCode


@dataclass(frozen=True)
class ReaderMessage:
    """What the reader sees for one outcome. ``retry`` says whether a "try again" button makes sense."""

    title: Promise | str
    body: Promise | str
    retry: bool = False


# Short names for the flow's own codes (the codes themselves are :class:`ErrorCode` members).
BAD_REQUEST = ErrorCode.BAD_REQUEST
OFFER_NOT_FOUND = ErrorCode.OFFER_NOT_FOUND
MISSING_AUTHORIZATION = ErrorCode.MISSING_AUTHORIZATION
INVALID_CUSTOMER = ErrorCode.INVALID_CUSTOMER
DECLINED_IN_WIDGET = ErrorCode.DECLINED_IN_WIDGET
SESSION_EXPIRED = ErrorCode.SESSION_EXPIRED
UNKNOWN_OUTCOME = ErrorCode.UNKNOWN_OUTCOME
IN_PROGRESS = ErrorCode.IN_PROGRESS
ALREADY_BOUGHT = ErrorCode.ALREADY_BOUGHT
ALREADY_BOUGHT_ELSEWHERE = ErrorCode.ALREADY_BOUGHT_ELSEWHERE
ALREADY_SUBSCRIBED = ErrorCode.ALREADY_SUBSCRIBED
LOGIN_REQUIRED = ErrorCode.LOGIN_REQUIRED
WIDGET_UNAVAILABLE = ErrorCode.WIDGET_UNAVAILABLE
NO_PAYMENT_METHOD = ErrorCode.NO_PAYMENT_METHOD
TOO_MANY_ATTEMPTS = ErrorCode.TOO_MANY_ATTEMPTS
GENERIC = ErrorCode.GENERIC

_TRY_AGAIN_LATER = _("Nothing has been charged. Please try again in a little while.")
_NOT_COMPLETED = _("The purchase could not be completed")

MESSAGES: dict[ErrorCode, ReaderMessage] = {
    # -- the flow's own codes ------------------------------------------------------------------------
    BAD_REQUEST: ReaderMessage(
        _("Something went wrong with the form"),
        _("We could not read what was sent. Go back to the article and choose an offer again."),
    ),
    OFFER_NOT_FOUND: ReaderMessage(
        _("The offer is no longer available"),
        _("This offer has changed or ended. Go back to the article to see what is offered now."),
    ),
    MISSING_AUTHORIZATION: ReaderMessage(
        _("The payment could not be confirmed"),
        _("Klarna did not confirm the payment. Nothing has been charged. Please approve it again below."),
        retry=True,
    ),
    INVALID_CUSTOMER: ReaderMessage(
        _("Please check your details"),
        _("Enter a valid e-mail address, your first name and your last name."),
        retry=True,
    ),
    DECLINED_IN_WIDGET: ReaderMessage(
        _("Klarna cannot be offered this time"),
        _(
            "Klarna could not offer you this payment. Nothing has been charged. You can start again, "
            "perhaps with another payment method in Klarna, or choose another offer."
        ),
        retry=True,
    ),
    SESSION_EXPIRED: ReaderMessage(
        _("This payment has expired"),
        _("The payment was left open for too long. Nothing has been charged. Please start again."),
        retry=True,
    ),
    UNKNOWN_OUTCOME: ReaderMessage(
        _("We are checking your purchase"),
        _(
            "Our payment provider did not answer clearly, so we do not yet know whether your purchase "
            "went through. We are checking it now, and you will not be charged twice, so please do not "
            "buy again. If it went through, your subscription starts and you get a confirmation by "
            "e-mail; if not, nothing is charged."
        ),
    ),
    IN_PROGRESS: ReaderMessage(
        _("Your purchase is being completed"),
        _("Please wait a moment. This page updates by itself. Do not pay again."),
    ),
    ALREADY_BOUGHT: ReaderMessage(
        _("You have already bought this"),
        _("This purchase is already done, so nothing more has been charged. Go to your confirmation."),
    ),
    ALREADY_BOUGHT_ELSEWHERE: ReaderMessage(
        _("You have already bought this"),
        _(
            "This purchase has already been made, so nothing more has been charged. The confirmation is "
            "sent to the e-mail address you entered."
        ),
    ),
    ALREADY_SUBSCRIBED: ReaderMessage(
        _("You already have this subscription"),
        _(
            "Your account already includes what this offer gives, so there is nothing to buy and nothing "
            "has been charged. Go back to the article to read on."
        ),
    ),
    LOGIN_REQUIRED: ReaderMessage(
        _("Please log in again"),
        _("Your login has expired. Nothing has been charged. Log in and then approve the payment again."),
    ),
    WIDGET_UNAVAILABLE: ReaderMessage(
        _("The payment could not be loaded"),
        _("Klarna's payment form did not load. Check your connection and try again in a few seconds."),
        retry=True,
    ),
    NO_PAYMENT_METHOD: ReaderMessage(
        _("Klarna cannot be used for this offer"),
        _(
            "Klarna offers no way to pay for this offer just now. Nothing has been charged. Go back to the "
            "article and choose another offer."
        ),
    ),
    # Our own limit on new purchases (docs/reliability.md S13), not Payway's RATE_LIMITED further down.
    TOO_MANY_ATTEMPTS: ReaderMessage(
        _("Please wait a little"),
        _(
            "You have started several purchases in a short time, so new ones are paused for a while. "
            "Nothing has been charged."
        ),
    ),
    # -- exception codes (exceptions.py) -----------------------------------------------------------
    GENERIC: ReaderMessage(_NOT_COMPLETED, _TRY_AGAIN_LATER, retry=True),
    ErrorCode.CONFIGURATION: ReaderMessage(
        _("Purchases are not available right now"),
        _("Purchases are not available at the moment. Nothing has been charged. Please try again later."),
    ),
    ErrorCode.SSO_TOKEN_INVALID: ReaderMessage(
        _("The login could not be completed"),
        _("Your login link was invalid or had expired. Nothing has been charged. Please log in again."),
    ),
    ErrorCode.SSO_LOGIN_FAILED: ReaderMessage(
        _("The login could not be completed"),
        _(
            "Your account could not be confirmed just now. Nothing has been charged. "
            "Please try again in a little while."
        ),
        retry=True,
    ),
    ErrorCode.PAYWAY_ERROR: ReaderMessage(_NOT_COMPLETED, _TRY_AGAIN_LATER, retry=True),
    ErrorCode.UNAVAILABLE: ReaderMessage(
        _("Our payment provider could not be reached"),
        _("Nothing has been charged. Please try again in a little while."),
        retry=True,
    ),
    ErrorCode.RATE_LIMITED: ReaderMessage(
        _("Many purchases right now"),
        _("Our payment provider is very busy. Nothing has been charged. Please try again in a minute."),
        retry=True,
    ),
    # The three "may have reached Payway" codes get the unknown-outcome explanation when they happen on
    # place_order (the flow stores UNKNOWN_OUTCOME then); these texts are for the session step.
    ErrorCode.TIMEOUT: ReaderMessage(
        _("Our payment provider did not answer in time"),
        _TRY_AGAIN_LATER,
        retry=True,
    ),
    ErrorCode.MALFORMED_RESPONSE: ReaderMessage(_NOT_COMPLETED, _TRY_AGAIN_LATER, retry=True),
    ErrorCode.SERVER_ERROR: ReaderMessage(
        _("Our payment provider has a problem"),
        _TRY_AGAIN_LATER,
        retry=True,
    ),
    ErrorCode.API_ERROR: ReaderMessage(
        _NOT_COMPLETED,
        _("The payment provider did not accept the purchase. Nothing has been charged."),
        retry=True,
    ),
    ErrorCode.VALIDATION: ReaderMessage(
        _NOT_COMPLETED,
        _(
            "The payment provider did not accept the purchase. Nothing has been charged. Please try again; "
            "if it happens again, contact customer service with the reference below."
        ),
        retry=True,
    ),
    ErrorCode.AUTHENTICATION_EXPIRED: ReaderMessage(
        _("Please log in again"),
        _("Your login has expired. Nothing has been charged. Log in and then approve the payment again."),
    ),
    ErrorCode.PAYMENT_METHOD_FAILED: ReaderMessage(
        _("Klarna could not approve the payment"),
        _(
            "Klarna did not approve this payment, so nothing has been charged and no subscription was "
            "started. This can happen when Klarna's credit check finds unpaid debts, when there is an "
            "outstanding balance with Klarna, or when Klarna's automatic risk assessment says no. Klarna "
            "does not tell us which. You can try again, for example with another payment method, or "
            "contact Klarna's customer service."
        ),
        retry=True,
    ),
    # A 403 that is not Klarna's refusal: a missing scope, identity or permission (our configuration).
    ErrorCode.PERMISSION_DENIED: ReaderMessage(
        _("Payments cannot be taken right now"),
        _(
            "We cannot take payments just now because of a problem on our side, not with your payment. "
            "Nothing has been charged. Please try again later or contact customer service."
        ),
    ),
    ErrorCode.NOT_FOUND: ReaderMessage(
        _("This payment has expired"),
        _("The payment provider no longer knows this payment. Nothing has been charged. Please start again."),
        retry=True,
    ),
    # -- the four raise_on_* account sync codes ------------------------------------------------------
    ErrorCode.SSN_ALREADY_TAKEN: ReaderMessage(
        _("Your personal identity number belongs to another account"),
        _(
            "The personal identity number from Klarna is already registered on another customer account, "
            "so the purchase was stopped and nothing has been charged. Log in with that account and buy "
            "again, or contact customer service."
        ),
    ),
    ErrorCode.SSN_ALREADY_SET: ReaderMessage(
        _("Your account has another personal identity number"),
        _(
            "Your customer account already holds a different personal identity number from the one Klarna "
            "gave us, so the purchase was stopped and nothing has been charged. Please contact customer "
            "service."
        ),
    ),
    ErrorCode.ACCOUNT_UPDATE: ReaderMessage(
        _("Your account could not be updated"),
        _(
            "We could not update your customer account with the details from Klarna, so the purchase was "
            "stopped and nothing has been charged. Please try again later or contact customer service."
        ),
    ),
    ErrorCode.DELIVERY_ADDRESS: ReaderMessage(
        _("Your address could not be saved"),
        _(
            "We could not save the delivery address from Klarna, so the purchase was stopped and nothing "
            "has been charged. Please contact customer service."
        ),
    ),
}


def reader_message(code: ErrorCode | str | None) -> ReaderMessage:
    """The message for ``code`` (a member or a stored value); the generic one for an unknown or empty code
    (never upstream text)."""
    return MESSAGES.get(code or GENERIC, MESSAGES[GENERIC])
