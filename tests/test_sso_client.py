"""payway/sso_client.py: SSO2's failures read exactly like the Payway API's (payway/errors.py)."""

from __future__ import annotations

import pytest
import requests
import responses
import urllib3.exceptions

from wagtail_klarna_paywall import exceptions as exc
from wagtail_klarna_paywall.payway.sso_client import SSO2Client

SSO = "https://sso.test"
STATUS_URL = SSO + "/sessionstatus"


@pytest.fixture
def sso():
    with responses.RequestsMock() as rsps:
        yield SSO2Client(base_url=SSO), rsps


def test_the_answer_token_is_returned(sso):
    client, rsps = sso
    rsps.post(STATUS_URL, json={"t": "answer.jwt"})
    assert client.session_status("our.jwt") == "answer.jwt"


def _refused_connection() -> requests.ConnectionError:
    reason = urllib3.exceptions.NewConnectionError(None, "Connection refused")
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", reason))


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (_refused_connection(), exc.PaywayConnectError),
        (requests.ConnectTimeout("connect timed out"), exc.PaywayConnectError),
        (requests.ReadTimeout("read timed out"), exc.PaywayTimeout),
        # Reset after sending: the logout may have been executed, unlike a refused connection.
        (
            requests.ConnectionError(urllib3.exceptions.ProtocolError("aborted", ConnectionResetError())),
            exc.PaywayConnectionLost,
        ),
        (requests.exceptions.ChunkedEncodingError("truncated"), exc.PaywayConnectionLost),
    ],
)
def test_transport_failures_are_read_as_the_api_clients_are(sso, failure, expected):
    client, rsps = sso
    rsps.post(STATUS_URL, body=failure)

    with pytest.raises(expected) as raised:
        client.session_status("our.jwt")
    assert type(raised.value) is expected
    assert raised.value.endpoint == "/sessionstatus"
    assert raised.value.may_have_reached_payway is (expected is not exc.PaywayConnectError)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, exc.ValidationError),
        (401, exc.AuthenticationExpired),
        (403, exc.PermissionDenied),
        (404, exc.NotFound),
        (409, exc.PaywayAPIError),
        (429, exc.RateLimited),
        (500, exc.ServerError),
        (503, exc.ServerError),
    ],
)
def test_error_statuses_map_to_the_same_classes_as_the_api(sso, status, expected):
    client, rsps = sso
    rsps.post(STATUS_URL, status=status, json={"code": "some_code", "message": "upstream words SENTINEL"})

    with pytest.raises(expected) as raised:
        client.session_status("our.jwt")
    assert type(raised.value) is expected
    assert raised.value.status == status and raised.value.code == "some_code"
    assert raised.value.upstream_message == "upstream words SENTINEL"
    assert "SENTINEL" not in str(raised.value) and "SENTINEL" not in repr(raised.value)


def test_sso2s_err_field_is_kept_for_operators(sso):
    client, rsps = sso
    rsps.post(STATUS_URL, status=400, json={"err": "invalid token"})

    with pytest.raises(exc.ValidationError) as raised:
        client.session_status("our.jwt")
    assert raised.value.upstream_message == "invalid token"


def test_retry_after_is_read_on_a_429(sso):
    client, rsps = sso
    rsps.post(STATUS_URL, status=429, headers={"Retry-After": "7"}, body="")

    with pytest.raises(exc.RateLimited) as raised:
        client.session_status("our.jwt")
    assert raised.value.retry_after == 7.0


@pytest.mark.parametrize("body", ["<html>", '{"t": ""}', "[]"])
def test_an_answer_without_a_token_is_malformed(sso, body):
    client, rsps = sso
    rsps.post(STATUS_URL, status=200, body=body, content_type="application/json")

    with pytest.raises(exc.MalformedResponse):
        client.session_status("our.jwt")
