"""Template tags of the paywall: ``{% load klarna_paywall_tags %}``."""

from __future__ import annotations

import logging
from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe

register = template.Library()
logger = logging.getLogger(__name__)

#: Reader states the paywall template knows (and preview modes simulate).
ANONYMOUS, READER, SUBSCRIBER = "anonymous", "reader", "subscriber"
#: Request attribute set by ``PaywallPreviewMixin.serve_preview``: "" (editor: everything) or a state.
PREVIEW_MODE_ATTR = "klarna_paywall_preview_mode"


def _render(children: list[Any], context: dict[str, Any]) -> str:
    return "".join(str(child.render_as_block(context=context)) for child in children)


def _paid(html: str) -> str:
    """The paid part in its wrapper: the element the page's JSON-LD names (see ``structured_data``).

    For readers with access it holds the paywalled blocks; for readers without, the paywall that stands
    in their place (the paid text itself is never rendered for them).
    """
    from ..structured_data import paid_part_open_tag

    return f"{paid_part_open_tag()}{html}</div>"


def _login_url(request: Any, page: Any) -> str:
    """The reader's log-in link, or "" when no identity provider can give one (the link is then hidden)."""
    if request is None:
        return ""
    try:
        from ..identity import get_identity_provider

        next_url = page.get_url(request=request) if page is not None else request.get_full_path()
        return get_identity_provider().login_url(request, next_url or "/") or ""
    except Exception:  # a missing or failing provider must not take the article down with it
        logger.warning("No log-in link for the paywall: the identity provider failed", exc_info=True)
        return ""


def _reader_state(request: Any, codes: tuple[str, ...]) -> tuple[str, bool]:
    """(state, may read everything) for a real (non-preview) request, given the paywall's access codes."""
    from .. import access, gating

    if request is None:
        return ANONYMOUS, False
    if access.reader_has_access(request, codes):
        return SUBSCRIBER, True
    # The access check marks the request reader-dependent exactly when the reader is logged in.
    return (READER if gating.is_reader_dependent(request) else ANONYMOUS), False


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
    """The paywall's value without the offers whose product the logged-in reader already holds."""
    from wagtail.blocks.list_block import ListValue
    from wagtail.blocks.struct_block import StructValue

    from .. import access

    owned = access.owned_product_codes(request)
    offers = value["offers"]
    kept = [item for item in offers.bound_blocks if item.value.get("product_code") not in owned]
    if not owned or len(kept) == len(offers.bound_blocks):
        return value
    kept_offers = ListValue(offers.list_block, bound_blocks=kept)
    return StructValue(
        value.block, [(name, kept_offers if name == "offers" else v) for name, v in value.items()]
    )


@register.simple_tag(takes_context=True)
def paywalled_stream(context: template.Context, stream: Any) -> SafeString:
    """Render a StreamField up to its first paywall block, and the rest only for readers with access.

    Readers without access get the free blocks and the paywall (heading, teaser, one buy form per offer);
    blocks after the cut are never rendered for them, nor converted from their stored form. Editors
    previewing the page see every block; the "anonymous", "reader" and "subscriber" preview modes show the
    page as those readers see it. Outside previews the paywall's HTML comes from :mod:`..render_cache`.
    """
    from .. import gating

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
    codes = tuple(
        code for code in _raw_items(raw_value, "access_product_codes") if isinstance(code, str) and code
    )
    state, can_read = _reader_state(request, codes)
    if can_read:
        gated = [stream[i] for i in range(index + 1, len(stream))]
        return mark_safe(_render(free, flat) + _paid(_render(gated, flat)))  # noqa: S308
    if state == READER:
        from .. import access

        owned = access.owned_product_codes(request)
        offered = {
            offer.get("product_code") for offer in _raw_items(raw_value, "offers") if isinstance(offer, dict)
        }
        if owned and owned & offered:
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

    from .. import render_cache

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


def _render_cut(
    request: Any, flat: dict[str, Any], free: list[Any], paywall: Any, gated: list[Any], state: str = ""
) -> SafeString:
    """Render a stream cut at ``paywall`` without the cache (previews, hidden offers, plain lists)."""
    from .. import gating

    page = flat.get("page")
    preview_mode = (
        getattr(request, PREVIEW_MODE_ATTR, None) if getattr(request, "is_preview", False) else None
    )
    if preview_mode == "":
        # The editor's view: everything, the paywall in place, so the cut is visible.
        context = {**flat, "paywall_block_id": paywall.id}
        return mark_safe(_render(free + [paywall], context) + _paid(_render(gated, context)))  # noqa: S308
    if state:
        can_read = False
    elif preview_mode in (ANONYMOUS, READER, SUBSCRIBER):
        state, can_read = preview_mode, preview_mode == SUBSCRIBER
    elif getattr(request, "is_preview", False):
        # A preview outside the paywall's preview modes (a page model without the mixin): never gate editors.
        state, can_read = SUBSCRIBER, True
    else:
        state, can_read = _reader_state(request, gating.access_codes(paywall))

    if can_read:
        return mark_safe(_render(free, flat) + _paid(_render(gated, flat)))  # noqa: S308
    paywall_context = {
        **flat,
        "paywall_block_id": paywall.id,
        "reader_state": state,
        "login_url": _login_url(request, page) if state == ANONYMOUS else "",
    }
    value = _without_owned_offers(paywall.value, request) if state == READER else paywall.value
    html = str(paywall.block.render(value, context=paywall_context))
    return mark_safe(_render(free, flat) + _paid(html))  # noqa: S308


@register.simple_tag(takes_context=True)
def paywall_json_ld(context: template.Context, page: Any = None, **extra: Any) -> SafeString:
    """The page's ``NewsArticle`` JSON-LD, saying which part is paywalled; see :mod:`..structured_data`.

    ``{% paywall_json_ld page %}`` in the page's ``<head>``; keyword arguments (``author=…``,
    ``image=…``) are added to the object.
    """
    from ..structured_data import json_ld_script

    page = page if page is not None else context.get("page")
    return json_ld_script(page, request=context.get("request"), extra=extra)


@register.simple_tag(takes_context=True)
def paywall_tracking(context: template.Context) -> dict[str, Any]:
    """What the paywall's static script needs: the view beacon's URL and the analytics switch."""
    from ..paywall_views import tracking

    return tracking(context.get("request"))
