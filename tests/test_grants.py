"""Read on after paying: the browser that bought reads what the purchase opens, for a while, and only it."""

from __future__ import annotations

import datetime as dt
import json
from unittest import mock

import pytest
import requests
import responses
from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from tests.factories import (
    ACTIVE_PRODUCTS_URL,
    CREATE_V1,
    CREATE_V2,
    CUSTOMER,
    PLACE_V1,
    PLACE_V2,
    Shop,
    offer_value,
    order_json,
    pay,
    paywalled_article,
    session_json,
    start_checkout,
    text,
)
from wagtail_klarna_paywall.models import AttemptState, PaywallSettings, PurchaseAttempt
from wagtail_klarna_paywall.reading import access, cache_headers, gating, grants

# The browser asks for Swedish, the tests read English; readers are anonymous unless a test logs them in.
pytestmark = pytest.mark.usefixtures("english_pages", "no_identity")

FREE = "Free part."
PAID = "Subscriber part."
MASKED = "r\u2022\u2022\u2022@example.com"
NEUTRAL = "There is no purchase made in this browser to show here."


def bought(client, shop, payway, ref=Shop.article_offer_ref, **kwargs):
    """``client`` buys the article's offer as a new customer (v2); the placed attempt."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json(), **kwargs)
    attempt = start_checkout(client, shop, page=shop.article, ref=ref)
    pay(client, attempt)
    attempt.refresh_from_db()
    return attempt


def article(client, shop):
    response = client.get(shop.article.url, secure=True)
    assert response.status_code == 200
    return response


def second_article(shop):
    """Another article whose paywall opens with the same access code (another offer, too)."""
    return paywalled_article(
        shop.home,
        shop.purchase_page,
        title="Second story",
        slug="second-story",
        heading="Read on",
        paywall="paywall-2",
        offers={"offer-other": offer_value(product_code="other", label="Other")},
        access_product_codes=["digital-access"],
        free=("q1", "<p>Second free.</p>"),
        paid=("q2", "<p>Second paid.</p>"),
    )


# -- reading on ---------------------------------------------------------------------------------------


def test_buyer_reads_the_article_and_others_the_product_opens_privately(shop, payway):
    reader = Client()
    assert PAID not in text(article(reader, shop))
    attempt = bought(reader, shop, payway)
    assert attempt.state == AttemptState.PLACED
    # What the offer grants and what opens the article it was bought from, copied at buy time.
    assert attempt.access_codes == ["digital", "digital-access"]

    response = article(reader, shop)
    html = text(response)
    assert FREE in html and PAID in html
    assert 'class="wkp-paywall"' not in html  # (the JSON-LD names ".wkp-paywalled", the paid part)
    # Read through a grant: private, and varies on the session cookie, exactly as for a subscriber.
    assert "private" in response["Cache-Control"] and "Cookie" in response["Vary"]
    # How to read on other devices: the login, back to this article, naming the masked address.
    assert "data-wkp-grant" in html and MASKED in html
    assert "/login/?next=/big-story/" in html
    assert CUSTOMER["email"] not in html

    other = second_article(shop)
    html = text(reader.get(other.url, secure=True))
    assert "Second paid." in html


def test_a_grant_holder_is_not_offered_again_what_they_bought(shop, payway):
    """Another article, whose paywall the purchase does not open, also sells the product bought: this
    browser is offered only the other product, as a logged-in subscriber would be (access.offer_is_owned)."""
    reader = Client()
    bought(reader, shop, payway)
    sport = paywalled_article(
        shop.home,
        shop.purchase_page,
        title="Sport story",
        slug="sport-story",
        paywall="paywall-3",
        offers={
            "offer-digital-again": offer_value(label="Digital again"),
            "offer-sport": offer_value(product_code="sport", label="Sport pass"),
        },
        access_product_codes=["sport"],
        free=("s1", "<p>Sport free.</p>"),
        paid=("s2", "<p>Sport paid.</p>"),
    )

    response = reader.get(sport.url, secure=True)
    html = text(response)
    assert "Sport free." in html and "Sport paid." not in html
    assert "Sport pass" in html and "Digital again" not in html
    assert "private" in response["Cache-Control"] and "Cookie" in response["Vary"]
    # A browser without the purchase is offered both, on the page every anonymous reader shares.
    for _ in range(2):
        response = Client().get(sport.url, secure=True)
        assert "Sport pass" in text(response) and "Digital again" in text(response)
        assert "Cookie" not in response.get("Vary", "")
    # The shared page in the render cache changes nothing for the buyer.
    assert "Digital again" not in text(reader.get(sport.url, secure=True))


def test_the_email_is_stored_only_masked(shop, payway):
    reader = Client()
    bought(reader, shop, payway)
    stored = " ".join(s.session_data for s in Session.objects.all())
    decoded = json.dumps([s.get_decoded() for s in Session.objects.all()], ensure_ascii=False)
    assert CUSTOMER["email"] not in stored and CUSTOMER["email"] not in decoded
    assert MASKED in decoded
    row = PurchaseAttempt.objects.values().get()
    assert CUSTOMER["email"] not in json.dumps(row, default=str)
    assert MASKED not in json.dumps(row, default=str)


def test_grant_is_not_readable_from_another_session(shop, payway):
    buyer, stranger = Client(), Client()
    bought(buyer, shop, payway)
    # The stranger has a session of their own (they started buying too), but not the buyer's grant.
    payway.add(responses.POST, CREATE_V2, json=session_json())
    start_checkout(stranger, shop, page=shop.article, ref=Shop.article_offer_ref)
    assert PAID not in text(article(stranger, shop))
    assert PAID not in text(article(Client(), shop))
    assert PAID in text(article(buyer, shop))


def test_grant_ends_after_the_site_setting(shop, payway):
    settings_obj = PaywallSettings.for_site(shop.site)
    settings_obj.purchase_grant_hours = 2
    settings_obj.save()
    reader = Client()
    start = timezone.now()
    with freeze_time(start):
        bought(reader, shop, payway)
    with freeze_time(start + dt.timedelta(hours=1, minutes=59)):
        assert PAID in text(article(reader, shop))
        # Coming back to the confirmation page does not extend the grant.
        attempt = PurchaseAttempt.objects.get()
        reader.get(f"/thanks/?ref={attempt.reference}", secure=True)
    with freeze_time(start + dt.timedelta(hours=2, minutes=1)):
        assert PAID not in text(article(reader, shop))
        reader.get(f"/thanks/?ref={attempt.reference}", secure=True)
        assert PAID not in text(article(reader, shop))


def test_default_grant_lasts_72_hours():
    assert PaywallSettings().purchase_grant_hours == 72


@pytest.mark.parametrize("settled", [AttemptState.FAILED, AttemptState.EXPIRED, AttemptState.DECLINED])
def test_grant_ends_when_the_attempt_is_settled_without_an_order(shop, payway, settled):
    reader = Client()
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, body=requests.ReadTimeout("slow"))
    attempt = start_checkout(reader, shop, page=shop.article, ref=Shop.article_offer_ref)
    pay(reader, attempt)
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.UNKNOWN
    # The order may exist: the reader reads while it is settled.
    assert PAID in text(article(reader, shop))

    # Reconciliation settles it without an order (a conditional update, as reconcile.py does).
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(state=settled)
    assert PAID not in text(article(reader, shop))
    session = Session.objects.get().get_decoded()
    assert grants.SESSION_KEY not in session  # forgotten, so later views skip the query


def test_no_grant_before_the_order_is_placed(shop, payway):
    reader = Client()
    payway.add(responses.POST, CREATE_V2, json=session_json())
    start_checkout(reader, shop, page=shop.article, ref=Shop.article_offer_ref)
    assert PAID not in text(article(reader, shop))


# -- logout -------------------------------------------------------------------------------------------


def test_plugin_logout_ends_the_grant(shop, payway):
    reader = Client()
    bought(reader, shop, payway)
    assert PAID in text(article(reader, shop))
    response = reader.post("/klarna-paywall/sso/logout/", {"next": "/big-story/"}, secure=True)
    assert response.status_code == 302
    assert PAID not in text(article(reader, shop))


def test_django_logout_ends_the_grant(rf, shop, payway):
    from django.contrib.sessions.backends.db import SessionStore

    reader = Client()
    attempt = bought(reader, shop, payway)
    request = rf.get("/")
    request.session = SessionStore(reader.cookies[settings.SESSION_COOKIE_NAME].value)
    request.COOKIES[settings.SESSION_COOKIE_NAME] = request.session.session_key
    assert [g.reference for g in grants.active_grants(request)] == [str(attempt.reference)]
    user_logged_out.send(sender=None, request=request, user=None)
    assert grants.SESSION_KEY not in request.session
    assert grants.active_grants(request) == ()


def test_sso_logout_elsewhere_ends_the_grant(rf, shop, payway):
    from django.contrib.sessions.backends.db import SessionStore

    from wagtail_klarna_paywall.login import sso

    reader = Client()
    bought(reader, shop, payway)
    request = rf.get("/")
    request.session = SessionStore(reader.cookies[settings.SESSION_COOKIE_NAME].value)
    request.COOKIES[settings.SESSION_COOKIE_NAME] = request.session.session_key
    sso.log_out_locally(request)
    assert grants.active_grants(request) == ()


# -- one decision for every channel -------------------------------------------------------------------


def test_api_and_gates_agree_with_the_page(shop, payway):
    reader, stranger = Client(), Client()
    bought(reader, shop, payway)
    url = f"/api/v2/pages/{shop.article.pk}/"

    response = reader.get(url, secure=True)
    body = json.dumps(response.json()["body"])
    assert PAID in body  # the whole stream, as a subscriber gets it
    assert "private" in response["Cache-Control"] and "Cookie" in response["Vary"]

    response = stranger.get(url, secure=True)
    assert PAID not in json.dumps(response.json()["body"])
    assert not response.cookies and "private" not in response.get("Cache-Control", "")

    # Feeds and search are shared by every reader: free text only, also for the buyer.
    feed = reader.get("/feeds/articles/", secure=True).content.decode()
    assert FREE in feed and PAID not in feed
    assert reader.get("/api/v2/pages/", {"search": "Subscriber"}, secure=True).json()["items"] == []


def test_the_decision_function(rf, shop, payway):
    from django.contrib.sessions.backends.db import SessionStore

    reader = Client()
    attempt = bought(reader, shop, payway)
    request = rf.get("/")
    request.session = SessionStore(reader.cookies[settings.SESSION_COOKIE_NAME].value)
    request.COOKIES[settings.SESSION_COOKIE_NAME] = request.session.session_key

    decision = access.reader_access(request)
    assert decision.logged_in is False and decision.subscribed == frozenset()
    assert decision.granted == {"digital", "digital-access"} == access.owned_product_codes(request)
    assert decision.reads(["digital-access"]) and not decision.reads(["paper"]) and not decision.reads([])
    assert decision.grant_for(["digital-access"]).reference == str(attempt.reference)
    assert decision.grant_for(["digital-access"]).email == MASKED
    assert access.reader_has_access(request, ["digital-access"])
    assert gating.can_read_all(request, shop.article.specific.body)
    assert cache_headers.is_reader_dependent(request)
    assert access.reader_access(request) is decision  # once per request


def test_a_request_without_a_session_cookie_touches_no_session(rf, shop):
    request = rf.get("/")
    request.session = mock.Mock(side_effect=AssertionError("session touched"))
    request.session.get.side_effect = AssertionError("session read")
    assert access.reader_access(request).codes == frozenset()
    assert grants.active_grants(request) == () and not grants.has_grants(request)
    assert not cache_headers.is_reader_dependent(request)


def test_anonymous_article_stays_cacheable_after_someone_bought(shop, payway):
    bought(Client(), shop, payway)
    response = article(Client(), shop)
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "") and "private" not in response.get("Cache-Control", "")


# -- the confirmation page ----------------------------------------------------------------------------


def test_confirmation_tells_a_new_customer_how_to_read_on(shop, payway):
    reader = Client()
    attempt = bought(reader, shop, payway)
    html = text(reader.get(f"/thanks/?ref={attempt.reference}", secure=True))
    assert "Thank you! Your purchase is complete." in html and "Welcome aboard." in html
    assert "You can read on now in this browser" in html
    assert MASKED in html and CUSTOMER["email"] not in html
    assert "/login/?next=/big-story/" in html  # the login returns to the article
    assert 'href="/big-story/"' in html


def test_confirmation_without_a_reference_is_neutral(shop):
    html = text(Client().get("/thanks/", secure=True))
    assert NEUTRAL in html
    assert "Thank you! Your purchase is complete." not in html and "Welcome aboard." not in html
    assert "data-wkp-login" in html and "/login/?next=/" in html
    assert "data-wkp-home" in html and "data-wkp-back" not in html


def test_confirmation_with_another_browsers_reference_reveals_nothing(shop, payway):
    attempt = bought(Client(), shop, payway)
    stranger = Client()
    html = text(stranger.get(f"/thanks/?ref={attempt.reference}", secure=True))
    assert NEUTRAL in html
    assert "Welcome aboard." not in html and "Digital" not in html and MASKED not in html
    assert "big-story" not in html  # not even which article was bought
    assert 'href="/" data-wkp-home' in html
    assert PAID not in text(article(stranger, shop))  # and no grant either


def test_mask_email():
    assert grants.mask_email("anna.svensson@example.com") == "a\u2022\u2022\u2022@example.com"
    assert grants.mask_email("a@b.se") == "a\u2022\u2022\u2022@b.se"
    for bad in ("", "nobody", "@example.com", "anna@", None, 42):
        assert grants.mask_email(bad) == ""


def test_grant_hours_must_be_positive_and_bounded():
    from django.core.exceptions import ValidationError

    field = PaywallSettings._meta.get_field("purchase_grant_hours")
    for bad in (0, 24 * 31 + 1):
        with pytest.raises(ValidationError):
            field.run_validators(bad)
    field.run_validators(1)


@pytest.mark.usefixtures("logged_in")
def test_logged_in_buyer_reads_at_once_without_the_new_customer_notice(shop, payway):
    """Payway's account update may lag behind the order: the grant covers a logged-in buyer too, and the
    article tells them nothing about other devices (their login works there)."""
    payway.add(responses.GET, ACTIVE_PRODUCTS_URL, json={"item": {"id": "acc", "active_products": []}})
    payway.add(responses.POST, CREATE_V1, json=session_json())
    payway.add(responses.POST, PLACE_V1, json=order_json())
    reader = Client()
    attempt = start_checkout(reader, shop, page=shop.article, ref=Shop.article_offer_ref)
    pay(reader, attempt, customer=None)
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.PLACED and attempt.existing_customer

    html = text(article(reader, shop))
    assert PAID in html and "data-wkp-grant" not in html
    confirmation = text(reader.get(f"/thanks/?ref={attempt.reference}", secure=True))
    assert "Thank you! Your purchase is complete." in confirmation and "data-wkp-grant" not in confirmation
