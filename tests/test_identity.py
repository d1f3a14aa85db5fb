"""login/identity.py: the one identity-provider loader, and the one reading of the reader's IP address."""

from __future__ import annotations

import jwt
import pytest
from django.test import RequestFactory

from tests.factories import StubIdentityProvider
from wagtail_klarna_paywall.exceptions import ConfigurationError
from wagtail_klarna_paywall.login import identity, sso
from wagtail_klarna_paywall.purchase import readers


class CountingProvider(StubIdentityProvider):
    """Counts how often it is built."""

    built = 0
    token = None  # its own: what a test gives the stub is not this provider's

    def __init__(self):
        CountingProvider.built += 1


COUNTING = "tests.test_identity.CountingProvider"


@pytest.fixture
def provider_setting(settings):
    def use(path):
        settings.WAGTAIL_KLARNA_PAYWALL = {**settings.WAGTAIL_KLARNA_PAYWALL, "IDENTITY_PROVIDER": path}

    CountingProvider.built = 0
    yield use
    identity.reset_identity_provider()


# -- the loader --------------------------------------------------------------------------------------


def test_the_provider_is_built_once_per_process(provider_setting):
    provider_setting(COUNTING)

    first = identity.get_identity_provider()

    assert isinstance(first, CountingProvider)
    assert identity.get_identity_provider() is first
    assert CountingProvider.built == 1


def test_a_changed_setting_builds_the_new_provider(provider_setting):
    provider_setting(COUNTING)
    assert isinstance(identity.get_identity_provider(), CountingProvider)

    provider_setting("wagtail_klarna_paywall.login.sso.SSO2IdentityProvider")

    assert isinstance(identity.get_identity_provider(), sso.SSO2IdentityProvider)


def test_an_empty_setting_means_no_identity_provider(provider_setting):
    provider_setting("")

    assert identity.get_identity_provider() is None


@pytest.mark.parametrize("path", ["myproject.identity.Provider", "tests.test_identity.NoSuchProvider", None])
def test_a_path_that_does_not_import_is_a_configuration_error(provider_setting, path):
    provider_setting(path if path is not None else ["not", "a", "path"])

    with pytest.raises(ConfigurationError) as raised:
        identity.get_identity_provider()
    assert "IDENTITY_PROVIDER" in str(raised.value)


def test_every_caller_meets_the_same_configuration_error(provider_setting, rf):
    """One policy: the purchase flow no longer treats a wrong setting as "no identity provider"."""
    provider_setting("myproject.identity.Provider")
    request = rf.get("/")
    request.session = {}

    with pytest.raises(ConfigurationError):
        readers.reader_identity_token(request)


# -- the reader's IP address -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "198.51.100.1", "203.0.113.7"),
        (1, "198.51.100.1", "198.51.100.1"),
        (2, "198.51.100.9, 198.51.100.1", "198.51.100.9"),
        (2, "198.51.100.1", "203.0.113.7"),  # fewer hops than proxies: do not trust it
        (1, "not-an-ip", "203.0.113.7"),
        (1, "2001:db8::1", "2001:db8::1"),
        (1, "2001:DB8:0::1", "2001:db8::1"),  # normalised
        (1, "198.51.100.1:443", "203.0.113.7"),  # a port is not an address
        (1, "<script>", "203.0.113.7"),
    ],
)
def test_client_ip(settings, proxies, forwarded, expected):
    settings.WAGTAIL_KLARNA_PAYWALL = {**settings.WAGTAIL_KLARNA_PAYWALL, "TRUSTED_PROXY_COUNT": proxies}
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR=forwarded)
    assert identity.client_ip(request) == expected


@pytest.mark.parametrize("remote", ["", "unix-socket", "999.1.1.1"])
def test_client_ip_is_empty_when_no_address_can_be_read(remote):
    request = RequestFactory().get("/", REMOTE_ADDR=remote)
    assert identity.client_ip(request) == ""


def test_sso_tokens_carry_the_same_validated_address(settings):
    """SSO2's ``ipa`` claim is read like Payway's ``browser_ip``: a hop that is no address is dropped."""
    settings.WAGTAIL_KLARNA_PAYWALL = {**settings.WAGTAIL_KLARNA_PAYWALL, "TRUSTED_PROXY_COUNT": 1}
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="forged value")

    token = sso.session_token(request, sid="sid-1")

    assert jwt.decode(token, options={"verify_signature": False})["ipa"] == "203.0.113.7"
