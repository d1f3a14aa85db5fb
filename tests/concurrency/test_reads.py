"""The confirmation page's own SQL (``purchase.attempts.attempt_to_confirm``) on PostgreSQL: it reads what
the ORM reads (the UUID reference, the JSON lists, the decimal price and the article's route come back
the same), in one query."""

from __future__ import annotations

import pytest

from tests.factories import confirmation_read_of, placed_article_attempt

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_the_confirmations_read_is_what_the_orm_reads(shop, django_assert_num_queries):
    attempt = placed_article_attempt(shop)
    with django_assert_num_queries(2):  # the read, then the ORM's
        read, stored = confirmation_read_of(attempt)
    assert read == stored and read["page.url_path"] == shop.article.url_path and read["page.live"] is True
