"""Security headers and HTTPS on the purchase-flow pages (docs/reliability.md S06, S07, S08, B13)."""

from __future__ import annotations

import pytest
import responses
from django.http import HttpResponse
from django.test import Client

from tests.factories import CREATE_V2, Shop, session_json
from wagtail_klarna_paywall.models import PurchaseAttempt
from wagtail_klarna_paywall.purchase import hardening as security

KLARNA_HOSTS = ["https://*.klarna.com", "https://*.klarnacdn.net", "https://*.klarnaservices.com"]


def directives(csp: str) -> dict[str, list[str]]:
    result = {}
    for part in csp.split(";"):
        name, *values = part.split()
        result[name] = values
    return result


def assert_hardened(response):
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == security.KLARNA_COOP
    csp = response["Content-Security-Policy"]
    parsed = directives(csp)
    # Klarna's style requirements need inline styles; scripts never run inline, nothing is eval'd.
    assert "unsafe-eval" not in csp
    for name, values in parsed.items():
        assert "'unsafe-inline'" not in values or name == "style-src", name
    # Directive by directive: 'self', every source of Klarna's table, then the site's KLARNA_CSP_HOSTS.
    for name, sources in security.KLARNA_CSP.items():
        assert parsed[name][0] == "'self'", name
        assert set(sources) <= set(parsed[name]), name
        assert set(KLARNA_HOSTS) <= set(parsed[name]), name
    assert parsed["default-src"] == ["'self'", *KLARNA_HOSTS]
    # Chrome checks form-action against the redirect after the order form's POST: Klarna's hop is allowed.
    form_action = ["'self'", *KLARNA_HOSTS, "https://klarna.com", "https://*.klarna.com"]
    assert parsed["form-action"][: len(form_action)] == form_action
    # Only under DEBUG: the sandbox's plain-http hop.
    extra = parsed["form-action"][len(form_action) :]
    assert all(v.startswith("http://") and v.endswith(":*") for v in extra)
    assert parsed["frame-ancestors"] == ["'none'"]
    assert parsed["object-src"] == ["'none'"]
    assert "*" not in [v for values in parsed.values() for v in values]


@pytest.fixture
def flow_urls(shop, db):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(
            responses.POST,
            "https://payway.test/api/authorization/access_token",
            json={"access_token": "t", "expires_in": 3600},
        )
        rsps.add(responses.POST, CREATE_V2, json=session_json())
        client = Client()
        buy = client.post(
            "/subscribe/buy/", {"page": shop.purchase_page.pk, "offer": Shop.package_ref}, secure=True
        )
        attempt = PurchaseAttempt.objects.get()
        yield (
            client,
            buy,
            [
                "/subscribe/",
                f"/subscribe/checkout/{attempt.reference}/",
                f"/thanks/?ref={attempt.reference}",
            ],
        )


def test_every_flow_page_is_hardened(flow_urls):
    client, buy, urls = flow_urls
    assert_hardened(buy)
    for url in urls:
        response = client.get(url, secure=True)
        assert response.status_code == 200, url
        assert_hardened(response)


def test_error_pages_are_hardened_too(shop, db):
    client = Client()
    assert_hardened(client.post("/subscribe/buy/", {"page": "x"}, secure=True))
    assert_hardened(client.get("/subscribe/buy/", secure=True))


def test_plain_http_is_redirected_to_https(flow_urls):
    """B13: nothing is rendered or done over plain HTTP outside DEBUG."""
    client, _buy, urls = flow_urls
    for url in urls:
        response = client.get(url, secure=False)
        assert response.status_code == 301
        assert response["Location"] == f"https://testserver{url}"
    response = client.post("/subscribe/buy/", {"page": "1", "offer": "x"}, secure=False)
    assert response.status_code == 301
    assert PurchaseAttempt.objects.count() == 1


def test_https_redirect_is_off_in_debug(shop, settings):
    settings.DEBUG = True
    response = Client().get("/subscribe/", secure=False)
    assert response.status_code == 200
    assert_hardened(response)


def test_proxy_https_header_counts_as_secure(shop, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = Client().get("/subscribe/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200


def test_csp_follows_the_configured_hosts(settings):
    settings.WAGTAIL_KLARNA_PAYWALL = {
        **settings.WAGTAIL_KLARNA_PAYWALL,
        "KLARNA_CSP_HOSTS": ["https://js.playground.klarna.com"],
    }
    parsed = directives(security.content_security_policy())
    assert parsed["default-src"] == ["'self'", "https://js.playground.klarna.com"]
    # Klarna's own sources stay, whatever the site configures.
    assert parsed["script-src"] == list(security.KLARNA_CSP["script-src"])


def test_form_action_follows_the_redirect_allow_list(settings):
    settings.WAGTAIL_KLARNA_PAYWALL = {
        **settings.WAGTAIL_KLARNA_PAYWALL,
        "KLARNA_REDIRECT_HOSTS": ["klarna.com", "127.0.0.1", "bad host;script-src *"],
    }
    parsed = directives(security.content_security_policy())
    assert parsed["form-action"][-3:] == ["https://klarna.com", "https://*.klarna.com", "https://127.0.0.1"]
    settings.DEBUG = True
    parsed = directives(security.content_security_policy())
    assert "http://127.0.0.1:*" in parsed["form-action"]
    assert parsed["default-src"] == ["'self'", *KLARNA_HOSTS]


def test_csp_allows_a_static_files_cdn(settings):
    settings.STATIC_URL = "https://cdn.example.net/static/"
    parsed = directives(security.content_security_policy())
    assert parsed["script-src"][-1] == "https://cdn.example.net"


def test_harden_overrides_weaker_headers():
    response = HttpResponse()
    response["Cache-Control"] = "public, max-age=600"
    response["X-Frame-Options"] = "SAMEORIGIN"
    security.harden(response)
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Frame-Options"] == "DENY"


def test_wagtail_preview_may_be_framed_by_the_admin_only(shop):
    """The editor's preview iframe is same-origin; readers' pages stay unframeable."""
    response = shop.purchase_page.make_preview_request()
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert directives(response["Content-Security-Policy"])["frame-ancestors"] == ["'self'"]
