"""The paywall block: what readers see, what it costs to render (nothing), and how offers are validated."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import responses
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from wagtail.blocks.struct_block import StructBlockValidationError

from tests.factories import (
    CAMPAIGNS_URL,
    TRIAL_PERIOD,
    ArticlePageFactory,
    KlarnaPurchasePageFactory,
    OfferBlockFactory,
    as_reader,
    mock_catalogue,
)
from tests.testapp.models import ArticlePage
from wagtail_klarna_paywall.blocks import OfferBlock, PaywallBlock, find_offer, paywall_access_codes
from wagtail_klarna_paywall.reading.gating import split_at_paywall

pytestmark = pytest.mark.django_db

FREE = "Freeintroword"
TEASER = "Teaserword"
GATED = "Gatedsecretword"


@pytest.fixture
def purchase_page(root):
    return KlarnaPurchasePageFactory(parent=root, slug="subscribe")


@pytest.fixture
def article(root, purchase_page):
    page = ArticlePageFactory(
        parent=root,
        slug="story",
        body__0__paragraph__value=f"<p>{FREE} opens the story.</p>",
        body__1__paywall__heading="Read the whole story",
        body__1__paywall__purchase_page=purchase_page,
        body__1__paywall__offers__0__label="Digital subscription",
        body__1__paywall__offers__1__trial=True,
        body__2__paragraph__value=f"<p>{GATED} is the scoop.</p>",
    )
    return ArticlePage.objects.get(pk=page.pk)


def buy_forms(html: str) -> list[str]:
    return re.findall(r"<form[^>]*>.*?</form>", html, flags=re.S)


def test_anonymous_reader_sees_heading_teaser_and_offers_but_not_the_rest(client, article):
    """L01: the cut point holds, and the paywall shows every offer with a plain buy form."""
    html = client.get(article.url).content.decode()
    assert FREE in html and "Read the whole story" in html and TEASER in html
    assert "Digital subscription" in html and "Try a month for free" in html
    assert "99 kr / month" in html
    assert GATED not in html


def test_anonymous_reader_buys_through_a_get_to_the_purchase_page(client, article, purchase_page):
    """L01/L02: no {% csrf_token %} on an anonymous page (it would set a cookie and Vary: Cookie), so each
    offer is a plain GET form to the purchase page, which shows the offer with the CSRF-protected POST."""
    response = client.get(article.url)
    html = response.content.decode()
    assert not response.cookies and "Cookie" not in response.get("Vary", "")
    forms = buy_forms(html)
    assert len(forms) == 2
    paywall = next(child for child in article.body if isinstance(child.block, PaywallBlock))
    item_ids = [item.id for item in paywall.value["offers"].bound_blocks]
    for form, item_id in zip(forms, item_ids, strict=True):
        assert 'method="get"' in form
        assert f'action="{purchase_page.url}"' in form
        assert "csrfmiddlewaretoken" not in form
        assert f'name="page" value="{article.pk}"' in form
        assert f'name="offer" value="{paywall.id}:{item_id}"' in form
        # Only the reference travels: no code, period or price in the form.
        assert "digital" not in form.replace("wkp", "") and TRIAL_PERIOD not in form
    # The reference the form sends is the one the purchase flow resolves.
    offer = find_offer(article, f"{paywall.id}:{item_ids[1]}")
    assert offer.is_trial and offer.period_id == TRIAL_PERIOD and offer.purchase_page_id == purchase_page.pk

    # Following the GET lands on the purchase page with that offer and a POST to buy/ carrying CSRF.
    landing = client.get(purchase_page.url, {"page": article.pk, "offer": offer.ref}, secure=True)
    landing_forms = buy_forms(landing.content.decode())
    assert landing.status_code == 200 and len(landing_forms) == 1
    assert 'method="post"' in landing_forms[0] and f'action="{purchase_page.url}buy/"' in landing_forms[0]
    assert 'name="csrfmiddlewaretoken"' in landing_forms[0]
    assert f'name="offer" value="{offer.ref}"' in landing_forms[0]


def test_logged_in_reader_buys_in_one_click_with_a_csrf_post(client, article, purchase_page):
    """A logged-in reader's page is private anyway: the buy form POSTs to buy/ with a CSRF token."""
    with as_reader(client, ["unrelated"]):
        html = client.get(article.url).content.decode()
    forms = buy_forms(html)
    assert forms
    for form in forms:
        assert 'method="post"' in form and f'action="{purchase_page.url}buy/"' in form
        assert 'name="csrfmiddlewaretoken"' in form


def test_render_makes_no_payway_call_and_no_write(client, article):
    """L01: zero Payway calls (no URL registered, so any call fails the test) and zero DB writes."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        for _ in range(3):
            with CaptureQueriesContext(connection) as queries:
                response = client.get(article.url)
            assert response.status_code == 200
            writes = [
                q["sql"] for q in queries if q["sql"].split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}
            ]
            assert writes == []
        assert len(rsps.calls) == 0


def test_subscriber_reads_on_without_the_paywall(client, article, monkeypatch):
    from wagtail_klarna_paywall.reading.access import ReaderAccess

    monkeypatch.setattr(
        "wagtail_klarna_paywall.reading.access.reader_access",
        lambda request: ReaderAccess(logged_in=True, subscribed=frozenset({"digital"})),
    )
    html = client.get(article.url).content.decode()
    assert FREE in html and GATED in html
    assert "data-wkp-paywall" not in html and not buy_forms(html)


class ProviderWithoutLogin:
    """An identity provider whose log-in link cannot be built."""

    def get_identity_token(self, request):
        return None

    def login_url(self, request, next_url):
        raise RuntimeError("no login here")

    def forget(self, request):
        pass


def test_a_failing_identity_provider_hides_the_login_link(client, article, settings):
    html = client.get(article.url).content.decode()
    assert "Already a subscriber? Log in" in html and "next=%2Fstory%2F" in html
    provider = "tests.test_blocks.ProviderWithoutLogin"
    settings.WAGTAIL_KLARNA_PAYWALL = {**settings.WAGTAIL_KLARNA_PAYWALL, "IDENTITY_PROVIDER": provider}
    response = client.get(article.url)
    assert response.status_code == 200
    assert "Already a subscriber? Log in" not in response.content.decode()


def test_paywall_without_purchase_page_shows_offers_without_forms(client, root):
    page = ArticlePageFactory(parent=root, body__0__paywall__offers__0__label="Digital subscription")
    html = client.get(page.url).content.decode()
    assert "Digital subscription" in html and not buy_forms(html)


def test_split_at_paywall(article):
    free, paywall, gated = split_at_paywall(article.body)
    assert [c.block.name for c in free] == ["paragraph"]
    assert paywall.block.name == "paywall"
    assert [FREE in str(c.value) for c in free] == [True] and [GATED in str(c.value) for c in gated] == [True]
    assert split_at_paywall([]) == ([], None, [])


def test_block_picker_preview_renders():
    block = PaywallBlock()
    assert block.is_previewable
    value = block.get_preview_value()
    html = block.render(value, {"request": None})
    assert "Digital subscription" in html and "Try a month for free" in html
    assert "<form" not in html  # no purchase page in a preview, so nothing to post to


def test_block_picker_preview_view_renders(client):
    """Wagtail's block picker asks the admin's block-preview view for the paywall's preview."""
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    client.force_login(get_user_model().objects.create_superuser("ed", "ed@example.com", "pw"))
    block = ArticlePage._meta.get_field("body").stream_block.child_blocks["paywall"]
    response = client.get(reverse("wagtailadmin_block_preview"), {"id": block.definition_prefix})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Try a month for free" in html and "purchase.css" in html


# -- validation ------------------------------------------------------------------------------------


def offer_value(**overrides):
    data = dict(OfferBlockFactory())
    data.update(overrides)
    return OfferBlock().to_python({k: (str(v) if isinstance(v, Decimal) else v) for k, v in data.items()})


def errors_of(value) -> dict[str, str]:
    with pytest.raises(StructBlockValidationError) as caught:
        OfferBlock().clean(value)
    return {name: " ".join(error.messages) for name, error in caught.value.block_errors.items()}


@pytest.fixture
def payway_down():
    """Every catalogue call fails to connect: validation must not depend on it for the rules below."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def test_trial_without_period_is_an_error(payway_down):
    errors = errors_of(offer_value(product_kind="campaign", is_trial=True, period_id=""))
    assert "period" in errors["period_id"]


def test_campaign_must_be_recurring(payway_down):
    errors = errors_of(offer_value(product_kind="campaign", period_type="limited"))
    assert "always recurring" in errors["period_type"]


def test_trial_must_use_direct_debit(payway_down):
    errors = errors_of(
        offer_value(
            product_kind="campaign",
            is_trial=True,
            period_id=TRIAL_PERIOD,
            payment_method_category="pay_later",
        )
    )
    assert "direct debit" in errors["payment_method_category"]


@pytest.mark.parametrize("category", ["", "direct_debit", "pay_now"])
def test_trial_may_use_direct_debit_or_pay_now(payway_down, category):
    value = offer_value(
        product_kind="campaign", is_trial=True, period_id=TRIAL_PERIOD, payment_method_category=category
    )
    assert OfferBlock().clean(value)["payment_method_category"] == category


def test_trial_must_be_a_campaign(payway_down):
    errors = errors_of(offer_value(product_kind="package", is_trial=True, period_id=TRIAL_PERIOD))
    assert "campaign" in errors["is_trial"]


def test_unknown_and_expired_codes_are_errors():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_catalogue(rsps)
        assert "not a package or campaign" in errors_of(offer_value(product_code="nope"))["product_code"]
        assert "expired" in errors_of(offer_value(product_code="dagbladet_paper"))["product_code"]
        assert "expired" in errors_of(offer_value(product_code="dagbladet_old"))["product_code"]
        assert (
            "payment period"
            in errors_of(offer_value(product_code="dagbladet_digital", period_id="ffffffffffffffffffffffff"))[
                "period_id"
            ]
        )
        ok = OfferBlock().clean(offer_value(product_code="dagbladet_digital", period_id=TRIAL_PERIOD))
        assert ok["product_code"] == "dagbladet_digital"
        trial = offer_value(
            product_code="dagbladet_trial", product_kind="campaign", is_trial=True, period_id=TRIAL_PERIOD
        )
        assert OfferBlock().clean(trial)["is_trial"] is True


def test_payway_unreachable_accepts_the_offer(payway_down):
    """Nothing registered: every call is a connection error, and saving still works."""
    cleaned = OfferBlock().clean(offer_value(product_code="whatever"))
    assert cleaned["product_code"] == "whatever"


def test_payway_5xx_accepts_the_offer():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_catalogue(rsps)
        rsps.replace(responses.GET, CAMPAIGNS_URL, status=503, body="down")
        assert (
            OfferBlock().clean(offer_value(product_code="dagbladet_summer"))["product_code"]
            == "dagbladet_summer"
        )


def test_empty_access_codes_mean_the_offers_products(payway_down, purchase_page):
    """Left empty, the paywall opens for the products its offers grant (each offer's included codes, or
    its own code when the catalogue listed none); the empty list is kept, as the override it is."""
    block = PaywallBlock()
    value = block.to_python(
        {
            "heading": "Read on",
            "offers": [
                {"type": "item", "value": {**dict(OfferBlockFactory()), "price": "99"}, "id": "a"},
                {
                    "type": "item",
                    "value": {
                        **dict(
                            OfferBlockFactory(product_code="weekend", included_product_codes="digital, paper")
                        ),
                        "price": "9",
                    },
                    "id": "b",
                },
                {
                    "type": "item",
                    "value": {
                        **dict(OfferBlockFactory(product_code="other", included_product_codes="")),
                        "price": "9",
                    },
                    "id": "c",
                },
            ],
            "purchase_page": purchase_page.pk,
            "access_product_codes": [],
        }
    )
    cleaned = block.clean(value)
    assert list(cleaned["access_product_codes"]) == []
    assert paywall_access_codes(cleaned) == ("digital", "paper", "other")
    # The stored (raw) form gives the same answer, for the render path that never converts it.
    assert paywall_access_codes(block.get_prep_value(cleaned)) == ("digital", "paper", "other")


def test_editor_codes_override_the_offers_products(payway_down, purchase_page):
    block = PaywallBlock()
    value = block.to_python(
        {
            "heading": "Read on",
            "offers": [{"type": "item", "value": dict(OfferBlockFactory()), "id": "a"}],
            "purchase_page": purchase_page.pk,
            "access_product_codes": [{"type": "item", "value": "premium", "id": "x"}],
        }
    )
    assert paywall_access_codes(block.clean(value)) == ("premium",)


def test_a_list_of_the_offered_codes_from_before_is_no_override(payway_down, purchase_page):
    """Paywalls saved before offers stored their products had the offered codes copied into the list:
    those are package codes no reader holds, so the offers' products open the article instead."""
    value = {
        "offers": [
            {"product_code": "demo_digital", "included_product_codes": "digital"},
            {"product_code": "demo_campaign", "included_product_codes": "digital"},
        ],
        "access_product_codes": ["demo_campaign", "demo_digital"],
    }
    assert paywall_access_codes(value) == ("digital",)
    value["access_product_codes"] = ["demo_digital"]  # a choice: only buyers of one offer
    assert paywall_access_codes(value) == ("demo_digital",)


def test_purchase_and_confirmation_choosers_are_restricted():
    block = PaywallBlock()
    from wagtail_klarna_paywall.models import KlarnaPurchasePage, PurchaseConfirmationPage

    assert block.child_blocks["purchase_page"].target_model is KlarnaPurchasePage
    assert block.child_blocks["confirmation_page"].target_model is PurchaseConfirmationPage


def test_offer_values_still_read_into_offers():
    from wagtail_klarna_paywall.blocks import offer_from_value

    offer = offer_from_value(
        "pw:o1",
        offer_value(
            product_kind="campaign",
            period_type="limited",
            is_trial=True,
            payment_method_category="direct_debit",
        ),
    )
    assert offer.period_type == "recurring" and offer.payment_method_category == "direct_debit"
    # A trial stored with a category it cannot be paid with keeps no preference (the session decides).
    legacy = offer_from_value(
        "pw:o1", offer_value(product_kind="campaign", is_trial=True, payment_method_category="pay_later")
    )
    assert legacy.payment_method_category == ""
    with pytest.raises(ValidationError):
        OfferBlock().clean(offer_value(product_code=""))


# -- reader texts are rendered in the reader's language, never stored in the editor's -----------------


@pytest.mark.parametrize(
    ("stored", "language", "shown"),
    [
        ("month", "sv", "månad"),
        ("3 month", "sv", "3 månader"),
        ("3 months", "sv", "3 månader"),
        ("month", "en", "month"),
        ("14 day", "en", "14 days"),
        ("varje kvartal", "en", "varje kvartal"),  # an editor's own words stay as typed
        ("", "sv", ""),
    ],
)
def test_periods_are_stored_as_data_and_shown_in_the_readers_language(stored, language, shown):
    from django.utils import translation

    from wagtail_klarna_paywall.periods import period_label

    with translation.override(language):
        assert period_label(stored) == shown


def test_the_chooser_stores_periods_in_no_ones_language():
    from django.utils import translation

    from wagtail_klarna_paywall.periods import period_code

    with translation.override("en"):
        english = period_code("month", 3)
    with translation.override("sv"):
        swedish = period_code("month", 3)
    assert english == swedish == "3 month"


@pytest.mark.parametrize("stored", ["", "Already a subscriber? Log in", "Redan prenumerant? Logga in"])
def test_the_login_link_speaks_the_readers_language_unless_the_editor_wrote_their_own(stored):
    from django.utils import translation

    from wagtail_klarna_paywall.blocks import login_text

    with translation.override("sv"):
        assert login_text(stored) == "Redan prenumerant? Logga in"
    with translation.override("en"):
        assert login_text(stored) == "Already a subscriber? Log in"
        assert login_text("Har du redan ett konto? Logga in här") == "Har du redan ett konto? Logga in här"


def test_a_swedish_reader_gets_no_english_after_an_english_editor_saved_the_defaults(client, article):
    """The block's defaults used to be stored in the editor's admin language and shown to every reader."""
    html = client.get(article.url, HTTP_ACCEPT_LANGUAGE="sv").content.decode()
    assert "Already a subscriber" not in html and "/ month" not in html
    assert "Redan prenumerant? Logga in" in html


def test_a_paywall_without_a_purchase_page_gets_the_sites_only_one(purchase_page):
    block = PaywallBlock()
    value = block.to_python(
        {
            "heading": "Read on",
            "offers": [{"product_code": "digital", "label": "Digital"}],
            "purchase_page": None,
        }
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, re.compile(".*"), status=503)
        cleaned = block.clean(value)
    assert cleaned["purchase_page"].pk == purchase_page.pk


def test_a_paywall_without_a_purchase_page_must_choose_among_several(purchase_page, root):
    KlarnaPurchasePageFactory(parent=root, slug="subscribe-too")
    block = PaywallBlock()
    value = block.to_python(
        {
            "heading": "Read on",
            "offers": [{"product_code": "digital", "label": "Digital"}],
            "purchase_page": None,
        }
    )
    with pytest.raises(StructBlockValidationError) as error:
        block.clean(value)
    assert "purchase_page" in error.value.block_errors
