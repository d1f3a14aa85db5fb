"""Daily counts of readers who saw a paywall (the funnel's first stage)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class PaywallViewDay(models.Model):
    """How many readers saw a paywall on one day: one row per day, page, paywall, offer set and reader state.

    Written only by :func:`wagtail_klarna_paywall.newsroom.paywall_views.fold`, from the shared-cache
    counters the
    view beacon increments; never on a page render. ``views`` is absolute: a fold sets it from the
    counter's current value (``base_views`` + ``cache_count``), so folding twice changes nothing.
    ``base_views`` keeps what was counted before the cache lost a counter (``cache_epoch`` changed, or the
    count went down), so a lost cache costs only what had not been folded yet. No reader is identified.
    """

    day = models.DateField(_("day"), db_index=True)
    page = models.ForeignKey(
        "wagtailcore.Page",
        verbose_name=_("article"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    paywall_id = models.CharField(_("paywall block"), max_length=64)
    #: A digest of the sorted product codes shown (``offer_codes``), so the set fits a unique key.
    offer_set = models.CharField(max_length=64)
    offer_codes = models.JSONField(_("offers shown"), default=list)
    reader_state = models.CharField(_("reader state"), max_length=20)
    views = models.PositiveIntegerField(_("paywall views"), default=0)
    base_views = models.PositiveIntegerField(default=0)
    cache_epoch = models.CharField(max_length=32, blank=True)
    cache_count = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("paywall views per day")
        verbose_name_plural = _("paywall views per day")
        constraints = [
            models.UniqueConstraint(
                fields=["day", "page", "paywall_id", "offer_set", "reader_state"],
                name="wkp_one_view_row_per_day_page_paywall_offers_state",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} page {self.page_id} {self.reader_state}: {self.views}"
