"""The 403 classes on every Payway step of a purchase (docs/payway-contract.md, "Errors").

Only the documented "payment method failed" code, or a 403 with no code at all, on place_order or
place_trial_order means Klarna refused the reader (the attempt is declined). Every other 403, a missing scope,
identity or permission, is a configuration error: the reader is told payments cannot be taken just now, the
editors' error panel shows it with Payway's code, and the attempt is never marked as declined by Klarna.
"""

from __future__ import annotations

import pytest
import responses
from django.test import Client
from django.utils import translation

from tests.factories import (
    CREATE_V1,
    CREATE_V2,
    IDENTITY_TOKEN,
    PLACE_TRIAL,
    PLACE_V1,
    PLACE_V2,
    Shop,
    calls_to,
    place,
    session_json,
    start,
)
from wagtail_klarna_paywall import messages
from wagtail_klarna_paywall.models import AttemptState, EventKind, PurchaseAttempt
from wagtail_klarna_paywall.newsroom import funnel
from wagtail_klarna_paywall.purchase import attempts, orders, session

#: name: (responses keyword arguments of the 403, the Payway code recorded, whether it is "payment failed").
FORBIDDEN = {
    "payment-method-failed": (
        {"json": {"code": "payment_method_failed", "message": "refused"}},
        "payment_method_failed",
        True,
    ),
    "bare": ({"body": ""}, "", True),
    "scope": ({"json": {"code": "insufficient_scope", "message": "no scope"}}, "insufficient_scope", False),
    "identity": (
        {"json": {"code": "identity_required", "message": "no identity"}},
        "identity_required",
        False,
    ),
}

#: (flow, the offer, the reader, the order URL).
LOGGED_IN = attempts.Reader(key="user:7", identity_token=IDENTITY_TOKEN)
ORDER_FLOWS = {
    "place_order-v2": (Shop.package_ref, None, PLACE_V2, CREATE_V2),
    "place_order-v1": (Shop.package_ref, LOGGED_IN, PLACE_V1, CREATE_V1),
    "place_trial_order": (Shop.trial_ref, None, PLACE_TRIAL, CREATE_V2),
}


@pytest.mark.parametrize("forbidden", list(FORBIDDEN))
@pytest.mark.parametrize("flow", list(ORDER_FLOWS))
def test_403_on_the_order_step(shop, payway, signal_log, flow, forbidden):
    ref, reader, order_url, create_url = ORDER_FLOWS[flow]
    answer, payway_code, payment_failed = FORBIDDEN[forbidden]
    payway.add(responses.POST, create_url, json=session_json())
    payway.add(responses.POST, order_url, status=403, **answer)
    kwargs = {"reader": reader, "customer": None} if reader else {}
    attempt = start(shop, ref, **({"reader": reader} if reader else {})).attempt

    result = place(attempt, **kwargs)
    again = place(PurchaseAttempt.objects.get(pk=attempt.pk), token="auth-token-2", **kwargs)

    attempt.refresh_from_db()
    assert len(calls_to(payway, order_url)) == 1, "a 403 is never re-sent"
    assert not again.called_payway
    [error] = attempt.events.filter(kind=EventKind.ERROR)
    assert (error.http_status, error.payway_code) == (403, payway_code)
    if payment_failed:
        assert result.outcome == orders.Outcome.DECLINED
        assert attempt.state == AttemptState.DECLINED
        assert attempt.error_code == error.error_code == "payment_method_failed"
        assert attempt.events.filter(kind=EventKind.DECLINED).count() == 1
    else:
        # A configuration error: failed, not declined by Klarna; the reader's message says so.
        assert result.outcome == orders.Outcome.FAILED
        assert attempt.state == AttemptState.FAILED
        assert attempt.error_code == error.error_code == "permission_denied"
        assert attempt.events.filter(kind=EventKind.DECLINED).count() == 0
        # The editors' error panel lists it, with Payway's code.
        assert error in list(funnel.recent_errors())
    assert [s for s, *_ in signal_log].count("failed") == 1


@pytest.mark.parametrize("forbidden", list(FORBIDDEN))
@pytest.mark.parametrize("identity", [False, True], ids=["v2", "v1"])
def test_403_on_create_session_is_a_configuration_error(shop, payway, forbidden, identity):
    """Off the order step no 403 means "payment method failed", whatever its code."""
    answer, payway_code, _ = FORBIDDEN[forbidden]
    payway.add(responses.POST, CREATE_V1 if identity else CREATE_V2, status=403, **answer)

    result = start(shop, **({"reader": LOGGED_IN} if identity else {}))

    assert result.status == session.BuyStatus.FAILED
    assert result.error_code == "permission_denied"
    assert result.attempt.state == AttemptState.FAILED
    [error] = result.attempt.events.filter(kind=EventKind.ERROR)
    assert (error.error_code, error.http_status, error.payway_code) == ("permission_denied", 403, payway_code)
    assert result.attempt.events.filter(kind=EventKind.DECLINED).count() == 0


def test_the_reader_is_told_payments_cannot_be_taken_not_that_klarna_refused(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, status=403, json={"code": "insufficient_scope", "message": "SECRET"})
    reader = Client()
    buy = reader.post(
        shop.purchase_page.url + "buy/",
        {"page": shop.purchase_page.pk, "offer": Shop.package_ref},
        secure=True,
    )
    checkout = buy["Location"]
    response = reader.post(
        checkout,
        {
            "klarna_authorization_token": "auth-token-1",
            "email": "reader@example.com",
            "first_name": "Rea",
            "last_name": "Der",
        },
        secure=True,
        HTTP_ACCEPT_LANGUAGE="sv",
    )

    html = response.content.decode()
    with translation.override("sv"):
        expected = messages.reader_message("permission_denied")
        refused = messages.reader_message("payment_method_failed")
        assert str(expected.title) in html
        assert str(refused.title) not in html
    assert "SECRET" not in html
    assert PurchaseAttempt.objects.get().state == AttemptState.FAILED


def test_the_message_is_in_swedish_and_english():
    message = messages.reader_message("permission_denied")
    with translation.override("en"):
        english = str(message.title)
    with translation.override("sv"):
        swedish = str(message.title), str(message.body)
    assert english == "Payments cannot be taken right now"
    assert swedish[0] == "Vi kan inte ta emot betalningar just nu"
    assert "inte debiterats" in swedish[1]
