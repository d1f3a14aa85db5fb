"""signal_handlers.py: one place connects the package's receivers, when the app is ready."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_out
from django.core.signals import setting_changed
from django.db.models.signals import post_save

from wagtail_klarna_paywall import signal_handlers
from wagtail_klarna_paywall.conf import paywall_settings
from wagtail_klarna_paywall.login.identity import get_identity_provider
from wagtail_klarna_paywall.payway import get_client
from wagtail_klarna_paywall.payway.sso_client import get_sso_client


def _uids(signal) -> list[str]:
    """The dispatch_uids connected to ``signal`` (a receiver's lookup key starts with its uid)."""
    return [entry[0][0] for entry in signal.receivers]


def test_a_changed_setting_rebuilds_everything_made_from_it(settings):
    client, sso, provider = get_client(), get_sso_client(), get_identity_provider()
    assert paywall_settings.CONNECT_TIMEOUT != 1.5

    settings.WAGTAIL_KLARNA_PAYWALL = {**settings.WAGTAIL_KLARNA_PAYWALL, "CONNECT_TIMEOUT": 1.5}

    assert paywall_settings.CONNECT_TIMEOUT == 1.5
    assert get_client() is not client and get_client().timeout[0] == 1.5
    assert get_sso_client() is not sso and get_sso_client().timeout[0] == 1.5
    assert get_identity_provider() is not provider


def test_other_settings_leave_the_clients_alone(settings):
    client = get_client()
    settings.LANGUAGE_CODE = "sv"
    assert get_client() is client


def test_receivers_are_connected_once_by_uid():
    assert _uids(setting_changed).count("wagtail_klarna_paywall.signal_handlers.settings") == 1
    assert _uids(user_logged_out).count("wagtail_klarna_paywall.reading.grants.logout") == 1
    assert _uids(post_save).count("wagtail_klarna_paywall.reading.render_cache.save") == 1
    assert _uids(post_save).count("wagtail_klarna_paywall.newsroom.paywall_views.save") == 1
    assert signal_handlers.reload_plugin_settings.__module__ == "wagtail_klarna_paywall.signal_handlers"
