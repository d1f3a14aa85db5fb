"""Paywalled text never leaks: page HTML, API v2, search, feeds; and anonymous views stay cacheable."""

from __future__ import annotations

import json

import pytest
import responses
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from wagtail.models import Page, Site

from tests.test_access import ACTIVE_PRODUCTS_URL, reader_request
from tests.testapp.models import ArticlePage
from wagtail_klarna_paywall import gating

pytestmark = pytest.mark.django_db

FREE = "Freeintroword"
TEASER = "Teaserword"
GATED = "Gatedsecretword"
GATED_HEADING = "Gatedheadingword"
PAPER_OFFER = "Paperofferlabel"


def body_json(access_codes=("digital",)) -> str:
    offer = {
        "product_code": "digital",
        "product_kind": "package",
        "period_type": "recurring",
        "label": "Digital, 99 kr/month",
        "is_trial": False,
        "selling_points": [],
    }
    return json.dumps(
        [
            {"type": "paragraph", "value": f"<p>{FREE} opens the story.</p>", "id": "b1"},
            {
                "type": "paywall",
                "id": "pw",
                "value": {
                    "heading": "Read on",
                    "teaser": f"<p>{TEASER} for subscribers.</p>",
                    "offers": [
                        {"type": "item", "value": offer, "id": "o1"},
                        {
                            "type": "item",
                            "value": {**offer, "product_code": "paper", "label": PAPER_OFFER},
                            "id": "o2",
                        },
                    ],
                    "purchase_page": None,
                    "confirmation_page": None,
                    "login_text": "Already a subscriber? Log in",
                    "access_product_codes": list(access_codes),
                },
            },
            {"type": "heading", "value": GATED_HEADING, "id": "b3"},
            {"type": "paragraph", "value": f"<p>{GATED} is the scoop.</p>", "id": "b4"},
        ]
    )


@pytest.fixture
def article():
    root = Site.objects.get(is_default_site=True).root_page
    page = ArticlePage(title="Paywalled story", slug="story", body=body_json())
    root.add_child(instance=page)
    page.save_revision().publish()
    return ArticlePage.objects.get(pk=page.pk)


def as_reader(client, codes):
    """Log ``client`` in as an SSO2 reader holding ``codes`` (Payway answers through ``responses``)."""
    request = reader_request()
    client.cookies[settings.SESSION_COOKIE_NAME] = request.COOKIES[settings.SESSION_COOKIE_NAME]
    rsps = responses.RequestsMock(assert_all_requests_are_fired=False)
    rsps.add(responses.GET, ACTIVE_PRODUCTS_URL, json={"item": {"id": "acc", "active_products": list(codes)}})
    return rsps


# -- the cut ---------------------------------------------------------------------------------------


def test_split_and_free_text(article):
    free, paywall, rest = gating.split_at_paywall(article.body)
    assert [c.id for c in free] == ["b1"] and paywall.id == "pw" and [c.id for c in rest] == ["b3", "b4"]
    text = article.paywall_free_text()
    assert FREE in text and TEASER in text
    assert GATED not in text and GATED_HEADING not in text and "<p>" not in text


def test_stream_without_paywall_is_free(article):
    stream = article.body
    free, paywall, rest = gating.split_at_paywall([c for c in stream if c.id != "pw"])
    assert paywall is None and rest == [] and len(free) == 3
    assert gating.can_read_all(None, free)


def test_visible_children_without_request_stop_at_the_paywall(article):
    children, paywall, has_access = gating.visible_children(None, article.body)
    assert [c.id for c in children] == ["b1"] and paywall.id == "pw" and has_access is False


# -- page HTML -------------------------------------------------------------------------------------


def test_anonymous_page_has_no_gated_text_no_cookie_no_writes(client, article):
    """L01: no Set-Cookie, no Vary: Cookie, no DB writes and no Payway call for an anonymous reader."""
    with responses.RequestsMock(), CaptureQueriesContext(connection) as queries:
        response = client.get(article.url)
    html = response.content.decode()
    assert response.status_code == 200
    assert FREE in html and GATED not in html and GATED_HEADING not in html
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")
    assert "private" not in response.get("Cache-Control", "")
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}
    ]
    assert writes == []


def test_logged_in_reader_without_access_gets_no_gated_text(client, article):
    with as_reader(client, ["other"]):
        response = client.get(article.url)
    html = response.content.decode()
    assert FREE in html and GATED not in html and GATED_HEADING not in html
    assert "private" in response["Cache-Control"] and "Cookie" in response["Vary"]


def test_offer_the_reader_already_owns_is_hidden(client, article):
    """A logged-in reader holding "paper" (which does not open this article) is not offered "paper" again."""
    with as_reader(client, ["paper"]):
        html = client.get(article.url).content.decode()
    assert GATED not in html
    assert "Digital, 99 kr/month" in html and PAPER_OFFER not in html


def test_anonymous_reader_sees_every_offer_and_the_login_link(client, article):
    with responses.RequestsMock():
        html = client.get(article.url).content.decode()
    assert "Digital, 99 kr/month" in html and PAPER_OFFER in html
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
    response = gating.apply_reader_cache_headers(request, HttpResponse("x"))
    assert not response.has_header("Vary") and not response.has_header("Cache-Control")
    gating.mark_reader_dependent(request)
    response = gating.apply_reader_cache_headers(request, HttpResponse("x"))
    assert response["Vary"] == "Cookie" and response["Cache-Control"] == "private"
