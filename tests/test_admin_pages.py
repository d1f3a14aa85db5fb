"""Editors in the admin: build a paywalled article through the page form, hit each validation error,
save while Payway is down, create the plugin's page types and edit the per-site settings."""

from __future__ import annotations

import pytest
import responses
from django.contrib.auth import get_user_model
from django.urls import reverse
from wagtail.models import Page, Site

from tests.factories import (
    TRIAL_PERIOD,
    WEB_PRODUCT,
    KlarnaPurchasePageFactory,
    PurchaseConfirmationPageFactory,
    add_url,
    article_form,
    mock_catalogue,
    offer,
    trial_offer,
)
from tests.testapp.models import ArticlePage
from wagtail_klarna_paywall.blocks import find_offer
from wagtail_klarna_paywall.models import KlarnaPurchasePage, PaywallSettings, PurchaseConfirmationPage
from wagtail_klarna_paywall.reading import gating

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(client):
    user = get_user_model().objects.create_superuser("editor", "editor@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def purchase_page(home):
    return KlarnaPurchasePageFactory(parent=home, slug="subscribe")


def test_add_form_offers_the_product_chooser_not_a_code_field(editor, home, rsps):
    response = editor.get(add_url(home))
    assert response.status_code == 200
    html = response.content.decode()
    assert "wagtail_klarna_paywall.ProductChooser" in html
    assert "wagtail_klarna_paywall/chooser.js" in html
    assert reverse("wagtail_klarna_paywall_offer_chooser:choose") in html
    assert len(rsps.calls) == 0  # opening the editor never reads the catalogue


def test_editor_creates_a_paywalled_article_through_the_admin(editor, home, purchase_page, rsps):
    mock_catalogue(rsps)
    response = editor.post(add_url(home), article_form(purchase_page, [offer(), trial_offer()]))
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    page = ArticlePage.objects.get(slug="paywalled-story")
    paywall = page.body[1]
    assert paywall.block.name == "paywall"
    items = list(paywall.value["offers"].bound_blocks)
    assert [item.value["product_code"] for item in items] == ["dagbladet_digital", "dagbladet_trial"]
    # Each offer stores the products its package or campaign contains, read from the catalogue ...
    assert [item.value["included_product_codes"] for item in items] == [WEB_PRODUCT, WEB_PRODUCT]
    # ... and with the paywall's own list left empty (no override), those products open the article,
    # not the package or campaign codes (which no reader's active_products lists).
    assert list(paywall.value["access_product_codes"]) == []
    assert gating.access_codes(paywall) == (WEB_PRODUCT,)
    trial = find_offer(page, f"{paywall.id}:{items[1].id}")
    assert trial.is_trial and trial.period_id == TRIAL_PERIOD and trial.payment_method_category == "pay_now"
    assert trial.access_product_codes == (WEB_PRODUCT,)
    assert trial.purchase_page_id == purchase_page.pk


def post_errors(editor, home, purchase_page, offers, **extra) -> str:
    response = editor.post(add_url(home), {**article_form(purchase_page, offers), **extra})
    assert response.status_code == 200, "the form should have been refused"
    assert not ArticlePage.objects.filter(slug="paywalled-story").exists()
    return response.content.decode()


def test_trial_without_period_is_refused(editor, home, purchase_page, rsps):
    mock_catalogue(rsps)
    html = post_errors(editor, home, purchase_page, [trial_offer(period_id="")])
    assert "A free trial needs a Klarna payment period" in html


def test_limited_campaign_is_refused(editor, home, purchase_page, rsps):
    mock_catalogue(rsps)
    html = post_errors(
        editor,
        home,
        purchase_page,
        [offer(product_code="dagbladet_summer", product_kind="campaign", period_type="limited")],
    )
    assert "campaigns are always recurring" in html


def test_trial_paid_later_is_refused(editor, home, purchase_page, rsps):
    mock_catalogue(rsps)
    html = post_errors(editor, home, purchase_page, [trial_offer(payment_method_category="pay_later")])
    assert "direct debit" in html


def test_unknown_product_is_refused(editor, home, purchase_page, rsps):
    mock_catalogue(rsps)
    html = post_errors(editor, home, purchase_page, [offer(product_code="no_such_code", period_id="")])
    assert "is not a package or campaign" in html


def test_expired_product_is_refused(editor, home, purchase_page, rsps):
    mock_catalogue(rsps)
    html = post_errors(editor, home, purchase_page, [offer(product_code="dagbladet_paper", period_id="")])
    assert "has expired" in html


def test_offer_without_product_is_refused(editor, home, purchase_page, rsps):
    mock_catalogue(rsps)
    # Wagtail lets drafts skip required fields; publishing does not.
    html = post_errors(editor, home, purchase_page, [offer(product_code="")], **{"action-publish": "publish"})
    assert "This field is required" in html


def test_purchase_page_must_be_a_klarna_purchase_page(editor, home, purchase_page, rsps):
    mock_catalogue(rsps)
    KlarnaPurchasePageFactory(parent=home, slug="subscribe-too")  # no single obvious purchase page
    form = article_form(purchase_page, [offer()])
    form["body-1-value-purchase_page"] = str(home.pk)  # a page, but not a purchase page
    form["action-publish"] = "publish"
    response = editor.post(add_url(home), form)
    assert response.status_code == 200
    assert not ArticlePage.objects.filter(slug="paywalled-story").exists()


def test_a_paywall_left_without_purchase_page_gets_the_only_one(editor, home, purchase_page, rsps):
    mock_catalogue(rsps)
    form = article_form(purchase_page, [offer()])
    form["body-1-value-purchase_page"] = ""
    form["action-publish"] = "publish"
    editor.post(add_url(home), form)
    page = ArticlePage.objects.get(slug="paywalled-story")
    assert page.body[1].value["purchase_page"].pk == purchase_page.pk


def test_payway_unreachable_does_not_stop_the_save_and_warns(editor, home, purchase_page, rsps):
    """Nothing registered with ``responses``: every catalogue call fails to connect."""
    response = editor.post(
        add_url(home), article_form(purchase_page, [offer(product_code="anything")]), follow=True
    )
    assert response.redirect_chain and response.redirect_chain[0][1] == 302
    page = ArticlePage.objects.get(slug="paywalled-story")
    assert page.body[1].value["offers"][0]["product_code"] == "anything"
    warnings = [str(m) for m in response.context["messages"] if m.level_tag == "warning"]
    assert len(warnings) == 1 and "Payway could not be reached" in warnings[0] and "anything" in warnings[0]

    # The next save, with Payway back, checks the offer again and warns no more.
    mock_catalogue(rsps)
    edit = reverse("wagtailadmin_pages:edit", args=(page.pk,))
    form = article_form(purchase_page, [offer()])
    response = editor.post(edit, form, follow=True)
    assert response.status_code == 200
    assert not [m for m in response.context["messages"] if m.level_tag == "warning"]


def test_payway_5xx_does_not_stop_the_save(editor, home, purchase_page, rsps):
    mock_catalogue(rsps)
    rsps.replace(
        responses.GET,
        "https://payway.test/external/api/v2/products/package/search",
        status=502,
        body="bad gateway",
    )
    response = editor.post(add_url(home), article_form(purchase_page, [offer()]))
    assert response.status_code == 302


# -- page types and settings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (KlarnaPurchasePage, {"title": "Subscribe", "slug": "subscribe-now", "offers-count": "0"}),
        (PurchaseConfirmationPage, {"title": "Thanks", "slug": "thanks"}),
    ],
)
def test_editor_can_create_the_plugins_page_types(editor, home, model, fields):
    url = reverse("wagtailadmin_pages:add", args=("wagtail_klarna_paywall", model._meta.model_name, home.pk))
    assert editor.get(url).status_code == 200
    response = editor.post(url, fields)
    assert response.status_code == 302
    page = model.objects.get(slug=fields["slug"])
    # Neither page type may have children.
    assert model.allowed_subpage_models() == []
    assert not page.specific_class.can_create_at(page)


def test_purchase_pages_can_live_anywhere_and_more_than_one_per_parent(home):
    KlarnaPurchasePageFactory(parent=home)
    assert KlarnaPurchasePage.can_create_at(home)
    section = home.add_child(instance=Page(title="Section", slug="section"))
    assert KlarnaPurchasePage.can_create_at(section) and PurchaseConfirmationPage.can_create_at(section)
    assert PurchaseConfirmationPageFactory(parent=section).get_parent().pk == section.pk


def test_settings_form_shows_every_setting_and_saves(editor, home):
    site = Site.objects.get(is_default_site=True)
    url = reverse("wagtailsettings:edit", args=("wagtail_klarna_paywall", "paywallsettings", site.pk))
    response = editor.get(url)
    assert response.status_code == 200
    form = response.context["form"]
    editable = {
        field.name
        for field in PaywallSettings._meta.get_fields()
        if getattr(field, "editable", False) and field.concrete and field.name not in {"id", "site"}
    }
    assert editable <= set(form.fields), editable - set(form.fields)
    html = response.content.decode()
    assert "test-secret-do-not-leak" not in html  # S11: secrets live in Django settings only
    confirmation = PurchaseConfirmationPageFactory(parent=home)
    data = {
        "title_code": "dagbladet",
        "default_confirmation_page": str(confirmation.pk),
        "default_payment_method_category": "pay_later",
        "traffic_source_default": "newsletter",
        "merchant_reference_pattern": "{page_id}-{offer_code}",
        "raise_on_ssn_already_taken_error": "on",
        "purchase_grant_hours": "24",
    }
    assert editor.post(url, data).status_code == 302
    saved = PaywallSettings.for_site(site)
    assert saved.title_code == "dagbladet" and saved.default_payment_method_category == "pay_later"
    assert saved.purchase_grant_hours == 24
    assert saved.default_confirmation_page_id == confirmation.pk and saved.raise_on_ssn_already_taken_error
