"""The paywalled-content JSON-LD: it parses, carries Google's fields, and its cssSelector matches exactly
the element around the paid part, for readers with and without access."""

from __future__ import annotations

import json

import pytest
from bs4 import BeautifulSoup
from django.template import Context, Template
from wagtail.models import Site

from tests.factories import FREE, GATED, GATED_HEADING, TEASER, ArticlePageFactory, as_reader
from wagtail_klarna_paywall.reading.structured_data import CSS_SELECTOR, PAID_PART_CLASS, article_data

pytestmark = pytest.mark.django_db


def json_ld(html: str) -> dict:
    soup = BeautifulSoup(html, "html.parser")
    scripts = soup.find_all("script", type="application/ld+json")
    assert len(scripts) == 1, "one JSON-LD block per page"
    return json.loads(scripts[0].string)


def paid_parts(html: str, selector: str):
    return BeautifulSoup(html, "html.parser").select(selector)


def test_json_ld_of_a_paywalled_article_follows_googles_pattern(client, article):
    html = client.get(article.url).content.decode()
    data = json_ld(html)
    assert data["@context"] == "https://schema.org" and data["@type"] == "NewsArticle"
    assert data["headline"] == article.title
    assert data["isAccessibleForFree"] is False
    part = data["hasPart"]
    assert part == {"@type": "WebPageElement", "isAccessibleForFree": False, "cssSelector": CSS_SELECTOR}
    assert part["cssSelector"].startswith(".")  # Google: class selectors only
    assert data["url"].endswith(article.url) and data["datePublished"] and data["dateModified"]


def test_the_selector_matches_exactly_the_wrapper_for_readers_without_access(client, article):
    html = client.get(article.url).content.decode()
    parts = paid_parts(html, json_ld(html)["hasPart"]["cssSelector"])
    assert len(parts) == 1
    wrapper = parts[0]
    assert wrapper.name == "div" and wrapper["class"] == [PAID_PART_CLASS]
    # It holds the paywall that stands in for the paid part; the free text is outside; no paid text at all.
    assert wrapper.select_one("[data-wkp-paywall]") is not None and TEASER in wrapper.get_text()
    assert FREE not in wrapper.get_text() and FREE in html
    assert GATED not in html and GATED_HEADING not in html
    assert not wrapper.find_parents(class_=PAID_PART_CLASS)  # Google: do not nest the sections


def test_the_selector_matches_exactly_the_paid_text_for_subscribers(client, article):
    with as_reader(client, ["digital"]):
        html = client.get(article.url).content.decode()
    data = json_ld(html)
    assert data["isAccessibleForFree"] is False  # the article is paywalled, whoever reads it
    parts = paid_parts(html, data["hasPart"]["cssSelector"])
    assert len(parts) == 1
    text = parts[0].get_text()
    assert GATED in text and GATED_HEADING in text and FREE not in text
    assert parts[0].select_one("[data-wkp-paywall]") is None


def test_the_selector_matches_for_logged_in_readers_without_access(client, article):
    with as_reader(client, ["other"]):
        html = client.get(article.url).content.decode()
    parts = paid_parts(html, json_ld(html)["hasPart"]["cssSelector"])
    assert len(parts) == 1 and parts[0].select_one("[data-wkp-paywall]") is not None
    assert GATED not in html


def test_a_free_article_says_so_and_has_no_paid_part(client):
    root = Site.objects.get(is_default_site=True).root_page
    page = ArticlePageFactory(parent=root, title="Free story", body__0__paragraph__value="<p>All free</p>")
    page.save_revision().publish()
    html = client.get(page.url).content.decode()
    data = json_ld(html)
    assert data["isAccessibleForFree"] is True and "hasPart" not in data
    assert paid_parts(html, CSS_SELECTOR) == []


def test_json_ld_cannot_break_out_of_its_script_element(article):
    article.title = "</script><script>alert(1)</script> & more"
    html = Template("{% load klarna_paywall_tags %}{% paywall_json_ld page %}").render(
        Context({"page": article})
    )
    assert "</script><script>" not in html
    assert html.count("</script>") == 1
    assert json_ld(html)["headline"] == article.title


def test_extra_fields_and_search_description(article):
    article.search_description = "What happened on the bridge"
    data = article_data(article, extra={"author": {"@type": "Person", "name": "Ann"}, "image": ""})
    assert data["description"] == "What happened on the bridge"
    assert data["author"] == {"@type": "Person", "name": "Ann"} and "image" not in data
    assert article_data(article, extra={"author": "Bo"})["author"] == {"@type": "Person", "name": "Bo"}


def test_json_ld_reads_no_paywall_block(article, django_assert_num_queries):
    from tests.testapp.models import ArticlePage

    page = ArticlePage.objects.get(pk=article.pk)
    with django_assert_num_queries(1):  # the site's root paths, for the full URL: no page is loaded
        article_data(page)
    assert all(bound is None for bound in page.body._bound_blocks)  # found from the stored types


def test_without_a_page_nothing_is_emitted():
    assert Template("{% load klarna_paywall_tags %}{% paywall_json_ld %}").render(Context({})) == ""


def test_editor_preview_wraps_the_paid_part_too(article):
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    request.is_preview = True
    request.klarna_paywall_preview_mode = ""
    html = Template("{% load klarna_paywall_tags %}{% paywalled_stream page.body %}").render(
        Context({"page": article, "request": request})
    )
    parts = paid_parts(html, CSS_SELECTOR)
    assert len(parts) == 1 and GATED in parts[0].get_text()
