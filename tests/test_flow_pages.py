"""The reader's way out of every purchase-flow page: back to the article, customer service, log in, other
offers, and when to try again after being paused.

Driven through HTTP like ``test_views`` (Payway faked with ``responses``); texts are checked in English and,
where the wording matters, in Swedish.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import quote

import pytest
import requests
import responses
from django.test import Client
from freezegun import freeze_time
from wagtail.models import Page

from tests.factories import (
    AUTH_TOKEN,
    BROWSER,
    CREATE_V2,
    CUSTOMER,
    PERSONNUMMER,
    PLACE_TRIAL,
    PLACE_V2,
    UTF16_FORM,
    Shop,
    buy,
    checkout_path,
    klarna_config,
    landing_url,
    order_json,
    pay,
    session_json,
    start_checkout,
    text,
)
from wagtail_klarna_paywall import messages
from wagtail_klarna_paywall.models import PaywallSettings, PurchaseAttempt

# Anonymous readers of English pages, as in test_views (the stub identity provider holds no token).
pytestmark = pytest.mark.usefixtures("english_pages", "no_identity")

CUSTOMER_SERVICE = "Kundservice: kundservice@ekbytidning.se, 010-123 45 67"
SWEDISH = {"HTTP_ACCEPT_LANGUAGE": "sv-SE,sv;q=0.9"}


@pytest.fixture
def customer_service(shop):
    settings_obj = PaywallSettings.for_site(shop.site)
    settings_obj.customer_service = CUSTOMER_SERVICE
    settings_obj.save()
    return CUSTOMER_SERVICE


@pytest.fixture
def both_languages(settings):
    settings.LANGUAGES = [("en", "English"), ("sv", "Svenska")]


def hrefs(html: str, marker: str) -> list[str]:
    """The href of every link carrying the data attribute ``marker``."""
    found = []
    for tag in re.findall(r"<a\b[^>]*>", html):
        if re.search(rf"\b{re.escape(marker)}\b", tag):
            found.append(unescape(re.search(r'href="([^"]*)"', tag).group(1)))
    return found


def article_url(shop) -> str:
    return shop.article.get_url()


def start_article_checkout(client, shop, **extra):
    return start_checkout(client, shop, ref=Shop.article_offer_ref, **{"page": shop.article, **extra})


def fail_place_order(payway, **answer):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, **answer)


# -- the checkout's outcomes ---------------------------------------------------------------------------


OUTCOMES = [
    # (Payway's answer to place_order, a phrase of the reader's message)
    ({"body": requests.ReadTimeout("slow")}, "not be charged twice"),
    ({"status": 400, "json": {"code": "ssn_already_taken"}}, "belongs to another account"),
    ({"status": 400, "json": {"code": "invalid_parameter", "field": "x"}}, "did not accept the purchase"),
    ({"status": 403, "json": {"code": "payment_method_failed"}}, "Klarna could not approve the payment"),
    ({"status": 400, "json": {"code": "account_update_error"}}, "could not be updated"),
]


@pytest.mark.parametrize(("answer", "phrase"), OUTCOMES)
def test_every_checkout_outcome_leads_back_to_the_article_and_names_customer_service(
    shop, payway, reader, customer_service, answer, phrase
):
    fail_place_order(payway, **answer)
    attempt = start_article_checkout(reader, shop)

    html = text(pay(reader, attempt))
    reload = text(reader.get(checkout_path(attempt), secure=True))

    for page in (html, reload):
        assert phrase in page
        assert hrefs(page, "data-wkp-back") == [article_url(shop)]
        assert CUSTOMER_SERVICE in page
        assert PERSONNUMMER not in page


def test_no_customer_service_line_when_the_setting_is_blank(shop, payway, reader):
    fail_place_order(payway, body=requests.ReadTimeout("slow"))
    attempt = start_article_checkout(reader, shop)

    html = text(pay(reader, attempt))

    assert "data-wkp-customer-service" not in html
    assert hrefs(html, "data-wkp-back") == [article_url(shop)]


def test_validation_errors_at_checkout_keep_the_way_back(shop, payway, reader, customer_service):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_article_checkout(reader, shop)

    response = pay(reader, attempt, customer={**CUSTOMER, "email": "not-an-address"})

    assert response.status_code == 400
    html = text(response)
    assert "Please check your details" in html
    assert CUSTOMER_SERVICE in html
    assert hrefs(html, "data-wkp-back") == [article_url(shop)]


def test_the_widget_page_links_back_and_says_the_order_is_being_placed(shop, payway, reader):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_article_checkout(reader, shop)

    html = text(reader.get(checkout_path(attempt), secure=True))

    assert hrefs(html, "data-wkp-back") == [article_url(shop)]
    assert klarna_config(html)["messages"]["placing"].startswith("Placing your order")
    assert "data-wkp-status" in html  # where purchase.js writes it, a polite live region


def test_ssn_already_taken_has_a_login_link_back_to_the_article(shop, payway, reader):
    fail_place_order(payway, status=400, json={"code": "ssn_already_taken"})
    attempt = start_article_checkout(reader, shop)

    html = text(pay(reader, attempt))

    # The stub identity provider's login, returning to the article.
    assert hrefs(html, "data-wkp-login") == ["/login/?next=" + quote(article_url(shop))]
    assert "Log in with that account" in html


def test_other_failures_have_no_login_link(shop, payway, reader):
    fail_place_order(payway, status=400, json={"code": "account_update_error"})
    attempt = start_article_checkout(reader, shop)

    assert "data-wkp-login" not in text(pay(reader, attempt))


def test_a_decline_offers_another_offer_besides_trying_again(shop, payway, reader):
    fail_place_order(payway, status=403, json={"code": "payment_method_failed"})
    attempt = start_article_checkout(reader, shop)

    html = text(pay(reader, attempt))

    assert 'name="offer" value="paywall-1:offer-digital"' in html  # try again
    # The article's paywall lists its offers.
    assert hrefs(html, "data-wkp-other-offers") == [article_url(shop)]
    assert "Choose another offer" in html


def test_a_declined_purchase_page_offer_points_to_the_purchase_page_once(shop, payway, reader):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_checkout(reader, shop)

    html = text(reader.post(checkout_path(attempt) + "declined/", secure=True))

    assert hrefs(html, "data-wkp-other-offers") == [landing_url(shop)]
    assert "data-wkp-back" not in html  # "back to the offers" would lead to the same list


def test_other_outcomes_suggest_no_other_offer(shop, payway, reader):
    fail_place_order(payway, body=requests.ReadTimeout("slow"))
    attempt = start_article_checkout(reader, shop)

    assert "data-wkp-other-offers" not in text(pay(reader, attempt))


def test_the_unknown_outcome_says_each_thing_once():
    body = str(messages.reader_message(messages.UNKNOWN_OUTCOME).body)

    assert body.count("charged") == 2  # "not be charged twice", "nothing is charged"
    assert "at most once" not in body
    assert body.count("buy again") == 1


def test_the_unknown_outcome_in_swedish(shop, payway, both_languages, customer_service):
    fail_place_order(payway, body=requests.ReadTimeout("slow"))
    reader = Client()
    response = buy(reader, shop, page=shop.article, ref=Shop.article_offer_ref, **SWEDISH)
    attempt = PurchaseAttempt.objects.get()
    assert response["Location"] == checkout_path(attempt)

    data = {"klarna_authorization_token": AUTH_TOKEN, **CUSTOMER}
    html = text(reader.post(checkout_path(attempt), data, secure=True, **{**BROWSER, **SWEDISH}))

    assert "Vi kontrollerar ditt köp" in html
    assert "du debiteras inte två gånger" in html
    assert "Tillbaka till artikeln" in html
    assert CUSTOMER_SERVICE in html
    assert "charged" not in html


# -- the landing page ------------------------------------------------------------------------------------


def test_the_landing_for_an_article_offer_links_back_to_the_article(shop, reader):
    response = reader.get(
        landing_url(shop), {"page": shop.article.pk, "offer": Shop.article_offer_ref}, secure=True
    )

    assert hrefs(text(response), "data-wkp-back") == [article_url(shop)]


def test_the_landing_of_its_own_offers_has_no_article_to_go_back_to(shop, reader):
    assert "data-wkp-back" not in text(reader.get(landing_url(shop), secure=True))


def test_a_failed_buy_leads_back_to_the_article(shop, payway, reader, customer_service):
    payway.add(responses.POST, CREATE_V2, body=requests.ConnectionError("down"))

    response = buy(reader, shop, page=shop.article, ref=Shop.article_offer_ref)

    assert response.status_code == 503
    html = text(response)
    assert "could not be reached" in html
    assert hrefs(html, "data-wkp-back") == [article_url(shop)]
    assert CUSTOMER_SERVICE in html


def paused_reader(shop) -> Client:
    """A reader who has used up the default five new sessions of the current 10-minute window."""
    reader = Client()
    for _ in range(5):
        assert buy(reader, shop, page=shop.article, ref=Shop.article_offer_ref).status_code == 303
        PurchaseAttempt.objects.update(session_expires_at="2000-01-01T00:00:00Z")
    return reader


@freeze_time("2026-11-25 12:03:20")
def test_the_rate_limit_page_says_when_to_try_again_and_lists_no_offers(shop, payway, customer_service):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    reader = paused_reader(shop)

    response = buy(reader, shop, page=shop.article, ref=Shop.article_offer_ref)

    assert response.status_code == 429
    assert response["Retry-After"] == "400"  # 200 s into the window
    html = text(response)
    assert "Please wait a little" in html
    assert "You can try again in 7 minutes." in html  # 400 s, rounded up
    assert 'name="offer"' not in html  # neither the offers nor a "try again" button
    assert hrefs(html, "data-wkp-back") == [article_url(shop)]
    assert CUSTOMER_SERVICE in html


@freeze_time("2026-11-25 12:09:30")
def test_the_rate_limit_page_in_swedish_in_the_last_minute(shop, payway, both_languages):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    reader = paused_reader(shop)

    response = buy(reader, shop, page=shop.article, ref=Shop.article_offer_ref, **SWEDISH)

    assert response["Retry-After"] == "30"
    html = text(response)
    assert "Du kan försöka igen om 1 minut." in html
    assert "Tillbaka till artikeln" in html


# -- the confirmation page -------------------------------------------------------------------------------


def test_the_confirmation_of_an_unknown_outcome_links_back_and_names_customer_service(
    shop, payway, reader, customer_service
):
    fail_place_order(payway, body=requests.ReadTimeout("slow"))
    attempt = start_article_checkout(reader, shop)
    pay(reader, attempt)

    html = text(reader.get(f"/thanks/?ref={attempt.reference}", secure=True))

    assert "not be charged twice" in html
    assert hrefs(html, "data-wkp-back") == [article_url(shop)]
    assert CUSTOMER_SERVICE in html


def test_the_confirmation_links_an_article_whose_type_makes_its_own_urls(shop, payway, reader, monkeypatch):
    """The confirmation reads only the article's route columns; a page type that makes its own URLs is
    asked for its URL from its own row (one query more), not given Wagtail's default."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())
    attempt = start_article_checkout(reader, shop)
    pay(reader, attempt)
    confirmation = f"/thanks/?ref={attempt.reference}"
    default = hrefs(text(reader.get(confirmation, secure=True)), "data-wkp-back")
    assert default == [article_url(shop)]
    model = type(shop.article.specific)

    def own_url_parts(self, request=None):
        assert not self.get_deferred_fields(), "the specific row was read"
        site_id, root, _path = Page.get_url_parts(self, request)
        return site_id, root, f"/read/{self.slug}/"

    monkeypatch.setattr(model, "get_url_parts", own_url_parts, raising=False)
    assert hrefs(text(reader.get(confirmation, secure=True)), "data-wkp-back") == [
        f"/read/{shop.article.slug}/"
    ]


# -- what the checkout and confirmation say of the offer ------------------------------------------------


def summary_html(html: str) -> str:
    match = re.search(r'<div class="wkp-offer-summary">.*?</div>', html, re.S)
    assert match, "no offer summary on the page"
    return match.group(0)


def give_selling_points(shop, points):
    page = shop.purchase_page.specific
    for child in page.offers:
        if child.id == Shop.package_ref:
            child.value["selling_points"] = points
    page.save_revision().publish()


def test_checkout_and_confirmation_show_the_editors_label_and_selling_points(shop, payway, reader):
    give_selling_points(shop, ["All articles", "Cancel any time"])
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, json=order_json())
    attempt = start_checkout(reader, shop)

    checkout = summary_html(text(reader.get(checkout_path(attempt), secure=True)))
    pay(reader, attempt)
    confirmation = summary_html(text(reader.get(f"/thanks/?ref={attempt.reference}", secure=True)))

    for summary in (checkout, confirmation):
        assert re.search(r'<h2 class="wkp-offer-summary__name">Digital, monthly</h2>', summary)
        assert '<p class="wkp-offer-summary__product">Digital</p>' in summary  # Payway's name, second
        assert "<li>All articles</li><li>Cancel any time</li>" in summary
        assert "99 kr / month" in summary


def test_an_offer_edited_after_the_reader_chose_it_is_still_described_as_chosen(shop, payway, reader):
    """The summary is the offer the reader chose, copied onto the attempt at buy time: an edit of the
    page since (here it sells something else) changes nothing the checkout or confirmation says."""
    give_selling_points(shop, ["All articles"])
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_checkout(reader, shop)
    page = shop.purchase_page.specific
    for child in page.offers:
        if child.id == Shop.package_ref:
            child.value.update(product_code="another", label="Something else", selling_points=["Other"])
    page.save_revision().publish()

    summary = summary_html(text(reader.get(checkout_path(attempt), secure=True)))

    assert '<h2 class="wkp-offer-summary__name">Digital, monthly</h2>' in summary
    assert "<li>All articles</li>" in summary
    assert "Something else" not in summary and "Other" not in summary
    assert "99 kr / month" in summary  # what is charged is the attempt's


def test_the_trial_is_called_a_free_trial_from_purchase_page_to_confirmation(shop, payway, reader):
    landing = text(reader.get(landing_url(shop), secure=True))
    trial_box = re.search(r'<li class="wkp-offer[^"]*" data-wkp-offer="offer-trial".*?</li>', landing, re.S)
    assert "Start the free trial</button>" in trial_box.group(0)
    assert "0 kr" not in trial_box.group(0)
    assert "Free trial for 1 month" in trial_box.group(0)

    payway.add(responses.POST, CREATE_V2, json=session_json(categories=("direct_debit",)))
    payway.add(responses.POST, PLACE_TRIAL, json=order_json())
    attempt = start_checkout(reader, shop, ref=Shop.trial_ref)
    checkout = text(reader.get(checkout_path(attempt), secure=True))
    assert "Start the free trial with Klarna</button>" in checkout
    assert "Pay with Klarna" not in checkout
    assert "Nothing is charged during the free trial." in checkout  # a month has no fixed end date here
    assert "0 kr" not in checkout

    pay(reader, attempt)
    confirmation = text(reader.get(f"/thanks/?ref={attempt.reference}", secure=True))
    assert "Thank you! Your free trial has started." in confirmation
    assert "Free trial for 1 month" in confirmation


@freeze_time("2026-11-25 10:00:00")
def test_a_trial_counted_in_days_says_when_it_ends_in_swedish(shop, payway, both_languages):
    payway.add(responses.POST, CREATE_V2, json=session_json(categories=("direct_debit",)))
    reader = Client()
    buy(reader, shop, ref=Shop.trial_ref, **SWEDISH)
    attempt = PurchaseAttempt.objects.get()
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(price_period="14 day")

    html = text(reader.get(checkout_path(attempt), secure=True, **SWEDISH))

    assert "Under provperioden debiteras ingenting. Den slutar den 9 december 2026." in html
    assert "Gratis provperiod i 14 dagar" in html
    assert "Prova gratis med Klarna" in html
    assert "kr /" not in summary_html(html)


def test_a_package_checkout_says_nothing_of_a_trial(shop, payway, reader):
    payway.add(responses.POST, CREATE_V2, json=session_json())
    attempt = start_checkout(reader, shop)

    html = text(reader.get(checkout_path(attempt), secure=True))

    assert "data-wkp-trial-note" not in html
    assert "Pay with Klarna</button>" in html


def test_the_unreadable_form_page_names_customer_service(shop, customer_service):
    response = Client().post(
        shop.purchase_page.url + "buy/", data="page=1&offer=x", content_type=UTF16_FORM, secure=True
    )

    assert response.status_code == 400
    html = text(response)
    assert CUSTOMER_SERVICE in html
    assert hrefs(html, "data-wkp-back") == ["/"]


def test_a_purchase_page_offer_leads_back_to_the_purchase_page(shop, payway, reader):
    fail_place_order(payway, body=requests.ReadTimeout("slow"))
    attempt = start_checkout(reader, shop)

    widget = text(reader.get(checkout_path(attempt), secure=True))
    outcome = text(pay(reader, attempt))

    for html in (widget, outcome):
        assert hrefs(html, "data-wkp-back") == [landing_url(shop)]
        assert "Back to the offers" in html and "Back to the article" not in html
