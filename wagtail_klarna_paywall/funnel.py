"""The purchase funnel and failure statistics: plain queries over :class:`PurchaseEvent`.

Every stage counts *distinct attempts* that reached it within the period (by the time of the event), so a
reader who clicks Buy twice on the same open attempt, or whose session is reused, counts once. That keeps
each conversion rate between 0 and 100 %.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import EventKind, PurchaseEvent


@dataclass(frozen=True)
class Stage:
    key: str
    label: str
    kinds: tuple[str, ...]


#: The funnel, in order. Sessions count created and reused ones alike: both put the Klarna widget in front
#: of the reader.
STAGES: tuple[Stage, ...] = (
    Stage("buy", _("Buy clicks"), (EventKind.BUY,)),
    Stage("session", _("Sessions"), (EventKind.SESSION_CREATED, EventKind.SESSION_REUSED)),
    Stage("authorized", _("Authorizations"), (EventKind.AUTHORIZED,)),
    Stage("placed", _("Orders placed"), (EventKind.PLACED,)),
    Stage("confirmed", _("Confirmations"), (EventKind.CONFIRMED,)),
)

#: Event kinds whose ``error_code`` counts as a failure reason.
FAILURE_KINDS = (EventKind.ERROR, EventKind.DECLINED, EventKind.SECURITY)

#: Choices for the period selector: days back from now.
PERIOD_CHOICES = (7, 30, 90)


@dataclass(frozen=True)
class Period:
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def last_days(cls, days: int, now: dt.datetime | None = None) -> Period:
        now = now or timezone.now()
        return cls(start=now - dt.timedelta(days=days), end=now)

    @classmethod
    def from_dates(cls, first: dt.date, last: dt.date) -> Period:
        """Whole local days from ``first`` to ``last``, both included."""
        tz = timezone.get_current_timezone()
        start = dt.datetime.combine(first, dt.time.min, tzinfo=tz)
        end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
        return cls(start=start, end=end)


@dataclass
class FunnelRow:
    """One line of the funnel: a group (an offer, an article, or everything) and its stage counts."""

    key: str
    label: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def stages(self) -> list[dict]:
        """Each stage with its count, its rate from the previous stage and from the first (0..1 or None)."""
        first = self.counts.get(STAGES[0].key, 0)
        out = []
        previous = None
        for stage in STAGES:
            count = self.counts.get(stage.key, 0)
            out.append(
                {
                    "key": stage.key,
                    "label": stage.label,
                    "count": count,
                    "step_rate": _rate(count, previous),
                    "overall_rate": _rate(count, first),
                }
            )
            previous = count
        return out

    @property
    def conversion(self) -> float | None:
        """Confirmations per buy click."""
        return _rate(self.counts.get(STAGES[-1].key, 0), self.counts.get(STAGES[0].key, 0))


def _rate(count: int, base: int | None) -> float | None:
    if not base:
        return None
    return count / base


def _stage_aggregates() -> dict[str, Count]:
    return {stage.key: Count("attempt", filter=Q(kind__in=stage.kinds), distinct=True) for stage in STAGES}


def _events(period: Period):
    kinds = [kind for stage in STAGES for kind in stage.kinds]
    return PurchaseEvent.objects.filter(
        created_at__gte=period.start, created_at__lt=period.end, kind__in=kinds
    )


def _row(key: str, label: str, values: dict) -> FunnelRow:
    return FunnelRow(key=key, label=label, counts={stage.key: values[stage.key] for stage in STAGES})


def funnel_total(period: Period) -> FunnelRow:
    values = _events(period).aggregate(**_stage_aggregates())
    return _row("all", str(_("All offers")), values)


def funnel_by_offer(period: Period) -> list[FunnelRow]:
    """One row per product code, most buy clicks first."""
    rows = (
        _events(period)
        .values("attempt__product_code")
        .annotate(**_stage_aggregates())
        .order_by("-buy", "attempt__product_code")
    )
    names = _product_names({r["attempt__product_code"] for r in rows})
    return [
        _row(
            r["attempt__product_code"],
            _offer_label(r["attempt__product_code"], names.get(r["attempt__product_code"], "")),
            r,
        )
        for r in rows
    ]


def funnel_by_page(period: Period) -> list[FunnelRow]:
    """One row per article (the page the paywall was on), most buy clicks first."""
    rows = (
        _events(period)
        .values("attempt__page_id", "attempt__page__title")
        .annotate(**_stage_aggregates())
        .order_by("-buy", "attempt__page__title")
    )
    return [
        _row(
            str(r["attempt__page_id"] or ""),
            r["attempt__page__title"] or str(_("(deleted page)")),
            r,
        )
        for r in rows
    ]


def _product_names(codes: set[str]) -> dict[str, str]:
    from .models import PurchaseAttempt

    names: dict[str, str] = {}
    qs = (
        PurchaseAttempt.objects.filter(product_code__in=codes)
        .exclude(product_name="")
        .order_by("product_code", "-created_at")
        .values_list("product_code", "product_name")
    )
    for code, name in qs:
        names.setdefault(code, name)
    return names


def _offer_label(code: str, name: str) -> str:
    return f"{name} ({code})" if name else code


@dataclass(frozen=True)
class FailureReason:
    error_code: str
    count: int
    title: str


def top_failure_reasons(period: Period, limit: int = 10) -> list[FailureReason]:
    """The most frequent error codes of failed, declined and refused steps in the period."""
    rows = (
        PurchaseEvent.objects.filter(
            created_at__gte=period.start, created_at__lt=period.end, kind__in=FAILURE_KINDS
        )
        .exclude(error_code="")
        .values("error_code")
        .annotate(count=Count("pk"))
        .order_by("-count", "error_code")[:limit]
    )
    return [FailureReason(r["error_code"], r["count"], reason_title(r["error_code"])) for r in rows]


def reason_title(error_code: str) -> str:
    """The reader-message title for ``error_code``, or the code itself when there is none.

    ``messages`` belongs to the purchase flow; the funnel must keep working with or without it. Its
    generic fallback message is not used here: an operator needs to see which code it was.
    """
    try:
        from .messages import MESSAGES
    except ImportError:
        return error_code
    message = MESSAGES.get(error_code)
    return str(message.title) if message is not None else error_code


def recent_errors(limit: int = 20) -> list:
    """The last ``limit`` error and security events (with their attempt) and refused logins (which have
    none), newest first."""
    from .models import LoginFailure

    events = list(
        PurchaseEvent.objects.filter(kind__in=(EventKind.ERROR, EventKind.SECURITY))
        .select_related("attempt")
        .order_by("-created_at", "-pk")[:limit]
    )
    logins = list(LoginFailure.objects.order_by("-created_at", "-pk")[:limit])
    return sorted(events + logins, key=lambda item: item.created_at, reverse=True)[:limit]
