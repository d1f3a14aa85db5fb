"""The purchase flow through HTTP: buy -> checkout -> place order -> Klarna -> confirmation.

Payway is faked with ``responses`` behind the real client; request bodies are asserted exactly.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from urllib.parse import quote, urlsplit

import pytest
import requests
import responses
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client, override_settings
from django.utils import timezone
from freezegun import freeze_time

from tests.factories import (
    AUTH_TOKEN,
    CLIENT_TOKEN,
    CREATE_V1,
    CREATE_V2,
    CUSTOMER,
    IDENTITY_TOKEN,
    KLARNA_REDIRECT,
    ME_URL,
    PERSONNUMMER,
    PLACE_TRIAL,
    PLACE_V1,
    PLACE_V2,
    SESSION_ID,
    SYSTEM_TOKEN,
    TRIAL_PERIOD_ID,
    Shop,
    StubIdentityProvider,
    body_of,
    buy,
    buy_url,
    calls_to,
    checkout_path,
    klarna_config,
    landing_url,
    order_json,
    pay,
    session_json,
    start_checkout,
    text,
)
from wagtail_klarna_paywall.models import AttemptState, EventKind, PurchaseAttempt
from wagtail_klarna_paywall.purchase import readers, views

# The browser asks for Swedish, the tests read English; readers are anonymous unless a test logs them in.
pytestmark = pytest.mark.usefixtures("english_pages", "no_identity")


# -- step 1: buy ----------------------------------------------------------------------------------------


def test_landing_lists_offers_with_plain_buy_forms_and_creates_nothing(shop, payway, reader):
    """L01: viewing a page creates no Django session, no attempt and no Payway call."""
    response = reader.get(landing_url(shop), {"utm_source": "newsletter"}, secure=True)

    assert response.status_code == 200
    html = text(response)
    assert 'name="offer" value="offer-package"' in html
    assert 'name="offer" value="offer-trial"' in html
    assert 'name="utm_source" value="newsletter"' in html
    assert f'action="{buy_url(shop)}"' in html
    assert "sessionid" not in response.cookies
    assert PurchaseAttempt.objects.count() == 0
    assert len(payway.calls) == 0


def test_landing_shows_an_article_offer(shop, reader):
    response = reader.get(
        landing_url(shop), {"page": shop.article.pk, "offer": Shop.article_offer_ref}, secure=True
    )
    html = text(response)
    assert f'name="page" value="{shop.article.pk}"' in html
    assert 'name="offer" value="paywall-1:offer-digital"' in html
    assert 'name="offer" value="offer-trial"' not in html


def test_buy_from_the_article_paywall_full_flow_new_customer(shop, payway, reader, signal_log):
    """The whole v2 flow: buy -> widget -> place_order -> Klarna -> confirmation."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())

    response = buy(
        reader,
        shop,
        page=shop.article,
        ref=Shop.article_offer_ref,
        HTTP_REFERER="https://news.example/big-story/?utm_source=facebook",
    )
    attempt = PurchaseAttempt.objects.get()
    assert response.status_code == 303
    assert response["Location"] == checkout_path(attempt)
    assert "sessionid" in response.cookies  # the buy POST is what creates the reader's session
    assert attempt.reader_key.startswith("anon:") and len(attempt.reader_key) == 5 + 64
    assert attempt.page_id == shop.article.pk and attempt.purchase_page_id == shop.purchase_page.pk
    assert body_of(calls_to(payway, CREATE_V2)[0]) == {
        "code": "digital",
        "confirmation_url": f"https://news.example/thanks/?ref={attempt.reference}",
        "period_type": "recurring",
        "disable_account_info_overwrite": False,
    }

    page = reader.get(checkout_path(attempt), secure=True)
    html = text(page)
    assert page.status_code == 200
    assert CLIENT_TOKEN in html
    assert 'name="klarna_authorization_token"' in html
    assert 'name="email"' in html and 'name="first_name"' in html and 'name="last_name"' in html

    response = pay(reader, attempt, HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert response.status_code == 303
    assert response["Location"] == KLARNA_REDIRECT
    assert body_of(calls_to(payway, PLACE_V2)[0]) == {
        "klarna_authorization_token": AUTH_TOKEN,
        "klarna_payments_session_id": SESSION_ID,
        "browser_ip": "203.0.113.7",  # X-Forwarded-For ignored: no trusted proxy configured
        "browser_language": "sv-SE",
        "browser_user_agent": "TestBrowser/1.0",
        "traffic_source": "facebook",
        "merchant_reference": f"{shop.article.pk}-digital",
        "raise_on_ssn_already_taken_error": True,
        "raise_on_ssn_already_set_error": False,
        "raise_on_account_update_error": False,
        "raise_on_delivery_address_error": False,
        "customer_info": CUSTOMER,
    }

    confirmation = reader.get(f"/thanks/?ref={attempt.reference}", secure=True)
    html = text(confirmation)
    assert confirmation.status_code == 200
    assert "Digital" in html and "99" in html
    assert 'href="/big-story/"' in html  # back to the article
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.CONFIRMED
    assert [s for s, *_ in signal_log] == ["started", "completed"]


@pytest.mark.parametrize(
    ("ref", "create_url", "place_url", "expected_create"),
    [
        (
            Shop.package_ref,
            CREATE_V2,
            PLACE_V2,
            {"code": "digital", "period_type": "recurring"},
        ),
        (
            Shop.campaign_ref,
            CREATE_V2,
            PLACE_V2,
            {"code": "spring-campaign", "period_type": "recurring"},
        ),
        (
            Shop.trial_ref,
            CREATE_V2,
            PLACE_TRIAL,
            {"code": "trial-campaign", "period_id": TRIAL_PERIOD_ID},
        ),
    ],
)
def test_each_offer_kind_new_customer(shop, payway, reader, ref, create_url, place_url, expected_create):
    payway.add(responses.POST, create_url, json=session_json())
    payway.add(responses.POST, place_url, json=order_json())

    attempt = start_checkout(reader, shop, ref=ref)
    response = pay(reader, attempt)

    assert response.status_code == 303 and response["Location"] == KLARNA_REDIRECT
    assert body_of(calls_to(payway, create_url)[0]) == {
        **expected_create,
        "confirmation_url": f"https://news.example/thanks/?ref={attempt.reference}",
        "disable_account_info_overwrite": False,
    }
    assert body_of(calls_to(payway, place_url)[0]) == {
        "klarna_authorization_token": AUTH_TOKEN,
        "klarna_payments_session_id": SESSION_ID,
        "browser_ip": "203.0.113.7",
        "browser_language": "sv-SE",
        "browser_user_agent": "TestBrowser/1.0",
        "traffic_source": "website",
        "merchant_reference": f"{shop.purchase_page.pk}-{expected_create['code']}",
        "raise_on_ssn_already_taken_error": True,
        "raise_on_ssn_already_set_error": False,
        "raise_on_account_update_error": False,
        "raise_on_delivery_address_error": False,
        "customer_info": CUSTOMER,
    }
    assert len(payway.calls) == 3  # token, create_session, place_order


def test_trial_checkout_loads_direct_debit(shop, payway, reader):
    payway.add(responses.POST, CREATE_V2, json=session_json(categories=("pay_now", "direct_debit")))
    attempt = start_checkout(reader, shop, ref=Shop.trial_ref)
    html = text(reader.get(checkout_path(attempt), secure=True))
    assert klarna_config(html)["paymentMethodCategory"] == "direct_debit"
    assert "data-wkp-fallback hidden" in html  # Klarna is loaded; the fallback waits hidden


def test_trial_checkout_without_a_fitting_category_shows_the_fallback(shop, payway, reader):
    """A trial session listing only pay_later: no category Klarna lists can pay a trial, so the page loads
    no Klarna (nothing to authorize with) and shows why; nothing reaches place_order."""
    payway.add(responses.POST, CREATE_V2, json=session_json(categories=("pay_later",)))
    attempt = start_checkout(reader, shop, ref=Shop.trial_ref)
    html = text(reader.get(checkout_path(attempt), secure=True))

    config = klarna_config(html)
    assert config["paymentMethodCategory"] == ""  # purchase.js shows the fallback and never calls Klarna
    assert config["messages"]["noPaymentMethod"]
    assert 'data-wkp-fallback-reason="no_payment_method"' in html
    assert "Klarna cannot be used for this offer" in html
    assert "fake-klarna.js" not in html and "klarnacdn" not in html  # the SDK is not even loaded
    assert re.search(r"<button[^>]*data-wkp-pay[^>]*disabled", html)
    assert len(calls_to(payway, PLACE_TRIAL)) == 0
    assert attempt.events.filter(kind=EventKind.ERROR, error_code="no_payment_method").count() == 1


def test_existing_customer_v1_flow(shop, payway, reader, logged_in):
    payway.add(responses.POST, CREATE_V1, json=session_json())
    payway.add(responses.POST, PLACE_V1, json=order_json())

    attempt = start_checkout(reader, shop)
    html = text(reader.get(checkout_path(attempt), secure=True))
    assert 'name="email"' not in html  # no customer form for an existing customer
    response = pay(reader, attempt, customer=None)

    assert response.status_code == 303 and response["Location"] == KLARNA_REDIRECT
    create, place = calls_to(payway, CREATE_V1)[0], calls_to(payway, PLACE_V1)[0]
    assert create.request.headers["Authorization"] == f"Bearer {IDENTITY_TOKEN}"
    assert body_of(create) == {
        "code": "digital",
        "confirmation_url": f"https://news.example/thanks/?ref={attempt.reference}",
        "period_type": "recurring",
        "disable_account_info_overwrite": False,
    }
    assert place.request.headers["Authorization"] == f"Bearer {IDENTITY_TOKEN}"
    assert body_of(place) == {
        "klarna_authorization_token": AUTH_TOKEN,
        "klarna_payments_session_id": SESSION_ID,
        "browser_ip": "203.0.113.7",
        "browser_language": "sv-SE",
        "browser_user_agent": "TestBrowser/1.0",
        "traffic_source": "website",
        "merchant_reference": f"{shop.purchase_page.pk}-digital",
        "raise_on_ssn_already_taken_error": True,
        "raise_on_ssn_already_set_error": False,
        "raise_on_account_update_error": False,
        "raise_on_delivery_address_error": False,
    }
    assert len(calls_to(payway, "https://payway.test/api/authorization/access_token")) == 0


def test_authenticated_django_user_is_keyed_by_user(shop, payway, django_user_model):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    user = django_user_model.objects.create_user("reader", password="x")
    client = Client()
    client.force_login(user)
    attempt = start_checkout(client, shop)
    assert attempt.reader_key == f"user:{user.pk}" and attempt.user_id == user.pk
    # Another browser of the same user sees the attempt; an anonymous one does not.
    other = Client()
    other.force_login(user)
    assert other.get(checkout_path(attempt), secure=True).status_code == 200
    assert Client().get(checkout_path(attempt), secure=True).status_code == 404


def test_double_buy_reuses_the_attempt_and_session(shop, payway, reader):
    """C01: every click renders the same client token; one create_session."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    first = start_checkout(reader, shop)
    second = start_checkout(reader, shop)
    assert first.pk == second.pk
    assert len(calls_to(payway, CREATE_V2)) == 1


def test_session_reuse_window_through_http(shop, payway, reader):
    """C07/C08 with a frozen clock: same session until 46 h, then a new one before rendering."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, CREATE_V2, json=session_json(session_id="s2", client_token="client-token-2"))
    with freeze_time("2026-11-02 09:00:00") as frozen:
        attempt = start_checkout(reader, shop)
        frozen.tick(delta=dt.timedelta(hours=45, minutes=59))
        start_checkout(reader, shop)
        assert len(calls_to(payway, CREATE_V2)) == 1
        assert CLIENT_TOKEN in text(reader.get(checkout_path(attempt), secure=True))

        frozen.tick(delta=dt.timedelta(minutes=2))
        # The page itself never creates a session: the stale token is not rendered, "start again" is.
        html = text(reader.get(checkout_path(attempt), secure=True))
        assert CLIENT_TOKEN not in html and "Start again" in html
        assert len(calls_to(payway, CREATE_V2)) == 1

        start_checkout(reader, shop)
        assert len(calls_to(payway, CREATE_V2)) == 2
        assert "client-token-2" in text(reader.get(checkout_path(attempt), secure=True))


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"page": "abc", "offer": "offer-package"},
        {"page": "1", "offer": "<script>alert(1)</script>"},
        {"page": "99999999", "offer": "offer-package"},
        {"page": "-1", "offer": "offer-package"},
        {"page": "1" * 40, "offer": "offer-package"},
        {"offer": "offer-package"},
        {"page": "PAGE", "offer": "nope"},
        {"page": "PAGE", "offer": "x" * 500},
        {"page": "PAGE", "offer": "paywall-1:missing"},
        {"page": "OTHER", "offer": "other-offer"},  # an offer of another purchase page
        {"page": "ARTICLE", "offer": "offer-package"},  # an offer the article does not hold
    ],
)
def test_bad_buy_input_is_a_humane_400_without_payway_calls(shop, payway, reader, data):
    """B04/B06/B07: never a 500, never a Payway call, never the payload reflected unescaped."""
    ids = {"PAGE": shop.purchase_page.pk, "OTHER": shop.other_purchase_page.pk, "ARTICLE": shop.article.pk}
    data = {k: str(ids.get(v, v)) for k, v in data.items()}

    response = reader.post(buy_url(shop), data, secure=True)

    assert response.status_code == 400
    html = text(response)
    assert "<script>alert(1)</script>" not in html
    assert re.search(r"(no longer available|Something went wrong)", html)
    assert len(payway.calls) == 0
    assert PurchaseAttempt.objects.count() == 0


def test_client_cannot_choose_code_period_or_price(shop, payway, reader):
    """B07: extra fields are ignored; only the page's configuration reaches create_session."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    start_checkout(
        reader, shop, product_code="free-stuff", period_type="limited", price="0", period_id="x" * 24
    )
    assert body_of(calls_to(payway, CREATE_V2)[0])["code"] == "digital"
    assert "period_id" not in body_of(calls_to(payway, CREATE_V2)[0])


def test_unpublished_page_offers_cannot_be_bought(shop, payway, reader):
    shop.article.unpublish()
    response = buy(reader, shop, page=shop.article, ref=Shop.article_offer_ref)
    assert response.status_code == 400
    assert len(payway.calls) == 0


@pytest.mark.parametrize("method", ["get", "head", "put", "delete", "options"])
def test_buy_is_post_only(shop, payway, reader, method):
    """B14: no purchase on GET (links, prefetchers, crawlers). Wagtail answers OPTIONS itself."""
    response = getattr(reader, method)(buy_url(shop), secure=True)
    assert response.status_code == (200 if method == "options" else 405)
    assert len(payway.calls) == 0
    assert PurchaseAttempt.objects.count() == 0


@pytest.mark.parametrize(
    ("answer", "status", "message"),
    [
        ({"body": requests.ConnectionError("down")}, 503, "could not be reached"),
        ({"status": 503, "json": {"code": "x", "message": f"Upstream {PERSONNUMMER}"}}, 503, "has a problem"),
        ({"status": 400, "json": {"code": "invalid_parameter", "message": "Bad code"}}, 200, "not accept"),
    ],
)
def test_create_session_errors_show_our_message(shop, payway, reader, answer, status, message):
    payway.add(responses.POST, CREATE_V2, **answer)
    response = buy(reader, shop)
    assert response.status_code == status
    html = text(response)
    assert message in html
    assert PERSONNUMMER not in html and "Bad code" not in html
    assert len(calls_to(payway, CREATE_V2)) == 1


def test_identity_refused_at_buy_sends_the_reader_to_login(shop, payway, reader, logged_in):
    payway.add(responses.POST, CREATE_V1, status=401, json={"code": "unauthorized"})
    response = buy(reader, shop)
    assert response.status_code == 303
    assert response["Location"].startswith("/login/?next=")
    assert StubIdentityProvider.forgotten == 1


# -- step 3: checkout page -----------------------------------------------------------------------------


def test_checkout_page_carries_only_the_client_token(shop, payway, reader, settings):
    """S02/S07: no Payway token or session id in the page; scripts are static files only."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_checkout(reader, shop)

    response = reader.get(checkout_path(attempt), secure=True)
    html = text(response)

    assert CLIENT_TOKEN in html
    assert SESSION_ID not in html
    assert SYSTEM_TOKEN not in html and "test-secret-do-not-leak" not in html
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    for attrs, body in scripts:
        # Either an external file, or Django's json_script data block (not executable).
        assert 'src="' in attrs or ('type="application/json"' in attrs and body.strip().startswith("{"))
    srcs = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert srcs == ["/static/wagtail_klarna_paywall/purchase.js", "https://x.klarnacdn.net/kp/lib/v1/api.js"]
    assert "data-wkp-declined-form" in html and f"checkout/{attempt.reference}/declined/" in html
    assert "Test mode" in html  # the API URL is not Payway's production host


@pytest.mark.parametrize(
    ("sdk_url", "src"),
    [
        # A static file path is resolved by staticfiles (the sandbox's and tests' fake widget).
        ("wagtail_klarna_paywall_fake/fake-klarna.js", "/static/wagtail_klarna_paywall_fake/fake-klarna.js"),
        # A URL (absolute, or a path on this site) is loaded as given.
        (
            "https://js.playground.klarna.com/kp/lib/v1/api.js",
            "https://js.playground.klarna.com/kp/lib/v1/api.js",
        ),
        ("/own/sdk.js", "/own/sdk.js"),
    ],
)
def test_checkout_loads_the_sdk_klarna_sdk_url_names(shop, payway, reader, settings, sdk_url, src):
    """And the page's own CSP lets that script run: our origin for the fake, Klarna's hosts for Klarna's."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    settings.WAGTAIL_KLARNA_PAYWALL = {**settings.WAGTAIL_KLARNA_PAYWALL, "KLARNA_SDK_URL": sdk_url}
    attempt = start_checkout(reader, shop)
    response = reader.get(checkout_path(attempt), secure=True)
    assert f'<script async src="{src}">' in text(response)
    policy = dict(d.split(" ", 1) for d in response["Content-Security-Policy"].split("; "))
    parts = urlsplit(src)
    assert ("'self'" if not parts.netloc else f"{parts.scheme}://{parts.netloc}") in policy[
        "script-src"
    ].split()


def test_checkout_of_another_reader_is_404(shop, payway, reader):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_checkout(reader, shop)
    stranger = Client()
    assert stranger.get(checkout_path(attempt), secure=True).status_code == 404
    assert pay(stranger, attempt).status_code == 404
    assert stranger.get(f"/subscribe/checkout/{uuid.uuid4()}/", secure=True).status_code == 404
    assert reader.get("/subscribe/checkout/not-a-uuid/", secure=True).status_code == 404
    assert len(calls_to(payway, PLACE_V2)) == 0


def test_the_checkout_knows_its_own_browser_by_the_session_cookie(shop, payway, reader, monkeypatch):
    """The owner's checkout page is recognised from the session cookie without loading the session; a
    browser with a session of its own, or with a cookie that names no session, is a stranger."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_checkout(reader, shop)
    loads = []
    original = SessionStore.load
    monkeypatch.setattr(SessionStore, "load", lambda self: loads.append(1) or original(self))

    assert reader.get(checkout_path(attempt), secure=True).status_code == 200
    assert loads == []

    own_session = SessionStore()
    own_session["something"] = True
    own_session.create()
    owners = reader.cookies[settings.SESSION_COOKIE_NAME].value
    for cookie in (own_session.session_key, "x" * 32, owners[:-1]):
        stranger = Client()
        stranger.cookies[settings.SESSION_COOKIE_NAME] = cookie
        assert stranger.get(checkout_path(attempt), secure=True).status_code == 404
        assert stranger.post(checkout_path(attempt) + "declined/", secure=True).status_code == 404
    assert PurchaseAttempt.objects.get(pk=attempt.pk).state == AttemptState.SESSION_READY


def test_a_cookie_whose_session_has_ended_changes_nothing_and_gets_no_grant(shop, payway, reader):
    """After a logout (or a key rotation, or expiry) only someone who kept the old cookie still sends it:
    it may see the checkout page (the offer and Klarna's client token, nothing personal), but paying,
    declining and the confirmation page look the reader up, and to them it is a stranger."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())
    attempt = start_checkout(reader, shop)
    old_cookie = reader.cookies[settings.SESSION_COOKIE_NAME].value
    SessionStore(old_cookie).delete()
    kept = Client()
    kept.cookies[settings.SESSION_COOKIE_NAME] = old_cookie

    assert kept.get(checkout_path(attempt), secure=True).status_code == 200
    assert pay(kept, attempt).status_code == 404
    assert kept.post(checkout_path(attempt) + "declined/", secure=True).status_code == 404
    assert PurchaseAttempt.objects.get(pk=attempt.pk).state == AttemptState.SESSION_READY
    assert len(calls_to(payway, PLACE_V2)) == 0

    # Placed by its buyer (who logged in again, say): the old cookie is shown nothing and given nothing.
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(state=AttemptState.PLACED, placed_at=timezone.now())
    thanks = text(kept.get(f"/thanks/?ref={attempt.reference}", secure=True))
    assert "data-wkp-neutral" in thanks and "wkp-offer-summary" not in thanks
    assert "data-wkp-grant" not in thanks
    assert PurchaseAttempt.objects.get(pk=attempt.pk).state == AttemptState.PLACED


# -- step 5: place order ---------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", " ", "x" * 256, "tok<en>", "tok en", "tök"])
def test_missing_or_bad_authorization_token(shop, payway, reader, token):
    """B01/B03: 400, the widget again, 0 Payway calls, the attempt stays ready."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_checkout(reader, shop)

    response = pay(reader, attempt, token=token)

    assert response.status_code == 400
    html = text(response)
    assert "could not be confirmed" in html
    assert CLIENT_TOKEN in html  # the widget is shown again
    assert 'value="reader@example.com"' in html  # the reader's details are kept
    assert len(calls_to(payway, PLACE_V2)) == 0
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.SESSION_READY
    assert attempt.events.filter(kind=EventKind.ERROR, error_code="missing_authorization").count() == 1


@pytest.mark.parametrize(
    "customer",
    [
        {},
        {"email": "not-an-email", "first_name": "A", "last_name": "B"},
        {"email": "a@example.com", "first_name": "", "last_name": "B"},
        {"email": "a@example.com", "first_name": "A\x00", "last_name": "B"},
        {"email": "a@example.com", "first_name": "A" * 101, "last_name": "B"},
        {"email": "a@example.com", "first_name": "<script>alert(1)</script>", "last_name": "B"},
        {"email": "a@example.com", "first_name": "A", "last_name": '"><img src=x onerror=alert(1)>'},
    ],
)
def test_new_customer_fields_are_validated_server_side(shop, payway, reader, customer):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_checkout(reader, shop)
    response = pay(reader, attempt, customer=customer)
    assert response.status_code == 400
    assert "check your details" in text(response)
    assert len(calls_to(payway, PLACE_V2)) == 0


def test_the_new_customers_form_is_labelled_fillable_and_names_its_errors(shop, payway, reader):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_checkout(reader, shop)
    html = text(reader.get(checkout_path(attempt), secure=True))
    for name, kind, autocomplete, length in (
        ("email", "email", "email", 254),
        ("first_name", "text", "given-name", 100),
        ("last_name", "text", "family-name", 100),
    ):
        assert f'<label for="id_{name}">' in html
        field = re.search(rf'<input type="{kind}" name="{name}"[^>]*>', html).group(0)
        assert f'maxlength="{length}"' in field and " required " in field and f'id="id_{name}"' in field
        assert f'autocomplete="{autocomplete}"' in field
        assert "value=" not in field and "aria-invalid" not in field

    typed = {"email": "not-an-email", "first_name": "Anna", "last_name": '"><b>'}
    html = text(pay(reader, attempt, customer=typed))
    email = re.search(r'<input type="email" name="email"[^>]*>', html).group(0)
    assert 'value="not-an-email"' in email and 'aria-invalid="true"' in email
    assert 'aria-describedby="id_email_error"' in email
    assert re.search(r'<span class="wkp-field__error" id="id_email_error">[^<]+</span>', html)
    first = re.search(r'<input type="text" name="first_name"[^>]*>', html).group(0)
    assert 'value="Anna"' in first and "aria-invalid" not in first
    # What the reader typed comes back escaped.
    assert 'value="&quot;&gt;&lt;b&gt;"' in html and "<b>" not in html


def test_real_names_are_accepted(shop, payway, reader):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())
    attempt = start_checkout(reader, shop)
    customer = {"email": "a@example.com", "first_name": "Anna-Karin Åsa", "last_name": "O'Brien"}
    assert pay(reader, attempt, customer=customer).status_code == 303
    assert body_of(calls_to(payway, PLACE_V2)[0])["customer_info"]["last_name"] == "O'Brien"


def test_double_submit_places_one_order(shop, payway, reader, signal_log):
    """C02/F15: the second POST (a reload after a lost response) replays the stored redirect."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())
    attempt = start_checkout(reader, shop)

    first = pay(reader, attempt)
    second = pay(reader, attempt)
    third = pay(reader, attempt, token="", customer={})

    assert first["Location"] == second["Location"] == third["Location"] == KLARNA_REDIRECT
    assert len(calls_to(payway, PLACE_V2)) == 1
    assert [s for s, *_ in signal_log].count("completed") == 1


def test_two_tabs_place_one_order(shop, payway):
    """C04/C05: two tabs of one reader show the same session; the second tab's order replays the first."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())
    tab_a = Client()
    attempt = start_checkout(tab_a, shop)
    tab_b = Client()
    tab_b.cookies = tab_a.cookies  # same browser, same cookies
    html_a = text(tab_a.get(checkout_path(attempt), secure=True))
    html_b = text(tab_b.get(checkout_path(attempt), secure=True))
    assert CLIENT_TOKEN in html_a and CLIENT_TOKEN in html_b

    assert pay(tab_a, attempt, token="token-from-tab-a")["Location"] == KLARNA_REDIRECT
    assert pay(tab_b, attempt, token="token-from-tab-b")["Location"] == KLARNA_REDIRECT
    assert len(calls_to(payway, PLACE_V2)) == 1
    assert body_of(calls_to(payway, PLACE_V2)[0])["klarna_authorization_token"] == "token-from-tab-a"
    # Tab B's page now says it is already bought, with a link to the confirmation.
    html = text(tab_b.get(checkout_path(attempt), secure=True))
    assert "already bought" in html and f"/thanks/?ref={attempt.reference}" in html
    # And "buy" again on the same product shows the same purchase instead of a new session.
    assert buy(tab_b, shop)["Location"] == checkout_path(attempt)
    assert len(calls_to(payway, CREATE_V2)) == 1


def test_placing_in_another_request_shows_in_progress(shop, payway, reader):
    """C03: while another request holds the attempt in "placing", a submit gets a refreshing page."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_checkout(reader, shop)
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(
        state=AttemptState.PLACING, placing_at=timezone.now()
    )

    response = pay(reader, attempt)

    assert response.status_code == 200
    html = text(response)
    assert "being completed" in html and 'http-equiv="refresh"' in html
    assert len(calls_to(payway, PLACE_V2)) == 0


ERROR_CASES = [
    # (Payway's answer, attempt state, HTTP status, reader message, has a "try again" button)
    (
        {"status": 403, "json": {"code": "payment_method_failed", "message": f"Refused {PERSONNUMMER}"}},
        "declined",
        200,
        "Klarna could not approve the payment",
        True,
    ),
    (
        {"status": 400, "json": {"code": "invalid_parameter", "field": "x", "message": "Upstream words"}},
        "failed",
        200,
        "did not accept the purchase",
        True,
    ),
    (
        {"status": 400, "json": {"code": "ssn_already_taken"}},
        "failed",
        200,
        "belongs to another account",
        False,
    ),
    (
        {"status": 400, "json": {"code": "ssn_already_set"}},
        "failed",
        200,
        "has another personal identity",
        False,
    ),
    ({"status": 400, "json": {"code": "account_update_error"}}, "failed", 200, "could not be updated", False),
    ({"status": 400, "json": {"code": "delivery_address_error"}}, "failed", 200, "could not be saved", False),
    (
        {"status": 500, "json": {"code": "internal_server_error"}},
        "unknown",
        200,
        "not be charged twice",
        False,
    ),
    ({"body": requests.ReadTimeout("slow")}, "unknown", 200, "not be charged twice", False),
    ({"status": 200, "body": "<html>garbage</html>"}, "unknown", 200, "not be charged twice", False),
    ({"body": requests.ConnectionError("down")}, "session_ready", 503, "could not be reached", False),
]


@pytest.mark.parametrize(("answer", "state", "status", "message", "retry"), ERROR_CASES)
def test_place_order_error_paths(shop, payway, reader, answer, state, status, message, retry):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, **answer)
    attempt = start_checkout(reader, shop)

    response = pay(reader, attempt)
    reload = pay(reader, attempt, token="another-token")

    assert response.status_code == status
    html = text(response)
    assert message in html
    assert PERSONNUMMER not in html and "Upstream words" not in html
    assert str(attempt.reference)[:8] in html  # support reference
    attempt.refresh_from_db()
    assert attempt.state == state
    has_retry_button = f'name="offer" value="{Shop.package_ref}"' in html
    if state == "session_ready":
        assert CLIENT_TOKEN in html  # back to the widget: nothing was sent, the reader may try again
        assert len(calls_to(payway, PLACE_V2)) == 2
    else:
        assert has_retry_button == retry
        assert message in text(reload)  # the stored outcome, not a second call
        assert len(calls_to(payway, PLACE_V2)) == 1


def test_declined_then_try_again_makes_a_new_attempt_and_session(shop, payway, reader):
    """docs/payway-contract.md#errors: a retry after 403 uses a new session and a new authorization."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, CREATE_V2, json=session_json(session_id="fresh"))
    payway.add(responses.POST, PLACE_V2, status=403, json={"code": "payment_method_failed"})
    attempt = start_checkout(reader, shop)
    pay(reader, attempt)

    retry = start_checkout(reader, shop)

    assert retry.pk != attempt.pk
    assert retry.payway_session_id == "fresh"
    assert PurchaseAttempt.objects.get(pk=attempt.pk).state == AttemptState.DECLINED


def test_identity_token_refused_on_place_order(shop, payway, reader, logged_in):
    """401 with identity: forget the token, keep the attempt, send the reader to log in."""
    payway.add(responses.POST, CREATE_V1, json=session_json())
    payway.add(responses.POST, PLACE_V1, status=401, json={"code": "unauthorized"})
    attempt = start_checkout(reader, shop)

    response = pay(reader, attempt, customer=None)

    assert response.status_code == 303
    assert response["Location"] == "/login/?next=" + quote(checkout_path(attempt))
    assert StubIdentityProvider.forgotten == 1
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.SESSION_READY


def test_trusted_proxy_count_reads_x_forwarded_for(shop, payway, reader, settings):
    settings.WAGTAIL_KLARNA_PAYWALL = {**settings.WAGTAIL_KLARNA_PAYWALL, "TRUSTED_PROXY_COUNT": 1}
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())
    attempt = start_checkout(reader, shop)
    pay(reader, attempt, HTTP_X_FORWARDED_FOR="10.0.0.1, 198.51.100.23")
    assert body_of(calls_to(payway, PLACE_V2)[0])["browser_ip"] == "198.51.100.23"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("sv-SE,sv;q=0.9", "sv-SE"), ("en", "en"), ("*", ""), ("", ""), ("sv_SE", ""), ("x" * 40, "")],
)
def test_browser_language(rf, header, expected):
    assert readers.browser_language(rf.get("/", HTTP_ACCEPT_LANGUAGE=header)) == expected


# -- widget decline -------------------------------------------------------------------------------------


def test_declined_in_widget(shop, payway, reader):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_checkout(reader, shop)

    response = reader.post(checkout_path(attempt) + "declined/", secure=True)

    assert response.status_code == 200
    html = text(response)
    assert "Klarna cannot be offered" in html
    assert f'name="offer" value="{Shop.package_ref}"' in html  # start again
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.DECLINED and attempt.error_code == "declined_in_widget"
    assert reader.get(checkout_path(attempt) + "declined/", secure=True).status_code == 405
    assert len(calls_to(payway, PLACE_V2)) == 0


# -- step 7/8: redirect and confirmation ----------------------------------------------------------------


def test_redirect_outside_the_allow_list_goes_to_confirmation(shop, payway, reader, caplog):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json(redirect="https://pay.klarna.com.evil.example/x"))
    attempt = start_checkout(reader, shop)

    response = pay(reader, attempt)

    assert response.status_code == 303
    assert response["Location"] == f"/thanks/?ref={attempt.reference}"
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.PLACED and attempt.redirect_rejected
    assert attempt.events.filter(kind=EventKind.SECURITY, error_code="redirect_rejected").count() == 1
    assert any(
        r.levelname == "WARNING" for r in caplog.records if r.name == "wagtail_klarna_paywall.purchase.orders"
    )
    assert pay(reader, attempt)["Location"] == f"/thanks/?ref={attempt.reference}"


def test_confirmation_is_idempotent(shop, payway, reader, monkeypatch):
    """C06: reloads show the same content, confirm once, refresh access once, call Payway never."""
    refreshed = []
    monkeypatch.setattr(
        "wagtail_klarna_paywall.reading.access.refresh_access", lambda request: refreshed.append(1)
    )
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())
    attempt = start_checkout(reader, shop)
    pay(reader, attempt)
    calls_before = len(payway.calls)

    pages = [text(reader.get(f"/thanks/?ref={attempt.reference}", secure=True))]
    confirmed_at = PurchaseAttempt.objects.get(pk=attempt.pk).confirmed_at
    pages += [text(reader.get(f"/thanks/?ref={attempt.reference}", secure=True)) for _ in range(4)]

    normalise = lambda html: re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)  # noqa: E731
    assert len({normalise(p) for p in pages}) == 1
    assert "Thank you! Your purchase is complete." in pages[0]
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.CONFIRMED
    # Confirmed by the first load only: the reloads left its time as it was.
    assert confirmed_at is not None and attempt.confirmed_at == confirmed_at
    assert refreshed == [1]
    assert len(payway.calls) == calls_before


NEUTRAL = "There is no purchase made in this browser to show here."


def test_confirmation_ignores_the_query_string_state(shop, payway, reader):
    """B08: ?status=paid changes nothing; another reader's or an unknown reference gets the neutral page,
    which claims no purchase and does not show the editor's thank-you text."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_checkout(reader, shop)

    own = text(reader.get(f"/thanks/?ref={attempt.reference}&status=paid", secure=True))
    assert "Thank you! Your purchase is complete." not in own
    assert PurchaseAttempt.objects.get(pk=attempt.pk).state == AttemptState.SESSION_READY

    stranger = Client().get(f"/thanks/?ref={attempt.reference}", secure=True)
    html = text(stranger)
    assert stranger.status_code == 200
    assert NEUTRAL in html and "Welcome aboard." not in html and "Digital" not in html
    assert attempt.events.filter(kind=EventKind.SECURITY, error_code="foreign_reference").count() == 1

    for ref in ("", "garbage", str(uuid.uuid4()), "x" * 5000, "<script>"):
        response = reader.get("/thanks/", {"ref": ref}, secure=True)
        assert response.status_code == 200
        assert NEUTRAL in text(response) and "Welcome aboard." not in text(response)
        assert "<script>" not in text(response)


def test_confirmation_of_an_unknown_outcome_says_so(shop, payway, reader):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, body=requests.ReadTimeout("slow"))
    attempt = start_checkout(reader, shop)
    pay(reader, attempt)
    html = text(reader.get(f"/thanks/?ref={attempt.reference}", secure=True))
    assert "not be charged twice" in html
    assert PurchaseAttempt.objects.get(pk=attempt.pk).state == AttemptState.UNKNOWN


# -- CSRF -----------------------------------------------------------------------------------------------


def test_csrf_is_enforced_on_every_post(shop, payway):
    """S01: no token -> 403 and no Payway call, on buy, place order and declined."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    csrf_client = Client(enforce_csrf_checks=True)
    response = csrf_client.post(
        buy_url(shop), {"page": shop.purchase_page.pk, "offer": Shop.package_ref}, secure=True
    )
    assert response.status_code == 403
    assert len(payway.calls) == 0

    helper = Client()
    attempt = start_checkout(helper, shop)
    csrf_client.cookies = helper.cookies
    assert pay(csrf_client, attempt).status_code == 403
    assert csrf_client.post(checkout_path(attempt) + "declined/", secure=True).status_code == 403
    assert len(calls_to(payway, PLACE_V2)) == 0
    assert PurchaseAttempt.objects.get(pk=attempt.pk).state == AttemptState.SESSION_READY


def test_buy_form_with_a_csrf_token_works(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    client = Client(enforce_csrf_checks=True)
    html = text(client.get(landing_url(shop), secure=True))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    response = client.post(
        buy_url(shop),
        {"page": shop.purchase_page.pk, "offer": Shop.package_ref, "csrfmiddlewaretoken": token},
        secure=True,
        HTTP_REFERER="https://testserver/subscribe/",
    )
    assert response.status_code == 303


def test_no_flow_view_is_csrf_exempt():
    for name in ("purchase_landing", "buy", "checkout", "declined", "confirmation"):
        assert not getattr(getattr(views, name), "csrf_exempt", False)


@override_settings(WAGTAIL_KLARNA_PAYWALL={"API_URL": "https://backend.worldoftulo.com"})
def test_no_test_ribbon_in_production(shop, reader):
    assert "Test mode" not in text(reader.get(landing_url(shop), secure=True))


# -- secrets and personal data ---------------------------------------------------------------------------


def test_no_token_or_personal_data_in_logs_pages_or_database(shop, payway, reader, caplog):
    """S02/S03/S05: run the whole flow with sentinels; none of them leaves the request."""
    import logging

    caplog.set_level(logging.DEBUG)
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(
        responses.POST,
        PLACE_V2,
        status=400,
        json={"code": "ssn_already_taken", "message": f"{PERSONNUMMER} belongs to reader@example.com"},
    )
    attempt = start_checkout(reader, shop)
    pages = [reader.get(checkout_path(attempt), secure=True), pay(reader, attempt)]
    pages.append(reader.get(f"/thanks/?ref={attempt.reference}", secure=True))

    sentinels = [SYSTEM_TOKEN, AUTH_TOKEN, PERSONNUMMER, "reader@example.com", "test-secret-do-not-leak"]
    seen = caplog.text + "".join(text(p) + str(dict(p.headers)) + str(p.cookies) for p in pages)
    attempt.refresh_from_db()
    stored = str(PurchaseAttempt.objects.filter(pk=attempt.pk).values().get()) + str(
        list(attempt.events.values())
    )
    for sentinel in sentinels:
        assert sentinel not in seen, sentinel
        assert sentinel not in stored, sentinel
    assert "Bearer " not in caplog.text
    assert attempt.state == AttemptState.FAILED and attempt.error_code == "ssn_already_taken"


def test_error_reports_hide_the_authorization_token_and_customer_fields(shop, payway, reader, monkeypatch):
    """S04: checkout marks the token and the new customer's details as sensitive POST parameters."""
    from django.views.debug import SafeExceptionReporterFilter

    from wagtail_klarna_paywall.purchase import orders

    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_checkout(reader, shop)
    seen = {}

    def capture(attempt, reader, **kwargs):
        request = kwargs["request"]
        seen.update(SafeExceptionReporterFilter().get_post_parameters(request))
        raise RuntimeError("forced")

    monkeypatch.setattr(orders, "place_order", capture)
    with pytest.raises(RuntimeError):
        pay(reader, attempt)
    cleansed = SafeExceptionReporterFilter.cleansed_substitute
    for name in ("klarna_authorization_token", "email", "first_name", "last_name"):
        assert seen[name] in (cleansed, [cleansed])


def test_get_buy_form_leads_to_the_landing_page_without_a_cookie(shop, payway, reader):
    """L01/L02: a GET buy control (for cacheable pages) sets no cookie and creates nothing; the landing
    page it leads to shows the offer with the POST button that starts the purchase."""
    from django.template.loader import render_to_string

    html = render_to_string(
        "wagtail_klarna_paywall/includes/buy_form.html",
        {
            "buy_method": "get",
            "buy_url": landing_url(shop),
            "buy_page_id": shop.article.pk,
            "buy_offer_ref": Shop.article_offer_ref,
        },
    )
    assert 'method="get"' in html and "csrfmiddlewaretoken" not in html

    payway.add(responses.POST, CREATE_V2, json=session_json())
    landing = reader.get(
        landing_url(shop),
        {"page": shop.article.pk, "offer": Shop.article_offer_ref},
        secure=True,
        HTTP_REFERER="https://news.example/big-story/?utm_source=twitter",
    )
    page_html = text(landing)
    assert 'method="post"' in page_html and 'name="utm_source" value="twitter"' in page_html
    assert "sessionid" not in landing.cookies and PurchaseAttempt.objects.count() == 0
    response = buy(reader, shop, page=shop.article, ref=Shop.article_offer_ref, utm_source="twitter")
    assert response.status_code == 303
    assert PurchaseAttempt.objects.get().traffic_source == "twitter"


# -- one order per reader and product -------------------------------------------------------------------

ACTIVE_PRODUCTS = "https://payway.test/external/api/v1/me/active_products"


def test_the_second_offer_of_a_bought_product_says_already_bought_and_links_to_the_purchase(
    shop, payway, reader
):
    """The purchase page's "Digital" and the article's "Digital" in two tabs: the second submit shows
    "already bought" with the first purchase's confirmation, and reaches nothing at Payway."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, CREATE_V2, json=session_json(session_id="tab-2"))
    payway.add(responses.POST, PLACE_V2, json=order_json())
    first = start_checkout(reader, shop)
    second = start_checkout(reader, shop, page=shop.article, ref=Shop.article_offer_ref)
    assert pay(reader, first).status_code == 303

    response = pay(reader, second, token="c5bd3423-24e3-4c4e-8d9c-3bcb4b7b0aab")

    html = text(response)
    assert response.status_code == 200
    assert "You have already bought this" in html
    assert f'href="/thanks/?ref={first.reference}"' in html
    assert 'href="/big-story/"' in html
    assert len(calls_to(payway, PLACE_V2)) == 1
    second.refresh_from_db()
    assert second.state == AttemptState.FAILED and second.duplicate_of_id == first.pk
    # Reloading the tab says the same.
    assert f'href="/thanks/?ref={first.reference}"' in text(reader.get(checkout_path(second), secure=True))


def test_two_browsers_of_one_new_customer_place_one_order(shop, payway):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, CREATE_V2, json=session_json(session_id="browser-2"))
    payway.add(responses.POST, PLACE_V2, json=order_json())
    browser_a, browser_b = Client(), Client()
    first = start_checkout(browser_a, shop)
    second = start_checkout(browser_b, shop)
    assert first.reader_key != second.reader_key
    assert pay(browser_a, first).status_code == 303

    response = pay(browser_b, second, token="c5bd3423-24e3-4c4e-8d9c-3bcb4b7b0aab")

    html = text(response)
    assert "You have already bought this" in html and "e-mail address you entered" in html
    # The first purchase is another browser's: no link to its confirmation, and no e-mail address shown.
    assert str(first.reference) not in html and "reader@example.com" not in html
    assert len(calls_to(payway, PLACE_V2)) == 1


# -- never sell what the reader holds -----------------------------------------------------------------


@pytest.mark.parametrize("holding", ["digital"])
def test_a_subscriber_is_sold_nothing_through_any_entry_point(shop, payway, reader, logged_in, holding):
    """A logged-in reader holding the product the offer grants tries the paywall's landing URL, the
    purchase page, and buy: 0 create_session, 0 place_order. (Holding only a code that opens the article
    but that the offer does not grant is no reason to refuse it: buying it still adds a product.)"""
    payway.add(responses.GET, ACTIVE_PRODUCTS, json={"item": {"id": "acc", "active_products": [holding]}})
    article_landing = f"{landing_url(shop)}?page={shop.article.pk}&offer={Shop.article_offer_ref}"

    landing = reader.get(article_landing, secure=True)
    bought = buy(reader, shop, page=shop.article, ref=Shop.article_offer_ref)

    for response in (landing, bought):
        html = text(response)
        assert response.status_code == 200
        assert "You already have this subscription" in html
        assert 'href="/big-story/"' in html  # back to the article
        assert 'name="offer" value="paywall-1:offer-digital"' not in html
    if holding == "digital":
        # The purchase page's own "Digital" (no access codes: its product code decides).
        own = reader.get(f"{landing_url(shop)}?offer={Shop.package_ref}", secure=True)
        assert "You already have this subscription" in text(own)
        assert f'value="{Shop.package_ref}"' not in text(own)
        assert f'value="{Shop.campaign_ref}"' in text(own)  # what the reader does not hold stays on sale
        refused = buy(reader, shop)
        assert "You already have this subscription" in text(refused)
    assert calls_to(payway, CREATE_V1) == calls_to(payway, CREATE_V2) == []
    assert calls_to(payway, PLACE_V1) == calls_to(payway, PLACE_V2) == []
    assert PurchaseAttempt.objects.count() == 0


def test_an_anonymous_reader_is_offered_everything_without_asking_payway(shop, payway, reader):
    url = f"{landing_url(shop)}?page={shop.article.pk}&offer={Shop.article_offer_ref}"
    response = reader.get(url, secure=True)
    assert 'name="offer" value="paywall-1:offer-digital"' in text(response)
    assert calls_to(payway, ACTIVE_PRODUCTS) == []


def test_a_logged_in_reader_on_another_device_is_the_same_reader(shop, payway, logged_in):
    """Two browsers logged in to one Payway account (the account comes from /v3/me): the second device's
    submit is refused with a link to the first device's purchase, and its next buy shows that purchase."""
    payway.add(responses.POST, CREATE_V1, json=session_json())
    payway.add(responses.POST, CREATE_V1, json=session_json(session_id="device-b"))
    payway.add(responses.POST, PLACE_V1, json=order_json())
    device_a, device_b = Client(), Client()
    first = start_checkout(device_a, shop)
    second = start_checkout(device_b, shop, page=shop.article, ref=Shop.article_offer_ref)
    assert first.reader_key != second.reader_key and first.account_key == second.account_key != ""
    assert pay(device_a, first, customer=None).status_code == 303

    refused = pay(device_b, second, token="c5bd3423-24e3-4c4e-8d9c-3bcb4b7b0aab", customer=None)

    assert "You have already bought this" in text(refused)
    assert f'href="/thanks/?ref={first.reference}"' in text(refused)
    assert len(calls_to(payway, PLACE_V1)) == 1
    again = buy(device_b, shop)
    assert again.status_code == 303 and again["Location"] == checkout_path(first)
    page = device_b.get(again["Location"], secure=True)
    assert page.status_code == 200 and "You have already bought this" in text(page)
    assert len(calls_to(payway, CREATE_V1)) == 2


# -- a logged-in reader's trial: nothing to retype --------------------------------------------------


def test_logged_in_readers_trial_form_is_prefilled_from_their_payway_account(shop, payway, reader, logged_in):
    """Trials go through v2 place_trial_order with customer_info even for logged-in readers; the form is
    filled from /v3/me so they type nothing."""
    payway.replace(
        responses.GET,
        ME_URL,
        json={"item": {"id": "acc-1", "email": "anna@example.com", "first_name": "Anna", "last_name": "Ek"}},
    )
    payway.add(responses.POST, CREATE_V2, json=session_json(categories=("pay_now", "direct_debit")))
    attempt = start_checkout(reader, shop, ref=Shop.trial_ref)
    assert not attempt.existing_customer
    html = text(reader.get(checkout_path(attempt), secure=True))
    assert 'value="anna@example.com"' in html
    assert 'value="Anna"' in html and 'value="Ek"' in html


def test_anonymous_readers_trial_form_is_empty_and_asks_payway_nothing(shop, payway, reader):
    payway.add(responses.POST, CREATE_V2, json=session_json(categories=("pay_now", "direct_debit")))
    attempt = start_checkout(reader, shop, ref=Shop.trial_ref)
    html = text(reader.get(checkout_path(attempt), secure=True))
    assert 'name="email"' in html and 'value="anna@example.com"' not in html
    assert not calls_to(payway, ME_URL)
