"""Paywalled text never leaks: page HTML, API v2, search, feeds; and anonymous views stay cacheable."""

from __future__ import annotations

import json

import pytest
import responses
from django.conf import settings
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from wagtail.models import Page

from tests.factories import (
    DIGITAL_OFFER,
    FREE,
    GATED,
    GATED_HEADING,
    PAPER_OFFER,
    TEASER,
    as_reader,
)
from tests.testapp.models import ArticlePage
from wagtail_klarna_paywall.reading import access, cache_headers, gating

pytestmark = pytest.mark.django_db


# -- the cut ---------------------------------------------------------------------------------------


def test_split_and_free_text(article):
    free, paywall, rest = gating.split_at_paywall(article.body)
    assert [c.block.name for c in free] == ["paragraph"] and paywall.block.name == "paywall"
    assert [c.block.name for c in rest] == ["heading", "paragraph"]
    text = article.paywall_free_text()
    assert FREE in text and TEASER in text
    assert GATED not in text and GATED_HEADING not in text and "<p>" not in text


def test_stream_without_paywall_is_free(article):
    stream = article.body
    free, paywall, rest = gating.split_at_paywall([c for c in stream if c.block.name != "paywall"])
    assert paywall is None and rest == [] and len(free) == 3
    assert gating.can_read_all(None, free)


def test_without_a_request_the_stream_stops_at_the_paywall(article):
    free, paywall, _rest = gating.split_at_paywall(article.body)
    assert [c.block.name for c in free] == ["paragraph"] and paywall.block.name == "paywall"
    assert gating.can_read_all(None, article.body) is False
    assert access.reading(None, gating.access_codes(paywall)) == access.Reading(access.ANONYMOUS, False)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("", ("subscriber", True, "")),
        ("anonymous", ("anonymous", False, "anonymous")),
        ("reader", ("reader", False, "reader")),
        ("subscriber", ("subscriber", True, "subscriber")),
        (None, ("subscriber", True, None)),
    ],
)
def test_previews_are_decided_by_the_same_function_as_readers(mode, expected):
    """One owner: preview modes, editors and readers are all answered by access.reading, without Payway."""
    request = RequestFactory().get("/")
    request.is_preview = True
    if mode is not None:
        setattr(request, access.PREVIEW_MODE_ATTR, mode)
    with responses.RequestsMock():
        verdict = access.reading(request, ["digital"])
    assert (verdict.state, verdict.reads, verdict.preview_mode) == expected


# -- page HTML -------------------------------------------------------------------------------------


def test_anonymous_page_has_no_gated_text_no_writes_no_payway(client, article):
    """L01: no DB writes, no Payway call and no private/reader headers for an anonymous reader."""
    with responses.RequestsMock(), CaptureQueriesContext(connection) as queries:
        response = client.get(article.url)
    html = response.content.decode()
    assert response.status_code == 200
    assert FREE in html and GATED not in html and GATED_HEADING not in html
    assert "private" not in response.get("Cache-Control", "")
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}
    ]
    assert writes == []


def test_anonymous_page_sets_no_cookie_and_does_not_vary_on_cookies(client, article):
    """L01: an anonymous paywalled page stays cacheable: no Set-Cookie, no Vary: Cookie."""
    with responses.RequestsMock():
        response = client.get(article.url)
    assert "wkp-buy-form" in response.content.decode() or "offer" in response.content.decode()
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")


def test_logged_in_reader_without_access_gets_no_gated_text(client, article):
    with as_reader(client, ["other"]):
        response = client.get(article.url)
    html = response.content.decode()
    assert FREE in html and GATED not in html and GATED_HEADING not in html
    assert "private" in response["Cache-Control"] and "Cookie" in response["Vary"]


def test_offer_the_reader_already_owns_is_hidden(client, article):
    """A logged-in reader holding the "paper" product (which does not open this article) is not offered
    the package that grants it again: offers are compared by the products they grant, not their code."""
    with as_reader(client, ["paper"]):
        html = client.get(article.url).content.decode()
    assert GATED not in html
    assert DIGITAL_OFFER in html and PAPER_OFFER not in html


def test_anonymous_reader_sees_every_offer_and_the_login_link(client, article):
    with responses.RequestsMock():
        html = client.get(article.url).content.decode()
    assert DIGITAL_OFFER in html and PAPER_OFFER in html
    assert "/klarna-paywall/sso/login/?next=" in html


def test_logged_in_reader_views_write_nothing(client, article):
    """L02: once access is cached, a logged-in reader's page views make no Payway call and no DB write."""
    with as_reader(client, ["digital"]):
        client.get(article.url)
    with responses.RequestsMock(), CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            response = client.get(article.url)
            assert GATED in response.content.decode() and not response.cookies
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}
    ]
    assert writes == []


def test_subscriber_reads_the_whole_page_privately(client, article):
    with as_reader(client, ["digital"]):
        response = client.get(article.url)
    html = response.content.decode()
    assert FREE in html and GATED in html and GATED_HEADING in html
    assert "private" in response["Cache-Control"] and "Cookie" in response["Vary"]
    assert not response.cookies  # reading does not write the session


def test_editor_preview_is_never_gated(article):
    with responses.RequestsMock():
        response = article.make_preview_request()
    assert GATED in response.content.decode()


# -- API v2 ----------------------------------------------------------------------------------------


def api_body(client, article):
    response = client.get(f"/api/v2/pages/{article.pk}/")
    assert response.status_code == 200
    return response, json.dumps(response.json()["body"])


def test_api_stops_at_the_paywall_for_anonymous_readers(client, article):
    with responses.RequestsMock():
        response, body = api_body(client, article)
    assert FREE in body and TEASER in body
    assert GATED not in body and GATED_HEADING not in body
    assert [block["type"] for block in response.json()["body"]] == ["paragraph", "paywall"]
    assert not response.cookies and "private" not in response.get("Cache-Control", "")


def test_api_listing_with_body_field_is_gated_too(client, article):
    with responses.RequestsMock():
        response = client.get("/api/v2/pages/", {"type": "testapp.ArticlePage", "fields": "body"})
    assert response.status_code == 200
    assert GATED not in response.content.decode()


def test_api_gives_subscribers_everything_privately(client, article):
    with as_reader(client, ["digital"]):
        response, body = api_body(client, article)
    assert GATED in body and GATED_HEADING in body
    assert "private" in response["Cache-Control"] and "Cookie" in response["Vary"]


def test_api_non_subscriber_gets_the_cut(client, article):
    with as_reader(client, []):
        _response, body = api_body(client, article)
    assert GATED not in body


# -- search ----------------------------------------------------------------------------------------


def test_search_index_holds_only_free_text(client, article):
    from wagtail.search.backends import get_search_backend

    backend = get_search_backend()
    # The free text is found (so the index does hold the method's text) ...
    assert [p.pk for p in backend.search(FREE, ArticlePage)] == [article.pk]
    assert [p.pk for p in backend.search(TEASER, ArticlePage)] == [article.pk]
    # ... and the paywalled text is not, for anyone.
    assert list(backend.search(GATED, ArticlePage)) == []
    assert list(backend.search(GATED_HEADING, Page)) == []
    with as_reader(client, ["digital"]):
        response = client.get("/api/v2/pages/", {"search": GATED})
    assert response.json()["items"] == []


# -- feeds -----------------------------------------------------------------------------------------


def test_feed_carries_free_text_and_a_link_only(client, article):
    with as_reader(client, ["digital"]):  # even a subscriber's feed reader gets the free text only
        response = client.get("/feeds/articles/")
    xml = response.content.decode()
    assert response.status_code == 200
    assert FREE in xml and article.get_full_url() in xml
    assert GATED not in xml and GATED_HEADING not in xml


# -- headers ---------------------------------------------------------------------------------------


def test_reader_cache_headers_only_when_marked(rf):
    from django.http import HttpResponse

    request = rf.get("/")
    response = cache_headers.apply_reader_cache_headers(request, HttpResponse("x"))
    assert not response.has_header("Vary") and not response.has_header("Cache-Control")
    cache_headers.mark_reader_dependent(request)
    response = cache_headers.apply_reader_cache_headers(request, HttpResponse("x"))
    assert response["Vary"] == "Cookie" and response["Cache-Control"] == "private"


def test_the_paywall_hides_offers_through_the_same_decision_as_buy(client, article, monkeypatch):
    """One function decides "the reader holds what this offer sells" for the paywall and the purchase
    views (access.offer_is_owned); replacing it changes what the paywall shows."""
    from wagtail_klarna_paywall.reading import access

    asked = []

    def decide(request, offer):
        asked.append(offer.product_code)
        return offer.label == DIGITAL_OFFER

    monkeypatch.setattr(access, "offer_is_owned", decide)
    with as_reader(client, ["other"]):
        html = client.get(article.url).content.decode()
    assert GATED not in html
    assert DIGITAL_OFFER not in html and PAPER_OFFER in html
    assert "paper_package" in asked
