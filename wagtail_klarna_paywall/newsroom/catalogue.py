"""Cached reads of Payway's catalogue (titles, packages, campaigns, Klarna payment periods) for editors.

Only the admin (offer chooser, block validation) reads the catalogue; rendering a paywall never does:
the chooser copies what a page needs into the block value. Reads go through Django's cache framework
(alias ``CACHE``, lifetime ``CATALOGUE_CACHE_TTL``) with one key per title, kind and page, so browsing the
chooser costs Payway one call per page per TTL. :func:`refresh` forgets everything at once by bumping a
generation number that is part of every key (cache backends cannot list keys portably).

Failures are not cached: a :class:`~wagtail_klarna_paywall.exceptions.PaywayError` reaches the caller,
which decides how to degrade (the chooser shows a message, validation lets the page save).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.utils import timezone

from ..conf import paywall_settings
from ..payway import get_client
from ..payway.types import PRODUCT_CAMPAIGN, PRODUCT_PACKAGE, PaymentPeriod, Product, Title

__all__ = [
    "find_product",
    "is_expired",
    "payment_periods",
    "products",
    "refresh",
    "title_codes",
    "titles",
]

KEY_PREFIX = "wagtail_klarna_paywall:catalogue"
GENERATION_KEY = f"{KEY_PREFIX}:generation"
#: Payway's maximum page size for product search.
PAGE_SIZE = 25
#: Stop paging a search after this many pages (25 x 40 = 1000 products), whatever Payway says.
MAX_PAGES = 40

T = TypeVar("T")


def _cache() -> BaseCache:
    return caches[paywall_settings.CACHE]


def _generation() -> int:
    generation = _cache().get(GENERATION_KEY)
    if generation is None:
        generation = 1
        # No timeout: the generation must outlive every key built from it.
        _cache().set(GENERATION_KEY, generation, None)
    return generation


def _key(*parts: object) -> str:
    return ":".join([KEY_PREFIX, str(_generation()), *(str(part) for part in parts)])


def _cached(key: str, fetch: Callable[[], T]) -> T:
    cache = _cache()
    value = cache.get(key)
    if value is None:
        value = fetch()
        cache.set(key, value, paywall_settings.CATALOGUE_CACHE_TTL)
    return value


def refresh() -> None:
    """Forget every cached catalogue read (the chooser's "refresh" action)."""
    cache = _cache()
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:
        # The generation key expired or was never set: any new value orphans the old keys.
        cache.set(GENERATION_KEY, int(timezone.now().timestamp()), None)


def titles() -> list[Title]:
    """Every title of the organisation. Raises PaywayError."""
    return _cached(_key("titles"), lambda: list(get_client().titles()))


def title_codes() -> list[str]:
    return [title.code for title in titles()]


def _search_page(kind: str, title_code: str, page_number: int):
    client = get_client()
    search = client.search_packages if kind == PRODUCT_PACKAGE else client.search_campaigns
    return _cached(
        _key("products", title_code, kind, page_number),
        lambda: search(title_code, page_number=page_number, page_size=PAGE_SIZE),
    )


def products(title_code: str, *, kind: str | None = None) -> list[Product]:
    """Packages then campaigns of ``title_code`` (all pages), or only ``kind``. Raises PaywayError."""
    kinds = [kind] if kind else [PRODUCT_PACKAGE, PRODUCT_CAMPAIGN]
    found: list[Product] = []
    for each_kind in kinds:
        for page_number in range(1, MAX_PAGES + 1):
            page = _search_page(each_kind, title_code, page_number)
            found.extend(page.items)
            if not page.more_results_available or not page.items:
                break
    return found


def find_product(code: str, *, in_titles: list[str] | None = None) -> Product | None:
    """The package or campaign whose ``product_code`` is ``code`` in any of ``in_titles`` (default:
    every title). Raises PaywayError."""
    for title_code in in_titles if in_titles is not None else title_codes():
        for product in products(title_code):
            if product.product_code == code:
                return product
    return None


def payment_periods(code: str) -> list[PaymentPeriod]:
    """Klarna payment periods of a package or campaign, enabled ones only. Raises PaywayError.

    The code is hashed into the key: codes may be up to 1024 characters of anything."""
    periods = _cached(
        _key("periods", hashlib.sha256(code.encode()).hexdigest()),
        lambda: list(get_client().payment_periods(code)),
    )
    return [period for period in periods if period.enabled]


def is_expired(product: Product, now: dt.datetime | None = None) -> bool:
    """Payway's ``expired`` flag, or a sales period that has ended."""
    if product.expired:
        return True
    if product.valid_to is not None:
        now = now or timezone.now()
        valid_to = product.valid_to
        if timezone.is_naive(valid_to):
            valid_to = timezone.make_aware(valid_to, dt.timezone.utc)
        return valid_to < now
    return False
