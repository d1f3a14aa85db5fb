"""Responses that depend on who the reader is: marking them, and their cache headers.

A response is marked reader-dependent (:func:`mark_reader_dependent`) whenever an access check ran for a
logged-in reader, or read a purchase grant from the browser's session. Only then does it get
``Cache-Control: private`` and ``Vary: Cookie``: from :class:`~.gating.PaywalledPageMixin` for pages (no
settings needed), and from the optional :class:`ReaderDependentCacheMiddleware` for everything else (API,
feeds, custom views). An anonymous reader's paywalled page thus stays cacheable by a CDN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from django.utils.cache import patch_cache_control, patch_vary_headers

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

_FLAG = "_klarna_paywall_reader_dependent"


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

    Add ``"wagtail_klarna_paywall.reading.cache_headers.ReaderDependentCacheMiddleware"`` to ``MIDDLEWARE``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return apply_reader_cache_headers(request, self.get_response(request))
