"""Injected Payway faults through the reader's HTTP flow.

docs/reliability.md B02, F01-F06, F08-F12; figure (c)3.

Each fault class is injected once at ``create_session`` (the buy step) and once at ``place_order`` (the
checkout step), behind the real client. For every one: no 500, a reader-facing message, no lost outcome
(an answer that may have reached Payway leaves the attempt ``placed``/``unknown``/``failed``/``declined``,
never open again), and no automatic re-send of ``place_order``: a second submit replays the stored outcome.
The client-level behaviour of each fault (retries, exception types) is tested in ``test_client.py``.
"""

from __future__ import annotations

import pytest
import requests
import responses
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from tests.factories import AUTH_TOKEN as VALID_TOKEN
from tests.factories import CREATE_V2, PLACE_V2, TOKEN_URL, Shop, order_json, session_json
from tests.factories import CUSTOMER as VALID_CUSTOMER
from tests.factories import stored_attempt as _attempt
from wagtail_klarna_paywall.models import AttemptState, PurchaseAttempt
from wagtail_klarna_paywall.purchase import attempts

#: Faults where nothing reached Payway.
CONNECT_FAULTS = {"connection-refused", "connect-timeout"}

#: (id, responses keyword arguments): one per fault class. Catalogue ids, at create_session / place_order:
#: connection-refused, connect-timeout F01/F05; read-timeout F02/F03; http-5xx F02/F04; http-200-* F06;
#: http-400-validation F10; http-403-forbidden F09; http-403-payment-method-failed F08;
#: http-404-unknown-authorization B02; http-400-authorization-expired F11; http-429-retry-after F12.
#: (F07, the 401s, is covered at the client level: a renewal and one pre-execution retry.)
FAULTS = {
    "connection-refused": {"body": requests.ConnectionError("refused")},
    "connect-timeout": {"body": requests.ConnectTimeout("connect timeout")},
    "read-timeout": {"body": requests.ReadTimeout("read timeout")},
    "http-500": {"status": 500, "json": {"code": "internal_error", "message": "boom"}},
    "http-502-html": {"status": 502, "body": "<html>Bad gateway</html>", "content_type": "text/html"},
    "http-503-empty": {"status": 503, "body": ""},
    "http-200-not-json": {"status": 200, "body": "<html>hello</html>", "content_type": "text/html"},
    "http-200-empty": {"status": 200, "body": ""},
    "http-200-missing-keys": {"status": 200, "json": {"item": {}}},
    "http-200-wrong-types": {"status": 200, "json": {"item": ["not", "an", "object"]}},
    "http-400-validation": {"status": 400, "json": {"code": "invalid_parameter", "field": "code"}},
    "http-403-forbidden": {"status": 403, "json": {"code": "forbidden"}},
    "http-403-payment-method-failed": {"status": 403, "json": {"code": "payment_method_failed"}},
    "http-404-unknown-authorization": {"status": 404, "json": {"code": "not_found", "message": "NOT_FOUND"}},
    "http-400-authorization-expired": {
        "status": 400,
        "json": {"code": "invalid_parameter", "field": "klarna_authorization_token", "message": "expired"},
    },
    "http-429-retry-after": {
        "status": 429,
        "headers": {"Retry-After": "30"},
        "json": {"code": "rate_limited"},
    },
}

#: What a place_order fault leaves: nothing reached Payway -> the attempt can be placed again; it may
#: have reached Payway -> unknown (settled by reconciliation); Payway said no -> failed/declined.
PLACE_EXPECTED = {
    "connection-refused": AttemptState.SESSION_READY,
    "connect-timeout": AttemptState.SESSION_READY,
    "read-timeout": AttemptState.UNKNOWN,
    "http-500": AttemptState.UNKNOWN,
    "http-502-html": AttemptState.UNKNOWN,
    "http-503-empty": AttemptState.UNKNOWN,
    "http-200-not-json": AttemptState.UNKNOWN,
    "http-200-empty": AttemptState.PLACED,  # a 2xx is an order, whatever its body
    "http-200-missing-keys": AttemptState.PLACED,  # a 2xx is an order: we go to our confirmation page
    "http-200-wrong-types": AttemptState.PLACED,
    "http-400-validation": AttemptState.FAILED,
    # Only the documented code (or none) on place_order is "payment method failed"; any other 403 is a
    # configuration error: failed, not declined (docs/payway-contract.md, "Errors").
    "http-403-forbidden": AttemptState.FAILED,
    "http-403-payment-method-failed": AttemptState.DECLINED,
    "http-404-unknown-authorization": AttemptState.FAILED,
    "http-400-authorization-expired": AttemptState.FAILED,
    "http-429-retry-after": AttemptState.UNKNOWN,
}

RESULTS: list[dict] = []


@pytest.fixture(scope="module")
def shop(module_shop):
    """One shop for the module's cases, rolled back when the module is done."""
    return module_shop


def _calls(payway, url):
    return sum(1 for call in payway.calls if call.request.url == url)


def _message(response) -> bool:
    return "data-wkp-message" in response.content.decode()


@pytest.mark.parametrize("fault", list(FAULTS))
def test_create_session_fault(shop, db, fault):
    """The buy step: no 500, our message, no attempt left half-made, and "try again" then works."""
    client = Client()
    buy = {"page": shop.purchase_page.pk, "offer": Shop.package_ref}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        payway.add(responses.POST, TOKEN_URL, json={"access_token": "system", "expires_in": 3600})
        payway.add(responses.POST, CREATE_V2, **FAULTS[fault])
        response = client.post(shop.purchase_page.url + "buy/", buy, secure=True)
        create_calls = _calls(payway, CREATE_V2)
    RESULTS.append({"step": "create_session", "fault": fault, "status": response.status_code, "lost": False})
    if fault == "http-200-missing-keys" and response.status_code == 303:
        pytest.fail("a session without a client token must not reach the widget")
    assert response.status_code != 500
    assert response.status_code in (200, 400, 503)
    assert _message(response)
    assert 1 <= create_calls <= 2  # at most one automatic retry (connect phase only)
    attempt = PurchaseAttempt.objects.get()
    assert attempt.state in (AttemptState.NEW, AttemptState.FAILED)
    assert not attempt.klarna_client_token

    # The retry button works: a new buy with Payway back to normal reaches the widget.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        payway.add(responses.POST, TOKEN_URL, json={"access_token": "system", "expires_in": 3600})
        payway.add(responses.POST, CREATE_V2, json=session_json())
        again = client.post(shop.purchase_page.url + "buy/", buy, secure=True)
    assert again.status_code == 303


@pytest.mark.parametrize("fault", list(FAULTS))
def test_place_order_fault(shop, db, fault):
    """The checkout step: exactly one place_order, no 500, the outcome stored before answering, and a
    second submit replays it (0 automatic re-sends)."""
    client = Client()
    session = SessionStore()
    session["wagtail_klarna_paywall_reader"] = True
    session.create()
    client.cookies["sessionid"] = session.session_key
    attempt = _attempt(shop, attempts.anonymous_reader_key(session.session_key), AttemptState.SESSION_READY)
    url = f"/subscribe/checkout/{attempt.reference}/"
    data = {"klarna_authorization_token": VALID_TOKEN, **VALID_CUSTOMER}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        payway.add(responses.POST, TOKEN_URL, json={"access_token": "system", "expires_in": 3600})
        payway.add(responses.POST, PLACE_V2, **FAULTS[fault])
        first = client.post(url, data, secure=True)
        first_calls = _calls(payway, PLACE_V2)
        attempt.refresh_from_db()
        state = attempt.state
        second = client.post(url, data, secure=True)
        resent = _calls(payway, PLACE_V2) - first_calls
        creates = _calls(payway, CREATE_V2)

    lost = state in (AttemptState.PLACING,) or (
        state == AttemptState.SESSION_READY and fault not in CONNECT_FAULTS
    )
    RESULTS.append(
        {"step": "place_order", "fault": fault, "status": first.status_code, "lost": lost, "resent": resent}
    )
    assert first.status_code != 500 and second.status_code != 500
    assert first_calls == 1
    assert state == PLACE_EXPECTED[fault]
    assert creates == 0  # B02: the reader's session is not replaced behind their back
    if state == AttemptState.SESSION_READY:
        # Nothing reached Payway: the reader may submit again, and that is a fresh, deliberate call.
        assert first.status_code == 503 and _message(first)
        assert resent == 1
    else:
        assert resent == 0
        if state == AttemptState.PLACED:
            assert (first.status_code, first["Location"]) == (303, f"/thanks/?ref={attempt.reference}")
        else:
            assert _message(first) and _message(second)
            assert second.status_code < 500


def test_place_order_success_is_the_control_case(shop, db):
    client = Client()
    session = SessionStore()
    session["wagtail_klarna_paywall_reader"] = True
    session.create()
    client.cookies["sessionid"] = session.session_key
    attempt = _attempt(shop, attempts.anonymous_reader_key(session.session_key), AttemptState.SESSION_READY)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        payway.add(responses.POST, TOKEN_URL, json={"access_token": "system", "expires_in": 3600})
        payway.add(responses.POST, PLACE_V2, json=order_json())
        response = client.post(
            f"/subscribe/checkout/{attempt.reference}/",
            {"klarna_authorization_token": VALID_TOKEN, **VALID_CUSTOMER},
            secure=True,
        )
    assert response.status_code == 303
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.PLACED


def test_fault_summary(capsys):
    """Figure (c)3."""
    if len(RESULTS) < 2 * len(FAULTS):
        pytest.skip("run the whole module for the summary")
    five = sum(1 for r in RESULTS if r["status"] == 500)
    lost = sum(1 for r in RESULTS if r["lost"])
    resent = sum(
        r.get("resent", 0) for r in RESULTS if PLACE_EXPECTED[r["fault"]] != AttemptState.SESSION_READY
    )
    with capsys.disabled():
        print(
            f"\n[reliability faults] {len(FAULTS)} fault classes x (create_session, place_order) = "
            f"{len(RESULTS)} injections; 500s={five}; lost outcomes={lost}; "
            f"automatic place_order re-sends after it may have reached Payway={resent}"
        )
    assert five == lost == resent == 0
