"""Search-safe paywall markup: the article's ``NewsArticle`` JSON-LD, naming the paywalled part.

Google asks paywalled sites to say which part of a page is paywalled, so that showing crawlers more than
a reader without access sees is not taken for cloaking: ``isAccessibleForFree: false`` on the article,
and a ``hasPart`` ``WebPageElement`` (also ``isAccessibleForFree: false``) whose ``cssSelector`` is a
class selector for the element around the paid part. ``paywalled_stream`` wraps the paid part in exactly
one such element (:data:`PAID_PART_CLASS`), not nested in another: the paywalled blocks for readers with
access, the paywall that stands in for them for everyone else. So the same JSON-LD is right for both,
and the page can stay one cacheable document for every anonymous reader.

Usage, in the page template's ``<head>``::

    {% load klarna_paywall_tags %}
    {% paywall_json_ld page %}

A page without a paywall gets ``isAccessibleForFree: true`` and no ``hasPart``. Add fields a site knows
better (``author``, ``image``, ``publisher``) as keyword arguments: ``{% paywall_json_ld page author=a %}``
(an author given as text becomes a ``Person``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from .gating import paywall_index, split_at_paywall

if TYPE_CHECKING:
    from django.http import HttpRequest

#: The class of the element around the paid part; the JSON-LD's ``cssSelector`` is ``"." + this``.
PAID_PART_CLASS = "wkp-paywalled"
CSS_SELECTOR = f".{PAID_PART_CLASS}"
#: As ``django.utils.html.json_script`` escapes: the JSON can never close the script element.
_JSON_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


def paid_part_open_tag() -> str:
    return f'<div class="{PAID_PART_CLASS}">'


def _has_paywall(page: Any) -> bool:
    stream = getattr(page, getattr(page, "paywall_stream_field", "body"), None)
    if stream is None:
        return False
    if getattr(stream, "raw_data", None) is not None and getattr(stream, "stream_block", None) is not None:
        return paywall_index(stream) is not None  # from the stored types: nothing is converted
    return split_at_paywall(stream)[1] is not None


def article_data(page: Any, *, request: HttpRequest | None = None, extra: dict | None = None) -> dict:
    """The JSON-LD object for ``page`` (a Wagtail page with a StreamField holding the paywall)."""
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": getattr(page, "seo_title", "") or page.title,
    }
    url = page.get_full_url(request) if hasattr(page, "get_full_url") else None
    if url:
        data["url"] = url
        data["mainEntityOfPage"] = url
    description = getattr(page, "search_description", "")
    if description:
        data["description"] = description
    published = getattr(page, "first_published_at", None)
    if published:
        data["datePublished"] = published.isoformat()
    modified = getattr(page, "last_published_at", None) or published
    if modified:
        data["dateModified"] = modified.isoformat()
    if _has_paywall(page):
        data["isAccessibleForFree"] = False
        data["hasPart"] = {
            "@type": "WebPageElement",
            "isAccessibleForFree": False,
            "cssSelector": CSS_SELECTOR,
        }
    else:
        data["isAccessibleForFree"] = True
    for key, value in (extra or {}).items():
        if value in (None, ""):
            continue
        if key == "author" and isinstance(value, str):
            value = {"@type": "Person", "name": value}  # a byline, as templates have it
        data[key] = value
    return data


def json_ld_script(page: Any, *, request: HttpRequest | None = None, extra: dict | None = None) -> SafeString:
    """``<script type="application/ld+json">`` with :func:`article_data`; empty without a page.

    A data block, not a script: a Content-Security-Policy without ``'unsafe-inline'`` does not block it.
    """
    if page is None or not hasattr(page, "title"):
        return mark_safe("")
    text = json.dumps(article_data(page, request=request, extra=extra), cls=DjangoJSONEncoder)
    return format_html(
        '<script type="application/ld+json">{}</script>',
        mark_safe(text.translate(_JSON_ESCAPES)),  # noqa: S308 - escaped for a script element above
    )
