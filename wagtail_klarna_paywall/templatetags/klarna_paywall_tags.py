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


def _reader_state(request: Any, paywall: Any) -> tuple[str, bool]:
    """(state, may read everything) for a real (non-preview) request."""
    from .. import access, gating

    if request is None:
        return ANONYMOUS, False
    if access.reader_has_access(request, gating.access_codes(paywall)):
        return SUBSCRIBER, True
    # The access check marks the request reader-dependent exactly when the reader is logged in.
    return (READER if gating.is_reader_dependent(request) else ANONYMOUS), False


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
    blocks after the cut are never rendered for them. Editors previewing the page see every block; the
    "anonymous", "reader" and "subscriber" preview modes show the page as those readers see it.
    """
    from ..blocks import split_at_paywall

    flat = context.flatten()
    request = flat.get("request")
    page = flat.get("page")
    free, paywall, gated = split_at_paywall(stream)
    if paywall is None:
        return mark_safe(_render(free, flat))  # noqa: S308 - Wagtail's own block rendering

    preview_mode = (
        getattr(request, PREVIEW_MODE_ATTR, None) if getattr(request, "is_preview", False) else None
    )
    if preview_mode == "":
        # The editor's view: everything, the paywall in place, so the cut is visible.
        return mark_safe(_render(free + [paywall] + gated, {**flat, "paywall_block_id": paywall.id}))  # noqa: S308
    if preview_mode in (ANONYMOUS, READER, SUBSCRIBER):
        state, can_read = preview_mode, preview_mode == SUBSCRIBER
    elif getattr(request, "is_preview", False):
        # A preview outside the paywall's preview modes (a page model without the mixin): never gate editors.
        state, can_read = SUBSCRIBER, True
    else:
        state, can_read = _reader_state(request, paywall)

    if can_read:
        return mark_safe(_render(free + gated, flat))  # noqa: S308
    paywall_context = {
        **flat,
        "paywall_block_id": paywall.id,
        "reader_state": state,
        "login_url": _login_url(request, page) if state == ANONYMOUS else "",
    }
    value = _without_owned_offers(paywall.value, request) if state == READER else paywall.value
    return mark_safe(_render(free, flat) + str(paywall.block.render(value, context=paywall_context)))  # noqa: S308
