"""Who a reader is for the money rules (accounts.py): keyed hashes of the Payway account and e-mail."""

from __future__ import annotations

import pytest
import responses
from django.core.cache import cache

from tests.factories import ACCOUNT_ID, IDENTITY_TOKEN, ME_URL
from wagtail_klarna_paywall.purchase import accounts


def cached_items() -> dict:
    return {key: cache.get(key.split(":", 2)[-1]) for key in cache._cache}  # type: ignore[attr-defined]


def test_the_account_key_is_read_once_and_cached_without_the_token_or_the_id(payway):
    key = accounts.account_key(None, IDENTITY_TOKEN)

    assert key == accounts.key_for_account_id(ACCOUNT_ID)
    assert key.startswith("account:") and ACCOUNT_ID not in key
    assert accounts.account_key(None, IDENTITY_TOKEN) == key
    assert len([c for c in payway.calls if c.request.url == ME_URL]) == 1
    stored = " ".join(str(k) + str(v) for k, v in cached_items().items())
    assert "wkp:account:" in stored and key in stored
    assert IDENTITY_TOKEN not in stored and ACCOUNT_ID not in stored


def test_a_failure_is_none_and_not_remembered(payway):
    payway.replace(responses.GET, ME_URL, status=500, json={"code": "internal_server_error"})
    assert accounts.account_key(None, IDENTITY_TOKEN) is None
    payway.replace(responses.GET, ME_URL, json={"item": {"id": ACCOUNT_ID}})
    assert accounts.account_key(None, IDENTITY_TOKEN) == accounts.key_for_account_id(ACCOUNT_ID)


def test_no_token_no_call(payway):
    assert accounts.account_key(None, None) is None
    assert accounts.account_key(None, "") is None
    assert not [c for c in payway.calls if c.request.url == ME_URL]


@pytest.mark.parametrize("typed", ["reader@example.com", " Reader@Example.COM ", "READER@EXAMPLE.COM\n"])
def test_the_email_key_is_a_keyed_hash_of_the_normalised_address(typed):
    key = accounts.email_key(typed)
    assert key == accounts.email_key("reader@example.com")
    assert key.startswith("email:") and "example" not in key and len(key) <= 80
    assert accounts.email_key("") == ""
    assert accounts.email_key("other@example.com") != key


def test_keys_depend_on_the_secret_key(settings):
    before = accounts.email_key("reader@example.com"), accounts.key_for_account_id(ACCOUNT_ID)
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    assert accounts.email_key("reader@example.com") != before[0]
    assert accounts.key_for_account_id(ACCOUNT_ID) != before[1]
