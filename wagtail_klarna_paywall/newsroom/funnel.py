"""The purchase funnel and failure statistics: from paywall views to confirmations.

The first stage, paywall views, comes from :class:`PaywallViewDay` (readers who saw a paywall, once per
reader, page and day; see ``paywall_views``), over the whole local days of the period. Every later stage
counts *distinct attempts* that reached it within the period: by the time of their :class:`PurchaseEvent`
(buy clicks, sessions, authorizations), so a reader who clicks Buy twice on the same open attempt, or
whose session is reused, counts once; or by the attempt's own time of a milestone (orders placed,
confirmations: ``models.MILESTONES``), which each attempt reaches once. That keeps each rate after the
buy click between 0 and 100 %. Views and buy clicks are counted differently (a reader who runs no
JavaScript buys without a counted view), so the rate from views to buy clicks is an estimate, and can
exceed 100 % on a page with very few views.

Per offer, a view counts for every offer the paywall showed; per article, for the page it was on.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from dataclasses import dataclass, field

from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from wagtail.models import Page

from ..messages import MESSAGES
from ..models import (
    MILESTONES,
    AttemptState,
    EventKind,
    LoginFailure,
    PaywallViewDay,
    PurchaseAttempt,
    PurchaseEvent,
)


@dataclass(frozen=True)
class Stage:
    key: str
    label: str
    #: The events that count, or none for a milestone stage.
    kinds: tuple[str, ...] = ()
    #: The attempt's field of a milestone (``models.MILESTONES``), or "" for an event stage.
    milestone: str = ""


_MILESTONE_FIELDS = dict(MILESTONES)

#: The funnel, in order. Sessions count created and reused ones alike: both put the Klarna widget in front
#: of the reader.
STAGES: tuple[Stage, ...] = (
    Stage("buy", _("Buy clicks"), (EventKind.BUY,)),
    Stage("session", _("Sessions"), (EventKind.SESSION_CREATED, EventKind.SESSION_REUSED)),
    Stage("authorized", _("Authorizations"), (EventKind.AUTHORIZED,)),
    Stage("placed", _("Orders placed"), milestone=_MILESTONE_FIELDS[AttemptState.PLACED]),
    Stage("confirmed", _("Confirmations"), milestone=_MILESTONE_FIELDS[AttemptState.CONFIRMED]),
)
_EVENT_STAGES = tuple(stage for stage in STAGES if stage.kinds)
_MILESTONE_STAGES = tuple(stage for stage in STAGES if stage.milestone)

#: The funnel's first stage: paywall views (from the daily table, not from events).
VIEW_STAGE = Stage("views", _("Paywall views"), ())
#: Every stage of the report, views first.
FUNNEL_STAGES: tuple[Stage, ...] = (VIEW_STAGE, *STAGES)

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
    def views(self) -> int:
        return self.counts.get(VIEW_STAGE.key, 0)

    @property
    def stages(self) -> list[dict]:
        """Each stage with its count and its rates (0..1, or None without a base): ``step_rate`` from the
        previous stage, ``overall_rate`` from the buy clicks (None for views), ``view_rate`` from views."""
        buys = self.counts.get(STAGES[0].key, 0)
        out = []
        previous = None
        for stage in FUNNEL_STAGES:
            count = self.counts.get(stage.key, 0)
            out.append(
                {
                    "key": stage.key,
                    "label": stage.label,
                    "count": count,
                    "step_rate": _rate(count, previous),
                    "overall_rate": None if stage is VIEW_STAGE else _rate(count, buys),
                    "view_rate": _rate(count, self.views),
                }
            )
            previous = count
        return out

    @property
    def conversion(self) -> float | None:
        """Confirmations per buy click."""
        return _rate(self.counts.get(STAGES[-1].key, 0), self.counts.get(STAGES[0].key, 0))

    @property
    def view_conversion(self) -> float | None:
        """Confirmations per paywall view."""
        return _rate(self.counts.get(STAGES[-1].key, 0), self.views)


def _rate(count: int, base: int | None) -> float | None:
    if not base:
        return None
    return count / base


def _within(field: str, period: Period) -> Q:
    return Q(**{f"{field}__gte": period.start, f"{field}__lt": period.end})


def _stage_counts(period: Period, by: str = "") -> dict:
    """Each stage's count of distinct attempts in ``period``: {group: {stage key: count}}, grouped by the
    attempt's field ``by`` (one group, ``None``, without it). Two queries: the events, the milestones."""
    kinds = [kind for stage in _EVENT_STAGES for kind in stage.kinds]
    events = PurchaseEvent.objects.filter(_within("created_at", period), kind__in=kinds)
    per_event = {
        stage.key: Count("attempt", filter=Q(kind__in=stage.kinds), distinct=True) for stage in _EVENT_STAGES
    }
    milestones = PurchaseAttempt.objects.filter(
        functools.reduce(operator.or_, (_within(stage.milestone, period) for stage in _MILESTONE_STAGES))
    ).order_by()
    per_milestone = {
        stage.key: Count("pk", filter=_within(stage.milestone, period)) for stage in _MILESTONE_STAGES
    }
    if not by:
        return {None: {**events.aggregate(**per_event), **milestones.aggregate(**per_milestone)}}
    counts: dict = {}
    for queryset, group, aggregates in (
        (events, f"attempt__{by}", per_event),
        (milestones, by, per_milestone),
    ):
        for row in queryset.values(group).annotate(**aggregates):
            counts.setdefault(row.pop(group), {}).update(row)
    return counts


def _row(key: str, label: str, values: dict, views: int = 0) -> FunnelRow:
    counts = {VIEW_STAGE.key: views, **{stage.key: values.get(stage.key, 0) for stage in STAGES}}
    return FunnelRow(key=key, label=label, counts=counts)


def _days(period: Period) -> tuple[dt.date, dt.date]:
    """The local days the period touches (first, last), both included."""
    last = period.end - dt.timedelta(microseconds=1)
    return timezone.localdate(period.start), timezone.localdate(max(last, period.start))


def _view_rows(period: Period):
    first, last = _days(period)
    return PaywallViewDay.objects.filter(day__gte=first, day__lte=last)


def views_total(period: Period) -> int:
    return _view_rows(period).aggregate(total=Sum("views"))["total"] or 0


def views_by_offer(period: Period) -> dict[str, int]:
    """Views per product code: a view counts for every offer the paywall showed."""
    totals: dict[str, int] = {}
    for codes, views in _view_rows(period).values_list("offer_codes", "views"):
        for code in set(codes or ()):
            totals[code] = totals.get(code, 0) + views
    return totals


def views_by_page(period: Period) -> dict[int | None, int]:
    rows = _view_rows(period).values("page_id").annotate(total=Sum("views"))
    return {r["page_id"]: r["total"] or 0 for r in rows}


def _order(rows: list[FunnelRow]) -> list[FunnelRow]:
    """Most buy clicks first, then most views, then by key (stable for ties)."""
    return sorted(rows, key=lambda row: (-row.counts.get("buy", 0), -row.views, row.label, row.key))


def funnel_total(period: Period) -> FunnelRow:
    values = _stage_counts(period)[None]
    return _row("all", str(_("All offers")), values, views=views_total(period))


def funnel_by_offer(period: Period) -> list[FunnelRow]:
    """One row per product code (bought or only shown), most buy clicks first."""
    rows = _stage_counts(period, by="product_code")
    views = views_by_offer(period)
    codes = set(rows) | set(views)
    names = _product_names(codes)
    return _order(
        [
            _row(code, _offer_label(code, names.get(code, "")), rows.get(code, {}), views=views.get(code, 0))
            for code in codes
        ]
    )


def funnel_by_page(period: Period) -> list[FunnelRow]:
    """One row per article (the page the paywall was on), most buy clicks first."""

    rows = _stage_counts(period, by="page_id")
    views = views_by_page(period)
    page_ids = set(rows) | set(views)
    titles = dict(Page.objects.filter(pk__in=[pk for pk in page_ids if pk]).values_list("pk", "title"))
    return _order(
        [
            _row(
                str(page_id or ""),
                titles.get(page_id) or str(_("(deleted page)")),
                rows.get(page_id, {}),
                views=views.get(page_id, 0),
            )
            for page_id in page_ids
        ]
    )


def _product_names(codes: set[str]) -> dict[str, str]:

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
    message = MESSAGES.get(error_code)
    return str(message.title) if message is not None else error_code


def recent_errors(limit: int = 20) -> list:
    """The last ``limit`` error and security events (with their attempt) and refused logins (which have
    none), newest first."""

    events = list(
        PurchaseEvent.objects.filter(kind__in=(EventKind.ERROR, EventKind.SECURITY))
        .select_related("attempt")
        .order_by("-created_at", "-pk")[:limit]
    )
    logins = list(LoginFailure.objects.order_by("-created_at", "-pk")[:limit])
    return sorted(events + logins, key=lambda item: item.created_at, reverse=True)[:limit]
