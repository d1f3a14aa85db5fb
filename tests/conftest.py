import pytest

from wagtail_klarna_paywall.payway import reset_client


@pytest.fixture(autouse=True)
def _fresh_client_and_cache():
    """Each test gets a new Payway client (no cached token) and an empty cache."""
    from django.core.cache import caches

    reset_client()
    for cache in caches.all():
        cache.clear()
    yield
    reset_client()
