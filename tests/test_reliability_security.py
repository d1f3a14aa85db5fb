"""Catalogue security cases no module-level test covers yet: B09, S01's forgery variants, S12, S14.

(The bad-input, redirect, secrets and fault corpora live in the other ``test_reliability_*`` modules.)
"""

from __future__ import annotations

import json
import re

import pytest
import responses
from django.db import models
from django.test import Client

from tests.factories import AUTH_TOKEN as VALID_TOKEN
from tests.factories import CREATE_V2, PLACE_V2, TOKEN_URL, Shop, session_json
from tests.factories import CUSTOMER as VALID_CUSTOMER
from wagtail_klarna_paywall.models import AttemptState, PaywallSettings, PurchaseAttempt, PurchaseEvent


def _csrf(client: Client, shop) -> str:
    html = client.get(shop.purchase_page.url, secure=True).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def _buy_data(shop, token: str) -> dict:
    return {"page": shop.purchase_page.pk, "offer": Shop.package_ref, "csrfmiddlewaretoken": token}


VARIANTS = ["no-token", "token-of-another-session", "cross-origin-origin", "cross-origin-referer"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_buy_forgeries_are_refused(shop, variant):
    """S01: no token, a token from another browser, or a cross-origin Origin/Referer over HTTPS -> 403,
    and Payway is never called."""
    victim = Client(enforce_csrf_checks=True)
    token = _csrf(victim, shop)
    headers = {"HTTP_REFERER": "https://testserver/subscribe/"}
    if variant == "no-token":
        data = _buy_data(shop, "")
    elif variant == "token-of-another-session":
        data = _buy_data(shop, _csrf(Client(enforce_csrf_checks=True), shop))
    elif variant == "cross-origin-origin":
        data = _buy_data(shop, token)
        headers = {"HTTP_ORIGIN": "https://evil.example"}
    else:
        data = _buy_data(shop, token)
        headers = {"HTTP_REFERER": "https://evil.example/attack.html"}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        response = victim.post(shop.purchase_page.url + "buy/", data, secure=True, **headers)
        assert len(payway.calls) == 0
    assert response.status_code == 403
    assert PurchaseAttempt.objects.count() == 0


def test_buy_with_the_right_token_is_the_control_case(shop):
    client = Client(enforce_csrf_checks=True)
    token = _csrf(client, shop)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        payway.add(responses.POST, TOKEN_URL, json={"access_token": "system", "expires_in": 3600})
        payway.add(responses.POST, CREATE_V2, json=session_json())
        response = client.post(
            shop.purchase_page.url + "buy/",
            _buy_data(shop, token),
            secure=True,
            HTTP_ORIGIN="https://testserver",
        )
    assert response.status_code == 303


@pytest.mark.parametrize("variant", VARIANTS[1:])
def test_place_order_forgeries_are_refused(shop, variant):
    """S01 on the checkout POST: the attempt stays ready and place_order is never called."""
    victim = Client(enforce_csrf_checks=True)
    token = _csrf(victim, shop)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        payway.add(responses.POST, TOKEN_URL, json={"access_token": "system", "expires_in": 3600})
        payway.add(responses.POST, CREATE_V2, json=session_json())
        checkout = victim.post(
            shop.purchase_page.url + "buy/",
            _buy_data(shop, token),
            secure=True,
            HTTP_REFERER="https://testserver/subscribe/",
        )["Location"]
        data = {"klarna_authorization_token": VALID_TOKEN, **VALID_CUSTOMER, "csrfmiddlewaretoken": token}
        headers = {}
        if variant == "token-of-another-session":
            data["csrfmiddlewaretoken"] = _csrf(Client(enforce_csrf_checks=True), shop)
            headers = {"HTTP_REFERER": "https://testserver" + checkout}
        elif variant == "cross-origin-origin":
            headers = {"HTTP_ORIGIN": "https://evil.example"}
        else:
            headers = {"HTTP_REFERER": "https://evil.example/attack.html"}
        response = victim.post(checkout, data, secure=True, **headers)
        place_calls = sum(1 for call in payway.calls if call.request.url == PLACE_V2)
    assert response.status_code == 403
    assert place_calls == 0
    assert PurchaseAttempt.objects.get().state == AttemptState.SESSION_READY


def test_the_payway_host_cannot_be_changed_from_the_admin():
    """S12: the API and SSO hosts are Django settings only (checked https by E002/E003): no model of the
    plugin has a field that could repoint the bearer token."""
    for model in (PaywallSettings, PurchaseAttempt, PurchaseEvent):
        for field in model._meta.concrete_fields:
            is_url = isinstance(field, models.URLField) or re.search(r"url|host|endpoint|api", field.name)
            if is_url:
                # Records of what Payway answered/which endpoint was called, never read to build a request.
                assert (model, field.name) in {(PurchaseAttempt, "redirect_uri"), (PurchaseEvent, "endpoint")}


def test_upstream_error_text_is_never_rendered(shop):
    """S14: our mapped message plus a support reference; Payway's message, code and field stay out."""
    client = Client()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        payway.add(responses.POST, TOKEN_URL, json={"access_token": "system", "expires_in": 3600})
        payway.add(responses.POST, CREATE_V2, json=session_json())
        payway.add(
            responses.POST,
            PLACE_V2,
            status=400,
            json={
                "code": "UPSTREAM_CODE_7781",
                "field": "UPSTREAM_FIELD_7781",
                "message": "UPSTREAM <b>TEXT</b> at payway-internal-7781.local",
            },
        )
        checkout = client.post(
            shop.purchase_page.url + "buy/",
            {"page": shop.purchase_page.pk, "offer": Shop.package_ref},
            secure=True,
        )["Location"]
        response = client.post(
            checkout, {"klarna_authorization_token": VALID_TOKEN, **VALID_CUSTOMER}, secure=True
        )
    html = response.content.decode()
    attempt = PurchaseAttempt.objects.get()
    assert response.status_code < 500
    assert "data-wkp-message" in html
    assert f"Reference: {str(attempt.reference)[:8]}" in html
    assert "7781" not in html and "Traceback" not in html


@pytest.mark.parametrize(
    "host", ["evil.example", "news.example.evil.example", "testserver:8000@evil.example"]
)
def test_spoofed_host_is_refused_before_any_session(shop, settings, host):
    """B09: with real ALLOWED_HOSTS, a spoofed Host header is a 400 (DisallowedHost) and nothing is created;
    with an allowed Host, the confirmation URL sent to Payway comes from the Site, not from the request."""
    settings.ALLOWED_HOSTS = ["testserver", "news.example"]
    client = Client()
    buy = {"page": shop.purchase_page.pk, "offer": Shop.package_ref}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        payway.add(responses.POST, TOKEN_URL, json={"access_token": "system", "expires_in": 3600})
        payway.add(responses.POST, CREATE_V2, json=session_json())
        refused = client.post(shop.purchase_page.url + "buy/", buy, secure=True, HTTP_HOST=host)
        assert refused.status_code == 400
        assert len(payway.calls) == 0
        assert PurchaseAttempt.objects.count() == 0
        allowed = client.post(shop.purchase_page.url + "buy/", buy, secure=True, HTTP_HOST="testserver")
        assert allowed.status_code == 303
        sent = [c.request for c in payway.calls if c.request.url == CREATE_V2]
    assert json.loads(sent[0].body)["confirmation_url"].startswith("https://news.example/thanks/?ref=")
