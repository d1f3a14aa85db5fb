"""A cache of the paywall's rendered HTML, so a paywalled article costs about what a free one does.

Rendering the paywall means converting its stored value (its two page choosers query the database),
looking up the purchase page's URL and rendering the teaser, one offer summary and one buy form per offer.
That markup is the same for every reader in the same state, so it is rendered once and kept in the
plugin's cache (``paywall_settings.CACHE``), keyed on everything it is made of:

- the page, the paywall block's id and its stored value (any edit of the block is a new key);
- the reader state (``anonymous`` or ``reader``), the active language, the request's Wagtail site (URLs
  are relative to it), the log-in link, and ``utm_source`` when the template context has one;
- a generation token that changes whenever any page or site is saved, moved or deleted, because the
  purchase page's URL (the buy forms' target) is not part of the block's stored value.

What is never cached: a CSRF token or anything about one reader. An anonymous reader's paywall has neither
(its buy forms are GET forms to the purchase page). A logged-in reader's paywall has POST forms: it is
rendered with a placeholder in place of the token, and the placeholder is replaced by this request's token
on every render; and it is only cached when no offer was hidden because the reader owns it (the cached
markup is then exactly what every logged-in reader without access sees). Previews are never cached.

With Django's local-memory cache each process keeps its own copies and only the process that saved a
page sees the new generation at once; the others catch up within :data:`TTL`. Use a shared cache
(Redis, memcached) as ``CACHE`` when editors need their changes on every process at once.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from django.core.cache import caches
from django.db.models.signals import post_delete, post_save
from django.middleware.csrf import get_token
from django.utils import translation
from wagtail.models import Page, Site
from wagtail.signals import post_page_move

from ..conf import paywall_settings

#: Seconds a rendered paywall is kept: the safety net behind the generation token.
TTL = 300
#: Stands in for the CSRF token in cached markup; replaced by the request's own token on every render.
CSRF_PLACEHOLDER = "wkp-csrf-placeholder-5b0f1e"
_GENERATION_KEY = "wagtail_klarna_paywall:paywall-html:generation"
_KEY_PREFIX = "wagtail_klarna_paywall:paywall-html:"


def _cache() -> Any:

    return caches[paywall_settings.CACHE]


def _generation(cache: Any) -> str:
    generation = cache.get(_GENERATION_KEY)
    if generation is None:
        # A random token, not a counter: if the cache drops it, old fragments must not become valid again.
        cache.add(_GENERATION_KEY, uuid.uuid4().hex, None)
        generation = cache.get(_GENERATION_KEY) or ""
    return generation


def invalidate() -> None:
    """Forget every cached paywall (a page or site changed: a purchase page's URL may have moved)."""
    _cache().set(_GENERATION_KEY, uuid.uuid4().hex, None)


def cache_key(parts: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return _KEY_PREFIX + digest


def paywall_html(
    *,
    request: Any,
    page: Any,
    raw_block: dict[str, Any],
    state: str,
    login_url: str,
    utm_source: Any,
    render: Callable[[str], str],
) -> str:
    """The paywall's HTML for ``state``, from the cache or rendered by ``render(csrf_token)`` and stored.

    ``render`` is given the placeholder as the CSRF token; the placeholder is swapped for this request's
    token (only when the markup holds one, so an anonymous reader's page gets no CSRF cookie).
    """
    cache = _cache()
    site = getattr(request, "_wagtail_site", None)
    if site is None:
        site = Site.find_for_request(request)
    key = cache_key(
        {
            "generation": _generation(cache),
            "page": getattr(page, "pk", None),
            "block": raw_block.get("id"),
            "value": raw_block.get("value"),
            "state": state,
            "language": translation.get_language(),
            "site": getattr(site, "pk", None),
            "login": login_url,
            "utm_source": utm_source,
        }
    )
    html = cache.get(key)
    if html is None:
        html = render(CSRF_PLACEHOLDER)
        cache.set(key, html, TTL)
    return with_csrf_token(request, html)


def with_csrf_token(request: Any, html: str) -> str:
    if CSRF_PLACEHOLDER not in html:
        return html

    return html.replace(CSRF_PLACEHOLDER, get_token(request))


def _on_change(sender: Any, instance: Any = None, **kwargs: Any) -> None:

    if isinstance(instance, (Page, Site)):
        invalidate()


def _on_move(sender: Any, **kwargs: Any) -> None:
    invalidate()


def connect() -> None:
    """Invalidate on page and site changes. Connected when the blocks module loads (it always does)."""

    post_save.connect(_on_change, dispatch_uid="wagtail_klarna_paywall.reading.render_cache.save")
    post_delete.connect(_on_change, dispatch_uid="wagtail_klarna_paywall.reading.render_cache.delete")
    post_page_move.connect(_on_move, dispatch_uid="wagtail_klarna_paywall.reading.render_cache.move")
