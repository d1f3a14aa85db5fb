"""The sandbox: its demo content builds on an empty database, twice with the same result, and its pages,
feed, API and search serve without leaking the paywalled text."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "sandbox" / "manage.py"
#: A sentence that only exists after the paywall of the first demo article.
PAID_ONLY = "förorenad"
ARTICLE = "/nyheter/ny-cykelbana-langs-an/"

PROBE = r"""
import json
from django.test import Client
from wagtail.models import Page, Site
from demo.models import ArticlePage
from wagtail_klarna_paywall.models import KlarnaPurchasePage, PaywallSettings, PurchaseConfirmationPage
from django.contrib.auth import get_user_model
from wagtail_klarna_paywall.reading import gating

client = Client(HTTP_HOST="localhost")
site = Site.objects.get(is_default_site=True)
settings_ = PaywallSettings.for_site(site)
article = ArticlePage.objects.get(slug="ny-cykelbana-langs-an")
paywall = next(child for child in article.body if child.block_type == "paywall")
urls = ["/", "/nyheter/", "/nyheter/ny-cykelbana-langs-an/", "/rss/",
        "/sok/?q=cykelbana", "/sok/?q=förorenad",
        "/api/v2/pages/?type=demo.ArticlePage&fields=intro,is_paywalled,body"]
responses = {url: client.get(url) for url in urls}
print(json.dumps({
    "pages": sorted((p.url_path, p.specific_class.__name__) for p in Page.objects.all()),
    "site": [site.hostname, site.port, site.root_page.url_path],
    "settings": [settings_.title_code, bool(settings_.default_confirmation_page_id), settings_.test_mode],
    "admin": get_user_model().objects.get(username="admin").check_password("admin"),
    "offers": [item.value["product_code"] for item in paywall.value["offers"].bound_blocks],
    "offer_ids": [item.id for item in paywall.value["offers"].bound_blocks],
    "access": list(paywall.value["access_product_codes"]),
    "grants": list(gating.access_codes(paywall)),
    "purchase_offers": [child.value["product_code"] for child in KlarnaPurchasePage.objects.get().offers],
    "confirmation": PurchaseConfirmationPage.objects.get().title,
    "status": {url: r.status_code for url, r in responses.items()},
    "bodies": {url: r.content.decode() for url, r in responses.items()},
    "set_cookie": {url: bool(r.cookies) for url, r in responses.items()},
}))
"""


def _manage(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, str(MANAGE), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def sandbox_env() -> Iterator[dict[str, str]]:
    # Memory-backed when there is one: the migrations are mostly fsync on disk.
    shm = Path("/dev/shm")
    tmp = Path(tempfile.mkdtemp(prefix="wkp-sandbox-", dir=shm if shm.is_dir() else None))
    db = tmp / "db.sqlite3"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PAYWAY_", "DJANGO_SETTINGS_MODULE", "DATABASE_URL"))
    }
    env.update(DATABASE_URL=f"sqlite:///{db}", DJANGO_SETTINGS_MODULE="sandbox.settings.test", PORT="8000")
    env["ALLOWED_HOSTS"] = "localhost,testserver"
    # The same package source the rest of the suite imports, whatever copy is installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    _manage("migrate", "--noinput", "-v", "0", env=env)
    yield env
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def built(sandbox_env) -> tuple[dict, dict]:
    _manage("build_demo_content", env=sandbox_env)
    first = json.loads(_manage("shell", "-c", PROBE, env=sandbox_env).strip().splitlines()[-1])
    _manage("build_demo_content", env=sandbox_env)
    second = json.loads(_manage("shell", "-c", PROBE, env=sandbox_env).strip().splitlines()[-1])
    return first, second


@pytest.mark.slow
def test_demo_content_builds_the_whole_site(built):
    first, _second = built
    pages = dict(first["pages"])
    assert pages["/home/"] == "HomePage"
    assert pages["/home/nyheter/"] == "ArticleIndexPage"
    assert pages["/home/kop/"] == "KlarnaPurchasePage"
    assert pages["/home/tack/"] == "PurchaseConfirmationPage"
    assert sum(1 for kind in pages.values() if kind == "ArticlePage") >= 3
    # Wagtail's placeholder home page is gone and the site serves ours at the root.
    assert first["site"] == ["localhost", 8000, "/home/"]
    assert first["settings"] == ["demo", True, True]
    assert first["admin"] is True
    assert first["confirmation"] == "Tack för ditt köp"


@pytest.mark.slow
def test_demo_offers_are_the_fake_catalogue(built):
    first, _second = built
    from wagtail_klarna_paywall.fake import catalogue

    assert first["offers"] == ["demo_campaign_3m99", "demo_digital"]
    # No override: the products the offers contain open the article, as the fake catalogue lists them.
    assert first["access"] == []
    assert first["grants"] == ["digital"]
    for code in first["offers"]:
        assert set(catalogue.find_product(code).grants) <= set(first["grants"]), code
    assert set(first["purchase_offers"]) == {
        "demo_digital",
        "demo_digital_weekend",
        "demo_campaign_3m99",
        "demo_trial_14d",
    }
    for code in first["purchase_offers"]:
        assert catalogue.find_product(code) is not None, code


@pytest.mark.slow
def test_demo_content_is_idempotent(built):
    first, second = built
    assert second["pages"] == first["pages"]
    # Stable block ids: offer references stored on purchase attempts survive a re-run.
    assert second["offer_ids"] == first["offer_ids"]


@pytest.mark.slow
def test_sandbox_serves_without_leaking_paywalled_text(built):
    first, _second = built
    assert set(first["status"].values()) == {200}, first["status"]
    for url, body in first["bodies"].items():
        if url != "/sok/?q=förorenad":  # the search page repeats the query itself
            assert PAID_ONLY not in body, url
    # Searching for paywalled text finds nothing: only the free text is indexed.
    assert 'class="teaser"' not in first["bodies"]["/sok/?q=förorenad"]
    assert 'class="teaser"' in first["bodies"]["/sok/?q=cykelbana"]
    # Pages without a form set no cookie.
    assert first["set_cookie"]["/"] is False
    assert first["set_cookie"]["/nyheter/"] is False


@pytest.mark.slow
def test_anonymous_paywalled_article_sets_no_cookie(built):
    """L01: an anonymous reader's paywalled article sets no cookie, so a shared cache may keep it."""
    first, _second = built
    assert first["set_cookie"][ARTICLE] is False
