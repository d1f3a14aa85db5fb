"""The embedded fake Payway, through Django's test client: shapes, validation, failures and controls.

``test_contract.py`` runs the real client against the same fake over HTTP; this file pins the fake's own
behaviour, including the cases the client never provokes (unknown parameters, wrong content types).
"""

import json
import os
import threading
import time

import pytest
from django.test import Client
from freezegun import freeze_time

from tests.factories import FAKE_BASE as BASE
from tests.factories import FAKE_CONFIRM as CONFIRM
from tests.factories import FAKE_CUSTOMER as CUSTOMER
from tests.factories import FAKE_KP as KP
from tests.factories import FakeApi as Api
from wagtail_klarna_paywall.fake import catalogue, state

pytestmark = pytest.mark.usefixtures("fresh_fake")


@pytest.fixture
def api():
    return Api()


def assert_error(response, status, code, field=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert body["message"]
    if field is not None:
        assert body.get("field") == field
    return body


# -- token endpoint ---------------------------------------------------------------------------------


def test_system_token(api):
    response = api.token(scope="/external/product/r /external/title/r")
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 3600
    assert body["token_type"] == "bearer"
    assert body["scope"] == "/external/product/r /external/title/r"
    assert "refresh_token" not in body
    assert state.find_access_token(body["access_token"]).account_id is None


def test_token_with_wrong_client_secret_is_401(api):
    assert_error(api.token(client_secret="wrong"), 401, "invalid_client")


def test_token_endpoint_wants_a_form(api):
    response = api.client.post(
        BASE + "api/authorization/access_token", {"grant_type": "none"}, content_type="application/json"
    )
    assert_error(response, 400, "invalid_content_type_error")


@pytest.mark.parametrize(
    ("fields", "status", "code", "field"),
    [
        ({"grant_type": "password"}, 400, "invalid_parameter", "grant_type"),
        ({"scope": "/external/everything/w"}, 400, "invalid_scope", "scope"),
        ({"grant_type": "ticket", "ticket": "never-issued"}, 400, "invalid_grant", "ticket"),
        ({"grant_type": "refresh_token", "refresh_token": "nope"}, 400, "invalid_grant", "refresh_token"),
        ({"username": "x"}, 400, "unknown_parameter", None),
    ],
)
def test_token_endpoint_rejects(api, fields, status, code, field):
    assert_error(api.token(**fields), status, code, field)


def test_ticket_gives_an_identity_token_once_and_refresh_rotates(api):
    ticket = state.issue_ticket(state.READER_ACCOUNT_ID)
    body = api.token("ticket", ticket=ticket, scope="/external/klarna_payments/w /external/me/w").json()
    assert state.find_access_token(body["access_token"]).account_id == state.READER_ACCOUNT_ID
    assert body["refresh_token"]
    assert_error(api.token("ticket", ticket=ticket), 400, "invalid_grant")

    refreshed = api.token("refresh_token", refresh_token=body["refresh_token"]).json()
    assert state.find_access_token(refreshed["access_token"]).account_id == state.READER_ACCOUNT_ID
    assert refreshed["refresh_token"] != body["refresh_token"]
    assert_error(api.token("refresh_token", refresh_token=body["refresh_token"]), 400, "invalid_grant")


def test_issue_ticket_for_unknown_account():
    with pytest.raises(ValueError):
        state.issue_ticket("ffffffffffffffffffffffff")


def test_demo_accounts_authenticate():
    assert state.authenticate("Subscriber@example.com", "demo").products == {"digital"}
    assert state.authenticate("reader@example.com", "demo").products == set()
    assert state.authenticate("reader@example.com", "wrong") is None
    assert state.authenticate("nobody@example.com", "demo") is None


# -- bearer tokens ----------------------------------------------------------------------------------


def test_external_api_needs_a_bearer_token(api):
    url = BASE + "external/api/v1/titles/"
    assert_error(api.get(url), 401, "unauthorized")
    assert_error(api.get(url, token="made-up"), 401, "unauthorized")
    assert api.get(url, token=api.system_token()).status_code == 200


def test_token_expires_after_expires_in(api):
    url = BASE + "external/api/v1/titles/"
    with freeze_time("2030-01-01 12:00:00") as frozen:
        token = api.token().json()["access_token"]
        frozen.tick(3599)
        assert api.get(url, token=token).status_code == 200
        frozen.tick(1)
        assert_error(api.get(url, token=token), 401, "unauthorized")


def test_token_without_the_scope_is_403(api):
    token = state.issue_access_token(scopes={"/external/title/r"}).value
    assert_error(api.session(token=token), 403, "insufficient_scope")


def test_v1_klarna_and_me_need_identity(api):
    system = api.system_token()
    assert_error(api.session(version=1, token=system), 403, "identity_required")
    assert_error(api.place("x", version=1, token=system), 403, "identity_required")
    assert_error(api.get(BASE + "external/api/v1/me/active_products", token=system), 403, "identity_required")


# -- create_session ---------------------------------------------------------------------------------


def test_create_session_v2(api):
    response = api.session()
    assert response.status_code == 200
    item = response.json()["item"]
    assert len(item["klarna_client_token"].split(".")) == 3
    assert [c["identifier"] for c in item["payment_method_categories"]] == [
        "pay_now",
        "pay_later",
        "pay_over_time",
    ]
    assert item["payment_method_categories"][0]["name"] == "Betala nu"
    assert item["payment_method_categories"][0]["asset_urls"]["standard"].startswith("http://testserver/")
    session = state.get_session(item["klarna_payments_session_id"])
    assert (session.version, session.code, session.period_id) == (
        2,
        "demo_digital",
        "5f0d1c2b3a4e5f6a7b8c9d01",
    )


def test_create_session_v1_belongs_to_the_account(api):
    session_id = api.session_id(version=1, period_type="limited")
    session = state.get_session(session_id)
    assert session.account_id == state.SUBSCRIBER_ACCOUNT_ID
    assert session.period_id == "5f0d1c2b3a4e5f6a7b8c9d02"


def test_trial_session_offers_only_pay_now(api):
    response = api.session(code="demo_trial_14d", period_type=None, period_id=catalogue.TRIAL_PERIOD_ID)
    item = response.json()["item"]
    assert [c["identifier"] for c in item["payment_method_categories"]] == ["pay_now"]
    assert state.get_session(item["klarna_payments_session_id"]).trial


def test_session_categories_can_be_switched(api):
    """Payway passes Klarna's categories through; which ones depends on the merchant's Klarna setup."""
    state.set_session_categories(trial=["pay_now", "direct_debit"], regular=["klarna"])
    trial = api.session(code="demo_trial_14d", period_type=None, period_id=catalogue.TRIAL_PERIOD_ID)
    item = trial.json()["item"]
    assert [c["identifier"] for c in item["payment_method_categories"]] == ["pay_now", "direct_debit"]
    assert item["payment_method_categories"][1]["name"] == "Autogiro"
    regular = api.session().json()["item"]
    assert [c["identifier"] for c in regular["payment_method_categories"]] == ["klarna"]
    # An empty list: a session that lists no categories at all.
    control(api, {"session_categories": {"regular": []}})
    assert api.session().json()["item"]["payment_method_categories"] == []
    snapshot = control(api, {}).json()
    assert snapshot["session_categories"] == {"regular": [], "trial": ["pay_now", "direct_debit"]}
    state.reset()
    assert len(api.session().json()["item"]["payment_method_categories"]) == 3


def test_products_shape_switch(api):
    url = BASE + "external/api/v2/products/package/search"
    control(api, {"products_shape": "product_codes"})
    [first, _second] = api.get(url, {"title_code": "demo"}, api.system_token()).json()["items"]
    assert first["product_codes"] == ["digital"] and "products" not in first
    assert control(api, {}).json()["products_shape"] == "product_codes"
    assert control(api, {"products_shape": "xml"}).status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"session_categories": ["pay_now"]},
        {"session_categories": {"weekly": ["pay_now"]}},
        {"session_categories": {"trial": ["bitcoin"]}},
        {"session_categories": {"trial": "pay_now"}},
    ],
)
def test_session_categories_control_rejects_nonsense(api, body):
    assert control(api, body).status_code == 400


def test_start_date_today_is_accepted(api):
    with freeze_time("2030-06-01 10:00:00"):
        assert api.session(start_date="2030-06-01").status_code == 200


@pytest.mark.parametrize(
    ("version", "body", "field"),
    [
        (2, {"code": "no_such_package"}, "code"),
        (2, {"code": "demo_old"}, "code"),
        (2, {"code": ""}, "code"),
        (2, {"period_type": "weekly"}, "period_type"),
        (2, {"period_type": None}, "period_type"),
        (1, {"period_type": None, "period_id": "5f0d1c2b3a4e5f6a7b8c9d01"}, "period_type"),
        (2, {"period_id": "5f0d1c2b3a4e5f6a7b8c9d01,"}, "period_id"),
        (2, {"period_id": "5f0d1c2b3a4e5f6a7b8c9d03"}, "period_id"),
        (2, {"period_type": "limited", "period_id": "5f0d1c2b3a4e5f6a7b8c9d01"}, "period_type"),
        (2, {"code": "demo_digital_weekend", "period_type": "limited"}, "period_type"),
        (2, {"code": "demo_trial_14d"}, "period_id"),
        (2, {"code": "demo_trial_14d", "period_id": "5f0d1c2b3a4e5f6a7b8c9d04"}, "period_id"),
        (2, {"confirmation_url": "/kop/tack/"}, "confirmation_url"),
        (2, {"confirmation_url": "ftp://news.example/"}, "confirmation_url"),
        (2, {"confirmation_url": None}, "confirmation_url"),
        (2, {"start_date": "2000-01-01"}, "start_date"),
        (2, {"start_date": "01/06/2030"}, "start_date"),
        (2, {"disable_account_info_overwrite": "yes"}, "disable_account_info_overwrite"),
    ],
)
def test_create_session_validation(api, version, body, field):
    """B06/B07: what Payway refuses at create_session, each with the offending field."""
    body = {"code": "demo_digital", "period_type": "recurring", "confirmation_url": CONFIRM, **body}
    body = {k: v for k, v in body.items() if v is not None}
    token = api.identity_token() if version == 1 else api.system_token()
    assert_error(
        api.post(KP.format(version) + "create_session", body, token), 400, "invalid_parameter", field
    )
    assert state.sessions() == []


def test_create_session_unknown_parameters(api):
    body = assert_error(api.session(price=1, amount=2), 400, "unknown_parameter")
    assert body["message"] == "Unknown parameters: price,amount"


def test_create_session_wrong_content_type(api):
    response = api.post(
        KP.format(2) + "create_session", "code=demo_digital", api.system_token(), "text/plain"
    )
    assert_error(response, 400, "invalid_content_type_error")


def test_create_session_body_must_be_an_object(api):
    response = api.post(KP.format(2) + "create_session", "[1, 2]", api.system_token())
    assert_error(response, 400, "invalid_parameter")


def test_wrong_method_is_405(api):
    response = api.get(KP.format(2) + "create_session", token=api.system_token())
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


def test_unknown_api_path_is_a_json_404(api):
    assert_error(api.get(BASE + "external/api/v9/nothing"), 404, "not_found")


# -- place_order ------------------------------------------------------------------------------------


def test_place_order_v2_creates_the_account_and_hops_to_confirmation(api):
    session_id = api.session_id(code="demo_digital_weekend")
    response = api.place(session_id, merchant_reference="attempt-1")
    assert response.status_code == 200
    item = response.json()["item"]
    assert item["order_id"]
    assert item["redirect_uri"] == f"http://testserver/fake-payway/klarna/hop/{session_id}/"

    account = state.find_account(CUSTOMER["email"])
    assert account.products == {"digital", "paper_weekend"}
    (order,) = state.orders()
    assert (order.id, order.account_id, order.merchant_reference) == (
        item["order_id"],
        account.id,
        "attempt-1",
    )
    assert state.get_session(session_id).status == state.SESSION_COMPLETED

    hop = api.client.get(item["redirect_uri"])
    assert hop.status_code == 302
    assert hop["Location"] == CONFIRM


def test_place_order_v2_for_a_known_email_grants_that_account(api):
    session_id = api.session_id()
    assert api.place(session_id, customer_info={**CUSTOMER, "email": "READER@example.com"}).status_code == 200
    assert state.get_account(state.READER_ACCOUNT_ID).products == {"digital"}


def test_place_order_v1_grants_the_logged_in_account(api):
    token = api.identity_token(state.READER_ACCOUNT_ID)
    session_id = api.session_id(version=1, token=token)
    assert api.place(session_id, version=1, token=token).status_code == 200
    products = api.get(BASE + "external/api/v1/me/active_products", token=token).json()["item"]
    assert products["active_products"] == ["digital"]


def test_place_trial_order(api):
    session_id = api.session_id(code="demo_trial_14d", period_type=None, period_id=catalogue.TRIAL_PERIOD_ID)
    assert_error(api.place(session_id), 400, "invalid_parameter", "klarna_payments_session_id")
    response = api.place(session_id, endpoint="place_trial_order")
    assert response.status_code == 200
    assert state.orders()[0].trial


def test_trial_order_refuses_a_regular_session(api):
    session_id = api.session_id()
    assert_error(
        api.place(session_id, endpoint="place_trial_order"),
        400,
        "invalid_parameter",
        "klarna_payments_session_id",
    )


def test_session_dies_after_a_purchase(api):
    """C05/C09: a completed session takes no second order."""
    session_id = api.session_id()
    assert api.place(session_id).status_code == 200
    assert_error(api.place(session_id), 400, "invalid_parameter", "klarna_payments_session_id")
    assert len(state.orders()) == 1


def test_authorization_token_is_single_use(api):
    """C02: the same Klarna authorization token never places two orders."""
    first, second = api.session_id(), api.session_id()
    assert api.place(first, klarna_authorization_token="fake-auth-ok-samesame").status_code == 200
    body = assert_error(
        api.place(second, klarna_authorization_token="fake-auth-ok-samesame"),
        400,
        "invalid_parameter",
        "klarna_authorization_token",
    )
    assert "consumed" in body["message"]
    assert state.get_session(second).status == state.SESSION_OPEN


def test_session_expires_after_48_hours(api):
    """C08: Payway refuses a session 48 h after creation."""
    with freeze_time("2030-01-01 12:00:00") as frozen:
        early, late = api.session_id(), api.session_id()
        frozen.tick(48 * 3600 - 1)
        assert api.place(early).status_code == 200
        frozen.tick(1)
        body = assert_error(api.place(late), 400, "invalid_parameter", "klarna_payments_session_id")
        assert "expired" in body["message"]


def test_versions_do_not_mix(api):
    v1 = api.session_id(version=1)
    v2 = api.session_id(version=2)
    assert_error(api.place(v1), 400, "invalid_parameter", "klarna_payments_session_id")
    assert_error(api.place(v2, version=1), 400, "invalid_parameter", "klarna_payments_session_id")


def test_v1_session_of_another_account(api):
    session_id = api.session_id(version=1)
    other = api.identity_token(state.READER_ACCOUNT_ID)
    assert_error(
        api.place(session_id, version=1, token=other), 400, "invalid_parameter", "klarna_payments_session_id"
    )


@pytest.mark.parametrize(
    ("extra", "code", "field"),
    [
        ({"customer_info": None}, "invalid_parameter", "customer_info"),
        (
            {"customer_info": {"email": "ny@example.com", "first_name": "Nora"}},
            "invalid_parameter",
            "customer_info.last_name",
        ),
        (
            {"customer_info": {**CUSTOMER, "email": "not-an-email"}},
            "invalid_parameter",
            "customer_info.email",
        ),
        ({"customer_info": {**CUSTOMER, "ssn": "19121212-1212"}}, "unknown_parameter", None),
        ({"raise_on_account_update_error": "false"}, "invalid_parameter", "raise_on_account_update_error"),
        ({"klarna_authorization_token": None}, "invalid_parameter", "klarna_authorization_token"),
        (
            {"klarna_authorization_token": "b4e0c6e2-1111-2222-3333-444455556666"},
            "invalid_parameter",
            "klarna_authorization_token",
        ),
        (
            {"klarna_authorization_token": "fake-auth-nonsense-abcd1234"},
            "invalid_parameter",
            "klarna_authorization_token",
        ),
        ({"browser_ip": 7}, "invalid_parameter", "browser_ip"),
        ({"amount": 1}, "unknown_parameter", None),
    ],
)
def test_place_order_validation(api, extra, code, field):
    session_id = api.session_id()
    assert_error(api.place(session_id, **extra), 400, code, field)
    assert state.orders() == []
    assert state.get_session(session_id).status == state.SESSION_OPEN


def test_place_order_v1_knows_no_customer_info(api):
    session_id = api.session_id(version=1)
    assert_error(api.place(session_id, version=1, customer_info=CUSTOMER), 400, "unknown_parameter")


def test_place_order_unknown_session(api):
    assert_error(
        api.place("00000000-0000-0000-0000-000000000000"),
        400,
        "invalid_parameter",
        "klarna_payments_session_id",
    )


# -- failure scenarios chosen in the fake widget ----------------------------------------------------


def test_payment_method_failed_terminates_the_session(api):
    """F08 (docs/payway-contract.md#errors): 403 payment_method_failed is terminal for the session."""
    session_id = api.session_id()
    assert_error(api.place(session_id, "payment_method_failed"), 403, "payment_method_failed")
    assert state.get_session(session_id).status == state.SESSION_TERMINATED
    assert_error(api.place(session_id), 400, "invalid_parameter", "klarna_payments_session_id")
    assert state.orders() == []


def test_validation_scenario(api):
    session_id = api.session_id()
    assert_error(api.place(session_id, "validation"), 400, "invalid_parameter", "klarna_authorization_token")
    assert state.orders() == []


def test_expired_token_scenario_revokes_the_bearer_token_and_keeps_the_authorization(api):
    token = api.system_token()
    session_id = api.session_id(token=token)
    auth = "fake-auth-expired_token-abcd1234"
    assert_error(api.place(session_id, klarna_authorization_token=auth, token=token), 401, "unauthorized")
    assert_error(api.get(BASE + "external/api/v1/titles/", token=token), 401, "unauthorized")
    # Rejected before execution: the authorization token was not consumed.
    assert state.consume_authorization_token(auth)


def test_server_error_scenario_places_nothing(api):
    session_id = api.session_id()
    assert_error(api.place(session_id, "server_error"), 500, "internal_server_error")
    assert state.orders() == []
    assert api.place(session_id).status_code == 200


def test_slow_scenario_places_the_order_and_answers_late(api):
    state.set_slow_delay(0.3)
    session_id = api.session_id()
    started = time.monotonic()
    response = api.place(session_id, "slow")
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert len(state.orders()) == 1


def test_slow_delay_is_capped():
    state.set_slow_delay(10_000)
    assert state.slow_delay() == state.MAX_DELAY
    with pytest.raises(ValueError):
        state.set_slow_delay(-1)


def test_slow_delay_default_outlasts_the_read_timeout():
    assert state.slow_delay() == 20.0


def test_garbage_scenario_places_the_order_and_answers_non_json(api):
    session_id = api.session_id()
    response = api.place(session_id, "garbage")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        json.loads(response.content)
    assert len(state.orders()) == 1


@pytest.mark.parametrize(("flag", "status"), [(True, 400), (False, 200)])
def test_ssn_already_taken_follows_its_flag(api, flag, status):
    session_id = api.session_id()
    response = api.place(session_id, "ssn_already_taken", raise_on_ssn_already_taken_error=flag)
    assert response.status_code == status
    if flag:
        body = assert_error(response, 400, "ssn_already_taken")
        assert "19" not in body["message"]
        assert state.orders() == []


def test_bad_redirect_scenario(api):
    response = api.place(api.session_id(), "bad_redirect")
    assert response.json()["item"]["redirect_uri"] == "https://evil.example/phish"


def test_hop_for_an_unfinished_session_is_404(api):
    session_id = api.session_id()
    assert api.client.get(f"{BASE}klarna/hop/{session_id}/").status_code == 404


# -- catalogue and identity -------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_payment_periods(api, version):
    response = api.get(KP.format(version) + "payment_periods", {"code": "demo_digital"}, api.system_token())
    assert response.json() == {
        "items": [
            {
                "id": "5f0d1c2b3a4e5f6a7b8c9d01",
                "payment_method": "klarna_payments",
                "type": "recurring",
                "enabled": True,
                "iteration_type": "month",
                "iteration_length": 1,
                "price": 139,
            },
            {
                "id": "5f0d1c2b3a4e5f6a7b8c9d02",
                "payment_method": "klarna_payments",
                "type": "limited",
                "enabled": True,
                "iteration_type": "year",
                "iteration_length": 1,
                "price": 1390,
            },
        ]
    }


def test_payment_periods_errors(api):
    token = api.system_token()
    url = KP.format(2) + "payment_periods"
    assert_error(api.get(url, {}, token), 400, "invalid_parameter", "code")
    assert_error(api.get(url, {"code": "nope"}, token), 404, "not_found")
    assert_error(api.get(url, {"code": "demo_digital", "x": "1"}, token), 400, "unknown_parameter")


def test_every_period_id_is_distinct_and_well_formed():
    ids = [period.id for product in catalogue.PRODUCTS.values() for period in product.periods]
    assert len(ids) == len(set(ids)) == 6
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)


def test_titles(api):
    token = api.system_token()
    items = api.get(BASE + "external/api/v1/titles/", token=token).json()["items"]
    assert [(t["code"], t["name"]) for t in items] == [("demo", "Demo-tidningen")]
    one = api.get(BASE + "external/api/v1/titles/find_one", {"title_code": "demo"}, token)
    assert one.json()["item"]["name"] == "Demo-tidningen"
    assert_error(
        api.get(BASE + "external/api/v1/titles/find_one", {"title_code": "other"}, token), 404, "not_found"
    )
    assert_error(
        api.get(BASE + "external/api/v1/titles/find_one", {"title_code": "bad code!"}, token),
        400,
        "invalid_parameter",
        "title_code",
    )


def test_package_search_hides_expired_unless_asked(api):
    token = api.system_token()
    url = BASE + "external/api/v2/products/package/search"
    codes = [p["product_code"] for p in api.get(url, {"title_code": "demo"}, token).json()["items"]]
    assert codes == ["demo_digital", "demo_digital_weekend"]
    items = api.get(url, {"title_code": "demo", "include_inactive": "true"}, token).json()["items"]
    old = next(p for p in items if p["product_code"] == "demo_old")
    assert old["expired"] is True
    assert old["valid_to"].startswith("2021-")


def test_package_search_pages(api):
    token = api.system_token()
    url = BASE + "external/api/v2/products/package/search"
    first = api.get(url, {"title_code": "demo", "page_size": 1}, token).json()
    assert [p["product_code"] for p in first["items"]] == ["demo_digital"]
    assert first["page_info"] == {"page_size": 1, "page_number": 1, "more_results_available": True}
    last = api.get(url, {"title_code": "demo", "page_size": 1, "page_number": 2}, token).json()
    assert [p["product_code"] for p in last["items"]] == ["demo_digital_weekend"]
    assert last["page_info"]["more_results_available"] is False


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "title_code"),
        ({"title_code": "demo", "page_size": "26"}, "page_size"),
        ({"title_code": "demo", "page_number": "0"}, "page_number"),
        ({"title_code": "demo", "include_inactive": "maybe"}, "include_inactive"),
    ],
)
def test_search_validation(api, params, field):
    url = BASE + "external/api/v2/products/package/search"
    assert_error(api.get(url, params, api.system_token()), 400, "invalid_parameter", field)


@pytest.mark.parametrize("version", [2, 3])
def test_campaign_search(api, version):
    url = BASE + f"external/api/v{version}/products/campaign/search"
    items = api.get(url, {"title_code": "demo"}, api.system_token()).json()["items"]
    assert [(c["product_code"], c["name"]) for c in items] == [
        ("demo_campaign_3m99", "3 månader för 99 kr"),
        ("demo_trial_14d", "Prova gratis i 14 dagar"),
    ]
    # Each campaign lists the products it contains: the same product as the Digital package.
    assert [[p["product_code"] for p in c["products"]] for c in items] == [["digital"], ["digital"]]


def test_search_items_list_products_unlike_their_package_codes(api):
    url = BASE + "external/api/v2/products/package/search"
    items = api.get(url, {"title_code": "demo"}, api.system_token()).json()["items"]
    products = {p["product_code"]: [i["product_code"] for i in p["products"]] for p in items}
    assert products == {"demo_digital": ["digital"], "demo_digital_weekend": ["digital", "paper_weekend"]}
    assert items[1]["products"][1] == {
        "id": "64a0c0ffee0000000000c002",
        "product_code": "paper_weekend",
        "type": "product",
        "name": "Papperstidningen lördag och söndag",
        "description": "Papperstidningen i brevlådan på helgen.",
        "image_url": None,
        "print_product": True,
    }


def test_active_products_list_the_products_bought_not_the_package(api):
    session_id = api.session_id(code="demo_digital_weekend")
    assert api.place(session_id).status_code == 200
    account = state.find_account(CUSTOMER["email"])
    item = api.get(BASE + "external/api/v1/me/active_products", token=api.identity_token(account.id)).json()
    assert item["item"]["active_products"] == ["digital", "paper_weekend"]


def test_active_products(api):
    url = BASE + "external/api/v1/me/active_products"
    subscriber = api.get(url, token=api.identity_token()).json()["item"]
    assert subscriber == {
        "id": state.SUBSCRIBER_ACCOUNT_ID,
        "active_products": ["digital"],
        "external_plus_products": [],
    }
    reader = api.get(url, {"include_articles": "true"}, api.identity_token(state.READER_ACCOUNT_ID)).json()[
        "item"
    ]
    assert reader["active_products"] == []
    assert reader["active_articles"] == []


# -- control API and page ---------------------------------------------------------------------------


def control(api, body):
    return api.client.post(BASE + "_control/", json.dumps(body), content_type="application/json")


def test_control_api_arms_one_failure(api):
    response = control(
        api, {"fail_next": {"endpoint": "create_session", "status": 503, "code": "maintenance"}}
    )
    assert response.json()["armed"][0]["status"] == 503
    assert_error(api.session(), 503, "maintenance")
    assert api.session().status_code == 200
    assert state.calls("create_session") == 2


def test_armed_failure_defaults_and_order(api):
    state.fail_next("place_order", status=403)
    state.fail_next("place_order", status=500)
    session_id = api.session_id()
    assert_error(api.place(session_id), 403, "payment_method_failed")
    assert_error(api.place(session_id), 500, "internal_server_error")
    assert api.place(session_id).status_code == 200


def test_armed_failure_answers_before_authentication(api):
    state.fail_next("titles", status=500)
    assert_error(api.get(BASE + "external/api/v1/titles/"), 500, "internal_server_error")


def test_armed_garbage_and_delay(api):
    control(
        api,
        {
            "fail_next": [
                {"endpoint": "titles", "garbage": True},
                {"endpoint": "titles", "status": None, "delay": 0.2},
            ]
        },
    )
    token = api.system_token()
    garbage = api.get(BASE + "external/api/v1/titles/", token=token)
    assert garbage.status_code == 200
    assert garbage["Content-Type"].startswith("text/html")
    started = time.monotonic()
    assert api.get(BASE + "external/api/v1/titles/", token=token).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_armed_failure_after_execution_is_a_lost_reply(api):
    """F15/F16: Payway placed the order but the reply never arrived."""
    session_id = api.session_id()
    state.fail_next("place_order", status=502, execute=True)
    assert_error(api.place(session_id), 502, "internal_server_error")
    assert len(state.orders()) == 1
    assert state.get_session(session_id).status == state.SESSION_COMPLETED


def test_control_api_rejects_nonsense(api):
    assert control(api, {"fail_next": {"endpoint": "nope"}}).status_code == 400
    assert control(api, {"fail_next": {"endpoint": "titles", "status": 200}}).status_code == 400
    assert control(api, {"fail_next": {"endpoint": "titles", "colour": "red"}}).status_code == 400
    assert control(api, {"slow_delay": "soon"}).status_code == 400
    assert state.armed_failures() == []


def test_control_api_reset_and_counters(api):
    api.session_id()
    api.get(BASE + "external/api/v1/titles/")
    snapshot = control(api, {"slow_delay": 1.5}).json()
    assert snapshot["calls"]["create_session"] == 1
    assert snapshot["calls"]["titles"] == 1
    assert snapshot["slow_delay"] == 1.5
    assert len(snapshot["sessions"]) == 1
    after = control(api, {"reset": True}).json()
    assert after["calls"]["create_session"] == 0
    assert after["sessions"] == []
    assert state.calls() == dict.fromkeys(state.ENDPOINTS, 0)


def test_control_api_expires_tokens(api):
    token = api.system_token()
    control(api, {"expire_tokens": True})
    assert_error(api.get(BASE + "external/api/v1/titles/", token=token), 401, "unauthorized")


def test_calls_rejects_unknown_endpoint():
    with pytest.raises(ValueError):
        state.calls("nope")


def test_reset_wakes_a_slow_reply(api):
    state.set_slow_delay(30)
    session_id = api.session_id()
    results = []
    worker = threading.Thread(target=lambda: results.append(api.place(session_id, "slow").status_code))
    started = time.monotonic()
    worker.start()
    while not state.orders():
        time.sleep(0.01)
    state.reset()
    worker.join(5)
    assert results == [200]
    assert time.monotonic() - started < 5


def test_control_page_shows_state_without_secrets(api):
    token = api.system_token()
    session_id = api.session_id(token=token)
    api.place(session_id, token=token)
    page = api.client.get(BASE)
    html = page.content.decode()
    assert page.status_code == 200
    assert session_id in html
    assert state.orders()[0].id in html
    assert "subscriber@example.com" in html
    assert token not in html
    assert state.get_session(session_id).client_token not in html
    assert token not in control(api, {}).content.decode()


def test_control_page_arms_and_resets(api):
    response = api.client.post(
        BASE, {"action": "arm", "endpoint": "place_order", "preset": "lost_reply", "delay": "0"}
    )
    assert response.status_code == 302
    (failure,) = state.armed_failures()
    assert (failure.endpoint, failure.status, failure.execute) == ("place_order", 500, True)
    assert api.client.post(BASE, {"action": "arm", "endpoint": "nope", "preset": "500"}).status_code == 400
    api.client.post(BASE, {"action": "reset"})
    assert state.armed_failures() == []


def test_deploy_check_warns_that_the_fake_is_installed():
    from django.core import checks

    ids = [message.id for message in checks.run_checks(include_deployment_checks=True)]
    assert "wagtail_klarna_paywall_fake.W001" in ids
    assert "wagtail_klarna_paywall_fake.W001" not in [message.id for message in checks.run_checks()]


def test_control_page_form_is_csrf_protected():
    client = Client(enforce_csrf_checks=True)
    assert client.post(BASE, {"action": "reset"}).status_code == 403


# -- the fake Klarna widget in a browser ------------------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")

AUTHORIZE = """(category) => new Promise((resolve) => {
    Klarna.Payments.authorize({payment_method_category: category}, {}, resolve);
})"""
LOAD = """() => new Promise((resolve) => Klarna.Payments.load(
    {container: '#klarna-payments-container', payment_method_category: 'pay_now'}, {}, resolve))"""
# Authorize, returning what the callback got and the name of what was thrown.
AUTHORIZE_CATCHING = """(category) => {
    const out = {};
    try {
        Klarna.Payments.authorize({payment_method_category: category}, {}, (r) => { out.res = r; });
    } catch (e) { out.name = e.name; }
    return out;
}"""


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (set CHROMIUM_PATH)")
def test_fake_widget_under_a_strict_csp(live_server):
    """F13/F14 and S07: the widget's surface and verdicts, with no CSP violation under
    script-src/style-src 'self'."""
    from playwright.sync_api import sync_playwright

    from wagtail_klarna_paywall.fake.klarna_payments import AUTHORIZATION_TOKEN

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page()
            problems = []
            # CSP violations are reported as console errors ("Refused to ... Content Security Policy").
            page.on(
                "console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None
            )
            page.on(
                "response",
                lambda r: problems.append(r.url) if r.status >= 400 and "favicon" not in r.url else None,
            )
            page.on("pageerror", lambda err: problems.append(str(err)))
            page.add_init_script("window.klarnaAsyncCallback = () => { window.asyncCallbackRan = true; };")
            page.goto(live_server.url + "/fake-payway/klarna/widget-test/")
            assert page.evaluate("window.asyncCallbackRan") is True
            assert page.evaluate("Klarna.Payments.isFake") is True

            thrown = page.evaluate(
                """() => {
                    const names = [];
                    for (const token of ['', null, 42]) {
                        try { Klarna.Payments.init({client_token: token}); } catch (e) { names.push(e.name); }
                    }
                    try { Klarna.Payments.on('nope', () => {}); } catch (e) { names.push(e.name); }
                    return names;
                }"""
            )
            assert thrown == ["InvalidClientTokenError"] * 3 + ["EventNotSupportedError"]

            page.evaluate("Klarna.Payments.init({client_token: 'header.payload.signature'})")
            before_load = page.evaluate(AUTHORIZE_CATCHING, "pay_now")
            assert before_load == {
                "res": {"show_form": False, "approved": False},
                "name": "ApplicationNotLoadedError",
            }

            loaded = page.evaluate(LOAD)
            assert loaded == {"show_form": True}
            widget = page.locator("[data-fake-klarna=widget]")
            assert "TEST WIDGET" in widget.inner_text()
            # The stylesheet arrived (through a <link>, which style-src 'self' allows).
            assert widget.evaluate("(el) => getComputedStyle(el).borderTopStyle") == "dashed"
            # Like Klarna's iframe, the widget adds nothing to a form the page posts.
            assert page.evaluate("document.querySelector('[data-fake-klarna-outcome=ok]').form") is None

            approved = page.evaluate(AUTHORIZE, "pay_now")
            assert approved["approved"] is True
            assert approved["show_form"] is True
            assert AUTHORIZATION_TOKEN.match(approved["authorization_token"])["scenario"] == "ok"

            page.check("[data-fake-klarna-outcome=payment_method_failed]")
            token = page.evaluate(AUTHORIZE, "pay_now")["authorization_token"]
            assert AUTHORIZATION_TOKEN.match(token)["scenario"] == "payment_method_failed"

            page.check("[data-fake-klarna-outcome=decline]")
            assert page.evaluate(AUTHORIZE, "pay_now") == {"approved": False, "show_form": False}
            page.check("[data-fake-klarna-outcome=abort]")
            assert page.evaluate(AUTHORIZE, "pay_now") == {"approved": False, "show_form": True}
            page.check("[data-fake-klarna-outcome=finalize_required]")
            assert page.evaluate(AUTHORIZE, "pay_now") == {
                "approved": True,
                "show_form": True,
                "finalize_required": True,
            }
            finalized = page.evaluate(
                """() => new Promise((resolve) =>
                    Klarna.Payments.finalize({payment_method_category: 'pay_now'}, {}, resolve))"""
            )
            assert AUTHORIZATION_TOKEN.match(finalized["authorization_token"])["scenario"] == "ok"

            mismatch = page.evaluate(AUTHORIZE_CATCHING, "pay_later")
            assert mismatch == {
                "res": {"show_form": False, "approved": False},
                "name": "PaymentMethodCategoryNotSupportedError",
            }
            assert problems == []

            # F13: a test can make Klarna "unavailable" for the page (load answers show_form false).
            unavailable = browser.new_page()
            unavailable.add_init_script("window.fakeKlarnaOptions = {load: 'unavailable'};")
            unavailable.goto(live_server.url + "/fake-payway/klarna/widget-test/")
            unavailable.evaluate("Klarna.Payments.init({client_token: 'header.payload.signature'})")
            assert unavailable.evaluate(LOAD) == {"show_form": False}
        finally:
            browser.close()


def test_me_answers_the_account_of_an_identity_token_in_every_plausible_shape(api):
    """``GET v3/me``: the account behind the token, answered in turn as ``{"item": ...}``, as a bare
    object, and with ``account_id`` instead of ``id``; the real client reads them all."""
    from wagtail_klarna_paywall.payway.parsing import parse_account

    url = BASE + "external/api/v3/me"
    token = api.identity_token(state.READER_ACCOUNT_ID)
    bodies = [api.get(url, token=token).json() for _ in range(3)]
    assert "item" in bodies[0] and "item" not in bodies[1] and "account_id" in bodies[2]["item"]
    for body in bodies:
        account = parse_account(body)
        assert (account.id, account.email, account.first_name) == (
            state.READER_ACCOUNT_ID,
            "reader@example.com",
            "Rolf",
        )
    assert state.calls("me") == 3


def test_me_needs_an_identity_token(api):
    url = BASE + "external/api/v3/me"
    assert_error(api.get(url, token=api.system_token()), 403, "identity_required")
