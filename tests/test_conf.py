"""The settings object: defaults, overrides, reload on setting_changed, and the process-wide client."""

from __future__ import annotations

import pytest
from django.test import override_settings

from wagtail_klarna_paywall import conf
from wagtail_klarna_paywall.conf import DEFAULTS, PAYWAY_PRODUCTION_API_URL, paywall_settings
from wagtail_klarna_paywall.payway import get_client


def test_user_settings_override_defaults():
    assert paywall_settings.API_URL == "https://payway.test"
    assert paywall_settings.CLIENT_ID == "test-client"


def test_missing_keys_fall_back_to_defaults():
    with override_settings(WAGTAIL_KLARNA_PAYWALL={"CLIENT_ID": "x"}):
        assert DEFAULTS["READ_TIMEOUT"] == paywall_settings.READ_TIMEOUT
        assert paywall_settings.API_URL == conf.PAYWAY_STAGE_API_URL
        assert paywall_settings.KLARNA_REDIRECT_HOSTS == ["klarna.com"]


def test_no_settings_dict_at_all_uses_defaults(settings):
    del settings.WAGTAIL_KLARNA_PAYWALL

    assert paywall_settings.CLIENT_SECRET == ""
    assert paywall_settings.SSO_URL == conf.PAYWAY_STAGE_SSO_URL


def test_unknown_attribute_raises():
    with pytest.raises(AttributeError, match="READ_TIMOUT"):
        paywall_settings.READ_TIMOUT


def test_settings_reload_when_the_dict_changes():
    assert DEFAULTS["READ_TIMEOUT"] == paywall_settings.READ_TIMEOUT
    with override_settings(WAGTAIL_KLARNA_PAYWALL={"READ_TIMEOUT": 9}):
        assert paywall_settings.READ_TIMEOUT == 9
    assert DEFAULTS["READ_TIMEOUT"] == paywall_settings.READ_TIMEOUT


def test_unrelated_setting_changes_keep_the_cache():
    paywall_settings._cache["API_URL"] = "https://cached.test"
    try:
        with override_settings(DEBUG=True):
            assert paywall_settings.API_URL == "https://cached.test"
    finally:
        paywall_settings.reload()


@pytest.mark.parametrize(
    ("api_url", "expected"),
    [
        (PAYWAY_PRODUCTION_API_URL, True),
        (PAYWAY_PRODUCTION_API_URL + "/", True),
        (conf.PAYWAY_STAGE_API_URL, False),
    ],
)
def test_is_production(api_url, expected):
    with override_settings(WAGTAIL_KLARNA_PAYWALL={"API_URL": api_url}):
        assert paywall_settings.is_production is expected


def test_get_client_is_built_from_settings_and_shared():
    client = get_client()

    assert client is get_client()
    assert client.base_url == "https://payway.test"
    assert client.client_id == "test-client"
    assert client.timeout == (DEFAULTS["CONNECT_TIMEOUT"], DEFAULTS["READ_TIMEOUT"])


def test_get_client_is_rebuilt_after_a_settings_change():
    before = get_client()
    with override_settings(
        WAGTAIL_KLARNA_PAYWALL={"API_URL": "https://other.test/", "CONNECT_TIMEOUT": 1, "READ_TIMEOUT": 2}
    ):
        during = get_client()
        assert during is not before
        assert during.base_url == "https://other.test"
        assert during.timeout == (1, 2)
    assert get_client() is not during
