"""The funnel report with paywall views: lazily folded from the cache, in the chart, the tables and the
spreadsheet export, in English and Swedish."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest
from django.urls import reverse
from django.utils import timezone, translation
from wagtail.models import Site

from tests.factories import KlarnaPurchasePageFactory, beacon, paywalled_page
from wagtail_klarna_paywall.models import EventKind, PaywallViewDay, PurchaseAttempt, PurchaseEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("roomy_cache")]

URL_NAME = "wagtail_klarna_paywall_funnel"


@pytest.fixture
def viewed(client):
    """Two readers saw the paywall of "Viewed story" (offers DIGI and PRINT) today; one bought DIGI."""
    root = Site.objects.get(is_default_site=True).root_page
    page = paywalled_page(
        root, KlarnaPurchasePageFactory(parent=root), ["DIGI", "PRINT"], title="Viewed story"
    )
    for ip in ("192.0.2.1", "192.0.2.2"):
        assert beacon(client, page, codes=["DIGI", "PRINT"], ip=ip).status_code == 204
    attempt = PurchaseAttempt.objects.create(
        reader_key="anon:x",
        offer_key="o",
        product_code="DIGI",
        product_name="Digital",
        product_kind="package",
        page=page,
    )
    for kind in (EventKind.BUY, EventKind.SESSION_CREATED, EventKind.AUTHORIZED):
        PurchaseEvent.objects.create(attempt=attempt, kind=kind)
    # The milestones are the attempt's own times.
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(
        placed_at=timezone.now(), confirmed_at=timezone.now()
    )
    client.logout()
    return page


def test_the_report_folds_the_cached_views_and_shows_them(client, viewer, viewed):
    client.force_login(viewer)
    assert PaywallViewDay.objects.count() == 0
    html = client.get(reverse(URL_NAME)).content.decode()
    assert PaywallViewDay.objects.get().views == 2  # folded by opening the report
    assert "Paywall views" in html and "Conversion from views" in html
    assert "Viewed story" in html and "Digital (DIGI)" in html and "PRINT" in html
    assert "50 %" in html  # one confirmation of two views
    client.get(reverse(URL_NAME))
    assert PaywallViewDay.objects.get().views == 2  # and again: nothing doubled


def test_the_dashboard_panel_shows_views_too(client, viewer, viewed):
    client.force_login(viewer)
    html = client.get(reverse("wagtailadmin_home")).content.decode()
    assert "Paywall views 2" in html


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_the_funnel_downloads_as_a_spreadsheet(client, viewer, viewed, fmt):
    client.force_login(viewer)
    response = client.get(reverse(URL_NAME), {"period": "7", "export": fmt})
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(body.decode())))
    else:
        sheet = openpyxl.load_workbook(io.BytesIO(body)).active
        rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    header = rows[0]
    assert header[:4] == ["Group", "Key", "Name", "Paywall views"]
    assert "Conversion from views" in header and "Conversion from buy clicks" in header
    by_label = {row[2]: dict(zip(header, row)) for row in rows[1:]}
    assert by_label["All offers"]["Paywall views"] == "2" and by_label["All offers"]["Confirmations"] == "1"
    assert float(by_label["All offers"]["Conversion from views"]) == 0.5
    assert by_label["Digital (DIGI)"]["Paywall views"] == "2"
    assert by_label["PRINT"]["Paywall views"] == "2" and by_label["PRINT"]["Buy clicks"] == "0"
    assert by_label["PRINT"]["Conversion from buy clicks"] == ""
    assert by_label["Viewed story"]["Group"] == "Article"


def test_the_report_and_export_need_the_permission(client, editor, viewed):
    client.force_login(editor)
    for params in ({}, {"export": "csv"}, {"export": "xlsx"}):
        response = client.get(reverse(URL_NAME), params)
        assert response.status_code in (302, 403)
        assert b"Viewed story" not in response.content


def test_the_report_opens_when_the_cache_fails(client, viewer, viewed, monkeypatch):
    from wagtail_klarna_paywall.newsroom import paywall_views

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(paywall_views, "fold_recent", broken)
    client.force_login(viewer)
    assert client.get(reverse(URL_NAME)).status_code == 200


def test_swedish_labels(client, viewer, viewed):
    client.force_login(viewer)
    with translation.override("sv"):
        response = client.get(reverse(URL_NAME), HTTP_ACCEPT_LANGUAGE="sv")
    html = response.content.decode()
    assert "Betalväggsvisningar" in html and "Konvertering från visningar" in html
