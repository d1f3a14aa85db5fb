"""Every response of a purchase-flow page is hardened, whatever its status, and matches Klarna's browser
requirements (security.KLARNA_CSP, security.KLARNA_COOP; docs/klarna-browser.md), directive by directive.

Statuses: 200, 303, 400 (a form Django cannot read), 403 (CSRF failure, answered before the flow view runs),
404 (Http404 inside a flow view), 405, 429 and 503.
"""

from __future__ import annotations

import uuid

import pytest
import requests
import responses
from django.core.checks import run_checks
from django.http import HttpResponse
from django.test import Client

from tests.factories import CREATE_V2, TOKEN_URL, UTF16_FORM, Shop, session_json
from wagtail_klarna_paywall import checks
from wagtail_klarna_paywall.models import PurchaseAttempt
from wagtail_klarna_paywall.purchase import hardening as security
from wagtail_klarna_paywall.purchase import ratelimit

FORM = {"page": "1", "offer": "x"}


def directives(csp: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}


def assert_hardened(response, what: str) -> None:
    assert response["Cache-Control"] == "private, no-store", what
    assert response["X-Frame-Options"] == "DENY", what
    assert response["Cross-Origin-Opener-Policy"] == "same-origin-allow-popups", what
    parsed = directives(response["Content-Security-Policy"])
    assert parsed["frame-ancestors"] == ["'none'"], what
    for name, sources in security.KLARNA_CSP.items():
        missing = [source for source in sources if source not in parsed.get(name, [])]
        assert not missing, f"{what}: {name} lacks Klarna's {missing}"


@pytest.fixture
def checkout(shop, db):
    """A reader with a ready checkout: (client, checkout path)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, TOKEN_URL, json={"access_token": "t", "expires_in": 3600})
        rsps.add(responses.POST, CREATE_V2, json=session_json())
        client = Client()
        client.post(
            shop.purchase_page.url + "buy/",
            {"page": shop.purchase_page.pk, "offer": Shop.package_ref},
            secure=True,
        )
    attempt = PurchaseAttempt.objects.get()
    return client, f"{shop.purchase_page.url}checkout/{attempt.reference}/"


# -- Klarna's table, directive by directive ------------------------------------------------------------


def test_checkout_csp_and_coop_are_klarnas_table(checkout):
    client, path = checkout
    response = client.get(path, secure=True)
    assert response.status_code == 200
    assert b"wkp-klarna-config" in response.content  # the widget page, not an error

    parsed = directives(response["Content-Security-Policy"])
    for name, sources in security.KLARNA_CSP.items():
        for source in sources:
            assert source in parsed[name], f"{name} lacks {source}"
    assert "https://*.klarnaevt.com" in parsed["connect-src"]
    assert "'unsafe-inline'" in parsed["style-src"]
    assert "'unsafe-inline'" not in parsed["script-src"] and "'unsafe-eval'" not in parsed["script-src"]
    assert response["Cross-Origin-Opener-Policy"] == security.KLARNA_COOP == "same-origin-allow-popups"


def test_the_table_lists_every_directive_klarna_names():
    assert set(security.KLARNA_CSP) == {
        "script-src",
        "style-src",
        "font-src",
        "connect-src",
        "frame-src",
        "img-src",
    }


def test_the_docs_show_the_same_table():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "klarna-browser.md").read_text()
    for name, sources in security.KLARNA_CSP.items():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{name}`")), "")
        assert row, f"docs/klarna-browser.md has no row for {name}"
        for source in sources:
            assert f"`{source}`" in row, f"docs/klarna-browser.md: {name} lacks {source}"
    assert security.KLARNA_COOP in text


def test_site_csp_middlewares_are_told_to_leave_flow_pages_alone():
    response = security.harden(HttpResponse())
    # Django's ContentSecurityPolicyMiddleware (6.0+): an empty config adds no header.
    assert response._csp_config == {} and response._csp_ro_config == {}
    # django-csp: csp_exempt.
    assert response._csp_exempt is True


# -- every status ----------------------------------------------------------------------------------------


def test_every_flow_status_is_hardened(shop, checkout, monkeypatch):
    client, path = checkout
    buy = shop.purchase_page.url + "buy/"
    seen = {}

    seen[200] = client.get(path, secure=True)
    seen[404] = client.get(f"{shop.purchase_page.url}checkout/{uuid.uuid4()}/", secure=True)
    seen[405] = client.get(buy, secure=True)
    seen[403] = Client(enforce_csrf_checks=True).post(buy, FORM, secure=True)
    seen[400] = client.post(buy, data="page=1&offer=x", content_type=UTF16_FORM, secure=True)

    monkeypatch.setattr(
        ratelimit, "reserve_session", lambda **kwargs: ratelimit.Decision(False, retry_after=9)
    )
    seen[429] = Client().post(buy, {"page": shop.purchase_page.pk, "offer": Shop.trial_ref}, secure=True)
    monkeypatch.undo()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, TOKEN_URL, json={"access_token": "t", "expires_in": 3600})
        rsps.add(responses.POST, CREATE_V2, body=requests.ConnectionError("down"))
        seen[503] = Client().post(buy, {"page": shop.purchase_page.pk, "offer": Shop.trial_ref}, secure=True)

    for status, response in seen.items():
        assert response.status_code == status, f"expected {status}, got {response.status_code}"
        assert_hardened(response, f"HTTP {status}")
    assert seen[429]["Retry-After"] == "9"


def test_what_wagtail_answers_before_the_flow_view_is_hardened_too(shop, checkout):
    """A subpath no route matches (404), OPTIONS, and a method Wagtail refuses (405)."""
    client, _path = checkout
    purchase, thanks = shop.purchase_page.url, "/thanks/"
    answers = {
        "unrouted purchase subpath": (client.get(purchase + "no/such/route/", secure=True), 404),
        "unrouted confirmation subpath": (client.get(thanks + "nothing-here/", secure=True), 404),
        "OPTIONS": (client.options(purchase, secure=True), 200),
        "TRACE": (client.generic("TRACE", purchase, secure=True), 405),
    }
    for what, (response, status) in answers.items():
        assert response.status_code == status, what
        assert_hardened(response, what)
    # The page itself still answers as usual.
    assert client.get(purchase, secure=True).status_code == 200
    assert client.get(thanks, secure=True).status_code == 200


def test_other_pages_keep_their_404(shop, db):
    response = Client().get("/no-such-page/", secure=True)
    assert response.status_code == 404
    assert "Content-Security-Policy" not in response


def test_csrf_failures_elsewhere_keep_djangos_page(db):
    response = Client(enforce_csrf_checks=True).post("/klarna-paywall/sso/logout/", secure=True)
    assert response.status_code == 403
    assert "Content-Security-Policy" not in response


# -- a form Django cannot read ---------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("csrf", [False, True], ids=["csrf-off", "csrf-enforced"])
def test_utf16_form_is_a_humane_400_on_every_post_endpoint(shop, checkout, settings, debug, csrf):
    settings.DEBUG = debug
    _client, path = checkout
    client = Client(enforce_csrf_checks=csrf, raise_request_exception=False)
    endpoints = [
        shop.purchase_page.url + "buy/",
        path,
        path + "declined/",
        "/klarna-paywall/sso/logout/",
    ]
    for url in endpoints:
        # The test client encodes the text in the content type's charset, as a browser would.
        body = "klarna_authorization_token=abc&page=1"
        response = client.post(url, data=body, content_type=UTF16_FORM, secure=True)
        assert response.status_code == 400, url
        assert b"data-wkp-message" in response.content, url
        assert b"We could not read what was sent" in response.content, url
        assert_hardened(response, url)
    assert PurchaseAttempt.objects.get().state == "session_ready"


def test_a_utf8_charset_is_read_as_usual(shop, db):
    response = Client().post(
        shop.purchase_page.url + "buy/",
        data=b"page=x&offer=y",
        content_type="application/x-www-form-urlencoded; charset=UTF-8",
        secure=True,
    )
    assert response.status_code == 400  # our own validation of the fields, not an unreadable body
    assert b"Something went wrong with the form" in response.content


# -- checks W010-W012 ------------------------------------------------------------------------------------


def ids(messages):
    return sorted(m.id for m in messages)


def test_the_test_settings_pass():
    assert ids(checks.check_flow_hardening()) == []


class OverwritingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response["Cross-Origin-Opener-Policy"] = "same-origin"
        return response


def test_w010_a_middleware_that_overwrites_coop(settings):
    settings.SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.test_flow_hardening.OverwritingMiddleware"]
    [message] = checks.check_flow_hardening()
    assert message.id == "wagtail_klarna_paywall.W010"
    assert "Cross-Origin-Opener-Policy" in message.msg


def test_w010_django_security_middleware_alone_is_fine(settings):
    settings.SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
    assert ids(checks.check_flow_hardening()) == []


def test_w011_a_site_csrf_failure_view_that_does_not_harden(settings):
    settings.CSRF_FAILURE_VIEW = "django.views.csrf.csrf_failure"
    assert ids(checks.check_flow_hardening()) == ["wagtail_klarna_paywall.W011"]


@security.hardens_flow_pages
def site_csrf_failure(request, reason=""):
    return HttpResponse("Our own CSRF page", status=403)


def test_a_site_csrf_failure_view_decorated_by_the_plugin(shop, settings):
    settings.CSRF_FAILURE_VIEW = "tests.test_flow_hardening.site_csrf_failure"
    assert ids(checks.check_flow_hardening()) == []
    flow = Client(enforce_csrf_checks=True).post(shop.purchase_page.url + "buy/", FORM, secure=True)
    assert flow.content == b"Our own CSRF page"
    assert_hardened(flow, "the site's CSRF page on a flow page")
    other = Client(enforce_csrf_checks=True).post("/klarna-paywall/sso/logout/", secure=True)
    assert other.content == b"Our own CSRF page" and "Content-Security-Policy" not in other


@pytest.mark.parametrize("where", ["missing", "late"])
def test_w012_unreadable_form_middleware(settings, where):
    middleware = [m for m in settings.MIDDLEWARE if m != checks.UNREADABLE_FORM_MIDDLEWARE]
    if where == "late":
        middleware.append(checks.UNREADABLE_FORM_MIDDLEWARE)
    settings.MIDDLEWARE = middleware
    assert ids(checks.check_flow_hardening()) == ["wagtail_klarna_paywall.W012"]


def test_checks_are_registered():
    assert "wagtail_klarna_paywall.W011" not in ids(run_checks(tags=["wagtail_klarna_paywall"]))
