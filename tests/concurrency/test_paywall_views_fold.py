"""Folding paywall views from several processes at once (the cron command and admins opening the funnel):
every row ends at the absolute count, none is doubled, and no fold fails on a duplicate row."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from tests.factories import KlarnaPurchasePageFactory, paywall_id, paywalled_page
from tests.factories import tree_root as _tree_root
from wagtail_klarna_paywall.models import PaywallViewDay
from wagtail_klarna_paywall.newsroom import paywall_views

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

FOLDERS = 6


def fold_concurrently() -> list[BaseException]:
    barrier = threading.Barrier(FOLDERS)
    errors: list[BaseException] = []

    def task():
        try:
            barrier.wait()
            paywall_views.fold()
        except BaseException as err:  # noqa: BLE001 - reported to the test
            errors.append(err)
        finally:
            connection.close()

    threads = [threading.Thread(target=task) for _ in range(FOLDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_concurrent_folds_write_each_absolute_count_once():
    root = _tree_root().root_page  # transactional tests flush the migrations' site
    purchase_page = KlarnaPurchasePageFactory(parent=root)
    pages = [paywalled_page(root, purchase_page, ["digital", "paper"], title=f"Story {n}") for n in range(8)]
    expected = {}
    for number, page in enumerate(pages):
        view = paywall_views.View(page.pk, paywall_id(page), ("digital", "paper"), "anonymous")
        for reader in range(number + 1):
            paywall_views.count_view(view, ip=f"198.51.100.{reader}", user_agent="Browser")
        expected[page.pk] = number + 1

    assert fold_concurrently() == []
    assert dict(PaywallViewDay.objects.values_list("page_id", "views")) == expected

    # More views, then folds racing again: the new absolute values, still once each.
    for page in pages[:3]:
        view = paywall_views.View(page.pk, paywall_id(page), ("digital", "paper"), "anonymous")
        paywall_views.count_view(view, ip="203.0.113.99", user_agent="Browser")
        expected[page.pk] += 1
    assert fold_concurrently() == []
    assert dict(PaywallViewDay.objects.values_list("page_id", "views")) == expected
    assert PaywallViewDay.objects.count() == len(pages)
