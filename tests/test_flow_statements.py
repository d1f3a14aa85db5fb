"""What each step of the purchase flow costs in SQL statements, pinned so that a regression fails.

Issue 12's lean flow: no reference indexing of attempts, the site's settings read once per request, the
routed site and page reused, no read-back after a conditional update that changed the row, saves of the
changed columns only. The ceilings below are what the flow needs today; ``bench/purchase_flow.py`` prints
the same counts next to the timings. Five statements of every step are the page itself, as for any
article: Wagtail's site and route lookups; every step but the checkout page also reads the reader's
Django session, as the plain article does (its header greets a returning reader).

The database runs in autocommit, as in production (``transactional_db``): an atomic block is then a
transaction, not a savepoint inside the test's own, so the counts are those of a real request. SQLite
then also sends each transaction's BEGIN and COMMIT through Django's cursor, which
``django_assert_max_num_queries`` counts and the benchmark does not (PostgreSQL's driver sends them on
its own): :func:`ceiling` adds them. A first reader buys before anything is counted, so the site's
settings row, Wagtail's site cache and Payway's system token exist, as on a site that has sold before.
"""

from __future__ import annotations

import functools

import pytest
import responses
from django.contrib.contenttypes.models import ContentType
from django.core.cache import caches
from django.test import Client
from wagtail.models import Locale, Page, ReferenceIndex, Site

from tests.factories import (
    CREATE_V2,
    CUSTOMER,
    KLARNA_REDIRECT,
    OFFER_DEFAULTS,
    PLACE_V2,
    offer_value,
    order_json,
    paywalled_article,
    session_json,
)
from tests.testapp.models import ArticlePage
from wagtail_klarna_paywall.blocks import find_offer
from wagtail_klarna_paywall.conf import paywall_settings
from wagtail_klarna_paywall.models import (
    AttemptState,
    EventKind,
    KlarnaPurchasePage,
    PaywallSettings,
    PurchaseAttempt,
    PurchaseConfirmationPage,
)
from wagtail_klarna_paywall.purchase import attempts, readers, session

OFFER = {**OFFER_DEFAULTS, "selling_points": ["Every article"]}


def ceiling(statements: int, transactions: int = 0) -> int:
    """``statements`` (as the benchmark counts them) plus a BEGIN and a COMMIT per transaction."""
    return statements + 2 * transactions


#: Statements per step, at most, as ``bench/purchase_flow.py`` counts them (issue 12's targets: buy 20,
#: checkout 6, place order 12, confirmation 8), and the transactions each step commits.
PLAIN_ARTICLE = ceiling(6)
# Buy: the new reader's Django session (created, then saved again), the attempt and its Payway session.
BUY = ceiling(15, 3)
# Checkout: the page and the attempt; an anonymous reader's own attempt is recognised from the session
# cookie, so the Django session is not read (purchase/readers.made_in_this_browser).
CHECKOUT = ceiling(6)
# Place order: the PLACING mark, the product claims and the AUTHORIZED event, committed before Payway is
# called (a first purchase's claims are created, held, in one INSERT whatever the number of identities),
# then the outcome (an UPDATE that sets placed_at: no event) and the session's grant.
PLACE_ORDER = ceiling(12, 2)
# Confirmation: the page, the attempt with its article (whose URL needs no more of it), the confirmation
# (an UPDATE that sets confirmed_at: no event); a reload costs 7.
CONFIRMATION = ceiling(8)


def default_site() -> Site:
    """Wagtail's default site; made again when an earlier test's flush (``transactional_db``) removed
    what Wagtail's migrations had created."""
    site = Site.objects.filter(is_default_site=True).first()
    if site is not None:
        return site
    Locale.objects.get_or_create(language_code="en")
    root = Page.add_root(instance=Page(title="Root", slug="root"))
    home = root.add_child(instance=Page(title="Home", slug="home"))
    return Site.objects.create(hostname="localhost", port=80, root_page=home, is_default_site=True)


@pytest.fixture
def pages(transactional_db):
    home = default_site().root_page.specific
    thanks = home.add_child(instance=PurchaseConfirmationPage(title="Thanks", slug="thanks"))
    purchase_page = home.add_child(
        instance=KlarnaPurchasePage(
            title="Subscribe",
            slug="subscribe",
            confirmation_page=thanks,
            offers=[{"type": "offer", "id": "offer-package", "value": OFFER}],
        )
    )
    article = home.add_child(
        instance=ArticlePage(
            title="Free story",
            slug="free-story",
            body=[{"type": "paragraph", "id": "p1", "value": "<p>Free for everyone.</p>"}],
        )
    )
    return purchase_page, article


@pytest.fixture
def payway(payway):
    """The suite's fake Payway, answering the one session and order of each purchase."""
    payway.add(responses.POST, CREATE_V2, json=session_json(categories=("pay_now",)))
    payway.add(responses.POST, PLACE_V2, json=order_json())
    return payway


def purchase(reader: Client, purchase_page: Page, email: str) -> PurchaseAttempt:
    """A whole purchase by a new reader, uncounted."""
    form = {"page": purchase_page.pk, "offer": "offer-package"}
    checkout = reader.post(purchase_page.url + "buy/", form, secure=True)["Location"]
    reader.get(checkout, secure=True)
    reader.post(checkout, {"klarna_authorization_token": "auth-0", **CUSTOMER, "email": email}, secure=True)
    attempt = PurchaseAttempt.objects.latest("pk")
    reader.get(f"/thanks/?ref={attempt.reference}", secure=True)
    return attempt


def test_every_step_of_a_purchase_stays_within_its_statements(pages, payway, django_assert_max_num_queries):
    purchase_page, article = pages
    purchase(Client(REMOTE_ADDR="192.0.2.9"), purchase_page, "first@example.com")
    reader = Client(REMOTE_ADDR="192.0.2.10")
    form = {"page": purchase_page.pk, "offer": "offer-package"}

    with django_assert_max_num_queries(BUY):
        bought = reader.post(purchase_page.url + "buy/", form, secure=True)
    assert bought.status_code == 303
    checkout = bought["Location"]
    with django_assert_max_num_queries(CHECKOUT):
        widget = reader.get(checkout, secure=True)
    assert widget.status_code == 200 and "client-token" in widget.content.decode()
    with django_assert_max_num_queries(PLACE_ORDER):
        placed = reader.post(checkout, {"klarna_authorization_token": "auth-1", **CUSTOMER}, secure=True)
    assert (placed.status_code, placed["Location"]) == (303, KLARNA_REDIRECT)
    attempt = PurchaseAttempt.objects.latest("pk")
    with django_assert_max_num_queries(CONFIRMATION):
        confirmed = reader.get(f"/thanks/?ref={attempt.reference}", secure=True)
    assert confirmed.status_code == 200
    # The baseline every step includes: the same reader's plain article.
    with django_assert_max_num_queries(PLAIN_ARTICLE):
        assert reader.get(article.url, secure=True).status_code == 200

    attempt.refresh_from_db()
    assert attempt.state == AttemptState.CONFIRMED
    assert attempt.placed_at and attempt.confirmed_at
    assert list(attempt.events.values_list("kind", flat=True)) == [
        EventKind.BUY,
        EventKind.SESSION_CREATED,
        EventKind.AUTHORIZED,
    ]


def test_an_offer_bought_in_an_articles_paywall_costs_the_article_once(
    pages, payway, django_assert_max_num_queries
):
    """The flow's usual entry: the paywall of an article. Its checkout also loads the article's row (the
    back link; not its specific row), the confirmation reads its route in the attempt's query."""
    purchase_page, _free = pages
    article = paywalled_article(
        default_site().root_page,
        purchase_page,
        title="Big story",
        slug="big-story",
        offers={"o1": offer_value()},
    )
    reader = Client(REMOTE_ADDR="192.0.2.12")
    bought = reader.post(
        purchase_page.url + "buy/", {"page": article.pk, "offer": "paywall-1:o1"}, secure=True
    )
    assert bought.status_code == 303, bought.content.decode()[:500]
    with django_assert_max_num_queries(CHECKOUT + 1):
        widget = reader.get(bought["Location"], secure=True)
    assert widget.status_code == 200 and article.url in widget.content.decode()
    with django_assert_max_num_queries(PLACE_ORDER):
        reader.post(bought["Location"], {"klarna_authorization_token": "auth-2", **CUSTOMER}, secure=True)
    attempt = PurchaseAttempt.objects.get(page=article)
    assert attempt.state == AttemptState.PLACED
    with django_assert_max_num_queries(CONFIRMATION):
        confirmed = reader.get(f"/thanks/?ref={attempt.reference}", secure=True)
    assert confirmed.status_code == 200 and article.url in confirmed.content.decode()


def test_a_second_click_that_reuses_the_session_costs_less_than_the_first(
    pages, payway, django_assert_max_num_queries
):
    purchase_page, _article = pages
    reader = Client(REMOTE_ADDR="192.0.2.11")
    form = {"page": purchase_page.pk, "offer": "offer-package"}
    first = reader.post(purchase_page.url + "buy/", form, secure=True)
    # No Django session to create (the reader has one), no attempt to insert, no Payway call: the
    # lookups, the row lock and two events, in one transaction.
    with django_assert_max_num_queries(ceiling(13, 1)):
        again = reader.post(purchase_page.url + "buy/", form, secure=True)
    assert again["Location"] == first["Location"]
    assert list(PurchaseAttempt.objects.get().events.values_list("kind", flat=True)) == [
        EventKind.BUY,
        EventKind.SESSION_CREATED,
        EventKind.BUY,
        EventKind.SESSION_REUSED,
    ]


def test_attempts_are_not_in_wagtails_reference_index(pages, payway):
    """Wagtail would re-index every attempt on every save (the purchase log registers the model)."""
    purchase_page, _article = pages
    Client().post(
        purchase_page.url + "buy/", {"page": purchase_page.pk, "offer": "offer-package"}, secure=True
    )
    assert PurchaseAttempt.objects.get().state == AttemptState.SESSION_READY
    indexed = ReferenceIndex.objects.filter(content_type=ContentType.objects.get_for_model(PurchaseAttempt))
    assert not indexed.exists()


# -- the site's settings, once per request ----------------------------------------------------------


def test_settings_are_read_once_per_site_instance(db, django_assert_num_queries):
    site = default_site()
    first = attempts.site_settings(site)
    with django_assert_num_queries(0):
        assert attempts.site_settings(site) is first
    # Another Site instance (another request, maybe another process) finds them in the shared cache.
    another = Site.objects.get(pk=site.pk)
    with django_assert_num_queries(0):
        assert attempts.site_settings(another) == first
    # Once that has forgotten them, the database is read again.
    caches[paywall_settings.CACHE].clear()
    third = Site.objects.get(pk=site.pk)
    with django_assert_num_queries(1):
        assert attempts.site_settings(third) == first


def test_saving_the_settings_forgets_what_was_remembered(db, django_assert_num_queries):
    site = default_site()
    remembered = attempts.site_settings(site)
    stored = PaywallSettings.objects.get(pk=remembered.pk)
    stored.customer_service = "help@example.com"
    stored.save()
    with django_assert_num_queries(1):
        assert attempts.site_settings(site).customer_service == "help@example.com"
    # Also for the next request, whatever process serves it: the shared cache forgot them too.
    next_request = Site.objects.get(pk=site.pk)
    with django_assert_num_queries(0):
        assert attempts.site_settings(next_request).customer_service == "help@example.com"
    stored.delete()
    assert attempts.site_settings(site).customer_service == ""
    assert attempts.site_settings(Site.objects.get(pk=site.pk)).customer_service == ""


def test_the_views_and_the_flow_share_one_read_per_request(pages, rf):
    purchase_page, _article = pages
    request = rf.get(purchase_page.url)
    site = Site.find_for_request(request)
    assert attempts.site_settings(request=request) is attempts.site_settings(site)
    assert readers.site_of(request, purchase_page) is site


def test_the_shortcut_for_a_new_reader_still_meets_the_single_flight_constraint(pages, payway):
    """A reader whose key this request made skips the lookups (nothing can name the key yet). Should a
    row with that key exist after all, the insert fails on the open-attempt constraint and the flow
    takes the existing attempt: still one open attempt and one Payway session."""
    purchase_page, _article = pages
    offer = find_offer(purchase_page, "offer-package")
    start = functools.partial(
        session.start_purchase,
        offer=offer,
        offer_page=purchase_page,
        purchase_page=purchase_page,
        site=default_site(),
    )
    first = start(reader=attempts.Reader("anon:" + "b" * 64))
    again = start(reader=attempts.Reader("anon:" + "b" * 64, new=True))
    assert (first.status, again.status) == (session.BuyStatus.READY, session.BuyStatus.READY)
    assert again.attempt.pk == first.attempt.pk
    assert PurchaseAttempt.objects.count() == 1
    assert len([c for c in payway.calls if c.request.url.endswith("/create_session")]) == 1
