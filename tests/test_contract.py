"""Contract tests: the real ``PaywayClient`` against the embedded fake Payway over real HTTP.

The client's own tests pin its requests byte by byte with ``responses``; these run the same client, unchanged,
against the fake served by pytest-django's ``live_server``. A change to either side that breaks the other
(a parameter the fake does not know, a scope the client forgot, an envelope or error body one side reads
differently) fails here. Every public client method is covered on success and on each error class.
"""

import secrets
import time
from decimal import Decimal

import pytest

from wagtail_klarna_paywall.exceptions import (
    AccountSyncError,
    AuthenticationExpired,
    MalformedResponse,
    NotFound,
    PaymentMethodFailed,
    PaywayTimeout,
    PermissionDenied,
    RateLimited,
    ServerError,
    ValidationError,
)
from wagtail_klarna_paywall.fake import catalogue, state
from wagtail_klarna_paywall.payway.client import PaywayClient
from wagtail_klarna_paywall.payway.types import (
    PERIOD_LIMITED,
    PERIOD_RECURRING,
    PRODUCT_CAMPAIGN,
    PRODUCT_PACKAGE,
    AccountSyncFlags,
    BrowserInfo,
    CustomerInfo,
)

READ_TIMEOUT = 1.0
CONFIRM = "https://news.example/kop/tack/?attempt=42"
BROWSER = BrowserInfo(ip="203.0.113.7", language="sv-SE", user_agent="contract-test")
CUSTOMER = CustomerInfo(email="ny@example.com", first_name="Nora", last_name="Ny")
FLAGS = AccountSyncFlags()


@pytest.fixture
def payway(live_server):
    state.reset()
    client = PaywayClient(
        base_url=live_server.url + "/fake-payway",
        client_id="test-client",
        client_secret="test-secret-do-not-leak",
        connect_timeout=2.0,
        read_timeout=READ_TIMEOUT,
    )
    yield client
    client.close()
    # Also wakes any fake reply still sleeping past the read timeout.
    state.reset()


#: The answer shapes the fake can take where Payway's docs are silent (fake/variants.py, VARIANTS): the
#: client must read each. ``each_shape`` runs a test once per shape.
SHAPES = {
    "item": {},
    "flat": {"envelope": "flat"},
    "redirect_url": {"redirect_field": "redirect_url"},
    "direct_debit": {"categories": "direct_debit"},
    "flat-redirect_url-direct_debit": {
        "envelope": "flat",
        "redirect_field": "redirect_url",
        "categories": "direct_debit",
    },
}


@pytest.fixture
def shape(request, payway):
    """Switch the fake to one answer shape (after the ``payway`` fixture's reset)."""
    state.set_variants(**SHAPES[request.param])
    return request.param


each_shape = pytest.mark.parametrize("shape", list(SHAPES), indirect=True)


def expected_categories(trial=False):
    from wagtail_klarna_paywall.fake import klarna_payments

    if state.variants().categories == "direct_debit":
        return list(
            klarna_payments.DIRECT_DEBIT_TRIAL_CATEGORIES
            if trial
            else klarna_payments.DIRECT_DEBIT_REGULAR_CATEGORIES
        )
    return list(klarna_payments.TRIAL_CATEGORIES if trial else klarna_payments.REGULAR_CATEGORIES)


def authorization(scenario="ok"):
    """What the fake Klarna widget hands the browser for the outcome the reader picked."""
    return f"fake-auth-{scenario}-{secrets.token_hex(8)}"


def identity(payway, account_id=state.SUBSCRIBER_ACCOUNT_ID):
    return payway.exchange_ticket(state.issue_ticket(account_id)).access_token


def new_session(payway, code="demo_digital", **kwargs):
    kwargs.setdefault("period_type", None if code == "demo_trial_14d" else PERIOD_RECURRING)
    if code == "demo_trial_14d":
        kwargs.setdefault("period_id", catalogue.TRIAL_PERIOD_ID)
    return payway.create_session(code=code, confirmation_url=CONFIRM, **kwargs)


def place(payway, session, scenario="ok", **kwargs):
    kwargs.setdefault("customer", None if kwargs.get("identity_token") else CUSTOMER)
    return payway.place_order(
        klarna_payments_session_id=session.klarna_payments_session_id,
        klarna_authorization_token=kwargs.pop("token", None) or authorization(scenario),
        browser=BROWSER,
        flags=kwargs.pop("flags", FLAGS),
        merchant_reference="attempt-42",
        **kwargs,
    )


# -- tokens ------------------------------------------------------------------------------------------


def test_system_token_is_fetched_once_and_cached(payway):
    token = payway.system_token()
    assert token.access_token
    assert not token.expires_within(3500)
    assert "/external/klarna_payments/w" in token.scope.split()
    payway.titles()
    payway.titles()
    assert state.calls("access_token") == 1
    assert state.find_access_token(token.access_token).account_id is None


def test_wrong_client_secret_is_authentication_expired(live_server):
    client = PaywayClient(
        base_url=live_server.url + "/fake-payway", client_id="test-client", client_secret="wrong"
    )
    with pytest.raises(AuthenticationExpired) as err:
        client.system_token()
    assert err.value.code == "invalid_client"
    assert "wrong" not in str(err.value)
    client.close()


def test_exchange_ticket_gives_an_identity_token(payway):
    token = payway.exchange_ticket(state.issue_ticket(state.READER_ACCOUNT_ID))
    assert token.refresh_token
    assert state.find_access_token(token.access_token).account_id == state.READER_ACCOUNT_ID
    assert payway.active_products(token.access_token).account_id == state.READER_ACCOUNT_ID


def test_used_ticket_is_a_validation_error(payway):
    ticket = state.issue_ticket(state.READER_ACCOUNT_ID)
    payway.exchange_ticket(ticket)
    with pytest.raises(ValidationError) as err:
        payway.exchange_ticket(ticket)
    assert (err.value.code, err.value.field) == ("invalid_grant", "ticket")


def test_refresh_identity_token(payway):
    first = payway.exchange_ticket(state.issue_ticket(state.SUBSCRIBER_ACCOUNT_ID))
    renewed = payway.refresh_identity_token(first.refresh_token)
    assert renewed.access_token != first.access_token
    assert payway.active_products(renewed.access_token).active_products == ("digital",)
    with pytest.raises(ValidationError):
        payway.refresh_identity_token(first.refresh_token)


def test_expired_system_token_is_renewed_and_the_call_retried_once(payway):
    payway.titles()
    state.expire_access_tokens()
    assert [t.code for t in payway.titles()] == ["demo"]
    assert state.calls("access_token") == 2
    assert state.calls("titles") == 3


def test_a_second_401_is_raised(payway):
    state.fail_next("titles", status=401)
    state.fail_next("titles", status=401)
    with pytest.raises(AuthenticationExpired):
        payway.titles()
    assert state.calls("titles") == 2


def test_expired_identity_token_is_raised_not_retried(payway):
    token = identity(payway)
    state.revoke_access_token(token)
    with pytest.raises(AuthenticationExpired):
        payway.active_products(token)
    assert state.calls("active_products") == 1


# -- create_session -----------------------------------------------------------------------------------


@each_shape
def test_create_session_v2(payway, shape):
    session = new_session(payway)
    assert session.klarna_client_token.count(".") == 2
    assert [c.identifier for c in session.payment_method_categories] == expected_categories()
    if shape == "item":
        assert expected_categories() == ["pay_now", "pay_later", "pay_over_time"]
    assert session.payment_method_categories[0].name == "Betala nu"
    assert session.payment_method_categories[0].standard_asset_url.endswith("fake-klarna.svg")
    stored = state.get_session(session.klarna_payments_session_id)
    assert (stored.version, stored.confirmation_url, stored.account_id) == (2, CONFIRM, None)


@each_shape
def test_create_session_v1_with_identity_and_every_optional_parameter(payway, shape):
    import datetime as dt

    from django.utils import timezone

    session = new_session(
        payway,
        period_type=PERIOD_LIMITED,
        period_id="5f0d1c2b3a4e5f6a7b8c9d02",
        start_date=timezone.localdate() + dt.timedelta(days=1),
        disable_account_info_overwrite=True,
        identity_token=identity(payway),
    )
    stored = state.get_session(session.klarna_payments_session_id)
    assert (stored.version, stored.account_id) == (1, state.SUBSCRIBER_ACCOUNT_ID)
    assert stored.disable_account_info_overwrite is True


@each_shape
def test_create_trial_session(payway, shape):
    session = new_session(payway, "demo_trial_14d")
    assert [c.identifier for c in session.payment_method_categories] == expected_categories(trial=True)
    if "direct_debit" in shape:
        assert "direct_debit" in [c.identifier for c in session.payment_method_categories]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"code": "no_such_package"}, "code"),
        ({"code": "demo_old"}, "code"),
        ({"code": "demo_trial_14d", "period_id": None, "period_type": PERIOD_RECURRING}, "period_id"),
        ({"period_id": "5f0d1c2b3a4e5f6a7b8c9d04"}, "period_id"),
    ],
)
def test_create_session_validation_error(payway, kwargs, field):
    kwargs = {"code": "demo_digital", "period_type": PERIOD_RECURRING, **kwargs}
    with pytest.raises(ValidationError) as err:
        payway.create_session(confirmation_url=CONFIRM, **kwargs)
    assert (err.value.status, err.value.code, err.value.field) == (400, "invalid_parameter", field)


def test_create_session_past_start_date(payway):
    import datetime as dt

    with pytest.raises(ValidationError) as err:
        new_session(payway, start_date=dt.date(2000, 1, 1))
    assert err.value.field == "start_date"


def test_create_session_v1_with_a_system_token_is_permission_denied(payway):
    with pytest.raises(PermissionDenied) as err:
        new_session(payway, identity_token=payway.system_token().access_token)
    assert err.value.code == "identity_required"


def test_create_session_server_error_is_not_retried(payway):
    state.fail_next("create_session", status=500)
    with pytest.raises(ServerError):
        new_session(payway)
    assert state.calls("create_session") == 1


def test_create_session_timeout_is_not_retried(payway):
    state.fail_next("create_session", status=None, delay=READ_TIMEOUT + 1)
    with pytest.raises(PaywayTimeout):
        new_session(payway)
    assert state.calls("create_session") == 1


def test_create_session_rate_limited(payway):
    state.fail_next("create_session", status=429, retry_after=7)
    with pytest.raises(RateLimited) as err:
        new_session(payway)
    assert err.value.retry_after == 7


def test_create_session_unreadable_answer(payway):
    state.fail_next("create_session", garbage=True)
    with pytest.raises(MalformedResponse):
        new_session(payway)


# -- place_order ----------------------------------------------------------------------------------------


@each_shape
def test_place_order_v2(payway, live_server, shape):
    session = new_session(payway, "demo_digital_weekend")
    order = place(payway, session)
    (stored,) = state.orders()
    assert order.order_id == stored.id
    assert order.redirect_uri == (
        f"{live_server.url}/fake-payway/klarna/hop/{session.klarna_payments_session_id}/"
    )
    assert stored.merchant_reference == "attempt-42"
    assert state.find_account(CUSTOMER.email).products == {"digital", "paper_weekend"}


@each_shape
def test_place_order_v1_grants_the_reader(payway, shape):
    token = identity(payway, state.READER_ACCOUNT_ID)
    assert payway.active_products(token).active_products == ()
    session = new_session(payway, identity_token=token)
    order = place(payway, session, identity_token=token)
    assert order.order_id
    assert payway.active_products(token).active_products == ("digital",)


@each_shape
def test_place_trial_order(payway, shape):
    session = new_session(payway, "demo_trial_14d")
    order = place(payway, session, trial=True)
    assert order.redirect_uri
    assert state.orders()[0].trial
    assert state.calls("place_trial_order") == 1


@each_shape
def test_place_trial_order_of_a_logged_in_reader_goes_through_v2(payway, shape):
    """The client sends every trial through v2 (a v1 trial endpoint is undocumented); the fake agrees."""
    session = new_session(payway, "demo_trial_14d")
    place(payway, session, trial=True, identity_token=identity(payway), customer=CUSTOMER)
    assert state.calls("place_trial_order") == 1


def test_regular_order_on_a_trial_session_is_refused(payway):
    session = new_session(payway, "demo_trial_14d")
    with pytest.raises(ValidationError) as err:
        place(payway, session)
    assert err.value.field == "klarna_payments_session_id"


@each_shape
def test_completed_session_takes_no_second_order(payway, shape):
    session = new_session(payway)
    place(payway, session)
    with pytest.raises(ValidationError) as err:
        place(payway, session)
    assert err.value.field == "klarna_payments_session_id"
    assert len(state.orders()) == 1


def test_authorization_token_is_single_use(payway):
    token = authorization()
    place(payway, new_session(payway), token=token)
    with pytest.raises(ValidationError) as err:
        place(payway, new_session(payway), token=token)
    assert err.value.field == "klarna_authorization_token"


@each_shape
def test_payment_method_failed(payway, shape):
    session = new_session(payway)
    with pytest.raises(PaymentMethodFailed) as err:
        place(payway, session, "payment_method_failed")
    assert (err.value.status, err.value.code) == (403, "payment_method_failed")
    assert state.get_session(session.klarna_payments_session_id).status == state.SESSION_TERMINATED


@each_shape
def test_the_fake_really_answers_in_each_shape(payway, live_server, shape):
    """The raw JSON the client reads above: so a shape that the fake ignored would fail here."""
    import requests

    headers = {
        "Authorization": f"Bearer {payway.system_token().access_token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    base = live_server.url + "/fake-payway/external/api/v2/klarna_payments"
    created = requests.post(
        base + "/create_session",
        json={"code": "demo_digital", "period_type": PERIOD_RECURRING, "confirmation_url": CONFIRM},
        headers=headers,
        timeout=5,
    ).json()
    flat = state.variants().envelope == "flat"
    assert ("item" not in created) is flat
    session = created if flat else created["item"]
    placed = requests.post(
        base + "/place_order",
        json={
            "klarna_authorization_token": authorization(),
            "klarna_payments_session_id": session["klarna_payments_session_id"],
            "customer_info": {"email": CUSTOMER.email, "first_name": "Nora", "last_name": "Ny"},
        },
        headers=headers,
        timeout=5,
    ).json()
    order = placed if flat else placed["item"]
    field = state.variants().redirect_field
    assert set(order) == {"order_id", field}


@pytest.mark.parametrize("flow", ["v1", "v2", "trial"])
def test_order_scope_error_is_permission_denied_and_executes_nothing(payway, flow):
    """The order_scope_error variant: a 403 that is not "payment method failed" (a configuration error)."""
    state.set_variants(order_scope_error=True)
    kwargs = {}
    if flow == "v1":
        kwargs["identity_token"] = identity(payway)
    session = new_session(payway, "demo_trial_14d" if flow == "trial" else "demo_digital", **kwargs)
    with pytest.raises(PermissionDenied) as err:
        place(payway, session, trial=flow == "trial", **kwargs)
    assert not isinstance(err.value, PaymentMethodFailed)
    assert (err.value.status, err.value.code) == (403, "insufficient_scope")
    assert state.orders() == []
    assert state.get_session(session.klarna_payments_session_id).status == state.SESSION_OPEN


def test_validation_with_field(payway):
    with pytest.raises(ValidationError) as err:
        place(payway, new_session(payway), "validation")
    assert (err.value.code, err.value.field) == ("invalid_parameter", "klarna_authorization_token")


def test_expired_token_on_place_order_is_retried_once_with_a_fresh_token(payway):
    """A 401 is rejected before execution, so the system-token call is retried once.

    docs/payway-contract.md#never-re-send.
    """
    with pytest.raises(AuthenticationExpired):
        place(payway, new_session(payway), "expired_token")
    assert state.calls("place_order") == 2
    assert state.orders() == []


def test_expired_identity_token_on_place_order(payway):
    token = identity(payway)
    session = new_session(payway, identity_token=token)
    with pytest.raises(AuthenticationExpired):
        place(payway, session, "expired_token", identity_token=token)
    assert state.calls("place_order") == 1


def test_server_error_is_not_retried(payway):
    with pytest.raises(ServerError) as err:
        place(payway, new_session(payway), "server_error")
    assert err.value.code == "internal_server_error"
    assert state.calls("place_order") == 1


def test_slow_reply_is_a_timeout_and_the_order_exists(payway):
    """F-case: the read timeout fires, yet Payway placed the order: the outcome must be reconciled."""
    state.set_slow_delay(READ_TIMEOUT + 1.5)
    started = time.monotonic()
    with pytest.raises(PaywayTimeout) as err:
        place(payway, new_session(payway), "slow")
    assert time.monotonic() - started < READ_TIMEOUT + 1
    assert err.value.may_have_reached_payway
    assert state.calls("place_order") == 1
    assert len(state.orders()) == 1


def test_garbage_reply_is_malformed_and_the_order_exists(payway):
    with pytest.raises(MalformedResponse) as err:
        place(payway, new_session(payway), "garbage")
    assert err.value.status == 200
    assert len(state.orders()) == 1


def test_lost_reply_after_execution(payway):
    session = new_session(payway)
    state.fail_next("place_order", status=502, execute=True)
    with pytest.raises(ServerError):
        place(payway, session)
    assert state.calls("place_order") == 1
    assert len(state.orders()) == 1


@pytest.mark.parametrize("raise_flag", [True, False])
def test_ssn_already_taken(payway, raise_flag):
    flags = AccountSyncFlags(raise_on_ssn_already_taken_error=raise_flag)
    session = new_session(payway)
    if raise_flag:
        with pytest.raises(AccountSyncError) as err:
            place(payway, session, "ssn_already_taken", flags=flags)
        assert err.value.error_code == "ssn_already_taken"
        assert state.orders() == []
    else:
        assert place(payway, session, "ssn_already_taken", flags=flags).order_id


@each_shape
def test_bad_redirect_is_passed_on_untouched(payway, shape):
    """The client reports Payway's redirect as given; the allow-list check is the purchase flow's job."""
    assert place(payway, new_session(payway), "bad_redirect").redirect_uri == "https://evil.example/phish"


def test_armed_payment_method_failed(payway):
    state.fail_next("place_order", status=403)
    with pytest.raises(PaymentMethodFailed):
        place(payway, new_session(payway))


# -- catalogue ------------------------------------------------------------------------------------------


def test_payment_periods(payway):
    periods = payway.payment_periods("demo_digital")
    assert [(p.id, p.type, p.iteration_type, p.iteration_length, p.price, p.enabled) for p in periods] == [
        ("5f0d1c2b3a4e5f6a7b8c9d01", PERIOD_RECURRING, "month", 1, Decimal(139), True),
        ("5f0d1c2b3a4e5f6a7b8c9d02", PERIOD_LIMITED, "year", 1, Decimal(1390), True),
    ]
    (trial,) = payway.payment_periods("demo_trial_14d")
    assert (trial.id, trial.iteration_type, trial.iteration_length, trial.price) == (
        catalogue.TRIAL_PERIOD_ID,
        "day",
        14,
        Decimal(0),
    )


def test_payment_periods_not_found(payway):
    with pytest.raises(NotFound):
        payway.payment_periods("no_such_package")


def test_payment_periods_validation(payway):
    with pytest.raises(ValidationError) as err:
        payway.payment_periods("")
    assert err.value.field == "code"


def test_titles(payway):
    (title,) = payway.titles()
    assert (title.code, title.name, title.url) == ("demo", "Demo-tidningen", "")


def test_search_packages(payway):
    page = payway.search_packages("demo")
    assert [p.product_code for p in page.items] == ["demo_digital", "demo_digital_weekend"]
    assert {p.kind for p in page.items} == {PRODUCT_PACKAGE}
    assert [p.included_product_codes for p in page.items] == [
        (catalogue.DIGITAL,),
        (catalogue.DIGITAL, catalogue.PAPER_WEEKEND),
    ]
    assert page.more_results_available is False
    assert page.items[0].valid_from is not None


def test_search_packages_pages_and_inactive(payway):
    first = payway.search_packages("demo", page_size=2, include_inactive=True)
    assert first.more_results_available is True
    second = payway.search_packages("demo", page_number=2, page_size=2, include_inactive=True)
    (old,) = second.items
    assert (old.product_code, old.expired, second.page_number) == ("demo_old", True, 2)
    assert second.more_results_available is False


@pytest.mark.parametrize("shape", catalogue.PRODUCTS_SHAPES)
def test_search_reads_the_included_products_in_every_shape(payway, shape):
    """Payway's field for the products an item contains is undocumented: the fake lists them in each
    shape the client accepts, and the client reads the same codes from all of them."""
    state.set_products_shape(shape)
    packages = payway.search_packages("demo").items
    campaigns = payway.search_campaigns("demo").items
    expected = {
        "demo_digital": (catalogue.DIGITAL,),
        "demo_digital_weekend": (catalogue.DIGITAL, catalogue.PAPER_WEEKEND),
        "demo_campaign_3m99": (catalogue.DIGITAL,),
        "demo_trial_14d": (catalogue.DIGITAL,),
    }
    if shape == catalogue.PRODUCTS_SHAPE_NONE:
        expected = dict.fromkeys(expected, ())
    assert {p.product_code: p.included_product_codes for p in packages + campaigns} == expected


def test_search_campaigns(payway):
    page = payway.search_campaigns("demo")
    assert [(c.product_code, c.kind, c.included_product_codes) for c in page.items] == [
        ("demo_campaign_3m99", PRODUCT_CAMPAIGN, (catalogue.DIGITAL,)),
        ("demo_trial_14d", PRODUCT_CAMPAIGN, (catalogue.DIGITAL,)),
    ]


def test_search_validation(payway):
    with pytest.raises(ValidationError) as err:
        payway.search_packages("bad code!")
    assert err.value.field == "title_code"


def test_catalogue_server_error_and_timeout(payway):
    state.fail_next("package_search", status=503)
    with pytest.raises(ServerError):
        payway.search_packages("demo")
    state.fail_next("campaign_search", status=None, delay=READ_TIMEOUT + 1)
    with pytest.raises(PaywayTimeout):
        payway.search_campaigns("demo")
    state.fail_next("titles", garbage=True)
    with pytest.raises(MalformedResponse):
        payway.titles()


# -- identity -------------------------------------------------------------------------------------------


@each_shape
def test_active_products(payway, shape):
    products = payway.active_products(identity(payway))
    assert (products.account_id, products.active_products) == (state.SUBSCRIBER_ACCOUNT_ID, ("digital",))


def test_active_products_without_identity_is_permission_denied(payway):
    with pytest.raises(PermissionDenied):
        payway.active_products(payway.system_token().access_token)


def test_active_products_of_no_account_is_not_found(payway):
    token = state.issue_access_token("ffffffffffffffffffffffff").value
    with pytest.raises(NotFound):
        payway.active_products(token)
