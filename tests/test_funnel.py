"""Funnel counts, conversion rates, failure reasons and the SVG chart geometry (issue 6)."""

from __future__ import annotations

import datetime as dt

import pytest
from freezegun import freeze_time
from wagtail.models import Page

from wagtail_klarna_paywall.models import (
    MILESTONES,
    EventKind,
    PaywallViewDay,
    PurchaseAttempt,
    PurchaseEvent,
)
from wagtail_klarna_paywall.newsroom import funnel
from wagtail_klarna_paywall.newsroom.reports import chart_bars

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.timezone.utc)
#: The funnel's steps: three kinds of event, then the two milestones, which are the attempt's own times.
MILESTONE_FIELDS = dict(MILESTONES).values()
FUNNEL_KINDS = [
    EventKind.BUY,
    EventKind.SESSION_CREATED,
    EventKind.AUTHORIZED,
    "placed_at",
    "confirmed_at",
]


def _attempt(code, page=None, name=""):
    n = PurchaseAttempt.objects.count()
    return PurchaseAttempt.objects.create(
        reader_key=f"anon:{n}",
        offer_key=f"offer-{n}",
        product_code=code,
        product_name=name,
        product_kind="package",
        page=page,
    )


def _events(attempt, kinds, *, at=NOW - dt.timedelta(days=1), **fields):
    """``attempt``'s events of ``kinds`` at ``at``; a milestone's field in ``kinds`` is set to ``at``."""
    for kind in kinds:
        if kind in MILESTONE_FIELDS:
            PurchaseAttempt.objects.filter(pk=attempt.pk).update(**{kind: at})
        else:
            PurchaseEvent.objects.create(attempt=attempt, kind=kind, created_at=at, **fields)


@pytest.fixture
def pages():
    home = Page.objects.get(depth=2)
    a = home.add_child(instance=Page(title="Article A", slug="a"))
    b = home.add_child(instance=Page(title="Article B", slug="b"))
    return a, b


@pytest.fixture
def seeded(pages):
    """DIGI on article A: 4 buys -> 3 sessions -> 2 authorized -> 2 placed -> 1 confirmed.
    PRINT on article B: 2 buys -> 1 session (reused twice) -> nothing further.
    Plus noise outside the period."""
    a, b = pages
    digi = [_attempt("DIGI", a, name="Digital") for _ in range(4)]
    _events(digi[0], FUNNEL_KINDS)
    _events(digi[1], FUNNEL_KINDS[:4])
    _events(digi[2], FUNNEL_KINDS[:2] + [EventKind.ERROR], error_code="payment_method_failed")
    _events(digi[3], [EventKind.BUY, EventKind.BUY, EventKind.ERROR], error_code="timeout")  # clicked twice
    prints = [_attempt("PRINT", b) for _ in range(2)]
    _events(
        prints[0],
        [EventKind.BUY, EventKind.SESSION_CREATED, EventKind.SESSION_REUSED, EventKind.SESSION_REUSED],
    )
    _events(prints[1], [EventKind.BUY, EventKind.DECLINED], error_code="payment_method_failed")
    old = _attempt("DIGI", a, name="Digital")
    _events(old, FUNNEL_KINDS, at=NOW - dt.timedelta(days=40))
    _events(old, [EventKind.ERROR], at=NOW - dt.timedelta(days=40), error_code="old_error")
    return digi, prints


@freeze_time(NOW)
def test_total_counts_distinct_attempts_per_stage(seeded):
    row = funnel.funnel_total(funnel.Period.last_days(30))
    assert row.counts == {"views": 0, "buy": 6, "session": 4, "authorized": 2, "placed": 2, "confirmed": 1}
    stages = {s["key"]: s for s in row.stages}
    assert list(stages) == ["views", "buy", "session", "authorized", "placed", "confirmed"]
    # No paywall views recorded: no rate from them.
    assert stages["buy"]["step_rate"] is None and stages["buy"]["overall_rate"] == 1
    assert stages["buy"]["view_rate"] is None and row.view_conversion is None
    assert stages["session"]["step_rate"] == pytest.approx(4 / 6)
    assert stages["authorized"]["step_rate"] == pytest.approx(2 / 4)
    assert stages["placed"]["step_rate"] == 1
    assert stages["confirmed"]["step_rate"] == pytest.approx(1 / 2)
    assert stages["confirmed"]["overall_rate"] == pytest.approx(1 / 6)
    assert row.conversion == pytest.approx(1 / 6)


@freeze_time(NOW)
def test_longer_period_includes_older_events(seeded):
    row = funnel.funnel_total(funnel.Period.last_days(90))
    assert row.counts == {"views": 0, "buy": 7, "session": 5, "authorized": 3, "placed": 3, "confirmed": 2}


@freeze_time(NOW)
def test_a_milestone_counts_in_the_period_it_was_reached(pages):
    """Orders placed and confirmations count by the attempt's own times, not by its events'."""
    a, _b = pages
    attempt = _attempt("DIGI", a)
    _events(attempt, FUNNEL_KINDS[:4], at=NOW - dt.timedelta(days=40))
    _events(attempt, ["confirmed_at"], at=NOW - dt.timedelta(days=1))
    assert funnel.funnel_total(funnel.Period.last_days(30)).counts == {
        "views": 0,
        "buy": 0,
        "session": 0,
        "authorized": 0,
        "placed": 0,
        "confirmed": 1,
    }
    assert funnel.funnel_by_offer(funnel.Period.last_days(30))[0].counts["confirmed"] == 1
    assert funnel.funnel_by_page(funnel.Period.last_days(90))[0].counts == {
        "views": 0,
        "buy": 1,
        "session": 1,
        "authorized": 1,
        "placed": 1,
        "confirmed": 1,
    }


@freeze_time(NOW)
def test_date_range_covers_whole_local_days(seeded):
    day = (NOW - dt.timedelta(days=1)).date()
    row = funnel.funnel_total(funnel.Period.from_dates(day, day))
    assert row.counts["buy"] == 6
    row = funnel.funnel_total(
        funnel.Period.from_dates(day - dt.timedelta(days=5), day - dt.timedelta(days=2))
    )
    assert row.counts["buy"] == 0 and row.conversion is None


@freeze_time(NOW)
def test_per_offer(seeded):
    rows = funnel.funnel_by_offer(funnel.Period.last_days(30))
    assert [(r.key, r.label) for r in rows] == [("DIGI", "Digital (DIGI)"), ("PRINT", "PRINT")]
    assert rows[0].counts == {
        "views": 0,
        "buy": 4,
        "session": 3,
        "authorized": 2,
        "placed": 2,
        "confirmed": 1,
    }
    assert rows[1].counts == {
        "views": 0,
        "buy": 2,
        "session": 1,
        "authorized": 0,
        "placed": 0,
        "confirmed": 0,
    }
    assert rows[0].conversion == pytest.approx(1 / 4)
    assert rows[1].conversion == 0
    assert {s["key"]: s["step_rate"] for s in rows[1].stages}["placed"] is None  # 0 of 0: no rate


@freeze_time(NOW)
def test_per_article(seeded, pages):
    a, b = pages
    rows = funnel.funnel_by_page(funnel.Period.last_days(30))
    assert [(r.key, r.label) for r in rows] == [(str(a.pk), "Article A"), (str(b.pk), "Article B")]
    assert rows[0].counts["confirmed"] == 1


@freeze_time(NOW)
def test_top_failure_reasons_with_reader_titles(seeded):
    reasons = funnel.top_failure_reasons(funnel.Period.last_days(30))
    assert [(r.error_code, r.count) for r in reasons] == [("payment_method_failed", 2), ("timeout", 1)]
    from wagtail_klarna_paywall.messages import MESSAGES

    assert reasons[0].title == str(MESSAGES["payment_method_failed"].title)
    assert (
        funnel.top_failure_reasons(funnel.Period.last_days(30), limit=1)[0].error_code
        == "payment_method_failed"
    )


def test_reason_title_falls_back_to_the_code():
    assert funnel.reason_title("no_such_code_here") == "no_such_code_here"


def test_reason_title_of_an_unknown_code_is_the_code():
    """An operator sees which code it was, not the readers' generic fallback text."""
    assert funnel.reason_title("no_such_code_anywhere") == "no_such_code_anywhere"


@freeze_time(NOW)
def test_empty_period():
    row = funnel.funnel_total(funnel.Period.last_days(7))
    assert set(row.counts.values()) == {0}
    assert funnel.funnel_by_offer(funnel.Period.last_days(7)) == []
    assert chart_bars(row)["bars"][0]["width"] == 0


def test_chart_bars_scale_to_the_largest_stage():
    row = funnel.FunnelRow(
        "x", "x", {"views": 20, "buy": 10, "session": 5, "authorized": 5, "placed": 2, "confirmed": 0}
    )
    chart = chart_bars(row)
    widths = [bar["width"] for bar in chart["bars"]]
    full = widths[0]
    assert full > 0
    assert widths == [full, full / 2, full / 4, full / 4, pytest.approx(full / 10, abs=0.1), 0]
    ys = [bar["y"] for bar in chart["bars"]]
    assert ys == sorted(ys) and len(set(ys)) == 6
    assert chart["height"] >= ys[-1] + chart["bar_height"]


def test_recent_errors_include_security_events_newest_first(seeded):
    digi, _prints = seeded
    PurchaseEvent.objects.create(attempt=digi[0], kind=EventKind.SECURITY, error_code="redirect_rejected")
    errors = list(funnel.recent_errors(3))
    assert errors[0].kind == EventKind.SECURITY
    assert all(e.kind in (EventKind.ERROR, EventKind.SECURITY) for e in errors)
    assert len(errors) == 3


# -- from paywall views ---------------------------------------------------------------------------------


def _views(page, day, codes, views, state="anonymous"):
    from wagtail_klarna_paywall.newsroom.paywall_views import offer_set_digest

    PaywallViewDay.objects.create(
        day=day,
        page=page,
        paywall_id="pw",
        offer_set=offer_set_digest(tuple(sorted(codes))),
        offer_codes=sorted(codes),
        reader_state=state,
        views=views,
    )


@pytest.fixture
def viewed(seeded, pages):
    """Article A's paywall (DIGI, PRINT) seen by 40 anonymous and 10 logged-in readers yesterday, article
    B's (PRINT) by 20; 500 views 40 days ago, outside the 30 days."""
    a, b = pages
    yesterday = (NOW - dt.timedelta(days=1)).date()
    _views(a, yesterday, ["DIGI", "PRINT"], 40)
    _views(a, yesterday, ["DIGI"], 10, state="reader")
    _views(b, yesterday, ["PRINT"], 20)
    _views(a, (NOW - dt.timedelta(days=40)).date(), ["DIGI"], 500)
    return seeded


@freeze_time(NOW)
def test_the_funnel_starts_at_paywall_views(viewed):
    row = funnel.funnel_total(funnel.Period.last_days(30))
    assert row.counts["views"] == 70 and row.counts["buy"] == 6
    stages = {s["key"]: s for s in row.stages}
    assert stages["views"]["view_rate"] == 1 and stages["views"]["overall_rate"] is None
    assert stages["buy"]["step_rate"] == pytest.approx(6 / 70)
    assert stages["confirmed"]["view_rate"] == pytest.approx(1 / 70)
    assert row.view_conversion == pytest.approx(1 / 70) and row.conversion == pytest.approx(1 / 6)
    assert funnel.funnel_total(funnel.Period.last_days(90)).counts["views"] == 570


@freeze_time(NOW)
def test_views_per_offer_count_every_offer_shown(viewed):
    rows = {r.key: r for r in funnel.funnel_by_offer(funnel.Period.last_days(30))}
    assert rows["DIGI"].views == 50 and rows["PRINT"].views == 60
    assert rows["DIGI"].view_conversion == pytest.approx(1 / 50)


@freeze_time(NOW)
def test_views_per_article_and_articles_only_viewed(viewed):
    home = Page.objects.get(depth=2)
    c = home.add_child(instance=Page(title="Article C", slug="c"))
    _views(c, (NOW - dt.timedelta(days=2)).date(), ["DIGI"], 7)
    rows = funnel.funnel_by_page(funnel.Period.last_days(30))
    assert [(r.label, r.views, r.counts["buy"]) for r in rows] == [
        ("Article A", 50, 4),
        ("Article B", 20, 2),
        ("Article C", 7, 0),
    ]


@freeze_time(NOW)
def test_a_date_range_takes_whole_days_of_views(viewed):
    yesterday = (NOW - dt.timedelta(days=1)).date()
    assert funnel.funnel_total(funnel.Period.from_dates(yesterday, yesterday)).views == 70
    day_before = yesterday - dt.timedelta(days=1)
    assert funnel.funnel_total(funnel.Period.from_dates(day_before, day_before)).views == 0
