"""Template tags of the paywall: ``{% load klarna_paywall_tags %}``.

Rendering only: who may read past the paywall is :func:`~wagtail_klarna_paywall.reading.access.reading`'s
decision; the tag asks it, renders what it allows, and takes the paywall's HTML from the render cache.
"""

from __future__ import annotations

import logging
from typing import Any

from django import template
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe
from wagtail.blocks.list_block import ListValue
from wagtail.blocks.struct_block import StructValue

from ..blocks import offer_from_value, paywall_access_codes
from ..login.identity import get_identity_provider
from ..newsroom.paywall_views import tracking
from ..periods import period_duration, period_label
from ..reading import access, gating, render_cache
from ..reading.access import ANONYMOUS, GRANTED, SUBSCRIBER
from ..reading.structured_data import json_ld_script, paid_part_open_tag

register = template.Library()
logger = logging.getLogger(__name__)


def _render(children: list[Any], context: dict[str, Any]) -> str:
    return "".join(str(child.render_as_block(context=context)) for child in children)


def _paid(html: str) -> str:
    """The paid part in its wrapper: the element the page's JSON-LD names (see ``structured_data``).

    For readers with access it holds the paywalled blocks; for readers without, the paywall that stands
    in their place (the paid text itself is never rendered for them).
    """
    return f"{paid_part_open_tag()}{html}</div>"


def _login_url(request: Any, page: Any) -> str:
    """The reader's log-in link, or "" when no identity provider can give one (the link is then hidden)."""
    if request is None:
        return ""
    # A wrong IDENTITY_PROVIDER raises here as everywhere else (reported at startup: check E014).
    provider = get_identity_provider()
    if provider is None:
        return ""
    try:
        next_url = page.get_url(request=request) if page is not None else request.get_full_path()
        return provider.login_url(request, next_url or "/") or ""
    except Exception:  # a failing provider must not take the article down with it
        logger.warning("No log-in link for the paywall: the identity provider failed", exc_info=True)
        return ""


def _grant_notice(request: Any, flat: dict[str, Any], codes: tuple[str, ...]) -> str:
    """A line above the paid text for a reader who reads through a purchase made in this browser: how
    to read on other devices. Nothing for a logged-in reader (their login already works everywhere)."""
    decision = access.reader_access(request)
    grant = decision.grant_for(codes)
    if grant is None or decision.logged_in:
        return ""
    context = {"grant": grant, "login_url": _login_url(request, flat.get("page"))}
    return render_to_string("wagtail_klarna_paywall/includes/grant_notice.html", context, request=None)


def _render_read(
    request: Any, flat: dict[str, Any], free: list[Any], gated: list[Any], state: str, codes: tuple[str, ...]
) -> SafeString:
    """The whole stream for a reader with access, with the grant notice at the cut when they read
    through a grant."""
    notice = _grant_notice(request, flat, codes) if state == GRANTED else ""
    return mark_safe(_render(free, flat) + notice + _paid(_render(gated, flat)))  # noqa: S308


def _raw_items(raw_value: dict[str, Any], name: str) -> list[Any]:
    """The items of a ListBlock child in a stored StructBlock value, without converting anything.

    Stored lists come in Wagtail's block format (``{"type": "item", "value": ..., "id": ...}``, told
    apart the way ``ListBlock._item_is_in_block_format`` does) or, from older saves, as bare values.
    Converting with ``to_python`` would cost more than the rest of a cached paywall's render.
    """
    items = raw_value.get(name) or []
    return [
        item["value"]
        if isinstance(item, dict) and item.get("type") == "item" and "id" in item and "value" in item
        else item
        for item in items
    ]


def _without_owned_offers(value: Any, request: Any) -> Any:
    """The paywall's value without the offers whose product the reader already holds (a subscription, or
    a purchase made in this browser)."""
    if not access.owned_product_codes(request):
        return value
    offers = value["offers"]
    kept = [
        item
        for item in offers.bound_blocks
        if not access.offer_is_owned(request, offer_from_value("", item.value, paywall=value))
    ]
    if len(kept) == len(offers.bound_blocks):
        return value
    kept_offers = ListValue(offers.list_block, bound_blocks=kept)
    return StructValue(
        value.block, [(name, kept_offers if name == "offers" else v) for name, v in value.items()]
    )


@register.filter
def paywall_period(value: Any) -> str:
    """An offer's stored period ("month", "3 month") in the reader's language."""
    return period_label(value)


@register.filter
def paywall_duration(value: Any) -> str:
    """An offer's stored period as a counted length ("1 month", "14 days") in the reader's language."""
    return period_duration(value)


@register.simple_tag(takes_context=True)
def paywalled_stream(context: template.Context, stream: Any) -> SafeString:
    """Render a StreamField up to its first paywall block, and the rest only for readers with access.

    Readers without access get the free blocks and the paywall (heading, teaser, one buy form per offer);
    blocks after the cut are never rendered for them, nor converted from their stored form. Editors
    previewing the page see every block; the "anonymous", "reader" and "subscriber" preview modes show the
    page as those readers see it. Outside previews the paywall's HTML comes from :mod:`..render_cache`.
    """
    flat = context.flatten()
    request = flat.get("request")
    page = flat.get("page")
    index = gating.paywall_index(stream)
    if index is None:
        # No paywall, or a plain list of children rather than a StreamValue: find the cut by iterating.
        free, paywall, gated = gating.split_at_paywall(stream)
        if paywall is None:
            return mark_safe(_render(free, flat))  # noqa: S308 - Wagtail's own block rendering
        return _render_cut(request, flat, free, paywall, gated)

    free = [stream[i] for i in range(index)]
    if getattr(request, "is_preview", False):
        paywall, gated = stream[index], [stream[i] for i in range(index + 1, len(stream))]
        return _render_cut(request, flat, free, paywall, gated)

    # A reader: decide from the stored value, so a cached paywall is never converted to Python.
    raw = stream.raw_data[index]
    raw_value = raw.get("value") or {}
    codes = paywall_access_codes(raw_value)
    verdict = access.reading(request, codes)
    state = verdict.state
    if verdict.reads:
        return _render_read(
            request, flat, free, [stream[i] for i in range(index + 1, len(stream))], state, codes
        )
    # The same decision as the purchase page and buy (access.offer_is_owned), read from the stored value:
    # a subscriber, or a browser that bought here, is not offered what it holds. For everyone else the
    # codes are empty and no offer is converted.
    if access.owned_product_codes(request) and any(
        access.offer_is_owned(request, offer_from_value("", offer))
        for offer in _raw_items(raw_value, "offers")
        if isinstance(offer, dict)
    ):
        # Some offers are hidden from this reader: markup about their holdings is never cached.
        return _render_cut(request, flat, free, stream[index], [], state=state)
    login_url = _login_url(request, page) if state == ANONYMOUS else ""

    def render(csrf_token: str) -> str:
        paywall = stream[index]
        paywall_context = {
            **flat,
            "csrf_token": csrf_token,
            "paywall_block_id": paywall.id,
            "reader_state": state,
            "login_url": login_url,
        }
        return str(paywall.block.render(paywall.value, context=paywall_context))

    html = render_cache.paywall_html(
        request=request,
        page=page,
        raw_block=raw,
        state=state,
        login_url=login_url,
        utm_source=flat.get("utm_source"),
        render=render,
    )
    return mark_safe(_render(free, flat) + _paid(html))  # noqa: S308


def _preview_cut_marker() -> str:
    """Shown in previews only, where the paywall cuts the stream (editors asked where readers stop)."""
    return render_to_string("wagtail_klarna_paywall/includes/preview_cut.html")


def _render_cut(
    request: Any, flat: dict[str, Any], free: list[Any], paywall: Any, gated: list[Any], state: str = ""
) -> SafeString:
    """Render a stream cut at ``paywall`` without the cache (previews, hidden offers, plain lists).

    ``state`` forces a reader without access in that state (offers hidden from a reader who holds them)."""
    page = flat.get("page")
    codes = gating.access_codes(paywall)
    verdict = access.reading(request, codes) if not state else access.Reading(state, False)
    preview_mode = verdict.preview_mode
    if preview_mode == "":
        # The editor's view: everything, the paywall in place and a marker where readers' text stops.
        context = {**flat, "paywall_block_id": paywall.id}
        html = _render(free + [paywall], context) + _preview_cut_marker() + _paid(_render(gated, context))
        return mark_safe(html)  # noqa: S308 - Wagtail's own block rendering
    state, can_read = verdict.state, verdict.reads
    if can_read and preview_mode == SUBSCRIBER:
        # A subscriber sees no paywall; the editor previewing as one still sees where it would cut.
        return mark_safe(_render(free, flat) + _preview_cut_marker() + _paid(_render(gated, flat)))  # noqa: S308
    if can_read:
        return _render_read(request, flat, free, gated, state, codes)
    paywall_context = {
        **flat,
        "paywall_block_id": paywall.id,
        "reader_state": state,
        "login_url": _login_url(request, page) if state == ANONYMOUS else "",
    }
    value = _without_owned_offers(paywall.value, request)
    html = str(paywall.block.render(value, context=paywall_context))
    return mark_safe(_render(free, flat) + _paid(html))  # noqa: S308


@register.simple_tag(takes_context=True)
def paywall_json_ld(context: template.Context, page: Any = None, **extra: Any) -> SafeString:
    """The page's ``NewsArticle`` JSON-LD, saying which part is paywalled; see :mod:`..structured_data`.

    ``{% paywall_json_ld page %}`` in the page's ``<head>``; keyword arguments (``author=…``,
    ``image=…``) are added to the object.
    """
    page = page if page is not None else context.get("page")
    return json_ld_script(page, request=context.get("request"), extra=extra)


@register.simple_tag(takes_context=True)
def paywall_tracking(context: template.Context) -> dict[str, Any]:
    """What the paywall's static script needs: the view beacon's URL and the analytics switch."""
    return tracking(context.get("request"))
