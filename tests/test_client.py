"""The Payway client against `responses`: exact requests out, typed results and typed errors back."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import threading
from decimal import Decimal
from pathlib import Path
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
import urllib3.exceptions
import urllib3.util.connection
from freezegun import freeze_time

from wagtail_klarna_paywall import exceptions as exc
from wagtail_klarna_paywall.payway import client as client_module
from wagtail_klarna_paywall.payway.client import PaywayClient
from wagtail_klarna_paywall.payway.types import (
    IDENTITY_SCOPES,
    PRODUCT_CAMPAIGN,
    PRODUCT_PACKAGE,
    SYSTEM_SCOPES,
    Account,
    AccountSyncFlags,
    BrowserInfo,
    CustomerInfo,
    PaymentMethodCategory,
)

FIXTURES = Path(__file__).parent / "fixtures" / "payway"
BASE = "https://payway.test"
SECRET = "client-secret-SENTINEL"
SYSTEM_TOKEN = "system-token-SENTINEL-1"
RENEWED_TOKEN = "system-token-SENTINEL-2"
IDENTITY_TOKEN = "identity-token-SENTINEL"
KLARNA_AUTH = "klarna-authorization-SENTINEL"
EMAIL = "reader-SENTINEL@example.com"
TIMEOUT = (1.5, 7.0)
SENTINELS = (SECRET, SYSTEM_TOKEN, RENEWED_TOKEN, IDENTITY_TOKEN, KLARNA_AUTH, EMAIL, "19121212-1212")

TOKEN_URL = BASE + "/api/authorization/access_token"
CREATE_V1 = BASE + "/external/api/v1/klarna_payments/create_session"
CREATE_V2 = BASE + "/external/api/v2/klarna_payments/create_session"
ORDER_V1 = BASE + "/external/api/v1/klarna_payments/place_order"
ORDER_V2 = BASE + "/external/api/v2/klarna_payments/place_order"
TRIAL_V2 = BASE + "/external/api/v2/klarna_payments/place_trial_order"
PERIODS = BASE + "/external/api/v2/klarna_payments/payment_periods"
TITLES = BASE + "/external/api/v1/titles/"
PACKAGES = BASE + "/external/api/v2/products/package/search"
CAMPAIGNS = BASE + "/external/api/v3/products/campaign/search"
ACTIVE = BASE + "/external/api/v1/me/active_products"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def client():
    payway = PaywayClient(
        base_url=BASE + "/",
        client_id="client-id",
        client_secret=SECRET,
        connect_timeout=TIMEOUT[0],
        read_timeout=TIMEOUT[1],
    )
    yield payway
    payway.close()


@pytest.fixture
def token(rsps):
    """The token endpoint hands out SYSTEM_TOKEN, then RENEWED_TOKEN on every later call."""
    rsps.post(TOKEN_URL, json=fixture("token.json"))
    rsps.post(TOKEN_URL, json=fixture("token_renewed.json"))
    return rsps


def calls_to(rsps, url: str) -> list:
    return [call for call in rsps.calls if call.request.url.split("?")[0] == url]


def body_of(call) -> dict:
    return json.loads(call.request.body)


def form_of(call) -> dict:
    return {key: values[0] for key, values in parse_qs(call.request.body).items()}


def query_of(call) -> dict:
    return {key: values[0] for key, values in parse_qs(urlsplit(call.request.url).query).items()}


def assert_api_request(call, bearer: str) -> None:
    """Headers and timeout every /external/api call carries.

    docs/payway-contract.md#requests; docs/reliability.md S16.
    """
    headers = call.request.headers
    assert headers["Authorization"] == f"Bearer {bearer}"
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"
    assert call.request.req_kwargs["timeout"] == TIMEOUT


def place_v2(client, **overrides):
    kwargs = {
        "klarna_payments_session_id": "session-1",
        "klarna_authorization_token": KLARNA_AUTH,
        "browser": BrowserInfo(ip="81.208.13.50", language="sv-SE", user_agent="Mozilla/5.0"),
        "flags": AccountSyncFlags(),
        "traffic_source": "facebook",
        "merchant_reference": "attempt-42",
        "customer": CustomerInfo(email=EMAIL, first_name="Ada", last_name="Lovelace"),
    }
    kwargs.update(overrides)
    return client.place_order(**kwargs)


# -- tokens ------------------------------------------------------------------------------------------


def test_system_token_request_is_form_encoded_with_system_scopes(client, token):
    access = client.system_token()

    assert access.access_token == SYSTEM_TOKEN
    [call] = calls_to(token, TOKEN_URL)
    assert form_of(call) == {
        "client_id": "client-id",
        "client_secret": SECRET,
        "grant_type": "none",
        "scope": " ".join(SYSTEM_SCOPES),
    }
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.request.headers["Accept"] == "application/json"
    assert "Authorization" not in call.request.headers
    assert call.request.req_kwargs["timeout"] == TIMEOUT


@freeze_time("2026-01-01 12:00:00")
def test_token_expiry_comes_from_expires_in(client, token):
    access = client.system_token()

    assert access.expires_at == dt.datetime(2026, 1, 1, 13, 0, tzinfo=dt.timezone.utc)


def test_system_token_is_cached_across_calls(client, token):
    token.get(TITLES, json=fixture("titles.json"))
    token.get(PERIODS, json=fixture("payment_periods.json"))

    client.titles()
    client.payment_periods("dagbladet_digital")
    client.titles()

    assert len(calls_to(token, TOKEN_URL)) == 1
    for call in calls_to(token, TITLES) + calls_to(token, PERIODS):
        assert_api_request(call, SYSTEM_TOKEN)


def test_system_token_is_renewed_60_seconds_before_expiry(client, token):
    token.get(TITLES, json=fixture("titles.json"))
    with freeze_time("2026-01-01 12:00:00") as frozen:
        client.titles()
        frozen.tick(dt.timedelta(seconds=3600 - 61))
        client.titles()
        assert len(calls_to(token, TOKEN_URL)) == 1
        frozen.tick(dt.timedelta(seconds=2))
        client.titles()

    assert len(calls_to(token, TOKEN_URL)) == 2
    bearers = [call.request.headers["Authorization"] for call in calls_to(token, TITLES)]
    assert bearers == [f"Bearer {SYSTEM_TOKEN}", f"Bearer {SYSTEM_TOKEN}", f"Bearer {RENEWED_TOKEN}"]


def test_concurrent_requests_share_one_token_fetch(client, token):
    token.get(TITLES, json=fixture("titles.json"))
    threads = [threading.Thread(target=client.titles) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(calls_to(token, TOKEN_URL)) == 1
    assert len(calls_to(token, TITLES)) == 8


def test_token_without_expires_in_lives_one_hour(client, rsps):
    rsps.post(TOKEN_URL, json={"access_token": SYSTEM_TOKEN})
    with freeze_time("2026-01-01 12:00:00"):
        access = client.system_token()

    assert access.expires_at == dt.datetime(2026, 1, 1, 13, 0, tzinfo=dt.timezone.utc)


def test_token_response_without_access_token_is_malformed(client, rsps):
    rsps.post(TOKEN_URL, json={"item": {"expires_in": 3600}})

    with pytest.raises(exc.MalformedResponse) as raised:
        client.system_token()

    assert raised.value.endpoint == "/api/authorization/access_token"
    assert raised.value.status == 200


def test_bad_client_credentials_raise_without_leaking_the_secret(client, rsps):
    rsps.post(
        TOKEN_URL, status=401, json={"error": "invalid_client", "error_description": f"bad secret {SECRET}"}
    )

    with pytest.raises(exc.AuthenticationExpired) as raised:
        client.system_token()

    assert raised.value.code == "invalid_client"
    assert SECRET not in str(raised.value)
    assert SECRET not in repr(client)


def test_exchange_ticket_asks_for_identity_scopes_and_is_not_cached(client, rsps):
    rsps.post(TOKEN_URL, json=fixture("token_identity.json"))

    first = client.exchange_ticket("ticket-1")
    client.exchange_ticket("ticket-2")

    assert first.access_token == IDENTITY_TOKEN
    assert first.refresh_token == "refresh-token-SENTINEL"
    calls = calls_to(rsps, TOKEN_URL)
    assert [form_of(call) for call in calls] == [
        {
            "client_id": "client-id",
            "client_secret": SECRET,
            "grant_type": "ticket",
            "scope": " ".join(IDENTITY_SCOPES),
            "ticket": ticket,
        }
        for ticket in ("ticket-1", "ticket-2")
    ]


def test_refresh_identity_token(client, rsps):
    rsps.post(TOKEN_URL, json=fixture("token_identity.json"))

    renewed = client.refresh_identity_token("refresh-token-SENTINEL")

    assert renewed.access_token == IDENTITY_TOKEN
    [call] = calls_to(rsps, TOKEN_URL)
    assert form_of(call) == {
        "client_id": "client-id",
        "client_secret": SECRET,
        "grant_type": "refresh_token",
        "refresh_token": "refresh-token-SENTINEL",
    }


def test_refused_ticket_is_a_validation_error(client, rsps):
    rsps.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})

    with pytest.raises(exc.ValidationError) as raised:
        client.exchange_ticket("stale-ticket")

    assert raised.value.code == "invalid_grant"


# -- create_session ----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["create_session_item.json", "create_session_flat.json"])
def test_create_session_v2_minimal_body(client, token, body):
    token.post(CREATE_V2, json=fixture(body))

    session = client.create_session(code="dagbladet_digital", confirmation_url="https://site.test/thanks/")

    assert session.klarna_client_token == "eyJhbGciOiJSUzI1NiJ9.klarna-client-token"
    assert session.klarna_payments_session_id == "0b1d9815-165e-42e2-8867-35bc03789e00"
    [call] = calls_to(token, CREATE_V2)
    assert_api_request(call, SYSTEM_TOKEN)
    # docs/payway-contract.md#requests: optional parameters are omitted, not sent as null.
    assert body_of(call) == {"code": "dagbladet_digital", "confirmation_url": "https://site.test/thanks/"}


def test_create_session_sends_every_given_option(client, token):
    token.post(CREATE_V2, json=fixture("create_session_item.json"))

    client.create_session(
        code="dagbladet_trial",
        confirmation_url="https://site.test/thanks/",
        period_type="recurring",
        period_id="5e4bbd0e09c04c1f6498c57f",
        start_date=dt.date(2026, 12, 1),
        disable_account_info_overwrite=False,
    )

    [call] = calls_to(token, CREATE_V2)
    assert body_of(call) == {
        "code": "dagbladet_trial",
        "confirmation_url": "https://site.test/thanks/",
        "period_type": "recurring",
        "period_id": "5e4bbd0e09c04c1f6498c57f",
        "start_date": "2026-12-01",
        "disable_account_info_overwrite": False,
    }


def test_create_session_reads_payment_method_categories(client, token):
    token.post(CREATE_V2, json=fixture("create_session_item.json"))

    session = client.create_session(code="c", confirmation_url="https://site.test/thanks/")

    assert session.payment_method_categories == (
        PaymentMethodCategory(
            identifier="pay_now",
            name="Pay now",
            descriptive_asset_url="https://x.klarnacdn.net/payment-method/assets/badges/generic/klarna.svg",
            standard_asset_url="https://x.klarnacdn.net/payment-method/assets/badges/generic/klarna.png",
        ),
        PaymentMethodCategory(identifier="pay_later", name="Pay later"),
    )


def test_create_session_without_categories_has_none(client, token):
    token.post(CREATE_V2, json=fixture("create_session_flat.json"))

    session = client.create_session(code="c", confirmation_url="https://site.test/thanks/")

    assert session.payment_method_categories == ()


def test_create_session_v1_uses_the_identity_token_and_no_system_token(client, rsps):
    rsps.post(CREATE_V1, json=fixture("create_session_item.json"))

    client.create_session(
        code="dagbladet_digital",
        confirmation_url="https://site.test/thanks/",
        period_type="recurring",
        identity_token=IDENTITY_TOKEN,
    )

    [call] = rsps.calls
    assert call.request.url == CREATE_V1
    assert_api_request(call, IDENTITY_TOKEN)
    assert body_of(call) == {
        "code": "dagbladet_digital",
        "confirmation_url": "https://site.test/thanks/",
        "period_type": "recurring",
    }


@pytest.mark.parametrize("missing", ["klarna_client_token", "klarna_payments_session_id"])
def test_create_session_without_a_required_field_is_malformed(client, token, missing):
    """F06: a create_session answer we cannot use is a clean error, not a KeyError."""
    item = fixture("create_session_item.json")
    del item["item"][missing]
    token.post(CREATE_V2, json=item)

    with pytest.raises(exc.MalformedResponse) as raised:
        client.create_session(code="c", confirmation_url="https://site.test/thanks/")

    assert missing in str(raised.value)
    assert raised.value.endpoint == "/external/api/v2/klarna_payments/create_session"


# -- place_order / place_trial_order -----------------------------------------------------------------


def test_place_order_v1_body_and_headers(client, rsps):
    rsps.post(ORDER_V1, json=fixture("place_order_item.json"))

    order = client.place_order(
        klarna_payments_session_id="session-1",
        klarna_authorization_token=KLARNA_AUTH,
        browser=BrowserInfo(ip="81.208.13.50", language="sv-SE", user_agent="Mozilla/5.0"),
        flags=AccountSyncFlags(raise_on_delivery_address_error=True),
        traffic_source="facebook",
        merchant_reference="attempt-42",
        customer=CustomerInfo(email=EMAIL, first_name="Ada", last_name="Lovelace"),
        identity_token=IDENTITY_TOKEN,
    )

    assert order.redirect_uri == "https://pay.klarna.com/eu/hpp/redirect/abc"
    assert order.order_id == "5f0d5a7d5b3e2a0001ab12cd"
    [call] = rsps.calls
    assert call.request.url == ORDER_V1
    assert_api_request(call, IDENTITY_TOKEN)
    # customer_info is a v2 parameter only: v1 never sends it.
    assert body_of(call) == {
        "klarna_authorization_token": KLARNA_AUTH,
        "klarna_payments_session_id": "session-1",
        "browser_ip": "81.208.13.50",
        "browser_language": "sv-SE",
        "browser_user_agent": "Mozilla/5.0",
        "traffic_source": "facebook",
        "merchant_reference": "attempt-42",
        "raise_on_ssn_already_taken_error": True,
        "raise_on_ssn_already_set_error": False,
        "raise_on_account_update_error": False,
        "raise_on_delivery_address_error": True,
    }


@pytest.mark.parametrize("body", ["place_order_item.json", "place_order_flat.json"])
def test_place_order_v2_body_and_result(client, token, body):
    token.post(ORDER_V2, json=fixture(body))

    order = place_v2(client)

    assert order.redirect_uri == "https://pay.klarna.com/eu/hpp/redirect/abc"
    assert order.order_id == "5f0d5a7d5b3e2a0001ab12cd"
    [call] = calls_to(token, ORDER_V2)
    assert_api_request(call, SYSTEM_TOKEN)
    assert body_of(call) == {
        "klarna_authorization_token": KLARNA_AUTH,
        "klarna_payments_session_id": "session-1",
        "browser_ip": "81.208.13.50",
        "browser_language": "sv-SE",
        "browser_user_agent": "Mozilla/5.0",
        "traffic_source": "facebook",
        "merchant_reference": "attempt-42",
        "raise_on_ssn_already_taken_error": True,
        "raise_on_ssn_already_set_error": False,
        "raise_on_account_update_error": False,
        "raise_on_delivery_address_error": False,
        "customer_info": {"email": EMAIL, "first_name": "Ada", "last_name": "Lovelace"},
    }


def test_place_order_omits_empty_optional_strings_but_never_the_flags(client, token):
    token.post(ORDER_V2, json={})

    place_v2(client, browser=BrowserInfo(), traffic_source="", merchant_reference="")

    [call] = calls_to(token, ORDER_V2)
    assert body_of(call) == {
        "klarna_authorization_token": KLARNA_AUTH,
        "klarna_payments_session_id": "session-1",
        "raise_on_ssn_already_taken_error": True,
        "raise_on_ssn_already_set_error": False,
        "raise_on_account_update_error": False,
        "raise_on_delivery_address_error": False,
        "customer_info": {"email": EMAIL, "first_name": "Ada", "last_name": "Lovelace"},
    }


@pytest.mark.parametrize("kwargs", [{"json": {}}, {"json": {"item": {"status": "ok"}}}, {"body": ""}])
def test_place_order_2xx_without_redirect_is_success(client, token, kwargs):
    """A 2xx without a redirect still means the order was placed.

    docs/payway-contract.md#place_order-and-place_trial_order.
    """
    token.post(ORDER_V2, status=201, **kwargs)

    order = place_v2(client)

    assert order.redirect_uri == ""
    assert order.order_id == ""


def test_trial_order_goes_to_v2_place_trial_order_with_the_system_token(client, token):
    """Trials always use v2 place_trial_order, even for a reader with an identity token."""
    token.post(TRIAL_V2, json=fixture("place_order_flat.json"))

    order = place_v2(client, trial=True, identity_token=IDENTITY_TOKEN)

    assert order.redirect_uri == "https://pay.klarna.com/eu/hpp/redirect/abc"
    [call] = calls_to(token, TRIAL_V2)
    assert_api_request(call, SYSTEM_TOKEN)
    assert body_of(call)["customer_info"] == {"email": EMAIL, "first_name": "Ada", "last_name": "Lovelace"}
    assert IDENTITY_TOKEN not in str(call.request.headers)


def test_trial_order_of_a_logged_in_reader_can_move_to_v1_in_one_line(client, rsps, monkeypatch):
    v1_trial = "/external/api/v1/klarna_payments/place_trial_order"
    monkeypatch.setattr(client_module, "IDENTITY_TRIAL_ORDER_PATH", v1_trial)
    rsps.post(BASE + v1_trial, json={})

    place_v2(client, trial=True, identity_token=IDENTITY_TOKEN, customer=None)

    [call] = rsps.calls
    assert call.request.url == BASE + v1_trial
    assert_api_request(call, IDENTITY_TOKEN)
    assert "customer_info" not in body_of(call)

    rsps.replace(responses.POST, BASE + v1_trial, status=403, json={})
    with pytest.raises(exc.PaymentMethodFailed):
        place_v2(client, trial=True, identity_token=IDENTITY_TOKEN, customer=None)


@pytest.mark.parametrize("trial", [False, True])
def test_v2_order_without_customer_fails_before_any_request(client, rsps, trial):
    with pytest.raises(ValueError, match="customer is required"):
        place_v2(client, customer=None, trial=trial)

    assert len(rsps.calls) == 0


# -- payment periods and catalogue -------------------------------------------------------------------


def test_payment_periods(client, token):
    token.get(PERIODS, json=fixture("payment_periods.json"))

    periods = client.payment_periods("dagbladet_digital")

    [call] = calls_to(token, PERIODS)
    assert_api_request(call, SYSTEM_TOKEN)
    assert query_of(call) == {"code": "dagbladet_digital"}
    assert [(p.id, p.type, p.enabled, p.iteration_type, p.iteration_length) for p in periods] == [
        ("5e4bbd0e09c04c1f6498c57f", "recurring", True, "month", 1),
        ("5e4bbd0e09c04c1f6498c580", "limited", False, "year", 1),
        ("5e4bbd0e09c04c1f6498c581", "recurring", True, "month", 3),
    ]
    assert [p.price for p in periods] == [Decimal("210"), Decimal("1990.5"), Decimal("0")]
    assert all(isinstance(p.price, Decimal) for p in periods)


@pytest.mark.parametrize(
    "items",
    [
        [{"type": "recurring", "price": 10}],  # no id
        [{"id": "5e4bbd0e09c04c1f6498c57f", "price": "ten"}],  # price not a number
    ],
)
def test_unusable_payment_periods_are_malformed(client, token, items):
    token.get(PERIODS, json={"items": items})

    with pytest.raises(exc.MalformedResponse):
        client.payment_periods("c")


def test_titles(client, token):
    token.get(TITLES, json=fixture("titles.json"))

    titles = client.titles()

    [call] = calls_to(token, TITLES)
    assert_api_request(call, SYSTEM_TOKEN)
    assert query_of(call) == {}
    assert [(t.code, t.name, t.image_url, t.url) for t in titles] == [
        ("dagbladet", "Dagbladet", "", "https://dagbladet.example"),
        ("kvp", "Kvällsposten", "https://img.example/k.png", ""),
    ]


def test_list_without_items_is_malformed(client, token):
    token.get(TITLES, json={"item": {"name": "not a list"}})

    with pytest.raises(exc.MalformedResponse):
        client.titles()


def test_search_packages(client, token):
    token.get(PACKAGES, json=fixture("package_search.json"))

    page = client.search_packages("dagbladet", page_size=2)

    [call] = calls_to(token, PACKAGES)
    assert_api_request(call, SYSTEM_TOKEN)
    assert query_of(call) == {"title_code": "dagbladet", "page_number": "1", "page_size": "2"}
    assert page.more_results_available is True
    assert (page.page_number, page.page_size) == (1, 2)
    first, second = page.items
    assert (first.product_code, first.name, first.kind, first.id) == (
        "dagbladet_digital",
        "Digital",
        PRODUCT_PACKAGE,
        "5e4bbd0e09c04c1f6498c500",
    )
    assert first.valid_from == dt.datetime(2020, 5, 27, 7, 40, 26, tzinfo=dt.timezone.utc)
    assert first.valid_to is None
    assert second.expired is True
    assert second.valid_from == dt.datetime(2019, 1, 1, tzinfo=dt.timezone.utc)


def test_search_campaigns(client, token):
    token.get(CAMPAIGNS, json=fixture("campaign_search.json"))

    page = client.search_campaigns("dagbladet", page_number=2, include_inactive=True)

    [call] = calls_to(token, CAMPAIGNS)
    assert_api_request(call, SYSTEM_TOKEN)
    assert query_of(call) == {
        "title_code": "dagbladet",
        "page_number": "2",
        "page_size": "25",
        "include_inactive": "true",
    }
    [campaign] = page.items
    assert (campaign.product_code, campaign.kind, campaign.valid_from) == (
        "dagbladet_trial",
        PRODUCT_CAMPAIGN,
        None,
    )
    assert page.more_results_available is False


@pytest.mark.parametrize("body", ["active_products_item.json", "active_products_flat.json"])
def test_active_products(client, rsps, body):
    rsps.get(ACTIVE, json=fixture(body))

    active = client.active_products(IDENTITY_TOKEN)

    assert active.account_id == "5e4bbd0e09c04c1f6498c700"
    assert "dagbladet_digital" in active.active_products
    assert active.active_products == tuple(fixture(body).get("item", fixture(body))["active_products"])
    [call] = rsps.calls
    assert_api_request(call, IDENTITY_TOKEN)


# -- transport failures ------------------------------------------------------------------------------


def _connect_error() -> requests.ConnectionError:
    """What requests raises once urllib3 has spent its connect retry."""
    reason = urllib3.exceptions.NewConnectionError(None, "Connection refused")
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", reason))


@pytest.mark.parametrize(
    "error",
    [_connect_error(), requests.ConnectTimeout("connect timed out"), requests.ConnectionError("refused")],
    ids=["refused", "connect-timeout", "bare"],
)
def test_connect_failure_is_a_connect_error(client, token, error):
    """F01/F05: nothing reached Payway, so the caller may retry."""
    token.post(ORDER_V2, body=error)

    with pytest.raises(exc.PaywayConnectError) as raised:
        place_v2(client)

    assert raised.value.may_have_reached_payway is False
    assert raised.value.endpoint == "/external/api/v2/klarna_payments/place_order"
    assert isinstance(raised.value.__cause__, requests.RequestException)


def test_read_timeout_on_place_order_is_not_retried(client, token):
    """F03: the request was sent; its outcome is unknown and it is never re-sent."""
    token.post(ORDER_V2, body=requests.ReadTimeout("read timed out"))

    with pytest.raises(exc.PaywayTimeout) as raised:
        place_v2(client)

    assert raised.value.may_have_reached_payway is True
    assert len(calls_to(token, ORDER_V2)) == 1


def test_connection_dropped_after_sending_is_an_unknown_outcome(client, token):
    """F03: a reset after the request went out is handled like a read timeout."""
    dropped = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError())
    token.post(ORDER_V2, body=requests.ConnectionError(dropped))

    with pytest.raises(exc.PaywayConnectionLost) as raised:
        place_v2(client)

    assert isinstance(raised.value, exc.PaywayTimeout)
    assert raised.value.may_have_reached_payway is True
    assert len(calls_to(token, ORDER_V2)) == 1


def test_retry_policy_retries_connect_only(client):
    """S16: the adapter's Retry covers the connect phase once; reads and statuses are never retried."""
    retry = client._session.get_adapter(BASE).max_retries

    assert retry.connect == 1
    assert retry.read is False
    assert retry.status == 0
    assert retry.other == 0
    assert "POST" not in retry.allowed_methods
    assert not retry.status_forcelist


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_refused_connection_is_tried_twice_over_real_sockets():
    """F01/F05: exactly one automatic retry of a connect that failed, over a real socket."""
    payway = PaywayClient(
        base_url=f"http://127.0.0.1:{_free_port()}", client_id="i", client_secret=SECRET, connect_timeout=0.5
    )
    real_create_connection = urllib3.util.connection.create_connection
    with (
        mock.patch.object(
            urllib3.util.connection, "create_connection", side_effect=real_create_connection
        ) as connects,
        pytest.raises(exc.PaywayConnectError),
    ):
        payway.system_token()

    assert connects.call_count == 2
    payway.close()


def test_read_timeout_is_not_retried_over_real_sockets():
    """F03: a server that accepts and stays silent gets exactly one connection and one request."""
    accepted: list[socket.socket] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(5)
        server.settimeout(3)

        def accept_all() -> None:
            try:
                while True:
                    accepted.append(server.accept()[0])
            except OSError:
                return

        acceptor = threading.Thread(target=accept_all, daemon=True)
        acceptor.start()
        payway = PaywayClient(
            base_url=f"http://127.0.0.1:{server.getsockname()[1]}",
            client_id="i",
            client_secret=SECRET,
            connect_timeout=1,
            read_timeout=0.3,
        )
        with pytest.raises(exc.PaywayTimeout):
            payway.system_token()
        payway.close()
        server.close()
        acceptor.join(timeout=5)

    assert len(accepted) == 1
    for conn in accepted:
        conn.close()


# -- HTTP error statuses -----------------------------------------------------------------------------


def test_401_on_system_token_renews_it_and_retries_once(client, token):
    """F07: a 401 is rejected before execution, so one retry with a fresh token is safe."""
    token.post(CREATE_V2, status=401, json={"code": "unauthorized", "message": "expired"})
    token.post(CREATE_V2, json=fixture("create_session_item.json"))

    session = client.create_session(code="c", confirmation_url="https://site.test/thanks/")

    assert session.klarna_payments_session_id
    calls = calls_to(token, CREATE_V2)
    assert [call.request.headers["Authorization"] for call in calls] == [
        f"Bearer {SYSTEM_TOKEN}",
        f"Bearer {RENEWED_TOKEN}",
    ]
    assert body_of(calls[0]) == body_of(calls[1])
    assert len(calls_to(token, TOKEN_URL)) == 2


def test_401_twice_on_system_token_raises(client, token):
    token.post(ORDER_V2, status=401, json={"code": "unauthorized"})

    with pytest.raises(exc.AuthenticationExpired) as raised:
        place_v2(client)

    assert raised.value.status == 401
    assert len(calls_to(token, ORDER_V2)) == 2
    assert len(calls_to(token, TOKEN_URL)) == 2


def test_401_on_identity_token_is_raised_without_retry(client, rsps):
    """F07: only the reader can renew an identity token, by logging in again."""
    rsps.post(ORDER_V1, status=401, json={"code": "unauthorized"})

    with pytest.raises(exc.AuthenticationExpired) as raised:
        place_v2(client, identity_token=IDENTITY_TOKEN)

    assert raised.value.may_have_reached_payway is False
    assert len(rsps.calls) == 1
    assert calls_to(rsps, TOKEN_URL) == []


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        (ORDER_V1, {"identity_token": IDENTITY_TOKEN}),
        (ORDER_V2, {}),
        (TRIAL_V2, {"trial": True}),
    ],
    ids=["v1", "v2", "trial"],
)
def test_403_on_place_order_is_payment_method_failed(client, token, url, kwargs):
    """F08: Klarna refused the reader; terminal, never retried."""
    token.post(url, status=403, json=fixture("error_payment_method_failed.json"))

    with pytest.raises(exc.PaymentMethodFailed) as raised:
        place_v2(client, **kwargs)

    assert raised.value.code == "payment_method_failed"
    assert raised.value.error_code == "payment_method_failed"
    assert len(calls_to(token, url)) == 1


#: The 403 classes (docs/payway-contract.md, "Errors"): the error body, and whether it means "payment method
#: failed" on an order path. Anything but the documented code or no code at all is a configuration error.
FORBIDDEN_BODIES = {
    "payment-method-failed": ({"code": "payment_method_failed", "message": "refused"}, True),
    "payment-method-failed-upper-case": ({"code": "PAYMENT_METHOD_FAILED"}, True),
    "bare": (None, True),
    "bare-empty-object": ({}, True),
    "scope": ({"code": "insufficient_scope", "message": "lacks /external/klarna_payments/w"}, False),
    "identity": ({"code": "identity_required", "message": "needs an identity"}, False),
    "permission": ({"code": "forbidden", "message": "not allowed"}, False),
}


@pytest.mark.parametrize("body", list(FORBIDDEN_BODIES))
@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        (ORDER_V1, {"identity_token": IDENTITY_TOKEN}),
        (ORDER_V2, {}),
        (TRIAL_V2, {"trial": True}),
    ],
    ids=["place_order-v1", "place_order-v2", "place_trial_order"],
)
def test_403_classes_on_order_paths(client, token, url, kwargs, body):
    payload, payment_method_failed = FORBIDDEN_BODIES[body]
    if payload is None:
        token.post(url, status=403, body="")
    else:
        token.post(url, status=403, json=payload)

    with pytest.raises(exc.PaywayAPIError) as raised:
        place_v2(client, **kwargs)

    expected = exc.PaymentMethodFailed if payment_method_failed else exc.PermissionDenied
    assert type(raised.value) is expected
    assert raised.value.status == 403
    assert raised.value.error_code == (
        "payment_method_failed" if payment_method_failed else "permission_denied"
    )
    assert len(calls_to(token, url)) == 1


@pytest.mark.parametrize("body", list(FORBIDDEN_BODIES))
@pytest.mark.parametrize("identity", [False, True], ids=["v2", "v1"])
def test_403_classes_on_create_session_are_permission_denied(client, token, body, identity):
    """Off the order paths no 403 means "payment method failed", not even one with that code."""
    payload, _ = FORBIDDEN_BODIES[body]
    url = CREATE_V1 if identity else CREATE_V2
    if payload is None:
        token.post(url, status=403, body="")
    else:
        token.post(url, status=403, json=payload)

    with pytest.raises(exc.PermissionDenied) as raised:
        client.create_session(
            code="c",
            confirmation_url="https://site.test/thanks/",
            period_type="recurring",
            identity_token=IDENTITY_TOKEN if identity else None,
        )

    assert not isinstance(raised.value, exc.PaymentMethodFailed)
    assert raised.value.error_code == "permission_denied"


def test_403_elsewhere_is_permission_denied(client, token):
    """F09: a missing scope or identity is an operator fault, not a payment failure."""
    token.post(CREATE_V2, status=403, json={"code": "forbidden", "message": "missing scope"})

    with pytest.raises(exc.PermissionDenied) as raised:
        client.create_session(code="c", confirmation_url="https://site.test/thanks/")

    assert not isinstance(raised.value, exc.PaymentMethodFailed)
    assert raised.value.may_have_reached_payway is False


def test_400_carries_code_field_and_message(client, token):
    token.post(CREATE_V2, status=400, json=fixture("error_invalid_parameter.json"))

    with pytest.raises(exc.ValidationError) as raised:
        client.create_session(code="c", confirmation_url="https://site.test/thanks/", period_id="bad")

    error = raised.value
    assert type(error) is exc.ValidationError
    assert (error.status, error.code, error.field) == (400, "invalid_parameter", "period_id")
    assert error.upstream_message == "Parameter must match format (/^[a-f\\d]{24}$/)"
    assert str(error) == (
        "ValidationError(HTTP 400, invalid_parameter, field=period_id)"
        " at /external/api/v2/klarna_payments/create_session"
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"body": "<html>Bad Request</html>"}, {"json": {}}, {"json": ["not", "an", "object"]}, {"body": ""}],
    ids=["html", "empty-object", "list", "empty"],
)
def test_400_with_unreadable_body_is_still_a_validation_error(client, token, kwargs):
    token.post(CREATE_V2, status=400, **kwargs)

    with pytest.raises(exc.ValidationError) as raised:
        client.create_session(code="c", confirmation_url="https://site.test/thanks/")

    assert (raised.value.code, raised.value.field) == ("", "")


@pytest.mark.parametrize(
    ("payway_code", "sync_error"),
    [
        ("ssn_already_taken", "ssn_already_taken"),
        ("ssn_already_set", "ssn_already_set"),
        ("account_update_error", "account_update"),
        ("delivery_address_error", "delivery_address"),
    ],
)
def test_400_account_sync_codes(client, token, payway_code, sync_error):
    """F10: each raise_on_* failure has its own error code; the SSN in the body never reaches str()."""
    token.post(ORDER_V2, status=400, json={"code": payway_code, "message": "SSN 19121212-1212 is taken"})

    with pytest.raises(exc.AccountSyncError) as raised:
        place_v2(client)

    assert raised.value.error_code == sync_error
    assert raised.value.code == payway_code
    assert isinstance(raised.value, exc.ValidationError)
    assert "19121212-1212" not in str(raised.value)


def test_404_is_not_found(client, rsps):
    rsps.get(ACTIVE, status=404, json={"code": "not_found", "message": "No account"})

    with pytest.raises(exc.NotFound) as raised:
        client.active_products(IDENTITY_TOKEN)

    assert raised.value.code == "not_found"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_on_place_order_is_a_server_error_sent_once(client, token, status):
    """F04: the outcome of a POST answered with 5xx is unknown; it is not re-sent."""
    token.post(ORDER_V2, status=status, json=fixture("error_internal.json"))

    with pytest.raises(exc.ServerError) as raised:
        place_v2(client)

    assert raised.value.status == status
    assert raised.value.may_have_reached_payway is True
    assert len(calls_to(token, ORDER_V2)) == 1


def test_5xx_with_html_body(client, token):
    token.get(TITLES, status=502, body="<html>Bad gateway</html>", content_type="text/html")

    with pytest.raises(exc.ServerError) as raised:
        client.titles()

    assert raised.value.code == ""


def test_429_is_rate_limited_with_retry_after(client, token):
    """F12: Retry-After is kept for the caller; nothing is retried here."""
    token.get(TITLES, status=429, json={"code": "too_many_requests"}, headers={"Retry-After": "30"})

    with pytest.raises(exc.RateLimited) as raised:
        client.titles()

    assert raised.value.retry_after == 30.0
    assert len(calls_to(token, TITLES)) == 1


@pytest.mark.parametrize("status", [302, 409, 418])
def test_other_statuses_are_generic_api_errors(client, token, status):
    token.get(TITLES, status=status, headers={"Location": "https://elsewhere.test/"})

    with pytest.raises(exc.PaywayAPIError) as raised:
        client.titles()

    assert type(raised.value) is exc.PaywayAPIError
    assert raised.value.status == status
    # Redirects are not followed: the bearer token never travels to another URL.
    assert len(token.calls) == 2


@pytest.mark.parametrize(
    ("method", "url", "call"),
    [
        (
            "POST",
            CREATE_V2,
            lambda c: c.create_session(code="c", confirmation_url="https://site.test/thanks/"),
        ),
        ("POST", ORDER_V2, place_v2),
        ("GET", TITLES, lambda c: c.titles()),
    ],
    ids=["create_session", "place_order", "titles"],
)
def test_non_json_2xx_is_malformed(client, token, method, url, call):
    """F06: an HTML page with status 200 is a malformed response (for place_order: outcome unknown)."""
    token.add(method, url, status=200, body="<html>Maintenance</html>", content_type="text/html")

    with pytest.raises(exc.MalformedResponse) as raised:
        call(client)

    assert raised.value.status == 200
    assert raised.value.may_have_reached_payway is True
    assert len(calls_to(token, url)) == 1


def test_truncated_json_is_malformed(client, token):
    token.post(ORDER_V2, status=200, body='{"redirect_uri": "https://pay.kl', content_type="application/json")

    with pytest.raises(exc.MalformedResponse):
        place_v2(client)


# -- secrets and logs --------------------------------------------------------------------------------


def test_no_secret_reaches_exception_messages_or_logs(client, token, caplog):
    """S03: no token, secret, authorization token or personal data in any log record or error text."""
    caplog.set_level(logging.DEBUG)
    token.post(CREATE_V2, status=401, json={"code": "unauthorized", "message": f"token {SYSTEM_TOKEN}"})
    token.post(CREATE_V2, json=fixture("create_session_item.json"))
    token.post(ORDER_V2, status=403, json=fixture("error_payment_method_failed.json"))
    token.post(ORDER_V1, body=requests.ReadTimeout(f"timeout Bearer {IDENTITY_TOKEN}"))
    token.post(TRIAL_V2, body="not json")
    token.get(ACTIVE, status=401, json={"code": "unauthorized", "message": IDENTITY_TOKEN})

    errors: list[Exception] = []
    client.create_session(code="c", confirmation_url="https://site.test/thanks/")
    for action in (
        lambda: place_v2(client),
        lambda: place_v2(client, identity_token=IDENTITY_TOKEN),
        lambda: place_v2(client, trial=True),
        lambda: client.active_products(IDENTITY_TOKEN),
    ):
        with pytest.raises(exc.PaywayError) as raised:
            action()
        errors.append(raised.value)

    texts = [caplog.text] + [str(error) for error in errors] + [repr(error) for error in errors]
    for text in texts:
        for sentinel in SENTINELS:
            assert sentinel not in text
        assert "Bearer" not in text


def test_log_lines_name_method_path_status_and_code(client, token, caplog):
    caplog.set_level(logging.INFO, logger="wagtail_klarna_paywall.payway")
    token.post(ORDER_V2, status=403, json=fixture("error_payment_method_failed.json"))

    with pytest.raises(exc.PaymentMethodFailed):
        place_v2(client)

    record = caplog.records[-1]
    assert record.name == "wagtail_klarna_paywall.payway"
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        "payway POST /external/api/v2/klarna_payments/place_order -> 403 in "
    )
    assert record.getMessage().endswith("ms (payment_method_failed)")
    assert (record.payway_status, record.payway_code) == (403, "payment_method_failed")


# -- lifecycle ---------------------------------------------------------------------------------------


def test_close_forgets_the_token_and_closes_the_owned_session(client, token):
    client.system_token()
    with mock.patch.object(client._session, "close") as close:
        client.close()
    client.system_token()

    close.assert_called_once_with()
    assert len(calls_to(token, TOKEN_URL)) == 2


def test_a_supplied_session_is_used_and_left_open(token):
    session = requests.Session()
    payway = PaywayClient(base_url=BASE, client_id="i", client_secret=SECRET, session=session)
    token.get(TITLES, json=fixture("titles.json"))

    with (
        mock.patch.object(session, "close") as close,
        mock.patch.object(session, "request", wraps=session.request) as request,
    ):
        payway.titles()
        payway.close()

    assert request.call_count == 2
    close.assert_not_called()


# -- tolerant parsing (docs/payway-contract.md#envelope) --------------------------------------------------


def test_payment_periods_tolerate_loose_types(client, token):
    token.get(
        PERIODS,
        json=[
            {"id": 12345, "enabled": "false", "iteration_length": "3", "price": "99.50", "type": "limited"},
            {"id": "5e4bbd0e09c04c1f6498c57f", "enabled": None, "iteration_length": "x", "price": None},
            "not an object",
        ],
    )

    first, second = client.payment_periods("c")

    assert (first.id, first.enabled, first.iteration_length, first.price) == (
        "12345",
        False,
        3,
        Decimal("99.50"),
    )
    assert (second.enabled, second.iteration_length, second.price) == (True, 1, None)
    assert (second.type, second.iteration_type, second.payment_method) == ("", "", "klarna_payments")


@pytest.mark.parametrize("price", [True, "NaN", "Infinity", [1]])
def test_payment_period_price_must_be_a_finite_number(client, token, price):
    token.get(PERIODS, json={"items": [{"id": "p", "price": price}]})

    with pytest.raises(exc.MalformedResponse, match="price"):
        client.payment_periods("c")


def test_items_nested_under_item_are_read(client, token):
    token.get(TITLES, json={"item": {"items": [{"code": "dagbladet", "name": "Dagbladet"}]}})

    assert [title.code for title in client.titles()] == ["dagbladet"]


@pytest.mark.parametrize("body", [["a", "list"], "a string", 42])
def test_single_object_response_that_is_not_an_object_is_malformed(client, token, body):
    token.post(CREATE_V2, json=body)

    with pytest.raises(exc.MalformedResponse):
        client.create_session(code="c", confirmation_url="https://site.test/thanks/")


def test_categories_without_identifier_are_skipped(client, token):
    item = fixture("create_session_flat.json")
    item["payment_method_categories"] = [{"name": "no identifier"}, "junk", {"identifier": "klarna"}]
    token.post(CREATE_V2, json=item)

    session = client.create_session(code="c", confirmation_url="https://site.test/thanks/")

    assert session.payment_method_categories == (PaymentMethodCategory(identifier="klarna"),)


def test_active_products_skip_non_codes(client, rsps):
    rsps.get(ACTIVE, json={"item": {"id": "a", "active_products": ["ok", "", None, 3]}})

    assert client.active_products(IDENTITY_TOKEN).active_products == ("ok",)


# -- server clock ------------------------------------------------------------------------------------


def test_server_date_reads_the_date_header_without_a_token(client, rsps):
    rsps.head(BASE + "/", status=404, headers={"Date": "Wed, 25 Nov 2026 20:00:00 GMT"})

    assert client.server_date() == dt.datetime(2026, 11, 25, 20, 0, tzinfo=dt.timezone.utc)
    [call] = rsps.calls
    assert "Authorization" not in call.request.headers
    assert call.request.req_kwargs["timeout"] == TIMEOUT


def test_server_date_without_header_is_none(client, rsps):
    rsps.head(BASE + "/", status=200)

    assert client.server_date() is None


def test_server_date_connect_failure(client, rsps):
    rsps.head(BASE + "/", body=_connect_error())

    with pytest.raises(exc.PaywayConnectError):
        client.server_date()


def test_pool_keeps_enough_connections_for_concurrent_readers():
    """L03: concurrent readers reuse pooled connections instead of opening and dropping extras."""
    from wagtail_klarna_paywall.payway.client import POOL_MAXSIZE

    client = PaywayClient(base_url="https://payway.test", client_id="c", client_secret="s")
    adapter = client._session.get_adapter("https://payway.test/")
    assert adapter._pool_maxsize == POOL_MAXSIZE >= 50
    client.close()


def test_the_client_reads_no_proxy_or_certificates_from_the_environment(monkeypatch):
    """Explicit like the rest of the client: requests would otherwise look up (and use) a proxy and a CA
    bundle from the environment on every call."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    client = PaywayClient(base_url="https://payway.test", client_id="c", client_secret="s")
    merged = client._session.merge_environment_settings("https://payway.test/", {}, None, None, None)
    assert merged["proxies"] == {} and merged["verify"] is True
    client.close()


def test_process_wide_client_is_built_once_under_concurrency_and_closed_on_reset():
    """Every web worker thread shares one client (one pool, one cached token)."""
    import threading
    import time

    from wagtail_klarna_paywall.payway import ProcessWide

    built, closed = [], []

    class Thing:
        def close(self):
            closed.append(self)

    def build():
        time.sleep(0.01)  # widen the race window
        thing = Thing()
        built.append(thing)
        return thing

    shared = ProcessWide(build)
    barrier = threading.Barrier(8)
    got = []

    def worker():
        barrier.wait()
        got.append(shared.get())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and all(g is built[0] for g in got)
    shared.reset()
    assert closed == built and shared.get() is not built[0]


# -- /v3/me ------------------------------------------------------------------------------------------

ME = BASE + "/external/api/v3/me"
ME_ITEM = {
    "id": "5e4bbd0e09c04c1f6498c700",
    "email": "anna@example.com",
    "first_name": "Anna",
    "last_name": "Andersson",
    "social_security_number": "191212121212",
    "address": {"street": "Storgatan 1"},
    "user_products": [{"product_code": "digital"}],
}


@pytest.mark.parametrize(
    "body",
    [
        {"item": ME_ITEM},
        ME_ITEM,
        {"item": {**{k: v for k, v in ME_ITEM.items() if k != "id"}, "account_id": ME_ITEM["id"]}},
        {"item": {"account": ME_ITEM}},
    ],
    ids=["item", "bare", "account_id", "nested-account"],
)
def test_current_account_reads_every_plausible_shape(client, rsps, body):
    rsps.get(ME, json=body)

    account = client.current_account(IDENTITY_TOKEN)

    assert account == Account(
        id="5e4bbd0e09c04c1f6498c700", email="anna@example.com", first_name="Anna", last_name="Andersson"
    )
    [call] = rsps.calls
    assert_api_request(call, IDENTITY_TOKEN)
    assert call.request.method == "GET"
    # Personal data stays out of the object's repr (and so out of logs and error reports).
    assert "anna@example.com" not in repr(account) and "Anna" not in repr(account)
    assert not hasattr(account, "social_security_number")


def test_current_account_tolerates_missing_names(client, rsps):
    rsps.get(ME, json={"item": {"id": 42}})
    assert client.current_account(IDENTITY_TOKEN) == Account(id="42")


def test_current_account_without_an_id_is_malformed(client, rsps):
    rsps.get(ME, json={"item": {"email": "anna@example.com"}})
    with pytest.raises(exc.MalformedResponse) as raised:
        client.current_account(IDENTITY_TOKEN)
    assert raised.value.endpoint == "/external/api/v3/me"
    assert "anna" not in str(raised.value)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, exc.AuthenticationExpired),
        (404, exc.NotFound),
        (403, exc.PermissionDenied),
        (500, exc.ServerError),
    ],
)
def test_current_account_errors_are_typed(client, rsps, status, error):
    rsps.get(ME, status=status, json={"code": "x", "message": "anna@example.com"})
    with pytest.raises(error) as raised:
        client.current_account(IDENTITY_TOKEN)
    assert "anna@example.com" not in str(raised.value)
    assert calls_to(rsps, TOKEN_URL) == []  # an identity call never swaps in the system token


def test_current_account_timeout_is_typed(client, rsps):
    rsps.get(ME, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(exc.PaywayTimeout):
        client.current_account(IDENTITY_TOKEN)
