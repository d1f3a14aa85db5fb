"""The paywall's rendered HTML is cached per state, never with a CSRF token or a reader's holdings in it."""

from __future__ import annotations

import pytest
import responses
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.middleware.csrf import _does_token_match
from django.template import RequestContext, Template
from django.test.utils import CaptureQueriesContext
from wagtail.models import Page

from tests.factories import (
    ACTIVE_PRODUCTS_URL,
    DIGITAL_OFFER,
    FREE,
    GATED,
    GATED_HEADING,
    PAPER_OFFER,
    as_reader,
    reader_request,
)
from tests.testapp.models import ArticlePage
from wagtail_klarna_paywall.reading import gating, render_cache

pytestmark = pytest.mark.django_db

TAG = Template("{% load klarna_paywall_tags %}{% paywalled_stream page.body %}")


def _render_tag(rf, page):
    from django.contrib.auth.models import AnonymousUser

    request = rf.get(page.url)
    request.session, request.user = SessionStore(), AnonymousUser()
    return TAG.render(RequestContext(request, {"page": page, "request": request}))


def test_cut_is_found_from_stored_types_without_converting_blocks(article):
    page = ArticlePage.objects.get(pk=article.pk)
    assert gating.paywall_index(page.body) == 1
    assert all(bound is None for bound in page.body._bound_blocks)  # nothing converted to find it
    assert gating.paywall_index([]) is None


def test_a_cached_paywall_is_not_converted_nor_the_blocks_after_it(rf, article):
    """A warm render converts the free blocks only: not the paywall (its page choosers query the database),
    not the heading that only appears after the cut."""
    first = _render_tag(rf, ArticlePage.objects.get(pk=article.pk))
    page = ArticlePage.objects.get(pk=article.pk)
    with CaptureQueriesContext(connection) as queries:
        second = _render_tag(rf, page)
    assert second == first and FREE in second and DIGITAL_OFFER in second
    assert GATED not in second and GATED_HEADING not in second
    assert page.body._bound_blocks[1] is None and page.body._bound_blocks[2] is None
    # Finding the request's site may query; no page is loaded (the purchase page chooser is not resolved).
    assert not [q["sql"] for q in queries.captured_queries if 'FROM "wagtailcore_page"' in q["sql"]]


def test_anonymous_render_from_cache_is_identical_and_queries_less(client, article):
    with responses.RequestsMock(), CaptureQueriesContext(connection) as cold:
        first = client.get(article.url)
    with responses.RequestsMock(), CaptureQueriesContext(connection) as warm:
        second = client.get(article.url)
    assert second.content == first.content
    assert len(warm) < len(cold)
    html = second.content.decode()
    assert "csrfmiddlewaretoken" not in html and render_cache.CSRF_PLACEHOLDER not in html
    assert not second.cookies and "Cookie" not in second.get("Vary", "")


def test_logged_in_reader_gets_their_own_csrf_token_from_cached_markup(client, article):
    with as_reader(client, ["other"]):
        first = client.get(article.url)
        second = client.get(article.url)
    for response in (first, second):
        html = response.content.decode()
        assert render_cache.CSRF_PLACEHOLDER not in html
        assert html.count('name="csrfmiddlewaretoken"') == 2  # one per offer: the one-click POST forms
        assert DIGITAL_OFFER in html and PAPER_OFFER in html and GATED not in html


def test_cached_markup_holds_a_placeholder_and_each_request_its_own_token(rf, article):
    renders = []

    def render(token):
        renders.append(token)
        return f'<input name="csrfmiddlewaretoken" value="{token}">'

    def request():
        req = rf.get("/")
        req.session = SessionStore()
        return req

    htmls, requests_ = [], [request(), request()]
    for req in requests_:
        htmls.append(
            render_cache.paywall_html(
                request=req,
                page=article,
                raw_block={"id": "x", "value": {}},
                state="reader",
                login_url="",
                utm_source=None,
                render=render,
            )
        )
    assert renders == [render_cache.CSRF_PLACEHOLDER]  # rendered once, with the placeholder
    tokens = [html.split('value="')[1].split('"')[0] for html in htmls]
    for req, token in zip(requests_, tokens, strict=True):
        assert _does_token_match(token, req.META["CSRF_COOKIE"])  # this request's own secret
    assert tokens[0] != tokens[1]


def test_markup_hiding_a_readers_own_offers_is_never_cached(client, article):
    with responses.RequestsMock():
        client.get(article.url)  # caches the anonymous paywall, both offers
    with as_reader(client, ["paper"]):
        html = client.get(article.url).content.decode()
    assert DIGITAL_OFFER in html and PAPER_OFFER not in html
    # Another logged-in reader, holding nothing offered here.
    client.cookies.clear()
    client.cookies[settings.SESSION_COOKIE_NAME] = reader_request(sid="sid-2").COOKIES[
        settings.SESSION_COOKIE_NAME
    ]
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, ACTIVE_PRODUCTS_URL, json={"item": {"id": "b", "active_products": ["other"]}})
        html = client.get(article.url).content.decode()
    assert DIGITAL_OFFER in html and PAPER_OFFER in html


def test_editing_the_paywall_shows_at_once(client, article):
    client.get(article.url)
    page = ArticlePage.objects.get(pk=article.pk)
    page.body[1].value["heading"] = "A brand new heading"
    page.save_revision().publish()
    assert "A brand new heading" in client.get(article.url).content.decode()


def test_moving_the_purchase_page_updates_the_buy_forms(client, article):
    purchase_page = ArticlePage.objects.get(pk=article.pk).body[1].value["purchase_page"].specific
    assert f'action="{purchase_page.url}"' in client.get(article.url).content.decode()
    purchase_page.slug = "subscribe-now"
    purchase_page.save_revision().publish()
    html = client.get(article.url).content.decode()
    assert 'action="/subscribe-now/"' in html


def test_any_page_or_site_change_starts_a_new_generation(article):
    cache = render_cache._cache()
    before = render_cache._generation(cache)
    Page.objects.get(pk=article.pk).save()
    after_save = render_cache._generation(cache)
    assert after_save != before
    article.get_site().save()
    assert render_cache._generation(cache) != after_save


def test_stored_lists_are_read_in_both_of_wagtails_formats():
    """Access codes and offers are read from the stored value, whether saved as block items or bare values."""
    from wagtail_klarna_paywall.templatetags.klarna_paywall_tags import _raw_items

    block_format = {"access_product_codes": [{"type": "item", "id": "a", "value": "digital"}]}
    assert _raw_items(block_format, "access_product_codes") == ["digital"]
    assert _raw_items({"access_product_codes": ["digital", "paper"]}, "access_product_codes") == [
        "digital",
        "paper",
    ]
    assert _raw_items({"offers": None}, "offers") == []
