"""Preview modes: editors see everything by default, and can see the page as each kind of reader."""

from __future__ import annotations

import json

import pytest
import responses
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.factories import ArticlePageFactory, KlarnaPurchasePageFactory, article_form, mock_catalogue, offer
from tests.testapp.models import ArticlePage
from wagtail_klarna_paywall.reading.preview import PAYWALL_PREVIEW_MODES

pytestmark = pytest.mark.django_db

FREE = "Free opening."
GATED = "For subscribers."
PAYWALL = "data-wkp-paywall"
LOGIN = "Already a subscriber? Log in"
READER_NOTE = "You are logged in, but your account has no subscription"
CUT = "data-wkp-preview-cut"


@pytest.fixture
def editor(client):
    user = get_user_model().objects.create_superuser("editor", "editor@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def purchase_page(home):
    return KlarnaPurchasePageFactory(parent=home, slug="subscribe")


@pytest.fixture
def preview(editor, home, purchase_page):
    """Post the add form to Wagtail's preview view; return a function rendering one mode."""
    url = reverse("wagtailadmin_pages:preview_on_add", args=("testapp", "articlepage", home.pk))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_catalogue(rsps)
        response = editor.post(url, article_form(purchase_page, [offer()]))
        assert json.loads(response.content)["is_valid"] is True
        calls_after_validation = len(rsps.calls)

        def render(mode: str) -> str:
            response = editor.get(url, {"mode": mode})
            assert response.status_code == 200
            return response.content.decode()

        yield render
        # Rendering previews never asks Payway anything (only validating the form did).
        assert len(rsps.calls) == calls_after_validation


def test_article_pages_offer_the_paywall_preview_modes():
    assert ArticlePage().preview_modes == PAYWALL_PREVIEW_MODES
    assert ArticlePage().default_preview_mode == ""
    assert [mode for mode, _label in PAYWALL_PREVIEW_MODES] == ["", "anonymous", "reader", "subscriber"]


def test_default_preview_shows_editors_everything_with_the_cut_in_place(preview):
    html = preview("")
    assert FREE in html and GATED in html and PAYWALL in html
    assert html.index(FREE) < html.index(PAYWALL) < html.index(CUT) < html.index(GATED)
    assert "readers without a subscription stop here" in html


def test_anonymous_preview(preview):
    html = preview("anonymous")
    assert FREE in html and PAYWALL in html and LOGIN in html
    assert GATED not in html and READER_NOTE not in html


def test_logged_in_reader_preview(preview):
    html = preview("reader")
    assert FREE in html and PAYWALL in html and READER_NOTE in html
    assert GATED not in html and LOGIN not in html


def test_subscriber_preview(preview):
    html = preview("subscriber")
    assert FREE in html and GATED in html
    assert PAYWALL not in html
    assert html.index(FREE) < html.index(CUT) < html.index(GATED), "where the paywall would cut"


def test_readers_never_see_the_preview_marker(client, home, purchase_page):
    page = ArticlePageFactory(
        parent=home,
        body__0__paragraph__value=f"<p>{FREE}</p>",
        body__1__paywall__purchase_page=purchase_page,
        body__2__paragraph__value=f"<p>{GATED}</p>",
    )
    html = client.get(page.url).content.decode()
    assert PAYWALL in html and CUT not in html


def test_preview_modes_do_not_check_access(home, purchase_page, monkeypatch):
    """A preview simulates the reader: the real access check is never consulted."""

    def fail(*args, **kwargs):
        raise AssertionError("access checked during a preview")

    monkeypatch.setattr("wagtail_klarna_paywall.reading.access.reader_access", fail)
    monkeypatch.setattr("wagtail_klarna_paywall.reading.access.reader_has_access", fail)
    page = ArticlePageFactory(
        parent=home,
        body__0__paragraph__value=f"<p>{FREE}</p>",
        body__1__paywall__purchase_page=purchase_page,
        body__2__paragraph__value=f"<p>{GATED}</p>",
    )
    page = ArticlePage.objects.get(pk=page.pk)
    for mode, visible in [("", True), ("anonymous", False), ("reader", False), ("subscriber", True)]:
        html = page.make_preview_request(preview_mode=mode).content.decode()
        assert (GATED in html) is visible, mode
        assert (PAYWALL in html) is (mode != "subscriber"), mode
