"""Access checks: me/active_products per reader, cached, failing closed, refreshed after a purchase."""

from __future__ import annotations

import logging

import pytest
import responses
from django.conf import settings
from django.core.cache import caches
from django.test import RequestFactory

from tests.factories import ACTIVE_PRODUCTS_URL, TOKEN_URL, answer, reader_request
from tests.factories import READER_TOKEN as TOKEN
from wagtail_klarna_paywall.login import sso
from wagtail_klarna_paywall.reading import access, cache_headers

pytestmark = pytest.mark.django_db

SSO = settings.WAGTAIL_KLARNA_PAYWALL["SSO_URL"]


def products_reply(rsps, codes=("digital",), status: int = 200) -> None:
    if status == 200:
        rsps.add(
            responses.GET, ACTIVE_PRODUCTS_URL, json={"item": {"id": "acc-1", "active_products": list(codes)}}
        )
    else:
        rsps.add(responses.GET, ACTIVE_PRODUCTS_URL, json={"code": "x", "message": "nope"}, status=status)


def test_anonymous_reader_has_no_access_without_any_io():
    request = RequestFactory().get("/")
    with responses.RequestsMock():
        assert access.reader_has_access(request, ["digital"]) is False
        assert access.owned_product_codes(request) == frozenset()
    assert not hasattr(request, "session")
    assert not cache_headers.is_reader_dependent(request)


def test_reader_with_a_session_but_no_login_has_no_access():
    request = reader_request(token=None)
    with responses.RequestsMock():
        assert access.reader_has_access(request, ["digital"]) is False
    assert not request.session.modified


def test_subscriber_has_access_with_the_identity_token():
    request = reader_request()
    with responses.RequestsMock() as rsps:
        products_reply(rsps, ["digital", "paper"])
        assert access.reader_has_access(request, ["digital"]) is True
        assert access.reader_has_access(request, ["sport"]) is False  # same request: no second call
        assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert len(rsps.calls) == 1
    assert access.owned_product_codes(request) == frozenset({"digital", "paper"})
    assert cache_headers.is_reader_dependent(request)


def test_empty_product_codes_never_grant_access():
    request = reader_request()
    with responses.RequestsMock():
        assert access.reader_has_access(request, []) is False
        assert access.reader_has_access(request, [""]) is False


def test_access_is_cached_per_reader_under_a_key_without_the_token():
    """L02: a logged-in reader's next page views make no Payway call."""
    with responses.RequestsMock() as rsps:
        products_reply(rsps)
        assert access.reader_has_access(reader_request(), ["digital"])
    with responses.RequestsMock():
        assert access.reader_has_access(reader_request(), ["digital"])
    cache = caches["default"]
    keys = list(cache._cache.keys())
    assert keys and all(TOKEN not in key for key in keys)
    assert all(TOKEN not in str(value) for value in cache._cache.values())


def test_another_reader_does_not_share_the_cache():
    with responses.RequestsMock() as rsps:
        products_reply(rsps, ["digital"])
        products_reply(rsps, [])
        assert access.reader_has_access(reader_request(sid="sid-a"), ["digital"]) is True
        assert access.reader_has_access(reader_request("OTHER-TOKEN", sid="sid-b"), ["digital"]) is False


def test_refresh_access_makes_a_purchase_visible_at_once():
    request = reader_request()
    with responses.RequestsMock() as rsps:
        products_reply(rsps, [])
        assert access.reader_has_access(request, ["digital"]) is False
    access.refresh_access(request)
    with responses.RequestsMock() as rsps:
        products_reply(rsps, ["digital"])
        assert access.reader_has_access(request, ["digital"]) is True
        assert access.reader_has_access(reader_request(), ["digital"]) is True
        assert len(rsps.calls) == 1


@pytest.mark.parametrize("status", [500, 503, 403])
def test_payway_failure_fails_closed_and_is_logged(status, caplog):
    caplog.set_level(logging.WARNING, logger="wagtail_klarna_paywall")
    with responses.RequestsMock() as rsps:
        products_reply(rsps, status=status)
        assert access.reader_has_access(reader_request(), ["digital"]) is False
    # The failure is remembered briefly, so an outage is not hit on every page view.
    with responses.RequestsMock():
        assert access.reader_has_access(reader_request(), ["digital"]) is False
    assert "Access check failed" in caplog.text
    assert TOKEN not in caplog.text


def test_payway_timeout_fails_closed():
    import requests

    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, ACTIVE_PRODUCTS_URL, body=requests.exceptions.ReadTimeout())
        assert access.reader_has_access(reader_request(), ["digital"]) is False


def test_unreadable_reply_fails_closed():
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, ACTIVE_PRODUCTS_URL, body="<html>oops</html>")
        assert access.reader_has_access(reader_request(), ["digital"]) is False


def test_no_account_behind_the_token_means_nothing_owned():
    with responses.RequestsMock() as rsps:
        products_reply(rsps, status=404)
        assert access.owned_product_codes(reader_request()) == frozenset()


def test_refused_token_is_replaced_once_through_sso(caplog):
    """F07 for access checks: a 401 drops the token, SSO2 gives a new ticket, the check runs once more."""
    request = reader_request()
    with responses.RequestsMock() as rsps:
        products_reply(rsps, status=401)
        rsps.add(
            responses.POST,
            f"{SSO}/sessionstatus",
            json={"t": answer(sid="sid-1", sts="loggedin", at="ticket-2")},
        )
        rsps.add(responses.POST, TOKEN_URL, json={"access_token": "FRESH", "expires_in": 3600})
        products_reply(rsps, ["digital"])
        assert access.reader_has_access(request, ["digital"]) is True
        assert rsps.calls[-1].request.headers["Authorization"] == "Bearer FRESH"
    assert request.session[sso.SESSION_KEY]["token"] == "FRESH"


class StaticProvider:
    """A site's own identity provider, without ``reader_key``."""

    def get_identity_token(self, request):
        return request.headers.get("X-Test-Token")

    def login_url(self, request, next_url):
        return "/login/"

    def forget(self, request):
        pass


def test_custom_provider_is_used_and_cached_by_a_hash(settings):
    settings.WAGTAIL_KLARNA_PAYWALL = {
        **settings.WAGTAIL_KLARNA_PAYWALL,
        "IDENTITY_PROVIDER": "tests.test_access.StaticProvider",
    }
    with responses.RequestsMock() as rsps:
        products_reply(rsps)
        request = RequestFactory().get("/", HTTP_X_TEST_TOKEN="SITE-TOKEN-1")
        assert access.reader_has_access(request, ["digital"]) is True
        assert rsps.calls[0].request.headers["Authorization"] == "Bearer SITE-TOKEN-1"
    with responses.RequestsMock():
        assert access.reader_has_access(
            RequestFactory().get("/", HTTP_X_TEST_TOKEN="SITE-TOKEN-1"), ["digital"]
        )
    assert all("SITE-TOKEN-1" not in key for key in caches["default"]._cache)
    assert access.reader_has_access(RequestFactory().get("/"), ["digital"]) is False
