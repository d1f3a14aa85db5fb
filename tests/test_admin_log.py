"""The purchase log, funnel report and dashboard panels in the Wagtail admin.

Issue 6; docs/reliability.md S10.
"""

import csv
import datetime as dt
import io
import re

import openpyxl
import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django.utils import timezone
from wagtail.models import Page, Site

from tests.factories import staff_user as _user
from wagtail_klarna_paywall.models import AttemptState, EventKind, PurchaseAttempt, PurchaseEvent

pytestmark = pytest.mark.django_db

TOKEN_SENTINEL = "KLARNA-CLIENT-TOKEN-SENTINEL-7f3a"
REDIRECT_SENTINEL = "https://pay.klarna.com/eu/hpp/REDIRECT-SENTINEL"
READER_SENTINEL = "anon:READER-KEY-SENTINEL"


@pytest.fixture
def superuser(django_user_model):
    return _user(django_user_model, "root", superuser=True)


def _site_and_page():
    site = Site.objects.filter(is_default_site=True).first()
    if site is None:  # the tree Wagtail's migrations create, for runs without migrations
        root = Page.add_root(instance=Page(title="Root", slug="root"))
        home = root.add_child(instance=Page(title="Home", slug="home"))
        site = Site.objects.create(hostname="localhost", root_page=home, is_default_site=True)
    return site, site.root_page


@pytest.fixture
def attempt(django_user_model):
    site, page = _site_and_page()
    user = django_user_model.objects.create_user("reader", "reader-private@example.com", "pw")
    attempt = PurchaseAttempt.objects.create(
        state=AttemptState.FAILED,
        user=user,
        reader_key=READER_SENTINEL,
        site=site,
        page=page,
        offer_key="p1:o1",
        product_code="DIGI-MONTH",
        product_kind="package",
        product_name="Digital month",
        klarna_client_token=TOKEN_SENTINEL,
        redirect_uri=REDIRECT_SENTINEL,
        order_id="ORDER-4711",
        error_code="payment_method_failed",
        payway_status=403,
        payway_code="payment_method_failed",
    )
    PurchaseEvent.objects.create(attempt=attempt, kind=EventKind.BUY, state=AttemptState.NEW)
    PurchaseEvent.objects.create(
        attempt=attempt, kind=EventKind.SESSION_CREATED, state=AttemptState.SESSION_READY, http_status=200
    )
    PurchaseEvent.objects.create(
        attempt=attempt,
        kind=EventKind.ERROR,
        state=AttemptState.FAILED,
        endpoint="/external/api/v2/klarna_payments/place_order",
        http_status=403,
        error_code="payment_method_failed",
        payway_code="pm_failed_code",
    )
    return attempt


def _urls(attempt):
    return {
        "index": reverse("klarna_paywall_purchases:index"),
        "results": reverse("klarna_paywall_purchases:index_results"),
        "inspect": reverse("klarna_paywall_purchases:inspect", args=[attempt.pk]),
        "funnel": reverse("wagtail_klarna_paywall_funnel"),
    }


@pytest.mark.parametrize("name", ["index", "results", "inspect", "funnel"])
def test_anonymous_is_sent_to_login(client, attempt, name):
    """S10: anonymous → login redirect."""
    response = client.get(_urls(attempt)[name])
    assert response.status_code == 302
    assert reverse("wagtailadmin_login") in response["Location"]


@pytest.mark.parametrize("name", ["index", "results", "inspect", "funnel"])
def test_reader_without_admin_access_is_refused_even_with_the_permission(
    client, django_user_model, attempt, name
):
    """S10: a non-staff reader never reaches the log, even if someone gave them the log permission."""
    reader = _user(django_user_model, "plainreader", admin=False, log=True)
    client.force_login(reader)
    response = client.get(_urls(attempt)[name])
    assert response.status_code in (302, 403)
    assert "DIGI-MONTH" not in response.content.decode()


@pytest.mark.parametrize("name", ["index", "results", "inspect", "funnel"])
def test_editor_without_the_permission_is_refused(client, editor, attempt, name):
    """S10: an editor without view_purchase_log is turned away (Wagtail redirects to the dashboard)."""
    client.force_login(editor)
    response = client.get(_urls(attempt)[name])
    assert response.status_code in (302, 403)
    if response.status_code == 302:
        assert response["Location"] == reverse("wagtailadmin_home")
    assert "DIGI-MONTH" not in response.content.decode()


@pytest.mark.parametrize("name", ["index", "results", "inspect", "funnel"])
@pytest.mark.parametrize("who", ["viewer", "superuser"])
def test_permitted_users_see_the_views(client, request, attempt, name, who):
    """S10: the read role and superusers get 200."""
    client.force_login(request.getfixturevalue(who))
    response = client.get(_urls(attempt)[name])
    assert response.status_code == 200
    assert "DIGI-MONTH" in response.content.decode()


def test_log_is_read_only(client, superuser, attempt):
    """S10: the read role can't mutate: no add/edit/delete URLs exist and none is linked."""
    from django.urls import NoReverseMatch

    for name in ("add", "edit", "delete", "copy", "history", "usage"):
        with pytest.raises(NoReverseMatch):
            reverse(f"klarna_paywall_purchases:{name}", args=[attempt.pk] if name != "add" else [])
    client.force_login(superuser)
    html = client.get(_urls(attempt)["index"]).content.decode()
    assert "/edit/" not in html and "/delete/" not in html and "/new/" not in html
    response = client.post(_urls(attempt)["inspect"], {"state": "confirmed"})
    assert response.status_code == 405
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.FAILED


def test_permission_is_assignable_in_group_ui(client, superuser):
    from wagtail import hooks

    registered = set()
    for fn in hooks.get_hooks("register_permissions"):
        registered.update(fn().values_list("codename", flat=True))
    assert "view_purchase_log" in registered
    client.force_login(superuser)
    html = client.get(reverse("wagtailusers_groups:add")).content.decode()
    assert "Can view the Klarna purchase log" in html


def test_permission_comes_from_a_group(client, django_user_model, attempt):
    user = _user(django_user_model, "support")
    group = Group.objects.create(name="Support")
    group.permissions.add(Permission.objects.get(codename="view_purchase_log"))
    user.groups.add(group)
    client.force_login(user)
    assert client.get(_urls(attempt)["index"]).status_code == 200


def test_detail_shows_timeline_without_secrets(client, viewer, attempt):
    client.force_login(viewer)
    html = client.get(_urls(attempt)["inspect"]).content.decode()
    assert "Timeline" in html
    assert "/external/api/v2/klarna_payments/place_order" in html
    assert "pm_failed_code" in html and "403" in html
    assert "Session created" in html and "Buy clicked" in html
    for secret in (TOKEN_SENTINEL, REDIRECT_SENTINEL, READER_SENTINEL, "reader-private@example.com"):
        assert secret not in html


def test_the_timeline_shows_the_milestones_among_the_events(client, viewer, attempt):
    """Placed and confirmed are the attempt's own times, shown in their place among its events."""
    buy = attempt.events.get(kind=EventKind.BUY)
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(
        placed_at=buy.created_at + dt.timedelta(seconds=5),
        confirmed_at=buy.created_at + dt.timedelta(days=1),
    )
    PurchaseEvent.objects.create(
        attempt=attempt, kind=EventKind.SECURITY, created_at=buy.created_at + dt.timedelta(seconds=6)
    )
    client.force_login(viewer)
    html = client.get(_urls(attempt)["inspect"]).content.decode()
    rows = re.findall(r'class="wkp-event wkp-event--(\w*)"', html)
    assert rows[-3:] == ["placed", "security", "confirmed"]
    timeline = html[html.index("Timeline") :]
    assert timeline.index("Order placed") < timeline.index("Security event") < timeline.index("Confirmed")


def test_index_shows_no_secrets(client, viewer, attempt):
    client.force_login(viewer)
    html = client.get(_urls(attempt)["index"]).content.decode()
    assert str(attempt.reference)[:8] in html
    for secret in (TOKEN_SENTINEL, REDIRECT_SENTINEL, READER_SENTINEL, "reader-private@example.com"):
        assert secret not in html


def _make(product_code, state=AttemptState.NEW, **kw):
    n = PurchaseAttempt.objects.count()
    return PurchaseAttempt.objects.create(
        reader_key=f"anon:{n}",
        offer_key=f"o{n}",
        product_code=product_code,
        product_kind="package",
        state=state,
        **kw,
    )


def _listed(client, **params):
    response = client.get(reverse("klarna_paywall_purchases:index_results"), params)
    assert response.status_code == 200
    return response.content.decode()


def test_filters(client, viewer, attempt):
    other = _make("PRINT-YEAR", state=AttemptState.CONFIRMED, error_code="")
    client.force_login(viewer)
    assert "PRINT-YEAR" in _listed(client, state="confirmed")
    assert "DIGI-MONTH" not in _listed(client, state="confirmed")
    assert "DIGI-MONTH" in _listed(client, product_code="DIGI-MONTH")
    assert "PRINT-YEAR" not in _listed(client, product_code="DIGI-MONTH")
    assert "PRINT-YEAR" not in _listed(client, error_code="payment_method_failed")
    assert "PRINT-YEAR" not in _listed(client, page=attempt.page_id)
    assert "DIGI-MONTH" in _listed(client, site=attempt.site_id)
    today = timezone.localdate(attempt.created_at).isoformat()
    assert "DIGI-MONTH" in _listed(client, created_at_from=today, created_at_to=today)
    assert "DIGI-MONTH" not in _listed(client, created_at_from="2001-01-01", created_at_to="2001-01-02")
    assert str(other.reference) in _listed(client)


def test_sorting_by_creation_time(client, viewer, attempt):
    from datetime import timedelta

    older = _make("PRINT-YEAR")
    PurchaseAttempt.objects.filter(pk=older.pk).update(created_at=attempt.created_at - timedelta(days=1))
    client.force_login(viewer)
    newest_first = _listed(client)
    assert newest_first.index("DIGI-MONTH") < newest_first.index("PRINT-YEAR")
    oldest_first = _listed(client, ordering="created_at")
    assert oldest_first.index("PRINT-YEAR") < oldest_first.index("DIGI-MONTH")


def test_search_by_reference_and_order_id(client, viewer, attempt):
    other = _make("PRINT-YEAR", order_id="ORDER-9999")
    client.force_login(viewer)
    assert "DIGI-MONTH" in _listed(client, q="ORDER-4711")
    assert "PRINT-YEAR" not in _listed(client, q="ORDER-4711")
    assert "PRINT-YEAR" in _listed(client, q=str(other.reference))
    assert "DIGI-MONTH" not in _listed(client, q=str(other.reference))
    assert "PRINT-YEAR" in _listed(client, q=str(other.reference)[:8])
    assert "PRINT-YEAR" in _listed(client, q=other.reference.hex.upper())


EXPECTED_COLUMNS = [
    "Reference",
    "State",
    "Product code",
    "Product name",
    "Trial",
    "Article id",
    "Article",
    "Site",
    "Existing customer",
    "Payway order id",
    "Error code",
    "Payway status",
    "Payway code",
    "Payway field",
    "Test mode",
    "Created (Europe/Stockholm)",
    "Placed at (Europe/Stockholm)",
    "Confirmed at (Europe/Stockholm)",
    "Finished at (Europe/Stockholm)",
]


def _assert_no_secrets(text):
    for secret in (TOKEN_SENTINEL, REDIRECT_SENTINEL, READER_SENTINEL, "reader-private@example.com"):
        assert secret not in text


def test_csv_export(client, viewer, attempt):
    client.force_login(viewer)
    response = client.get(reverse("klarna_paywall_purchases:index"), {"export": "csv"})
    assert response.status_code == 200
    raw = b"".join(response.streaming_content)
    assert raw.startswith("\ufeff".encode()), "a UTF-8 byte-order mark, so Excel reads å, ä and ö"
    text = raw.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == EXPECTED_COLUMNS
    assert rows[1][0] == str(attempt.reference)
    assert rows[1][2] == "DIGI-MONTH"
    assert rows[1][9] == "ORDER-4711"
    _assert_no_secrets(text)


def test_xlsx_export(client, viewer, attempt):
    client.force_login(viewer)
    response = client.get(reverse("klarna_paywall_purchases:index"), {"export": "xlsx"})
    assert response.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    values = [list(row) for row in book.active.iter_rows(values_only=True)]
    assert list(values[0]) == EXPECTED_COLUMNS
    assert values[1][0] == str(attempt.reference)
    _assert_no_secrets(repr(values))


def test_export_respects_filters_and_permission(client, editor, viewer, attempt):
    _make("PRINT-YEAR", state=AttemptState.CONFIRMED)  # no page, no site: blank cells
    client.force_login(viewer)
    response = client.get(reverse("klarna_paywall_purchases:index"), {"export": "csv", "state": "confirmed"})
    text = b"".join(response.streaming_content).decode()
    assert "PRINT-YEAR" in text and "DIGI-MONTH" not in text
    client.force_login(editor)
    response = client.get(reverse("klarna_paywall_purchases:index"), {"export": "csv"})
    assert response.status_code in (302, 403)


def test_reports_menu_lists_the_log_only_for_permitted_users(client, editor, viewer):
    client.force_login(viewer)
    html = client.get(reverse("wagtailadmin_home")).content.decode()
    assert reverse("klarna_paywall_purchases:index") in html
    client.force_login(editor)
    html = client.get(reverse("wagtailadmin_home")).content.decode()
    assert reverse("klarna_paywall_purchases:index") not in html


def test_dashboard_panels(client, editor, viewer, attempt):
    client.force_login(viewer)
    html = client.get(reverse("wagtailadmin_home")).content.decode()
    assert "klarna-paywall-funnel" in html and "<svg" in html
    assert "klarna-paywall-errors" in html
    assert reverse("klarna_paywall_purchases:inspect", args=[attempt.pk]) in html
    assert "/external/api/v2/klarna_payments/place_order" in html
    _assert_no_secrets(html)
    client.force_login(editor)
    html = client.get(reverse("wagtailadmin_home")).content.decode()
    assert "klarna-paywall-funnel" not in html and "klarna-paywall-errors" not in html


def test_error_panel_lists_the_last_n_errors_newest_first(client, viewer, attempt):
    from wagtail_klarna_paywall.newsroom.reports import ErrorPanel

    for i in range(25):
        PurchaseEvent.objects.create(attempt=attempt, kind=EventKind.ERROR, error_code=f"code_{i:02d}")
    context = ErrorPanel().get_context_data({})
    codes = [e.error_code for e in context["errors"]]
    assert len(codes) == 20
    assert codes[0] == "code_24" and codes[-1] == "code_05"
    assert len(ErrorPanel(limit=3).get_context_data({})["errors"]) == 3


def test_funnel_report_periods(client, viewer, attempt):
    client.force_login(viewer)
    url = reverse("wagtail_klarna_paywall_funnel")
    for params in ({"period": "7"}, {"period": "90"}, {}):
        html = client.get(url, params).content.decode()
        assert "<svg" in html and "Digital month (DIGI-MONTH)" in html
    today = timezone.localdate(attempt.created_at).isoformat()
    html = client.get(url, {"period": "range", "start": "2001-01-01", "end": "2001-01-31"}).content.decode()
    assert "Digital month (DIGI-MONTH)" not in html
    html = client.get(url, {"period": "range", "start": today, "end": today}).content.decode()
    assert "Digital month (DIGI-MONTH)" in html
    response = client.get(url, {"period": "range", "start": today})
    assert response.status_code == 200
    assert "Give both dates of the range." in response.content.decode()


def test_test_mode_ribbon(client, viewer, settings):
    client.force_login(viewer)
    html = client.get(reverse("wagtailadmin_home")).content.decode()
    assert "wkp-test-mode-ribbon" in html and "Payway test mode" in html
    settings.WAGTAIL_KLARNA_PAYWALL = {
        **settings.WAGTAIL_KLARNA_PAYWALL,
        "API_URL": "https://backend.worldoftulo.com",
    }
    html = client.get(reverse("wagtailadmin_home")).content.decode()
    assert "wkp-test-mode-ribbon" not in html


def test_exports_give_local_times_with_their_zone(client, viewer, attempt):
    placed = timezone.make_aware(timezone.datetime(2026, 7, 1, 10, 0, 0), dt.timezone.utc)
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(placed_at=placed)
    client.force_login(viewer)
    response = client.get(reverse("klarna_paywall_purchases:index"), {"export": "csv"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    placed_column = EXPECTED_COLUMNS.index("Placed at (Europe/Stockholm)")
    # 10:00 UTC is 12:00 in Stockholm in summer; the offset says so.
    assert rows[1][placed_column] == "2026-07-01 12:00:00+02:00"
    response = client.get(reverse("klarna_paywall_purchases:index"), {"export": "xlsx"})
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    values = [list(row) for row in book.active.iter_rows(values_only=True)]
    assert values[1][placed_column] == timezone.datetime(2026, 7, 1, 12, 0, 0)


def test_swedish_csv_uses_semicolons_and_swedish_words(client, viewer, attempt):
    client.force_login(viewer)
    response = client.get(
        reverse("klarna_paywall_purchases:index"), {"export": "csv"}, HTTP_ACCEPT_LANGUAGE="sv"
    )
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0][0] == "Referens"
    assert len(rows[0]) == len(EXPECTED_COLUMNS)
    trial = rows[0].index("Provperiod")
    assert rows[1][trial] == "Nej"


def test_detail_shows_words_and_local_times(client, viewer, attempt):
    placed = timezone.make_aware(timezone.datetime(2026, 1, 15, 10, 0, 0), dt.timezone.utc)
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(placed_at=placed, price="249.00")
    client.force_login(viewer)
    html = client.get(_urls(attempt)["inspect"]).content.decode()
    assert "2026-01-15 11:00:00 CET" in html, "the site's zone (Stockholm, winter), not UTC"
    assert "2026-01-15 10:00:00" not in html
    assert "Package" in html and ">package<" not in html
    assert ">False<" not in html and ">None<" not in html
    # The failure is explained, and keeps its code for searching.
    assert "(payment_method_failed)" in html


def test_index_lists_offers_by_name_and_short_references(client, viewer, attempt):
    client.force_login(viewer)
    html = _listed(client)
    assert "Digital month" in html and "DIGI-MONTH" in html
    short = str(attempt.reference)[:8]
    assert re.search(rf">\s*{short}\s*</a>", html), "the short reference links the attempt"
