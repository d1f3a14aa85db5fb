"""Keep paywalled text away from readers without access: in the page, the API, search and feeds.

A paywall block is a cut point: everything after the first paywall block of a stream is for readers
holding one of the product codes the block opens for (``blocks.paywall_access_codes``: the editor's
``access_product_codes``, else the products its offers grant). Who may read past it is decided by
:func:`.access.reading` alone; this module finds the cut and applies that decision to each channel.

Where each channel is gated:

- **Page HTML**: the ``paywalled_stream`` template tag cuts at :func:`paywall_index` and asks
  :func:`.access.reading` (it also renders, and caches the paywall's HTML: :mod:`.render_cache`).
- **API v2**: ``APIField("body", serializer=PaywalledStreamFieldSerializer())`` cuts the stream the same way.
- **Search**: index ``index.SearchField("paywall_free_text")`` (from :class:`PaywalledPageMixin`) instead of
  the stream itself; the index is shared by every reader, so it only ever holds free text.
- **Feeds**: :func:`feed_description` gives the free text and a link, for every reader (feed readers carry
  no login).

Caching: a response whose access check depended on the reader gets ``Cache-Control: private`` and
``Vary: Cookie`` (:mod:`.cache_headers`; :class:`PaywalledPageMixin.serve` applies them to pages). An
anonymous reader's paywalled page is thus cacheable by a CDN, and nothing here touches the session for a
request without a session cookie.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.utils.html import strip_tags
from django.utils.text import normalize_newlines
from django.utils.translation import gettext
from rest_framework.fields import Field

from ..blocks import PaywallBlock, paywall_access_codes
from . import access
from .cache_headers import with_reader_cache_headers

if TYPE_CHECKING:
    from django.http import HttpRequest


# -- the cut point -------------------------------------------------------------------------------


def _is_paywall(child: Any) -> bool:
    return isinstance(getattr(child, "block", None), PaywallBlock)


def paywall_index(stream: Any) -> int | None:
    """Position of the first paywall block in a StreamValue, read from its stored (raw) data.

    Wagtail converts a StreamValue's children to Python lazily, one block type at a time. Finding the cut
    from the block type names alone means blocks nobody will render are never converted: above all the
    paywall itself, whose page choosers query the database, on a page whose paywall HTML is cached.
    Returns None when there is no paywall, or when ``stream`` is not a StreamValue (a plain list).
    """
    raw_data = getattr(stream, "raw_data", None)
    stream_block = getattr(stream, "stream_block", None)
    if raw_data is None or stream_block is None:
        return None
    child_blocks = stream_block.child_blocks
    for index, item in enumerate(raw_data):
        if isinstance(child_blocks.get(item.get("type")), PaywallBlock):
            return index
    return None


def split_at_paywall(stream: Iterable[Any]) -> tuple[list[Any], Any | None, list[Any]]:
    """``(free children, first paywall child or None, paywalled children)`` of a StreamValue."""
    if getattr(stream, "raw_data", None) is not None and getattr(stream, "stream_block", None) is not None:
        index = paywall_index(stream)
        if index is None:
            return list(stream), None, []
        return (
            [stream[i] for i in range(index)],
            stream[index],
            [stream[i] for i in range(index + 1, len(stream))],
        )
    free: list[Any] = []
    children = list(stream or ())
    for index, child in enumerate(children):
        if _is_paywall(child):
            return free, child, children[index + 1 :]
        free.append(child)
    return free, None, []


def access_codes(paywall_child: Any) -> tuple[str, ...]:
    return paywall_access_codes(getattr(paywall_child, "value", None) or {})


def can_read_all(request: HttpRequest | None, stream: Iterable[Any]) -> bool:
    """True when ``request``'s reader may read the whole stream (no paywall, or :func:`.access.reading`
    says they read past it)."""
    _free, paywall, _rest = split_at_paywall(stream)
    if paywall is None:
        return True
    return access.reading(request, access_codes(paywall)).reads


# -- search and feeds ----------------------------------------------------------------------------


def _child_text(child: Any) -> str:
    if _is_paywall(child):
        value = child.value
        teaser = value.get("teaser")
        parts = [value.get("heading") or "", getattr(teaser, "source", None) or str(teaser or "")]
    else:
        parts = [str(part) for part in child.block.get_searchable_content(child.value)]
    return " ".join(strip_tags(part).strip() for part in parts if part and strip_tags(part).strip())


def free_text(stream: Iterable[Any]) -> str:
    """Plain text a reader without access may see: the free blocks, and the paywall's heading and teaser."""
    free, paywall, _rest = split_at_paywall(stream)
    children = free + ([paywall] if paywall is not None else [])
    return normalize_newlines("\n".join(text for text in map(_child_text, children) if text))


def feed_description(page: Any, *, field_name: str | None = None, request: HttpRequest | None = None) -> str:
    """A feed item's text: the page's free text and a link to read on (never the paywalled text)."""
    stream = getattr(page, field_name or _stream_field_name(page))
    url = page.get_full_url(request) or ""
    text = free_text(stream)
    return f"{text}\n\n{gettext('Read more:')} {url}".strip() if url else text


def _stream_field_name(page: Any) -> str:
    return getattr(page, "paywall_stream_field", "body")


# -- the API -------------------------------------------------------------------------------------


class PaywalledStreamFieldSerializer(Field):
    """Wagtail API v2 serializer for a StreamField that stops after the paywall for readers without access.

    Use as ``APIField("body", serializer=PaywalledStreamFieldSerializer())``. A reader without access gets
    the free blocks and the paywall block; the response is marked reader-dependent when a logged-in
    reader's access was checked. (Built on DRF's ``Field`` like Wagtail's own StreamField serializer, whose
    module cannot be imported while models load.)
    """

    def to_representation(self, value):
        # DRF wraps the HttpRequest; checks and the reader-dependent flag belong on the HttpRequest that
        # the middleware and SessionMiddleware see.
        request = self.context.get("request")
        request = getattr(request, "_request", request)
        free, paywall, _rest = split_at_paywall(value)
        children = value if paywall is None or can_read_all(request, [paywall]) else [*free, paywall]
        return [
            {
                "type": child.block.name,
                "value": child.block.get_api_representation(child.value, context=self.context),
                "id": child.id,
            }
            for child in children
        ]


class PaywalledPageMixin:
    """Mix into a page model whose StreamField holds a paywall (before ``Page`` in the bases).

    - ``serve`` adds the reader cache headers once the template has rendered;
    - ``paywall_free_text`` is the text to index for search (``index.SearchField("paywall_free_text")``);
    - ``paywall_stream_field`` names the StreamField (default ``"body"``).
    """

    paywall_stream_field = "body"

    def serve(self, request, *args, **kwargs):
        response = super().serve(request, *args, **kwargs)
        return with_reader_cache_headers(request, response)

    def paywall_free_text(self) -> str:
        return free_text(getattr(self, self.paywall_stream_field))
