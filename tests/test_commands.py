"""The health check and reconciliation commands (issue 6; docs/reliability.md F03, F16, S09)."""

from __future__ import annotations

import datetime as dt
import json
from email.utils import format_datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from freezegun import freeze_time
from wagtail.models import Page, Site

from tests.testapp.models import ArticlePage
from wagtail_klarna_paywall.management.commands import klarna_paywall_check as check
from wagtail_klarna_paywall.models import AttemptState, EventKind, PaywallSettings, PurchaseAttempt
from wagtail_klarna_paywall.newsroom.reconcile import reconcile
from wagtail_klarna_paywall.payway import get_client

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures" / "payway"
BASE = "https://payway.test"
TOKEN_URL = BASE + "/api/authorization/access_token"
TITLES = BASE + "/external/api/v1/titles/"
PACKAGES = BASE + "/external/api/v2/products/package/search"
PERIODS = BASE + "/external/api/v2/klarna_payments/payment_periods"
ENABLED_PERIOD = "5e4bbd0e09c04c1f6498c57f"
DISABLED_PERIOD = "5e4bbd0e09c04c1f6498c580"
SECRETS = ("test-secret-do-not-leak", "system-token-SENTINEL-1")


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def payway(rsps):
    """A healthy Payway: token, titles, packages, periods and a current Date header."""
    rsps.post(TOKEN_URL, json=fixture("token.json"))
    rsps.get(TITLES, json=fixture("titles.json"))
    rsps.get(PACKAGES, json=fixture("package_search.json"))
    rsps.get(PERIODS, json=fixture("payment_periods.json"))
    rsps.head(BASE + "/", status=404, headers={"Date": format_datetime(timezone.now(), usegmt=True)})
    return rsps


@pytest.fixture
def site():
    site = Site.objects.get(is_default_site=True)
    settings = PaywallSettings.for_site(site)
    settings.title_code = "dagbladet"
    settings.save()
    return site


def _article(site, *offers, live=True, slug="article"):
    body = [
        {"type": "paragraph", "value": "<p>Free part</p>"},
        {
            "type": "paywall",
            "value": {"heading": "Subscribe", "offers": list(offers), "purchase_page": None},
        },
    ]
    page = ArticlePage(title=f"Article {slug}", slug=slug, body=json.dumps(body), live=live)
    site.root_page.add_child(instance=page)
    return page


def _offer(code="dagbladet_digital", *, trial=False, period_id="", period_type="recurring", kind="package"):
    return {
        "product_code": code,
        "product_kind": kind,
        "label": code,
        "is_trial": trial,
        "period_id": period_id,
        "period_type": period_type,
    }


def _line(results, status):
    return [f"{r.status}  {r.item}: {r.message}" for r in results if r.status == status]


# -- klarna_paywall_check -------------------------------------------------------------------------


def test_settings_pass(settings):
    assert [r.status for r in check.check_settings()] == ["PASS"]


def test_settings_fail_without_credentials(settings):
    settings.WAGTAIL_KLARNA_PAYWALL = {**settings.WAGTAIL_KLARNA_PAYWALL, "CLIENT_SECRET": ""}
    results = check.check_settings()
    assert [r.status for r in results] == ["FAIL"]
    assert results[0].message.startswith("wagtail_klarna_paywall.E001: ")


def test_settings_report_the_package_system_checks(settings, monkeypatch):
    from django.core import checks

    def fake_checks(*args, **kwargs):
        return [
            checks.Error("broken", id="wagtail_klarna_paywall.E999"),
            checks.Warning("odd", id="wagtail_klarna_paywall.W999"),
            checks.Error("someone else's", id="other.E001"),
        ]

    monkeypatch.setattr(checks, "run_checks", fake_checks)
    results = check.check_settings()
    assert _line(results, "FAIL") == ["FAIL  settings: wagtail_klarna_paywall.E999: broken"]
    assert _line(results, "WARN") == ["WARN  settings: wagtail_klarna_paywall.W999: odd"]


def test_environment_warns_outside_production(settings):
    assert check.check_environment()[0].status == "WARN"
    settings.WAGTAIL_KLARNA_PAYWALL = {
        **settings.WAGTAIL_KLARNA_PAYWALL,
        "API_URL": "https://backend.worldoftulo.com",
    }
    assert check.check_environment()[0].status == "PASS"


def test_token_pass(payway):
    results = check.check_token(get_client())
    assert results[0].status == "PASS"
    assert "system token obtained" in results[0].message


def test_token_fail_on_refused_credentials(rsps):
    rsps.post(TOKEN_URL, status=401, json={"code": "invalid_client", "message": "bad secret"})
    results = check.check_token(get_client())
    assert _line(results, "FAIL") == [
        "FAIL  token endpoint: no system token: AuthenticationExpired (HTTP 401 invalid_client) "
        "at /api/authorization/access_token"
    ]


def test_token_fail_when_payway_is_unreachable(rsps):
    import requests

    rsps.post(TOKEN_URL, body=requests.ConnectionError("refused"))
    results = check.check_token(get_client())
    assert results[0].status == "FAIL"
    assert "PaywayConnectError" in results[0].message


def test_catalogue_pass(payway, site):
    results = check.check_catalogue(get_client())
    assert _line(results, "PASS") == [f"PASS  catalogue {site.hostname}: title 'dagbladet': 2+ packages"]


def test_catalogue_warns_without_title_code(payway):
    results = check.check_catalogue(get_client())
    assert [r.status for r in results] == ["WARN"]
    assert "no Payway title code" in results[0].message


def test_catalogue_fails_on_unknown_title(payway, site):
    settings = PaywallSettings.for_site(site)
    settings.title_code = "nosuchtitle"
    settings.save()
    results = check.check_catalogue(get_client())
    assert [r.status for r in results] == ["FAIL"]
    assert "'nosuchtitle' is not among Payway's titles" in results[0].message


def test_catalogue_fails_on_server_error(rsps, site):
    rsps.post(TOKEN_URL, json=fixture("token.json"))
    rsps.get(TITLES, status=500, json=fixture("error_internal.json"))
    results = check.check_catalogue(get_client())
    assert [r.status for r in results] == ["FAIL"]
    assert "ServerError (HTTP 500 internal_server_error)" in results[0].message


def test_payment_periods_pass(payway, site):
    _article(site, _offer(), _offer(trial=True, period_id=ENABLED_PERIOD))
    results = check.check_payment_periods(get_client())
    assert _line(results, "PASS") == [
        "PASS  payment periods dagbladet_digital: 2 enabled period(s), used on 1 live page(s)"
    ]


def test_payment_periods_fail_for_trial_on_disabled_period(payway, site):
    page = _article(site, _offer(trial=True, period_id=DISABLED_PERIOD))
    results = check.check_payment_periods(get_client())
    assert [r.status for r in results] == ["FAIL"]
    assert f"page {page.pk}" in results[0].message and DISABLED_PERIOD in results[0].message


def test_payment_periods_warn_when_a_package_asks_for_another_period_type(payway, site):
    _article(site, _offer(period_id=ENABLED_PERIOD, period_type="limited"))
    results = check.check_payment_periods(get_client())
    assert [r.status for r in results] == ["WARN"]
    assert f"asks for a limited period but {ENABLED_PERIOD} is recurring" in results[0].message


def test_payment_periods_do_not_compare_types_for_campaigns(payway, site):
    _article(site, _offer(period_id=ENABLED_PERIOD, period_type="limited", kind="campaign"))
    assert [r.status for r in check.check_payment_periods(get_client())] == ["PASS"]


def test_payment_periods_fail_for_trial_without_period(payway, site):
    _article(site, _offer(trial=True))
    results = check.check_payment_periods(get_client())
    assert [r.status for r in results] == ["FAIL"]
    assert "names no payment period" in results[0].message


def test_payment_periods_fail_without_enabled_period(rsps, site):
    rsps.post(TOKEN_URL, json=fixture("token.json"))
    periods = fixture("payment_periods.json")
    for period in periods["items"]:
        period["enabled"] = False
    rsps.get(PERIODS, json=periods)
    _article(site, _offer())
    results = check.check_payment_periods(get_client())
    assert _line(results, "FAIL") == [
        "FAIL  payment periods dagbladet_digital: no enabled Klarna payment period"
    ]


def test_payment_periods_ignore_pages_that_are_not_live(payway, site):
    _article(site, _offer(trial=True, period_id=DISABLED_PERIOD), live=False)
    results = check.check_payment_periods(get_client())
    assert [r.status for r in results] == ["WARN"]
    assert not [c for c in payway.calls if c.request.url.startswith(PERIODS)]


def test_payment_periods_fail_on_unknown_code(rsps, site):
    rsps.post(TOKEN_URL, json=fixture("token.json"))
    rsps.get(PERIODS, status=404, json={"code": "not_found", "message": "no such product"})
    _article(site, _offer("gone_package"))
    results = check.check_payment_periods(get_client())
    assert _line(results, "FAIL") == [
        "FAIL  payment periods gone_package: could not be read: NotFound (HTTP 404 not_found) "
        "at /external/api/v2/klarna_payments/payment_periods"
    ]


@pytest.mark.parametrize(
    ("offset", "status"),
    [(dt.timedelta(0), "PASS"), (dt.timedelta(minutes=2), "WARN"), (dt.timedelta(minutes=-10), "FAIL")],
)
def test_clock_skew(rsps, offset, status):
    server = timezone.now() + offset
    rsps.head(BASE + "/", status=404, headers={"Date": format_datetime(server, usegmt=True)})
    results = check.check_clock(get_client())
    assert [r.status for r in results] == [status]
    if status == "FAIL":
        assert "ahead of Payway" in results[0].message


def test_clock_warns_without_date_header(rsps):
    rsps.head(BASE + "/", status=200)
    results = check.check_clock(get_client())
    assert [r.status for r in results] == ["WARN"]


@pytest.mark.parametrize(
    ("hosts", "status"),
    [
        (["klarna.com"], "PASS"),
        (["klarna.com", "pay.klarna.com"], "PASS"),
        ([], "FAIL"),
        (["http://klarna.com"], "FAIL"),
        (["https://klarna.com"], "FAIL"),  # a URL, not a host: it would never match
        (["klarna.com", "evil.example"], "WARN"),
    ],
)
def test_allow_list(settings, hosts, status):
    settings.WAGTAIL_KLARNA_PAYWALL = {**settings.WAGTAIL_KLARNA_PAYWALL, "KLARNA_REDIRECT_HOSTS": hosts}
    assert [r.status for r in check.check_allow_list()] == [status]


def test_command_passes_and_prints_one_line_per_item(payway, site):
    _article(site, _offer())
    out = StringIO()
    call_command("klarna_paywall_check", stdout=out)
    text = out.getvalue()
    for item in ("environment", "settings", "redirect allow-list", "token endpoint", "catalogue", "clock"):
        assert f"  {item}" in text
    assert "payment periods dagbladet_digital" in text
    assert "FAIL" not in text
    assert text.strip().endswith("No failures.")  # the environment line warns: tests run on a test API
    for secret in SECRETS:
        assert secret not in text


def test_command_exits_non_zero_on_failure(rsps, site):
    rsps.post(TOKEN_URL, status=401, json={"code": "invalid_client"})
    rsps.head(BASE + "/", status=404, headers={"Date": format_datetime(timezone.now(), usegmt=True)})
    out = StringIO()
    with pytest.raises(CommandError, match="2 check"):
        call_command("klarna_paywall_check", stdout=out)
    text = out.getvalue()
    assert "FAIL  token endpoint" in text
    assert "FAIL  catalogue and payment periods: skipped" in text
    for secret in SECRETS:
        assert secret not in text


def test_command_offline_calls_nothing(rsps):
    out = StringIO()
    call_command("klarna_paywall_check", "--offline", stdout=out)
    assert not rsps.calls
    assert "token endpoint" not in out.getvalue()


# -- klarna_paywall_reconcile ---------------------------------------------------------------------

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.timezone.utc)


def _attempt(key, state, *, age, **fields):
    with freeze_time(NOW - age):
        return PurchaseAttempt.objects.create(
            reader_key=f"anon:{key}",
            offer_key=key,
            product_code="dagbladet_digital",
            product_kind="package",
            state=state,
            **fields,
        )


@pytest.fixture
def attempts():
    hour = dt.timedelta(hours=1)
    minute = dt.timedelta(minutes=1)
    return {
        "fresh_new": _attempt("fresh_new", AttemptState.NEW, age=30 * minute),
        "stale_new": _attempt("stale_new", AttemptState.NEW, age=2 * hour),
        "live_session": _attempt(
            "live_session",
            AttemptState.SESSION_READY,
            age=40 * hour,
            session_created_at=NOW - 40 * hour,
            session_expires_at=NOW + 8 * hour,
        ),
        "dead_session": _attempt(
            "dead_session",
            AttemptState.SESSION_READY,
            age=50 * hour,
            session_created_at=NOW - 50 * hour,
            session_expires_at=NOW - 2 * hour,
        ),
        "dead_session_no_expiry": _attempt(
            "dead_session_no_expiry",
            AttemptState.SESSION_READY,
            age=49 * hour,
            session_created_at=NOW - 49 * hour,
        ),
        "placing_now": _attempt(
            "placing_now", AttemptState.PLACING, age=5 * minute, placing_at=NOW - 5 * minute
        ),
        "placing_stuck": _attempt(
            "placing_stuck",
            AttemptState.PLACING,
            age=hour,
            placing_at=NOW - 20 * minute,
            existing_customer=True,
        ),
        "unknown": _attempt("unknown", AttemptState.UNKNOWN, age=3 * hour, error_code="timeout"),
        "confirmed": _attempt("confirmed", AttemptState.CONFIRMED, age=100 * hour),
    }


def _states():
    return dict(PurchaseAttempt.objects.values_list("offer_key", "state"))


def test_reconcile_expires_marks_unknown_and_lists_follow_up(attempts):
    """F03/F16: a stale PLACING attempt becomes UNKNOWN and is never re-sent; abandoned ones expire."""
    with freeze_time(NOW):
        result = reconcile()
    states = _states()
    assert states == {
        "fresh_new": "new",
        "stale_new": "expired",
        "live_session": "session_ready",
        "dead_session": "expired",
        "dead_session_no_expiry": "expired",
        "placing_now": "placing",
        "placing_stuck": "unknown",
        "unknown": "unknown",
        "confirmed": "confirmed",
    }
    assert {c.reference for c in result.expired} == {
        str(attempts[k].reference) for k in ("stale_new", "dead_session", "dead_session_no_expiry")
    }
    assert [c.reference for c in result.unknown] == [str(attempts["placing_stuck"].reference)]
    assert {a.offer_key for a in result.follow_up} == {"placing_stuck", "unknown"}
    stuck = PurchaseAttempt.objects.get(offer_key="placing_stuck")
    assert stuck.error_code == "unknown"
    assert PurchaseAttempt.objects.get(offer_key="unknown").error_code == "timeout"  # kept
    assert PurchaseAttempt.objects.get(offer_key="stale_new").finished_at == NOW
    events = list(stuck.events.all())
    assert [(e.kind, e.state) for e in events] == [(EventKind.RECONCILED, AttemptState.UNKNOWN)]
    assert "placing -> unknown" in events[0].detail


def test_reconcile_is_idempotent(attempts):
    """Run twice: the second run changes nothing and records nothing."""
    with freeze_time(NOW):
        first = reconcile()
        states = _states()
        events = list(PurchaseAttempt.objects.values_list("events__pk", flat=True))
        second = reconcile()
    assert len(first.changes) == 4
    assert second.changes == []
    assert _states() == states
    assert list(PurchaseAttempt.objects.values_list("events__pk", flat=True)) == events
    assert {a.pk for a in second.follow_up} == {a.pk for a in first.follow_up}


def test_reconcile_never_overwrites_a_state_the_web_flow_just_wrote(attempts):
    """The conditional update loses the race gracefully: PLACED stays PLACED, no event is recorded."""
    from wagtail_klarna_paywall.newsroom import reconcile as module

    stuck = attempts["placing_stuck"]
    PurchaseAttempt.objects.filter(pk=stuck.pk).update(state=AttemptState.PLACED)  # the web flow won
    result = module.ReconcileResult()
    module._move(stuck, AttemptState.UNKNOWN, "test", NOW, result, dry_run=False)
    stuck.refresh_from_db()
    assert stuck.state == AttemptState.PLACED
    assert result.changes == []
    assert not stuck.events.exists()


def test_reconcile_dry_run_changes_nothing(attempts):
    with freeze_time(NOW):
        before = _states()
        result = reconcile(dry_run=True)
    assert len(result.changes) == 4
    assert _states() == before
    assert not PurchaseAttempt.objects.filter(events__kind=EventKind.RECONCILED).exists()


def test_reconcile_placing_threshold_is_configurable(attempts):
    with freeze_time(NOW):
        reconcile(placing_timeout=dt.timedelta(minutes=2))
    assert _states()["placing_now"] == "unknown"


def test_reconcile_command_output_and_idempotency(attempts):
    with freeze_time(NOW):
        out = StringIO()
        call_command("klarna_paywall_reconcile", stdout=out)
        first = out.getvalue()
        out = StringIO()
        call_command("klarna_paywall_reconcile", stdout=out)
        second = out.getvalue()
    assert "3 expired, 1 marked unknown, 2 to follow up." in first
    assert f"{attempts['placing_stuck'].reference} dagbladet_digital: moved placing -> unknown" in first
    assert f"FOLLOW UP {attempts['placing_stuck'].reference}" in first and "(existing customer)" in first
    assert "0 expired, 0 marked unknown, 2 to follow up." in second
    assert "moved" not in second


def test_reconcile_command_dry_run(attempts):
    with freeze_time(NOW):
        out = StringIO()
        call_command("klarna_paywall_reconcile", "--dry-run", "--placing-minutes", "2", stdout=out)
    assert "Dry run: 3 expired, 2 marked unknown" in out.getvalue()
    assert "would move placing -> unknown" in out.getvalue()
    assert _states()["placing_now"] == "placing"


def test_reconcile_leaves_pages_alone():
    """Nothing to reconcile: a clean summary, no follow-up."""
    out = StringIO()
    call_command("klarna_paywall_reconcile", stdout=out)
    assert "0 expired, 0 marked unknown, 0 to follow up." in out.getvalue()
    assert Page.objects.exists()
