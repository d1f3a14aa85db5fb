"""What every purchase-flow page shows besides its own content: the shared template context, the flow's
URLs, the summary of an attempt (checkout and confirmation) and the reader's log-in link.
"""

from __future__ import annotations

import datetime
import logging
import re
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from wagtail.models import Page

from ..conf import paywall_settings
from ..login.identity import get_identity_provider
from ..models import PurchaseAttempt
from ..newsroom import analytics
from . import attempts
from .readers import site_of

# Logged on the views' channel: this is part of their request layer.
logger = logging.getLogger("wagtail_klarna_paywall.purchase.views")


def context(request: HttpRequest, page: Page, **extra: Any) -> dict[str, Any]:
    """The template context of a flow page: the page's own, the site's test mode, analytics and contact
    line, and ``extra``."""
    values = page.get_context(request)
    settings_obj = attempts.site_settings(request=request)
    values.update(
        paywall_test_mode=settings_obj.test_mode or not paywall_settings.is_production,
        paywall_analytics=settings_obj.analytics_events,
        analytics_currency=analytics.CURRENCY,
        purchase_page=page,
        # The site's contact line under every reader message (includes/message.html); blank shows none.
        customer_service=settings_obj.customer_service,
    )
    values.update(extra)
    return values


def page_url(page: Page, request: HttpRequest) -> str:
    return page.get_url(request) or "/"


def subpage_url(page: Page, request: HttpRequest, name: str, **kwargs: Any) -> str:
    base = page_url(page, request).rstrip("/") + "/"
    return base + page.reverse_subpage(name, kwargs=kwargs or None)


def checkout_url(page: Page, request: HttpRequest, attempt: PurchaseAttempt) -> str:
    return subpage_url(page, request, "checkout", reference=attempt.reference)


@dataclass(frozen=True)
class AttemptSummary:
    """What the checkout and confirmation show of an attempt: the editor's label and selling points from
    the offer the reader chose, with the product, price and period the attempt stored (what is charged)."""

    product_name: str
    price: Any
    price_period: str
    is_trial: bool
    label: str = ""
    selling_points: tuple[str, ...] = ()
    #: The last day of a free trial counted in days or weeks from when it starts (months vary in length).
    trial_ends: datetime.date | None = None


_TRIAL_LENGTH_RE = re.compile(r"^(?:(\d{1,4}) )?(day|week)s?$")


def _trial_end(attempt: PurchaseAttempt) -> datetime.date | None:
    match = _TRIAL_LENGTH_RE.match((attempt.price_period or "").strip())
    if not attempt.is_trial or attempt.price or not match:
        return None
    days = int(match.group(1) or 1) * (7 if match.group(2) == "week" else 1)
    start = timezone.localdate(attempt.placed_at) if attempt.placed_at else timezone.localdate()
    return start + datetime.timedelta(days=days)


def attempt_summary(attempt: PurchaseAttempt) -> AttemptSummary:
    """The attempt's summary: the offer as the reader chose it (its label and selling points were copied
    onto the attempt then), with the product, price and period the attempt stored."""
    return AttemptSummary(
        product_name=attempt.product_name,
        price=attempt.price,
        price_period=attempt.price_period,
        is_trial=attempt.is_trial,
        label=attempt.offer_label,
        selling_points=tuple(attempt.selling_points or ()),
        trial_ends=_trial_end(attempt),
    )


def article_url(page: Page | None, request: HttpRequest) -> str:
    """The URL of a live article (or other page holding an offer), or ''. ``page`` may hold no more than
    ``attempts.ARTICLE_ROUTE_FIELDS``: its specific row is read only when its type makes its own URLs."""
    if page is None or not page.live:
        return ""
    model = page.specific_class
    if model is not None and model.get_url_parts is Page.get_url_parts and model.get_url is Page.get_url:
        return page.get_url(request) or ""
    # Its own URLs (a headless route, say): from its own type, whose row is read if this one is partial.
    specific = page.specific if page.get_deferred_fields() else page.specific_deferred
    return specific.get_url(request) or ""


def home_url(request: HttpRequest, page: Page) -> str:
    site = site_of(request, page)
    root = site.root_page if site is not None else None
    return (root.get_url(request) if root is not None else None) or "/"


def reader_login_url(request: HttpRequest, next_url: str) -> str:
    """The site's Payway login, returning to ``next_url``; "" when no identity provider can give one."""
    provider = get_identity_provider()
    if provider is None:
        return ""
    try:
        return provider.login_url(request, next_url) or ""
    except Exception:  # a failing provider must not take the confirmation page down
        logger.warning(
            "No log-in link for the confirmation page: the identity provider failed", exc_info=True
        )
        return ""
