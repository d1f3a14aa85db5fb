"""login/identity.py: the one reading of the reader's IP address."""

from __future__ import annotations

import jwt
import pytest
from django.test import RequestFactory

from wagtail_klarna_paywall.login import identity, sso

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
