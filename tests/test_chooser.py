"""The offer chooser modal: listing, search, pagination, periods, choosing, refresh, Payway down."""

from __future__ import annotations

import json

import pytest
import responses
from django.contrib.auth import get_user_model
from django.urls import reverse
from wagtail.models import Site

from tests.factories import (
    CAMPAIGNS_URL,
    MONTH_PERIOD,
    PACKAGES_URL,
    PERIODS_URL,
    TRIAL_PERIOD,
    WEB_PRODUCT,
    calls_to,
    mock_catalogue,
    product,
)
from wagtail_klarna_paywall.models import PaywallSettings
from wagtail_klarna_paywall.newsroom.chooser_widget import ProductChooserWidget

pytestmark = pytest.mark.django_db

NS = "wagtail_klarna_paywall_offer_chooser"


@pytest.fixture
def editor(client):
    user = get_user_model().objects.create_superuser("editor", "editor@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def site_title():
    settings = PaywallSettings.for_site(Site.objects.get(is_default_site=True))
    settings.title_code = "dagbladet"
    settings.save()
    return settings


def modal(response) -> dict:
    assert response.status_code == 200, response.content[:500]
    return json.loads(response.content)


def test_choose_lists_the_sites_packages_and_campaigns(editor, rsps, site_title):
    mock_catalogue(rsps)
    data = modal(editor.get(reverse(f"{NS}:choose")))
    assert data["step"] == "choose"
    html = data["html"]
    for name in ("Digital", "Free month", "Summer offer"):
        assert name in html
    assert "dagbladet_digital" in html and "Campaign" in html
    # Expired products are shown as expired, with nothing to click.
    assert "Expired" in html and "code=dagbladet_paper" not in html
    assert calls_to(rsps, PACKAGES_URL)[0].request.params["title_code"] == "dagbladet"


def test_without_site_title_the_first_payway_title_is_used(editor, rsps):
    mock_catalogue(rsps)
    html = modal(editor.get(reverse(f"{NS}:choose")))["html"]
    assert "Free month" in html


def test_search_filters_by_name_or_code(editor, rsps, site_title):
    mock_catalogue(rsps)
    html = editor.get(reverse(f"{NS}:choose_results"), {"q": "summer"}).content.decode()
    assert "Summer offer" in html and "Digital" not in html
    html = editor.get(reverse(f"{NS}:choose_results"), {"q": "DAGBLADET_DIG"}).content.decode()
    assert "Digital" in html and "Summer offer" not in html
    html = editor.get(reverse(f"{NS}:choose_results"), {"q": "zzz"}).content.decode()
    assert "no product matches" in html


def test_kind_filter(editor, rsps, site_title):
    mock_catalogue(rsps)
    html = editor.get(reverse(f"{NS}:choose_results"), {"kind": "campaign"}).content.decode()
    assert "Free month" in html and "Digital" not in html


def test_results_paginate(editor, rsps, site_title):
    packages = [product(f"pkg_{n:02}", f"Package {n:02}") for n in range(12)]
    mock_catalogue(rsps, packages=packages, campaigns=[])
    first = editor.get(reverse(f"{NS}:choose_results")).content.decode()
    second = editor.get(reverse(f"{NS}:choose_results"), {"p": 2}).content.decode()
    assert "Package 00" in first and "Package 09" in first and "Package 10" not in first
    assert "Package 10" in second and "Package 11" in second and "Package 00" not in second
    assert "Page 1 of 2" in first


def test_periods_step_shows_price_per_period(editor, rsps, site_title):
    mock_catalogue(rsps)
    data = modal(editor.get(reverse(f"{NS}:periods"), {"code": "dagbladet_digital", "title": "dagbladet"}))
    html = data["html"]
    assert data["step"] == "choose"
    assert "210" in html and "month" in html and "3 months" in html
    assert "1990" not in html  # disabled in Payway
    assert f"period={MONTH_PERIOD}" in html and f"period={TRIAL_PERIOD}" in html


def test_unknown_product_is_404(editor, rsps, site_title):
    mock_catalogue(rsps)
    response = editor.get(reverse(f"{NS}:periods"), {"code": "nope", "title": "dagbladet"})
    assert response.status_code == 404


def test_choosing_returns_everything_the_offer_block_stores(editor, rsps, site_title):
    mock_catalogue(rsps)
    data = modal(
        editor.get(
            reverse(f"{NS}:chosen"),
            {"code": "dagbladet_digital", "title": "dagbladet", "period": MONTH_PERIOD},
        )
    )
    assert data["step"] == "chosen"
    assert data["result"] == {
        "id": "dagbladet_digital",
        "title": "Digital (dagbladet_digital)",
        "edit_url": None,
        "product_kind": "package",
        "product_name": "Digital",
        "period_id": MONTH_PERIOD,
        "period_type": "recurring",
        "price": "210",
        "price_period": "month",
        "is_trial": False,
        # The products the package contains (what a buyer's active_products lists), not its own code.
        "included_product_codes": WEB_PRODUCT,
    }


def test_choosing_a_product_the_catalogue_lists_no_products_for_stores_none(editor, rsps, site_title):
    mock_catalogue(rsps, packages=[product("dagbladet_digital", "Digital")])
    result = modal(
        editor.get(
            reverse(f"{NS}:chosen"),
            {"code": "dagbladet_digital", "title": "dagbladet", "period": MONTH_PERIOD},
        )
    )["result"]
    assert result["included_product_codes"] == ""


def test_choosing_a_free_campaign_period_makes_a_trial(editor, rsps, site_title):
    mock_catalogue(rsps)
    result = modal(
        editor.get(
            reverse(f"{NS}:chosen"), {"code": "dagbladet_trial", "title": "dagbladet", "period": TRIAL_PERIOD}
        )
    )["result"]
    assert result["product_kind"] == "campaign" and result["is_trial"] is True
    assert result["period_id"] == TRIAL_PERIOD and result["price_period"] == "3 month"
    assert result["included_product_codes"] == WEB_PRODUCT


def test_choosing_an_unknown_period_is_404(editor, rsps, site_title):
    mock_catalogue(rsps)
    response = editor.get(
        reverse(f"{NS}:chosen"), {"code": "dagbladet_digital", "title": "dagbladet", "period": "f" * 24}
    )
    assert response.status_code == 404


def test_refresh_clears_the_cache_and_needs_a_post(editor, rsps, site_title):
    mock_catalogue(rsps)
    editor.get(reverse(f"{NS}:choose"))
    editor.get(reverse(f"{NS}:choose"))
    assert len(calls_to(rsps, CAMPAIGNS_URL)) == 1
    assert editor.get(reverse(f"{NS}:refresh")).status_code == 405
    data = modal(editor.post(reverse(f"{NS}:refresh")))
    assert data["step"] == "choose" and "Summer offer" in data["html"]
    assert len(calls_to(rsps, CAMPAIGNS_URL)) == 2


def test_payway_down_shows_a_message_not_an_error(editor, rsps, site_title):
    """Nothing registered: every call fails to connect."""
    data = modal(editor.get(reverse(f"{NS}:choose")))
    assert "cannot be reached" in data["html"]
    response = editor.get(reverse(f"{NS}:periods"), {"code": "x", "title": "dagbladet"})
    assert "cannot be reached" in modal(response)["html"]


def test_payway_5xx_on_periods_shows_a_message(editor, rsps, site_title):
    mock_catalogue(rsps)
    rsps.replace(responses.GET, PERIODS_URL, status=500, json={"code": "internal_server_error"})
    response = editor.get(reverse(f"{NS}:periods"), {"code": "dagbladet_digital", "title": "dagbladet"})
    assert "cannot be reached" in modal(response)["html"]


def test_chooser_needs_admin_access(client, rsps):
    response = client.get(reverse(f"{NS}:choose"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert len(rsps.calls) == 0


def test_widget_shows_the_stored_code_without_asking_payway(rsps):
    widget = ProductChooserWidget()
    assert widget.get_value_data("dagbladet_digital") == {
        "id": "dagbladet_digital",
        "title": "dagbladet_digital",
        "edit_url": None,
    }
    assert widget.get_value_data("") is None
    html = widget.render("offer-product_code", "dagbladet_digital", attrs={"id": "offer-product_code"})
    assert 'value="dagbladet_digital"' in html and reverse(f"{NS}:choose") in html
    assert len(rsps.calls) == 0
