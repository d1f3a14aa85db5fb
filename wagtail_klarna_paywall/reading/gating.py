"""Keep paywalled text away from readers without access: in the page, the API, search and feeds.

A paywall block is a cut point: everything after the first paywall block of a stream is for readers
holding one of the product codes the block opens for (``blocks.paywall_access_codes``: the editor's
``access_product_codes``, else the products its offers grant). Editors previewing a page always see
everything.

Where each channel is gated:

- **Page HTML**: the ``paywalled_stream`` template tag renders :func:`visible_children` only.
- **API v2**: ``APIField("body", serializer=PaywalledStreamFieldSerializer())`` cuts the stream the same way.
- **Search**: index ``index.SearchField("paywall_free_text")`` (from :class:`PaywalledPageMixin`) instead of
  the stream itself; the index is shared by every reader, so it only ever holds free text.
- **Feeds**: :func:`feed_description` gives the free text and a link, for every reader (feed readers carry
  no login).

Caching (the choice made here): a response is marked reader-dependent (:func:`mark_reader_dependent`)
whenever an access check ran for a logged-in reader. Only then does it get ``Cache-Control: private`` and
``Vary: Cookie``: from :class:`PaywalledPageMixin.serve` for pages (no settings needed), and from the
optional :class:`ReaderDependentCacheMiddleware` for everything else (API, feeds, custom views).
An anonymous reader's paywalled page is thus cacheable by a CDN, and nothing here touches the session
for a request without a session cookie.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.html import strip_tags
from django.utils.text import normalize_newlines
from rest_framework.fields import Field

from . import access

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

_FLAG = "_klarna_paywall_reader_dependent"


# -- the cut point -------------------------------------------------------------------------------


def _is_paywall(child: Any) -> bool:
    from ..blocks import PaywallBlock

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
    from ..blocks import PaywallBlock

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
    from ..blocks import paywall_access_codes

    return paywall_access_codes(getattr(paywall_child, "value", None) or {})


def is_preview(request: HttpRequest | None) -> bool:
    return bool(getattr(request, "is_preview", False))


def can_read_all(request: HttpRequest | None, stream: Iterable[Any]) -> bool:
    """True when ``request``'s reader may read the whole stream (no paywall, a preview, or access)."""
    _free, paywall, _rest = split_at_paywall(stream)
    if paywall is None or is_preview(request):
        return True
    if request is None:
        return False
    return access.reader_has_access(request, access_codes(paywall))


def visible_children(
    request: HttpRequest | None, stream: Iterable[Any]
) -> tuple[list[Any], Any | None, bool]:
    """What this reader may see: ``(children to render, paywall child to show or None, has_access)``.

    Without access: the free children and the paywall (the rest is never rendered). With access: every
    child except the paywall itself (a subscriber sees no offers).
    """
    free, paywall, rest = split_at_paywall(stream)
    if paywall is None:
        return free, None, True
    if can_read_all(request, [paywall]):
        return free + rest, None, True
    return free, paywall, False


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
    from django.utils.translation import gettext

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


# -- cache headers -------------------------------------------------------------------------------


def mark_reader_dependent(request: HttpRequest) -> None:
    """This request's response depends on who the reader is (a logged-in reader's access was checked)."""
    setattr(getattr(request, "_request", request), _FLAG, True)


def is_reader_dependent(request: HttpRequest) -> bool:
    return bool(getattr(getattr(request, "_request", request), _FLAG, False))


def apply_reader_cache_headers(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """``Cache-Control: private`` and ``Vary: Cookie`` on a reader-dependent response; nothing otherwise."""
    if is_reader_dependent(request):
        patch_vary_headers(response, ("Cookie",))
        patch_cache_control(response, private=True)
    return response


def with_reader_cache_headers(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Like :func:`apply_reader_cache_headers`, after a lazy TemplateResponse has rendered (that is when
    the access checks run)."""
    if callable(getattr(response, "add_post_render_callback", None)) and not response.is_rendered:
        response.add_post_render_callback(lambda rendered: apply_reader_cache_headers(request, rendered))
        return response
    return apply_reader_cache_headers(request, response)


class ReaderDependentCacheMiddleware:
    """Optional: reader cache headers on every response (API, feeds, custom views), not just pages.

    Add ``"wagtail_klarna_paywall.reading.gating.ReaderDependentCacheMiddleware"`` to ``MIDDLEWARE``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return apply_reader_cache_headers(request, self.get_response(request))


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
