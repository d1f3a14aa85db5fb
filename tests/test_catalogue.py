"""Cached catalogue reads: one Payway call per title, kind and page per TTL; refresh forgets them all."""

from __future__ import annotations

import json

import pytest
import responses
from django.core.cache import caches

from tests.factories import (
    CAMPAIGNS_URL,
    FIXTURES,
    MONTH_PERIOD,
    PACKAGES,
    PACKAGES_URL,
    PERIODS_URL,
    TITLES_URL,
    TOKEN_URL,
    TRIAL_PERIOD,
    calls_to,
    mock_catalogue,
    page_json,
)
from wagtail_klarna_paywall.exceptions import PaywayError
from wagtail_klarna_paywall.newsroom import catalogue


def test_products_lists_packages_then_campaigns_with_their_kind(rsps):
    mock_catalogue(rsps)
    found = catalogue.products("dagbladet")
    assert [p.product_code for p in found] == [
        "dagbladet_digital",
        "dagbladet_paper",
        "dagbladet_old",
        "dagbladet_trial",
        "dagbladet_summer",
    ]
    assert {p.kind for p in found[:3]} == {"package"} and {p.kind for p in found[3:]} == {"campaign"}
    assert [p.product_code for p in catalogue.products("dagbladet", kind="campaign")] == [
        "dagbladet_trial",
        "dagbladet_summer",
    ]


def test_catalogue_reads_are_cached_until_refresh(rsps):
    mock_catalogue(rsps)
    catalogue.products("dagbladet")
    catalogue.products("dagbladet")
    catalogue.payment_periods("dagbladet_digital")
    catalogue.payment_periods("dagbladet_digital")
    assert len(calls_to(rsps, PACKAGES_URL)) == 1
    assert len(calls_to(rsps, CAMPAIGNS_URL)) == 1
    assert len(calls_to(rsps, PERIODS_URL)) == 1

    catalogue.refresh()
    catalogue.products("dagbladet")
    catalogue.payment_periods("dagbladet_digital")
    assert len(calls_to(rsps, PACKAGES_URL)) == 2
    assert len(calls_to(rsps, PERIODS_URL)) == 2


def test_cache_keys_are_per_title_kind_and_page(rsps, settings):
    mock_catalogue(rsps)
    rsps.replace(responses.GET, PACKAGES_URL, json=page_json(PACKAGES[:1], more=True))
    rsps.get(PACKAGES_URL, json=page_json(PACKAGES[1:], page_number=2))
    catalogue.products("dagbladet")
    pages = [call.request.params["page_number"] for call in calls_to(rsps, PACKAGES_URL)]
    assert pages == ["1", "2"]
    keys = [key for key in caches["default"]._cache if "products" in key]
    assert len(keys) == 3  # packages page 1 and 2, campaigns page 1


def test_ttl_and_cache_alias_come_from_settings(rsps, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "default"},
        "catalogue": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "cat"},
    }
    conf = settings.WAGTAIL_KLARNA_PAYWALL
    settings.WAGTAIL_KLARNA_PAYWALL = {**conf, "CACHE": "catalogue"}
    mock_catalogue(rsps)
    catalogue.titles()
    assert any("titles" in key for key in caches["catalogue"]._cache)
    assert not any("titles" in key for key in caches["default"]._cache)

    settings.WAGTAIL_KLARNA_PAYWALL = {**conf, "CACHE": "catalogue", "CATALOGUE_CACHE_TTL": 0}
    catalogue.refresh()
    catalogue.titles()
    catalogue.titles()
    # TTL 0 means "do not keep": after the refresh both reads ask Payway.
    assert len(calls_to(rsps, TITLES_URL)) == 3


def test_payment_periods_drop_disabled_ones(rsps):
    mock_catalogue(rsps)
    periods = catalogue.payment_periods("dagbladet_digital")
    assert [p.id for p in periods] == [MONTH_PERIOD, TRIAL_PERIOD]


def test_find_product_and_expiry(rsps):
    mock_catalogue(rsps)
    assert catalogue.find_product("dagbladet_trial", in_titles=["dagbladet"]).name == "Free month"
    assert catalogue.find_product("nope", in_titles=["dagbladet"]) is None
    # Without titles, every title of the organisation is searched.
    assert catalogue.find_product("dagbladet_digital").kind == "package"
    assert not catalogue.is_expired(catalogue.find_product("dagbladet_digital"))
    assert catalogue.is_expired(catalogue.find_product("dagbladet_paper"))  # Payway's flag
    assert catalogue.is_expired(catalogue.find_product("dagbladet_old"))  # sales period over


def test_failures_raise_and_are_not_cached(rsps):
    rsps.post(TOKEN_URL, json=json.loads((FIXTURES / "token.json").read_text()))
    rsps.get(TITLES_URL, status=500, json={"code": "internal_server_error", "message": "boom"})
    with pytest.raises(PaywayError):
        catalogue.titles()
    rsps.replace(responses.GET, TITLES_URL, json={"items": [{"name": "Dagbladet", "code": "dagbladet"}]})
    assert catalogue.title_codes() == ["dagbladet"]
