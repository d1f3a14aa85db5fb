"""The purchase flow (purchase.py) over the real Payway client, with Payway faked by ``responses``.

tests/test_views.py drives the same flow through HTTP; the shop, payloads and helpers come from
tests/factories.py, the fixtures from tests/conftest.py.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
import requests
import responses
from django.db import transaction
from django.utils import timezone
from freezegun import freeze_time

from tests.factories import (
    ACCOUNT_ID,
    CLIENT_TOKEN,
    CREATE_V1,
    CREATE_V2,
    IDENTITY_TOKEN,
    KLARNA_REDIRECT,
    ME_URL,
    ORDER_ID,
    PERSONNUMMER,
    PLACE_TRIAL,
    PLACE_V1,
    PLACE_V2,
    READER,
    SESSION_ID,
    SYSTEM_TOKEN,
    TOKEN_URL,
    TRIAL_PERIOD_ID,
    Shop,
    body_of,
    calls_to,
    confirmation_read_of,
    order_json,
    place,
    placed_article_attempt,
    session_json,
    start,
)
from wagtail_klarna_paywall import signals
from wagtail_klarna_paywall.models import (
    AttemptState,
    EventKind,
    KlarnaPurchasePage,
    PaywallSettings,
    ProductClaim,
    PurchaseAttempt,
    PurchaseConfirmationPage,
)
from wagtail_klarna_paywall.payway.types import CustomerInfo
from wagtail_klarna_paywall.purchase import accounts, attempts, orders, redirects, session

# -- step 1: sessions -----------------------------------------------------------------------------------


def test_start_creates_a_v2_session_with_the_exact_body(shop, payway, signal_log):
    payway.add(responses.POST, CREATE_V2, json=session_json())

    result = start(shop, traffic_source="newsletter")

    assert result.status == session.BuyStatus.READY
    attempt = result.attempt
    assert attempt.state == AttemptState.SESSION_READY
    assert attempt.payway_session_id == SESSION_ID
    assert attempt.klarna_client_token == CLIENT_TOKEN
    assert attempt.payment_method_category == "pay_now"  # first of the session's categories
    assert attempt.session_expires_at - attempt.session_created_at == dt.timedelta(hours=48)
    assert attempt.existing_customer is False
    assert attempt.traffic_source == "newsletter"
    assert attempt.merchant_reference == f"{shop.purchase_page.pk}-digital"
    assert attempt.product_code == "digital" and attempt.price == Decimal("99.00")
    [call] = calls_to(payway, CREATE_V2)
    assert call.request.headers["Authorization"] == f"Bearer {SYSTEM_TOKEN}"
    assert body_of(call) == {
        "code": "digital",
        "confirmation_url": f"https://news.example/thanks/?ref={attempt.reference}",
        "period_type": "recurring",
        "disable_account_info_overwrite": False,
    }
    assert [e.kind for e in attempt.events.all()] == [EventKind.BUY, EventKind.SESSION_CREATED]
    assert signal_log == [("started", attempt.reference, AttemptState.SESSION_READY)]


def test_trial_session_names_its_period_and_loads_direct_debit(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json(categories=("pay_now", "direct_debit")))

    attempt = start(shop, Shop.trial_ref).attempt

    assert body_of(calls_to(payway, CREATE_V2)[0]) == {
        "code": "trial-campaign",
        "confirmation_url": f"https://news.example/thanks/?ref={attempt.reference}",
        "period_id": TRIAL_PERIOD_ID,
        "disable_account_info_overwrite": False,
    }
    # Klarna allows only direct debit for a 0-amount trial: listed, it wins over the first (pay_now).
    assert attempt.payment_method_category == "direct_debit"
    assert attempt.is_trial and attempt.error_code == ""
    assert not attempt.events.filter(error_code="no_payment_method").exists()


def test_trial_session_without_direct_debit_loads_pay_now(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json(categories=("pay_later", "pay_now")))
    assert start(shop, Shop.trial_ref).attempt.payment_method_category == "pay_now"


def test_trial_session_listing_only_pay_later_loads_nothing_and_says_why(shop, payway):
    """The editor's stored pay_later and the session's only category do not count for a trial: nothing
    is loaded (the checkout shows the fallback), and the attempt's events tell the editor why."""
    payway.add(responses.POST, CREATE_V2, json=session_json(categories=("pay_later",)))

    attempt = start(shop, Shop.trial_ref).attempt

    assert attempt.state == AttemptState.SESSION_READY
    assert attempt.payment_method_category == ""
    assert attempt.error_code == "no_payment_method"  # the purchase log's error filter finds it
    event = attempt.events.get(error_code="no_payment_method")
    assert event.kind == EventKind.ERROR
    assert event.detail == "trial; session lists: pay_later"


@pytest.mark.parametrize(
    ("is_trial", "editor", "listed", "site_default", "expected"),
    [
        (True, "", ["pay_now", "direct_debit"], "pay_later", "direct_debit"),
        (True, "pay_now", ["direct_debit", "pay_now"], "pay_now", "direct_debit"),
        (True, "", ["klarna", "pay_now"], "pay_now", "pay_now"),
        (True, "", ["pay_later", "pay_over_time"], "pay_now", ""),
        (False, "pay_later", ["pay_now", "pay_later"], "pay_now", "pay_later"),
        (False, "pay_over_time", ["pay_now", "pay_later"], "pay_over_time", "pay_now"),
        (False, "", ["klarna"], "pay_now", "klarna"),
        (False, "direct_debit", ["pay_now", "direct_debit"], "pay_now", "direct_debit"),
        # No categories at all (Payway did not pass Klarna's list through): the site's default.
        (False, "pay_later", [], "pay_now", "pay_now"),
        (True, "", [], "pay_now", "pay_now"),
        (True, "", [], "direct_debit", "direct_debit"),
        # ...but never one Klarna refuses for a 0-amount trial.
        (True, "", [], "pay_later", "pay_now"),
    ],
)
def test_choose_payment_method_category(is_trial, editor, listed, site_default, expected):
    # An offer or an attempt: anything with is_trial and payment_method_category.
    chooser = type("Choice", (), {"is_trial": is_trial, "payment_method_category": editor})()
    # Parsed categories, their stored form and bare identifiers are all read the same way.
    for categories in (
        [{"identifier": c, "name": c} for c in listed],
        listed,
        [type("Category", (), {"identifier": c})() for c in listed],
    ):
        assert attempts.choose_payment_method_category(chooser, categories, site_default) == expected


def test_choose_payment_method_category_never_loads_junk():
    chooser = type("Choice", (), {"is_trial": False, "payment_method_category": ""})()
    junk = [{"identifier": "<script>"}, {"name": "no identifier"}, 42, {"identifier": "pay_now"}]
    assert attempts.choose_payment_method_category(chooser, junk, "pay_later") == "pay_now"


def test_trial_goes_through_v2_even_for_a_logged_in_reader(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    reader = attempts.Reader(key="user:1", identity_token=IDENTITY_TOKEN)

    attempt = start(shop, Shop.trial_ref, reader=reader).attempt

    assert attempt.existing_customer is False
    assert len(calls_to(payway, CREATE_V1)) == 0
    assert len(calls_to(payway, CREATE_V2)) == 1


def test_existing_customer_gets_a_v1_session_with_their_identity(shop, payway):
    payway.add(responses.POST, CREATE_V1, json=session_json())
    settings_obj = PaywallSettings.for_site(shop.site)
    settings_obj.disable_account_info_overwrite = True
    settings_obj.save()
    reader = attempts.Reader(key="user:7", user_id=None, identity_token=IDENTITY_TOKEN)

    attempt = start(shop, Shop.campaign_ref, reader=reader).attempt

    [call] = calls_to(payway, CREATE_V1)
    assert call.request.headers["Authorization"] == f"Bearer {IDENTITY_TOKEN}"
    assert body_of(call) == {
        "code": "spring-campaign",
        "confirmation_url": f"https://news.example/thanks/?ref={attempt.reference}",
        "period_type": "recurring",  # campaigns are always recurring, whatever the block says
        "disable_account_info_overwrite": True,
    }
    assert attempt.existing_customer is True
    assert len(calls_to(payway, TOKEN_URL)) == 0  # v1 uses the reader's token only


def test_second_buy_reuses_the_session_single_flight(shop, payway):
    """C01: repeated clicks make one attempt and one create_session."""
    payway.add(responses.POST, CREATE_V2, json=session_json())

    first = start(shop).attempt
    second = start(shop).attempt
    third = start(shop).attempt

    assert first.pk == second.pk == third.pk
    assert len(calls_to(payway, CREATE_V2)) == 1
    assert PurchaseAttempt.objects.count() == 1
    assert list(first.events.values_list("kind", flat=True)).count(EventKind.SESSION_REUSED) == 2


def test_session_reused_until_the_margin_then_renewed(shop, payway):
    """C07/C08: reused at 1 h and 45 h 59 min; a new session at 46 h 01 min, on the same attempt."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, CREATE_V2, json=session_json(session_id="second-session", client_token="tok2"))
    t0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)
    with freeze_time(t0):
        attempt = start(shop).attempt
    for offset in (dt.timedelta(hours=1), dt.timedelta(hours=45, minutes=59)):
        with freeze_time(t0 + offset):
            again = start(shop).attempt
        assert again.pk == attempt.pk and again.payway_session_id == SESSION_ID
    assert len(calls_to(payway, CREATE_V2)) == 1

    with freeze_time(t0 + dt.timedelta(hours=46, minutes=1)):
        renewed = start(shop).attempt
        assert attempts.is_session_reusable(renewed)
    assert len(calls_to(payway, CREATE_V2)) == 2
    assert renewed.pk == attempt.pk
    assert renewed.payway_session_id == "second-session"
    assert renewed.klarna_client_token == "tok2"
    assert renewed.session_expires_at == t0 + dt.timedelta(hours=46, minutes=1) + dt.timedelta(hours=48)


def test_changed_offer_gets_a_new_session(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start(shop).attempt
    page = KlarnaPurchasePage.objects.get(pk=shop.purchase_page.pk)
    raw = list(page.offers.raw_data)
    raw[0]["value"]["product_code"] = "digital-v2"
    page.offers = raw
    page.save_revision().publish()
    shop.purchase_page = KlarnaPurchasePage.objects.get(pk=page.pk)

    again = start(shop).attempt

    assert again.pk == attempt.pk
    assert again.product_code == "digital-v2"
    assert body_of(calls_to(payway, CREATE_V2)[1])["code"] == "digital-v2"


def test_an_edit_of_how_the_offer_is_presented_keeps_the_session(shop, payway):
    """The label and the selling points are the site's, not Payway's: a reused session takes the new ones
    (the checkout describes the offer as it was chosen last), and Payway is not asked again."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start(shop).attempt
    page = KlarnaPurchasePage.objects.get(pk=shop.purchase_page.pk)
    raw = list(page.offers.raw_data)
    raw[0]["value"].update(label="Digital, now with the app", selling_points=["The app too"])
    page.offers = raw
    page.save_revision().publish()
    shop.purchase_page = KlarnaPurchasePage.objects.get(pk=page.pk)

    again = start(shop).attempt

    assert again.pk == attempt.pk and again.payway_session_id == SESSION_ID
    assert len(calls_to(payway, CREATE_V2)) == 1
    stored = PurchaseAttempt.objects.get(pk=attempt.pk)
    assert (stored.offer_label, stored.selling_points) == ("Digital, now with the app", ["The app too"])


def test_logging_in_gets_a_session_for_the_account(shop, payway):
    """The reader's flow changed (anonymous -> identity): the v2 session is replaced by a v1 one."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, CREATE_V1, json=session_json(session_id="v1-session"))
    start(shop)
    again = start(shop, reader=attempts.Reader(key=READER.key, identity_token=IDENTITY_TOKEN)).attempt
    assert again.existing_customer is True
    assert again.payway_session_id == "v1-session"


@pytest.mark.parametrize(
    ("answer", "code", "state"),
    [
        ({"body": requests.ConnectionError("refused")}, "unavailable", AttemptState.NEW),
        ({"body": requests.ReadTimeout("slow")}, "timeout", AttemptState.NEW),
        ({"status": 500, "json": {"code": "internal_server_error"}}, "server_error", "new"),
        ({"status": 400, "json": {"code": "invalid_parameter", "field": "code"}}, "validation", "failed"),
    ],
)
def test_create_session_failures(shop, payway, answer, code, state, signal_log):
    payway.add(responses.POST, CREATE_V2, **answer)

    result = start(shop)

    assert result.status == session.BuyStatus.FAILED
    assert result.error_code == code
    assert result.attempt.state == state
    assert result.attempt.payway_session_id == ""
    assert result.attempt.events.filter(kind=EventKind.ERROR, error_code=code).count() == 1
    assert ("started", result.attempt.reference, AttemptState.SESSION_READY) not in signal_log


def test_transient_create_session_failure_can_be_retried_on_the_same_attempt(shop, payway):
    payway.add(responses.POST, CREATE_V2, body=requests.ConnectionError("refused"))
    payway.add(responses.POST, CREATE_V2, json=session_json())
    failed = start(shop)
    ready = start(shop)
    assert ready.status == session.BuyStatus.READY
    assert ready.attempt.pk == failed.attempt.pk


def test_identity_token_refused_on_create_session_asks_for_login(shop, payway):
    payway.add(responses.POST, CREATE_V1, status=401, json={"code": "unauthorized"})
    reader = attempts.Reader(key="user:3", identity_token=IDENTITY_TOKEN)
    result = start(shop, reader=reader)
    assert result.status == session.BuyStatus.LOGIN
    assert result.attempt.state == AttemptState.NEW


def test_system_token_refused_is_not_a_login_problem(shop, payway):
    """A 401 on our own (system) token, after the client's one renewal, is "unavailable" for the reader."""
    payway.add(responses.POST, CREATE_V2, status=401, json={"code": "unauthorized"})
    result = start(shop)
    assert result.status == session.BuyStatus.FAILED
    assert result.error_code == "unavailable"
    assert len(calls_to(payway, CREATE_V2)) == 2  # the client renewed the token and tried once more


def test_system_token_refused_on_place_order_can_be_retried(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, status=401, json={"code": "unauthorized"})
    attempt = start(shop).attempt
    result = place(attempt)
    assert result.outcome == orders.Outcome.RETRY
    assert result.error_code == "unavailable"
    assert PurchaseAttempt.objects.get(pk=attempt.pk).state == AttemptState.SESSION_READY


def test_no_confirmation_page_is_a_configuration_error(shop, payway):
    shop.purchase_page.confirmation_page = None
    shop.purchase_page.save()
    result = start(shop)
    assert result.status == session.BuyStatus.FAILED
    assert result.error_code == "configuration"
    assert len(payway.calls) == 0


def test_confirmation_page_falls_back_to_the_site_default(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    other = shop.home.add_child(
        instance=PurchaseConfirmationPage(title="Default thanks", slug="default-thanks")
    )
    settings_obj = PaywallSettings.for_site(shop.site)
    settings_obj.default_confirmation_page = other
    settings_obj.save()
    shop.purchase_page.confirmation_page = None
    shop.purchase_page.save()
    attempt = start(shop).attempt
    assert body_of(calls_to(payway, CREATE_V2)[0])["confirmation_url"] == (
        f"https://news.example/default-thanks/?ref={attempt.reference}"
    )


def test_merchant_reference_pattern():
    pattern = "{page_id}-{offer_code}"
    assert attempts.merchant_reference(pattern, page_id=4, offer_code="x", attempt="a") == "4-x"
    assert attempts.merchant_reference("wkp-{attempt}", page_id=4, offer_code="x", attempt="abc") == "wkp-abc"
    # A broken pattern falls back to the default rather than failing the purchase.
    assert attempts.merchant_reference("{nope}", page_id=4, offer_code="x", attempt="a") == "4-x"
    assert attempts.merchant_reference("{", page_id=4, offer_code="x", attempt="a") == "4-x"
    assert len(attempts.merchant_reference("x" * 400, page_id=4, offer_code="x", attempt="a")) == 255


# -- step 2: place the order ---------------------------------------------------------------------------


def test_place_order_v2_exact_body_and_outcome(shop, payway, signal_log):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())
    attempt = start(shop, traffic_source="newsletter").attempt

    result = place(attempt)

    assert result.outcome == orders.Outcome.REDIRECT
    assert result.redirect_url == KLARNA_REDIRECT
    assert result.called_payway
    [call] = calls_to(payway, PLACE_V2)
    assert call.request.headers["Authorization"] == f"Bearer {SYSTEM_TOKEN}"
    assert body_of(call) == {
        "klarna_authorization_token": "auth-token-1",
        "klarna_payments_session_id": SESSION_ID,
        "browser_ip": "203.0.113.7",
        "browser_language": "sv-SE",
        "browser_user_agent": "TestBrowser/1.0",
        "traffic_source": "newsletter",
        "merchant_reference": f"{shop.purchase_page.pk}-digital",
        "raise_on_ssn_already_taken_error": True,
        "raise_on_ssn_already_set_error": False,
        "raise_on_account_update_error": False,
        "raise_on_delivery_address_error": False,
        "customer_info": {"email": "reader@example.com", "first_name": "Rea", "last_name": "Der"},
    }
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.PLACED
    assert attempt.order_id == ORDER_ID
    assert attempt.redirect_uri == KLARNA_REDIRECT
    assert attempt.placing_at and attempt.placed_at
    # The intent (the authorization) is an event; the milestone is placed_at, not an event.
    kinds = list(attempt.events.values_list("kind", flat=True))
    assert kinds[-1] == EventKind.AUTHORIZED
    assert ("completed", attempt.reference, AttemptState.PLACED) in signal_log


def test_the_intent_is_recorded_before_payway_is_called(shop, payway):
    """When place_order reaches Payway, the attempt is already PLACING, holds its claims and has its
    AUTHORIZED event: all written in the one transaction that ends before the call."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start(shop).attempt
    seen = {}

    def answer(request):
        row = PurchaseAttempt.objects.get(pk=attempt.pk)
        seen["state"] = row.state
        seen["events"] = list(row.events.values_list("kind", flat=True))
        seen["claims"] = set(ProductClaim.objects.filter(attempt=row).values_list("reader_key", flat=True))
        return 200, {}, json.dumps(order_json())

    payway.add_callback(responses.POST, PLACE_V2, callback=answer)
    assert place(attempt).outcome == orders.Outcome.REDIRECT
    assert seen["state"] == AttemptState.PLACING
    assert seen["events"][-1] == EventKind.AUTHORIZED
    assert READER.key in seen["claims"] and len(seen["claims"]) == 2  # the browser and the typed e-mail


def test_place_order_sends_the_site_flags_and_default_traffic_source(shop, payway):
    settings_obj = PaywallSettings.for_site(shop.site)
    settings_obj.raise_on_ssn_already_taken_error = False
    settings_obj.raise_on_ssn_already_set_error = True
    settings_obj.raise_on_account_update_error = True
    settings_obj.raise_on_delivery_address_error = True
    settings_obj.merchant_reference_pattern = "news-{offer_code}-{attempt}"
    settings_obj.save()
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())
    attempt = start(shop).attempt

    place(attempt)

    body = body_of(calls_to(payway, PLACE_V2)[0])
    assert body["traffic_source"] == "website"
    assert body["merchant_reference"] == f"news-digital-{attempt.reference}"
    assert {k: v for k, v in body.items() if k.startswith("raise_on_")} == {
        "raise_on_ssn_already_taken_error": False,
        "raise_on_ssn_already_set_error": True,
        "raise_on_account_update_error": True,
        "raise_on_delivery_address_error": True,
    }


def test_sequential_double_submit_places_once(shop, payway, signal_log):
    """C02/C04/F15: a second submit (same or another token) replays the stored redirect."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())
    attempt = start(shop).attempt

    first = place(attempt)
    second = place(PurchaseAttempt.objects.get(pk=attempt.pk), token="auth-token-2")
    third = place(attempt)  # a stale in-memory copy that still says session_ready

    assert len(calls_to(payway, PLACE_V2)) == 1
    assert first.redirect_url == second.redirect_url == third.redirect_url == KLARNA_REDIRECT
    assert not second.called_payway and not third.called_payway
    assert [s for s, *_ in signal_log].count("completed") == 1


def test_placing_attempt_is_in_progress_then_unknown_after_the_lease(shop, payway, signal_log):
    """C03/F16: a concurrent submit sees "placing" and never calls; a lost worker becomes unknown."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start(shop).attempt
    now = timezone.now()
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(state=AttemptState.PLACING, placing_at=now)

    assert place(attempt).outcome == orders.Outcome.IN_PROGRESS
    with freeze_time(now + attempts.PLACING_LEASE + dt.timedelta(seconds=1)):
        result = place(attempt)
    assert result.outcome == orders.Outcome.UNKNOWN
    assert len(calls_to(payway, PLACE_V2)) == 0
    assert [s for s, *_ in signal_log].count("failed") == 1


def test_atomic_requests_refuses_to_place_without_calling_payway(shop, payway, settings):
    """I2 / check E010: inside a request-wide transaction the placing mark could not be committed before
    the call, so no order is placed at all (and nothing is sent)."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start(shop).attempt
    settings.DATABASES["default"]["ATOMIC_REQUESTS"] = True
    try:
        result = place(attempt)
    finally:
        settings.DATABASES["default"]["ATOMIC_REQUESTS"] = False
    assert result.outcome == orders.Outcome.RETRY and result.error_code == "configuration"
    assert PurchaseAttempt.objects.get(pk=attempt.pk).state == AttemptState.SESSION_READY
    assert len(calls_to(payway, PLACE_V2)) == 0


def test_a_transaction_around_the_call_refuses_to_place_without_calling_payway(shop, payway):
    """The same for any transaction the caller holds open (a site's own middleware or view wrapper):
    a rollback after the call would undo the PLACING mark of an order Payway may have placed."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start(shop).attempt
    with transaction.atomic():
        result = place(attempt)
    assert result.outcome == orders.Outcome.RETRY and result.error_code == "configuration"
    assert PurchaseAttempt.objects.get(pk=attempt.pk).state == AttemptState.SESSION_READY
    assert len(calls_to(payway, PLACE_V2)) == 0
    # Outside it, the same attempt is placed.
    payway.add(responses.POST, PLACE_V2, json=order_json())
    assert place(attempt).outcome == orders.Outcome.REDIRECT


def test_expired_session_is_not_placed(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    t0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)
    with freeze_time(t0):
        attempt = start(shop).attempt
    with freeze_time(t0 + dt.timedelta(hours=48, seconds=1)):
        result = place(attempt)
    assert result.outcome == orders.Outcome.EXPIRED
    assert PurchaseAttempt.objects.get(pk=attempt.pk).state == AttemptState.EXPIRED
    assert len(calls_to(payway, PLACE_V2)) == 0


def test_v1_place_order_needs_the_identity_and_sends_no_customer(shop, payway):
    payway.add(responses.POST, CREATE_V1, json=session_json())
    payway.add(responses.POST, PLACE_V1, json=order_json())
    reader = attempts.Reader(key="user:9", identity_token=IDENTITY_TOKEN)
    attempt = start(shop, reader=reader).attempt

    logged_out = attempts.Reader(key="user:9")
    assert place(attempt, reader=logged_out, customer=None).outcome == orders.Outcome.LOGIN
    assert len(calls_to(payway, PLACE_V1)) == 0

    result = place(attempt, reader=reader, customer=None)

    assert result.outcome == orders.Outcome.REDIRECT
    [call] = calls_to(payway, PLACE_V1)
    assert call.request.headers["Authorization"] == f"Bearer {IDENTITY_TOKEN}"
    assert "customer_info" not in body_of(call)


def test_trial_is_placed_with_place_trial_order(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_TRIAL, json=order_json())
    attempt = start(shop, Shop.trial_ref).attempt
    assert place(attempt).outcome == orders.Outcome.REDIRECT
    assert len(calls_to(payway, PLACE_TRIAL)) == 1
    assert len(calls_to(payway, PLACE_V2)) == 0


@pytest.mark.parametrize(
    ("answer", "outcome", "state", "code"),
    [
        (
            {"status": 403, "json": {"code": "payment_method_failed", "message": f"refused {PERSONNUMMER}"}},
            "declined",
            "declined",
            "payment_method_failed",
        ),
        ({"status": 400, "json": {"code": "invalid_parameter"}}, "failed", "failed", "validation"),
        ({"status": 400, "json": {"code": "ssn_already_taken"}}, "failed", "failed", "ssn_already_taken"),
        ({"status": 400, "json": {"code": "ssn_already_set"}}, "failed", "failed", "ssn_already_set"),
        ({"status": 400, "json": {"code": "account_update_error"}}, "failed", "failed", "account_update"),
        ({"status": 400, "json": {"code": "delivery_address_error"}}, "failed", "failed", "delivery_address"),
        ({"status": 404, "json": {"code": "not_found"}}, "failed", "failed", "not_found"),
        ({"status": 500, "json": {"code": "internal_server_error"}}, "unknown", "unknown", "unknown"),
        ({"status": 502, "body": "<html>bad gateway</html>"}, "unknown", "unknown", "unknown"),
        ({"status": 429, "json": {"code": "too_many"}}, "unknown", "unknown", "unknown"),
        ({"body": requests.ReadTimeout("slow")}, "unknown", "unknown", "unknown"),
        ({"status": 200, "body": "not json"}, "unknown", "unknown", "unknown"),
        ({"body": requests.ConnectionError("refused")}, "retry", "session_ready", "unavailable"),
    ],
)
def test_place_order_failures(shop, payway, signal_log, answer, outcome, state, code):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, **answer)
    attempt = start(shop).attempt

    result = place(attempt)
    again = place(PurchaseAttempt.objects.get(pk=attempt.pk), token="auth-token-2")

    assert result.outcome == outcome
    assert result.error_code == code
    attempt.refresh_from_db()
    assert attempt.state == state
    if state == "session_ready":
        # Nothing reached Payway: the second submit is a real second try
        # (docs/payway-contract.md#never-re-send).
        assert len(calls_to(payway, PLACE_V2)) == 2
    else:
        # Never a second call; the stored outcome is replayed.
        assert len(calls_to(payway, PLACE_V2)) == 1
        assert again.outcome == outcome and not again.called_payway
        assert [s for s, *_ in signal_log].count("failed") == 1
    stored = json.dumps(list(attempt.events.values()), default=str) + json.dumps(
        {k: str(v) for k, v in PurchaseAttempt.objects.filter(pk=attempt.pk).values()[0].items()}
    )
    assert PERSONNUMMER not in stored
    assert "auth-token-1" not in stored


def test_unexpected_error_while_placing_is_stored_as_unknown(shop, payway, monkeypatch):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start(shop).attempt

    def boom(self, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr("wagtail_klarna_paywall.payway.client.PaywayClient.place_order", boom)
    assert place(attempt).outcome == orders.Outcome.UNKNOWN
    assert PurchaseAttempt.objects.get(pk=attempt.pk).state == AttemptState.UNKNOWN


def test_authentication_expired_on_v1_keeps_the_attempt(shop, payway):
    payway.add(responses.POST, CREATE_V1, json=session_json())
    payway.add(responses.POST, PLACE_V1, status=401, json={"code": "unauthorized"})
    reader = attempts.Reader(key="user:9", identity_token=IDENTITY_TOKEN)
    attempt = start(shop, reader=reader).attempt

    result = place(attempt, reader=reader, customer=None)

    assert result.outcome == orders.Outcome.LOGIN
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.SESSION_READY
    assert attempt.placing_at is None


# -- redirects -----------------------------------------------------------------------------------------

ALLOWED = [
    "https://klarna.com/x",
    "https://pay.klarna.com/eu/hpp/redirect/abc?x=1#y",
    "https://a.b.klarna.com/",
]
REJECTED = [
    "",
    None,
    42,
    "javascript:alert(1)",
    "data:text/html,hi",
    "http://pay.klarna.com/x",
    "//evil.example",
    "https:evil.example",
    "https:/pay.klarna.com/x",
    "\\\\evil.example",
    "/\\evil.example",
    "/relative/path",
    "https://evil.example",
    " https://pay.klarna.com/x",
    "https://pay.klarna.com/x\n",
    "https://pay.klarna.com\t/x",
    "https://pay.klarna.com.evil.example/",
    "https://klarna.com.evil.example/",
    "https://evilklarna.com/",
    "https://user@pay.klarna.com/",
    "https://pay.klarna.com@evil.example/",
    "https://pay.klarna.com:443/",
    "https://pay.klarna.com:8443/",
    "https://PAY.KLARNA.COM/",
    "https://pay.klarna.com./",
    "https://pаy.klarna.com/",  # Cyrillic a
    "https://xn--py-8cd.klarna.com.evil.example/",
    "https://pay.klarna.com/" + "a" * 2100,
    "HTTPS://pay.klarna.com/",
    "https://[::1]/",
    "https://127.0.0.1/",
    "ftp://pay.klarna.com/",
]


@pytest.mark.parametrize("url", ALLOWED)
def test_allowed_klarna_redirects(url):
    assert redirects.is_allowed_klarna_redirect(url)


@pytest.mark.parametrize("url", REJECTED)
def test_rejected_redirects(url):
    """B10/B11: classic and lookalike open-redirect payloads are never followed."""
    assert not redirects.is_allowed_klarna_redirect(url)


def test_debug_accepts_the_sandbox_hop_only_for_listed_hosts():
    """The sandbox's fake Klarna hop is http on runserver's port; only DEBUG accepts that."""
    hop = "http://127.0.0.1:8000/fake-payway/klarna/hop/s1/"
    assert redirects.is_allowed_klarna_redirect(hop, ["127.0.0.1"], debug=True)
    assert not redirects.is_allowed_klarna_redirect(hop, ["127.0.0.1"], debug=False)
    assert not redirects.is_allowed_klarna_redirect(hop, ["klarna.com"], debug=True)
    assert not redirects.is_allowed_klarna_redirect("http://user@127.0.0.1:8000/", ["127.0.0.1"], debug=True)
    assert not redirects.is_allowed_klarna_redirect("javascript:alert(1)", ["127.0.0.1"], debug=True)


def test_redirect_hosts_are_configurable(settings):
    assert redirects.is_allowed_klarna_redirect("https://pay.example.org/x", ["example.org"])
    assert not redirects.is_allowed_klarna_redirect("https://pay.klarna.com/x", ["example.org"])


def test_rejected_redirect_goes_to_confirmation_with_a_security_event(shop, payway, caplog):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json(redirect="https://evil.example/steal?x=1"))
    attempt = start(shop).attempt

    result = place(attempt)

    assert result.outcome == orders.Outcome.CONFIRMATION
    assert result.redirect_url == f"/thanks/?ref={attempt.reference}"
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.PLACED  # the order stands
    assert attempt.redirect_rejected and attempt.redirect_uri == ""
    event = attempt.events.get(kind=EventKind.SECURITY)
    assert event.error_code == "redirect_rejected"
    assert "steal" not in event.detail
    assert any(r.levelname == "WARNING" and "allow-list" in r.getMessage() for r in caplog.records)
    # A reload replays the confirmation, not the bad URL.
    assert place(attempt).redirect_url == f"/thanks/?ref={attempt.reference}"


def test_order_without_redirect_goes_to_confirmation(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, body="")
    attempt = start(shop).attempt
    result = place(attempt)
    assert result.outcome == orders.Outcome.CONFIRMATION
    assert PurchaseAttempt.objects.get(pk=attempt.pk).events.filter(kind=EventKind.SECURITY).count() == 0


# -- buying again, declines, confirmation ----------------------------------------------------------------


def test_buying_the_same_product_again_shows_the_existing_order(shop, payway):
    """C05/C09: after an order, "buy" on the same product shows that order instead of paying twice."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())
    attempt = start(shop).attempt
    place(attempt)

    again = start(shop, Shop.article_offer_ref, page=shop.article)  # same product via the article's paywall

    assert again.status == session.BuyStatus.EXISTING
    assert again.attempt.pk == attempt.pk
    assert len(calls_to(payway, CREATE_V2)) == 1


def test_declined_in_widget_is_terminal_and_a_retry_is_a_new_attempt(shop, payway, signal_log):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, CREATE_V2, json=session_json(session_id="fresh-session"))
    attempt = start(shop).attempt

    result = orders.decline_in_widget(attempt)
    assert result.outcome == orders.Outcome.DECLINED
    assert result.error_code == "declined_in_widget"
    assert place(attempt).outcome == orders.Outcome.DECLINED  # never placed afterwards
    orders.decline_in_widget(attempt)  # a second decline changes nothing

    retry = start(shop).attempt
    assert retry.pk != attempt.pk
    assert retry.payway_session_id == "fresh-session"
    assert len(calls_to(payway, PLACE_V2)) == 0
    assert [s for s, *_ in signal_log].count("failed") == 1


def test_confirm_once(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())
    attempt = start(shop).attempt
    place(attempt)
    attempt.refresh_from_db()

    events = attempt.events.count()
    assert orders.confirm(attempt) is True
    confirmed_at = PurchaseAttempt.objects.get(pk=attempt.pk).confirmed_at
    assert confirmed_at is not None and attempt.confirmed_at == confirmed_at
    assert orders.confirm(attempt) is False
    assert orders.confirm(PurchaseAttempt.objects.get(pk=attempt.pk)) is False
    # The milestone is set once, by the first confirmation, and is not an event.
    assert PurchaseAttempt.objects.get(pk=attempt.pk).confirmed_at == confirmed_at
    assert attempt.events.count() == events


def test_an_attempt_is_found_by_reference_and_is_its_readers_only(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start(shop).attempt
    assert attempts.attempt_by_reference(str(attempt.reference)) == attempt
    assert attempts.attempt_by_reference(attempt.reference) == attempt
    assert attempts.attempt_by_reference("not-a-uuid") is None
    assert attempts.attempt_by_reference(str(uuid.uuid4())) is None
    assert attempts.is_readers(attempt, READER)
    assert not attempts.is_readers(attempt, attempts.Reader(key="anon:other"))
    assert not attempts.is_readers(attempt, None)


def test_the_confirmations_read_is_what_the_orm_reads(shop, django_assert_num_queries):
    """``attempt_to_confirm`` (SQL of its own) reads what the ORM reads, the article's route included, in
    one query; the rest of the row still loads when used. tests/concurrency checks it on PostgreSQL."""
    attempt = placed_article_attempt(shop)
    with django_assert_num_queries(2):  # the read, then the ORM's
        read, stored = confirmation_read_of(attempt)
    assert read == stored and read["page.url_path"] == shop.article.url_path and read["page.live"] is True
    confirmed = attempts.attempt_to_confirm(attempt.reference)
    with django_assert_num_queries(1):
        assert confirmed.order_id == ORDER_ID
    # Without its article (deleted: SET_NULL), and for no attempt at all.
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(page=None)
    assert attempts.attempt_to_confirm(attempt.reference).page is None
    assert attempts.attempt_to_confirm(str(uuid.uuid4())) is None
    assert attempts.attempt_to_confirm("not-a-uuid") is None


def test_broken_signal_receiver_does_not_break_the_purchase(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())

    def broken(**kwargs):
        raise ValueError("receiver bug")

    signals.purchase_started.connect(broken)
    try:
        assert start(shop).status == session.BuyStatus.READY
    finally:
        signals.purchase_started.disconnect(broken)


def test_traffic_source_is_cleaned():
    assert attempts.clean_traffic_source("newsletter") == "newsletter"
    assert attempts.clean_traffic_source(" facebook ") == "facebook"
    assert attempts.clean_traffic_source("<script>") == ""
    assert attempts.clean_traffic_source("x" * 101) == ""
    assert attempts.clean_traffic_source(None) == ""


# -- one order per reader and product ---------------------------------------------------------------------


def two_offers_of_one_product(shop, payway, reader=READER):
    """The purchase page's "Digital" and the article paywall's "Digital", both with a session ready."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, CREATE_V2, json=session_json(session_id="second-session"))
    first = start(shop, reader=reader).attempt
    second = start(shop, Shop.article_offer_ref, reader=reader, page=shop.article).attempt
    assert first.pk != second.pk and first.offer_key != second.offer_key
    assert first.product_key == second.product_key
    return first, second


def test_product_key_names_what_is_bought_not_where(shop):
    settings_obj = PaywallSettings.for_site(shop.site)
    settings_obj.title_code = "news"
    settings_obj.save()
    package = shop.offer(shop.purchase_page, Shop.package_ref)
    article = shop.offer(shop.article, Shop.article_offer_ref)
    campaign = shop.offer(shop.purchase_page, Shop.campaign_ref)
    assert attempts.offer_product_key(package, shop.site) == "news:package:digital"
    assert attempts.offer_product_key(article, shop.site) == "news:package:digital"
    assert attempts.offer_product_key(campaign, shop.site) == "news:campaign:spring-campaign"
    long_key = attempts.product_key("news", "package", "x" * 1000)
    assert len(long_key) <= 255 and long_key != attempts.product_key("news", "package", "x" * 999)


def test_second_offer_of_a_placed_product_is_refused_before_payway(shop, payway, signal_log):
    """One reader, two offers of one product (purchase page and article): the second submit places
    nothing; its attempt ends FAILED "already_bought", pointing at the first, with an event to find."""
    payway.add(responses.POST, PLACE_V2, json=order_json())
    first, second = two_offers_of_one_product(shop, payway)
    assert place(first).outcome == orders.Outcome.REDIRECT

    result = place(second, token="auth-token-2")

    assert result.outcome == orders.Outcome.ALREADY_BOUGHT and result.error_code == "already_bought"
    assert result.called_payway is False
    assert len(calls_to(payway, PLACE_V2)) == 1
    second.refresh_from_db()
    assert second.state == AttemptState.FAILED and second.error_code == "already_bought"
    assert second.duplicate_of_id == first.pk and second.placing_at is None
    event = second.events.get(kind=EventKind.ERROR, error_code="already_bought")
    assert str(first.reference) in event.detail
    assert ("failed", second.reference, AttemptState.FAILED) in signal_log
    # Its stored outcome says the same on every later submit, still without a call.
    assert orders.stored_outcome(second).outcome == orders.Outcome.ALREADY_BOUGHT
    assert place(second, token="auth-token-3").outcome == orders.Outcome.ALREADY_BOUGHT
    assert len(calls_to(payway, PLACE_V2)) == 1


def test_a_submit_that_loses_the_placing_mark_claims_nothing(shop, payway):
    """Two submits of one attempt, each with an e-mail of its own: the one whose UPDATE to PLACING changes
    nothing claims no identity, so the address it typed stays free for that address's owner."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, CREATE_V2, json=session_json(session_id="owners-session"))
    payway.add(responses.POST, PLACE_V2, json=order_json())
    first = start(shop).attempt
    # The second submit read the attempt while it was still session_ready, then came second.
    late = PurchaseAttempt.objects.get(pk=first.pk)
    assert place(first).outcome == orders.Outcome.REDIRECT
    someone = CustomerInfo(email="someone@example.com", first_name="Some", last_name="One")
    assert place(late, customer=someone, token="auth-token-2").called_payway is False
    assert not ProductClaim.objects.filter(reader_key=accounts.email_key(someone.email)).exists()

    owner = attempts.Reader(key="anon:" + "b" * 64)
    result = place(start(shop, reader=owner).attempt, reader=owner, customer=someone)
    assert result.outcome == orders.Outcome.REDIRECT
    assert len(calls_to(payway, PLACE_V2)) == 2


@pytest.mark.parametrize("first_state", ["placing", "unknown", "confirmed"])
def test_an_order_being_placed_or_settled_also_holds_the_product(shop, payway, first_state):
    payway.add(responses.POST, PLACE_V2, json=order_json())
    first, second = two_offers_of_one_product(shop, payway)
    place(first)
    PurchaseAttempt.objects.filter(pk=first.pk).update(state=first_state)

    assert place(second).outcome == orders.Outcome.ALREADY_BOUGHT
    assert len(calls_to(payway, PLACE_V2)) == 1


@pytest.mark.parametrize("first_end", ["declined", "failed", "expired"])
def test_a_first_attempt_that_ended_without_an_order_frees_the_product(shop, payway, first_end):
    payway.add(responses.POST, PLACE_V2, json=order_json())
    payway.add(responses.POST, PLACE_V2, json=order_json(order_id="second-order"))
    first, second = two_offers_of_one_product(shop, payway)
    place(first)
    PurchaseAttempt.objects.filter(pk=first.pk).update(state=first_end)

    assert place(second).outcome == orders.Outcome.REDIRECT
    assert len(calls_to(payway, PLACE_V2)) == 2


def test_nothing_reached_payway_frees_the_product_for_the_other_offer(shop, payway):
    """A connect failure returns the first attempt to session_ready: it holds nothing any more."""
    payway.add(responses.POST, PLACE_V2, body=requests.ConnectionError("refused"))
    payway.add(responses.POST, PLACE_V2, json=order_json())
    first, second = two_offers_of_one_product(shop, payway)
    assert place(first).outcome == orders.Outcome.RETRY

    assert place(second).outcome == orders.Outcome.REDIRECT
    # The first attempt, placed again afterwards, is the one refused now.
    assert place(first, token="auth-token-9").outcome == orders.Outcome.ALREADY_BOUGHT


def test_after_the_rebuy_window_the_product_can_be_bought_again(shop, payway):
    payway.add(responses.POST, PLACE_V2, json=order_json())
    payway.add(responses.POST, PLACE_V2, json=order_json(order_id="later-order"))
    t0 = timezone.now()
    with freeze_time(t0):
        first, _second = two_offers_of_one_product(shop, payway)
        place(first)
    with freeze_time(t0 + attempts.REBUY_GUARD + dt.timedelta(minutes=1)):
        payway.add(responses.POST, CREATE_V2, json=session_json(session_id="third-session"))
        later = start(shop, Shop.article_offer_ref, page=shop.article)
        assert later.status == session.BuyStatus.READY
        assert place(later.attempt).outcome == orders.Outcome.REDIRECT
    assert len(calls_to(payway, PLACE_V2)) == 2


def test_other_products_are_not_held(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, CREATE_V2, json=session_json(session_id="campaign-session"))
    payway.add(responses.POST, PLACE_V2, json=order_json())
    payway.add(responses.POST, PLACE_V2, json=order_json(order_id="campaign-order"))
    package = start(shop).attempt
    campaign = start(shop, Shop.campaign_ref).attempt
    assert place(package).outcome == orders.Outcome.REDIRECT
    assert place(campaign).outcome == orders.Outcome.REDIRECT
    assert len(calls_to(payway, PLACE_V2)) == 2


def test_the_typed_email_counts_as_the_reader(shop, payway):
    """Two browsers (two readers) of one new customer: the address typed at checkout makes them one."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, CREATE_V2, json=session_json(session_id="other-browser"))
    payway.add(responses.POST, PLACE_V2, json=order_json())
    browser_a = attempts.Reader(key="anon:" + "a" * 64)
    browser_b = attempts.Reader(key="anon:" + "b" * 64)
    first = start(shop, reader=browser_a).attempt
    second = start(shop, Shop.article_offer_ref, reader=browser_b, page=shop.article).attempt
    assert place(first, reader=browser_a).outcome == orders.Outcome.REDIRECT

    same_person = CustomerInfo(email="  Reader@Example.COM ", first_name="R", last_name="D")
    result = place(second, reader=browser_b, customer=same_person)

    assert result.outcome == orders.Outcome.ALREADY_BOUGHT
    assert len(calls_to(payway, PLACE_V2)) == 1
    # Only keyed hashes of the address are stored, never the address.
    keys = list(ProductClaim.objects.values_list("reader_key", flat=True))
    assert accounts.email_key("reader@example.com") in keys
    assert not any("example" in key.lower() for key in keys)
    assert "reader@example.com" not in json.dumps(list(PurchaseAttempt.objects.values()), default=str).lower()


def test_another_email_in_another_browser_is_another_reader(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, CREATE_V2, json=session_json(session_id="other-browser"))
    payway.add(responses.POST, PLACE_V2, json=order_json())
    payway.add(responses.POST, PLACE_V2, json=order_json(order_id="other-order"))
    browser_a = attempts.Reader(key="anon:" + "a" * 64)
    browser_b = attempts.Reader(key="anon:" + "b" * 64)
    first = start(shop, reader=browser_a).attempt
    second = start(shop, reader=browser_b).attempt
    assert place(first, reader=browser_a).outcome == orders.Outcome.REDIRECT
    other = CustomerInfo(email="someone.else@example.com", first_name="S", last_name="E")
    assert place(second, reader=browser_b, customer=other).outcome == orders.Outcome.REDIRECT


def test_a_logged_in_reader_is_their_payway_account_on_every_device(shop, payway):
    """Two Django sessions of one Payway account: the second device's order is refused; its buy shows
    the first device's purchase before any Payway session is made."""
    payway.add(responses.POST, CREATE_V1, json=session_json())
    payway.add(responses.POST, CREATE_V1, json=session_json(session_id="second-device"))
    payway.add(responses.POST, PLACE_V1, json=order_json())
    account = accounts.key_for_account_id(ACCOUNT_ID)
    device_a = attempts.Reader(key="anon:" + "c" * 64, identity_token=IDENTITY_TOKEN, account_key=account)
    device_b = attempts.Reader(key="anon:" + "d" * 64, identity_token=IDENTITY_TOKEN, account_key=account)
    first = start(shop, reader=device_a).attempt
    second = start(shop, Shop.article_offer_ref, reader=device_b, page=shop.article).attempt
    assert first.account_key == second.account_key == account
    assert first.existing_customer and second.existing_customer

    assert place(first, reader=device_a, customer=None).outcome == orders.Outcome.REDIRECT
    assert place(second, reader=device_b, customer=None).outcome == orders.Outcome.ALREADY_BOUGHT
    assert len(calls_to(payway, PLACE_V1)) == 1

    again = start(shop, reader=attempts.Reader(key="anon:" + "e" * 64, account_key=account))
    assert again.status == session.BuyStatus.EXISTING and again.attempt.pk == first.pk
    assert len(calls_to(payway, CREATE_V1)) == 2
    # The account's attempts are the reader's own on any device.
    assert attempts.is_readers(first, device_b)
    assert not attempts.is_readers(first, attempts.Reader(key="anon:" + "e" * 64))


def test_the_account_is_read_from_payway_when_the_caller_did_not(shop, payway):
    payway.add(responses.POST, CREATE_V1, json=session_json())
    payway.add(responses.POST, CREATE_V1, json=session_json(session_id="second-device"))
    payway.add(responses.POST, PLACE_V1, json=order_json())
    device_a = attempts.Reader(key="anon:" + "c" * 64, identity_token=IDENTITY_TOKEN)
    device_b = attempts.Reader(key="anon:" + "d" * 64, identity_token=IDENTITY_TOKEN)
    first = start(shop, reader=device_a).attempt
    second = start(shop, reader=device_b, page=shop.article, ref=Shop.article_offer_ref).attempt
    assert place(first, reader=device_a, customer=None).outcome == orders.Outcome.REDIRECT
    assert place(second, reader=device_b, customer=None).outcome == orders.Outcome.ALREADY_BOUGHT
    [me] = calls_to(payway, ME_URL)[:1]
    assert me.request.headers["Authorization"] == f"Bearer {IDENTITY_TOKEN}"
    assert len(calls_to(payway, PLACE_V1)) == 1


def test_an_unknown_account_stops_a_logged_in_order_before_payway(shop, payway):
    payway.add(responses.POST, CREATE_V1, json=session_json())
    payway.replace(responses.GET, ME_URL, status=503, json={"code": "unavailable"})
    reader = attempts.Reader(key="user:9", identity_token=IDENTITY_TOKEN)
    attempt = start(shop, reader=reader).attempt

    result = place(attempt, reader=reader, customer=None)

    assert result.outcome == orders.Outcome.RETRY and result.error_code == "unavailable"
    assert PurchaseAttempt.objects.get(pk=attempt.pk).state == AttemptState.SESSION_READY
    assert len(calls_to(payway, PLACE_V1)) == 0
