"""Swedish and English: the reader messages, the pages readers see, and the shipped translation files.

The .po checks keep future strings honest: a string marked for translation but not translated (or left
fuzzy), a .mo that was not recompiled, or a .po that misses a newly marked string fails here rather than
showing English to a Swedish reader.
"""

from __future__ import annotations

import ast
import gettext
import json
import re
import shutil
from pathlib import Path

import pytest
import requests
import responses
from django.core.management import call_command
from django.test import Client
from django.utils import translation
from wagtail.models import Site

import wagtail_klarna_paywall
from tests.factories import (
    CREATE_V2,
    PLACE_V2,
    ArticlePageFactory,
    KlarnaPurchasePageFactory,
    Shop,
    session_json,
)
from tests.testapp.models import ArticlePage
from wagtail_klarna_paywall import messages
from wagtail_klarna_paywall.blocks import OfferBlock, PaywallBlock
from wagtail_klarna_paywall.models import AttemptState, KlarnaPurchasePage, PaywallSettings, PurchaseAttempt

PACKAGE_DIR = Path(wagtail_klarna_paywall.__file__).resolve().parent
LC_MESSAGES = PACKAGE_DIR / "locale" / "sv" / "LC_MESSAGES"
PO_FILE = LC_MESSAGES / "django.po"
MO_FILE = LC_MESSAGES / "django.mo"

SWEDISH = {"HTTP_ACCEPT_LANGUAGE": "sv-SE,sv;q=0.9,en;q=0.5"}
ENGLISH = {"HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9"}
BROWSER = {"REMOTE_ADDR": "203.0.113.7", "HTTP_USER_AGENT": "TestBrowser/1.0"}


# -- a small .po reader (the project does not depend on polib) ---------------------------------------


def parse_po(text: str) -> list[dict]:
    """Entries of a .po file: ``msgctxt``, ``msgid``, ``msgid_plural``, ``msgstr`` (a list) and ``flags``.

    Obsolete entries (``#~``) are skipped: gettext never uses them.
    """
    entries = []
    for block in re.split(r"\n\s*\n", text.strip()):
        entry: dict = {"msgctxt": None, "msgid": None, "msgid_plural": None, "msgstr": {}, "flags": set()}
        field = None
        lines = block.splitlines()
        if all(line.startswith("#~") or not line.strip() for line in lines):
            continue
        for line in lines:
            if line.startswith("#,"):
                entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
            elif line.startswith("#"):
                continue
            elif line.startswith('"'):
                value = ast.literal_eval(line)
                if isinstance(field, int):
                    entry["msgstr"][field] += value
                else:
                    entry[field] += value
            else:
                keyword, _, rest = line.partition(" ")
                match = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
                if match:
                    field = int(match.group(1))
                    entry["msgstr"][field] = ast.literal_eval(rest)
                elif keyword == "msgstr":
                    field = 0
                    entry["msgstr"][0] = ast.literal_eval(rest)
                else:
                    field = keyword
                    entry[field] = ast.literal_eval(rest)
        entry["msgstr"] = [entry["msgstr"][n] for n in sorted(entry["msgstr"])]
        entries.append(entry)
    return entries


def translated_entries(path: Path) -> list[dict]:
    """The real entries (not the header) of a .po file."""
    return [entry for entry in parse_po(path.read_text(encoding="utf-8")) if entry["msgid"]]


def untranslated_or_fuzzy(entries: list[dict]) -> list[str]:
    return [
        entry["msgid"]
        for entry in entries
        if "fuzzy" in entry["flags"] or not entry["msgstr"] or not all(s.strip() for s in entry["msgstr"])
    ]


def placeholders(text: str) -> list[str]:
    return sorted(re.findall(r"%\(\w+\)[sd]|\{\w+\}", text))


# -- reader messages -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(messages.MESSAGES))
def test_every_reader_message_has_its_own_swedish_title_and_body(code):
    message = messages.MESSAGES[code]
    with translation.override("en"):
        english = (str(message.title), str(message.body))
    with translation.override("sv"):
        swedish = (str(message.title), str(message.body))

    assert all(text.strip() for text in swedish)
    assert swedish[0] != english[0], f"{code}: title not translated"
    assert swedish[1] != english[1], f"{code}: body not translated"
    # Lazy: the same object answers in each reader's language, not in the language it was imported in.
    with translation.override("en"):
        assert (str(message.title), str(message.body)) == english


def test_the_swedish_unknown_outcome_says_the_reader_is_not_charged_twice():
    """F-cases with outcome "unknown": the promise that matters most must survive translation."""
    with translation.override("sv"):
        body = str(messages.reader_message(messages.UNKNOWN_OUTCOME).body)
    assert "debiteras inte två gånger" in body


# -- pages readers see -----------------------------------------------------------------------------


@pytest.fixture
def article(db):
    root = Site.objects.get(is_default_site=True).root_page
    purchase_page = KlarnaPurchasePageFactory(parent=root, slug="subscribe")
    page = ArticlePageFactory(
        parent=root,
        slug="story",
        body__0__paragraph__value="<p>Free part.</p>",
        body__1__paywall__heading="Read the whole story",
        body__1__paywall__purchase_page=purchase_page,
        body__1__paywall__offers__0__label="Digital subscription",
        body__1__paywall__offers__1__trial=True,
        body__2__paragraph__value="<p>For subscribers.</p>",
    )
    return ArticlePage.objects.get(pk=page.pk)


def test_paywall_block_speaks_the_readers_language(client, article):
    swedish = client.get(article.url, **SWEDISH).content.decode()
    english = client.get(article.url, **ENGLISH).content.decode()

    assert ">Köp</button>" in swedish and ">Prova gratis</button>" in swedish
    assert "Gratis provperiod" in swedish
    assert ">Buy</button>" not in swedish
    # The same page in English, so the Swedish above comes from the request's language.
    assert ">Buy</button>" in english and ">Start the free trial</button>" in english
    assert "Köp" not in english


def test_purchase_page_speaks_the_readers_language(shop):
    reader = Client()
    swedish = reader.get(shop.purchase_page.url, secure=True, **SWEDISH).content.decode()
    english = reader.get(shop.purchase_page.url, secure=True, **ENGLISH).content.decode()

    assert '<html lang="sv">' in swedish and '<html lang="en">' in english
    assert ">Köp</button>" in swedish and ">Buy</button>" in english
    assert "Gratis provperiod" in swedish and "Free trial</p>" in english


def test_a_bad_buy_is_explained_in_swedish(shop, payway):
    """B04: the 400 page shows the mapping's Swedish message, and Payway is not called."""
    response = Client().post(
        shop.purchase_page.url + "buy/",
        {"page": shop.purchase_page.pk, "offer": "no-such-offer"},
        secure=True,
        **SWEDISH,
    )

    assert response.status_code == 400
    html = response.content.decode()
    assert "Erbjudandet finns inte längre" in html or "Något gick fel med formuläret" in html
    assert "no longer available" not in html and "Something went wrong" not in html
    assert len(payway.calls) == 0


def start_checkout_in_swedish(reader, shop):
    response = reader.post(
        shop.purchase_page.url + "buy/",
        {"page": shop.purchase_page.pk, "offer": Shop.package_ref},
        secure=True,
        **BROWSER,
        **SWEDISH,
    )
    assert response.status_code == 303, response.content.decode()[:2000]
    return PurchaseAttempt.objects.latest("created_at"), response["Location"]


def test_checkout_and_its_script_messages_are_in_swedish(shop, payway):
    """purchase.js has no texts of its own: it shows what the page hands it, in the reader's language."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    reader = Client()
    _attempt, checkout_url = start_checkout_in_swedish(reader, shop)

    html = reader.get(checkout_url, secure=True, **BROWSER, **SWEDISH).content.decode()

    assert "Betala med Klarna" in html and "Dina uppgifter" in html
    config = json.loads(re.search(r'id="wkp-klarna-config"[^>]*>(.*?)</script>', html, re.S).group(1))
    with translation.override("sv"):
        expected_unavailable = str(messages.reader_message(messages.WIDGET_UNAVAILABLE).body)
    assert config["messages"]["widgetUnavailable"] == expected_unavailable
    assert config["messages"]["aborted"] == "Betalningen slutfördes inte. Du kan försöka igen."
    # Translated once per language and process: the same page in English right after is in English.
    html = reader.get(checkout_url, secure=True, **BROWSER, **ENGLISH).content.decode()
    config = json.loads(re.search(r'id="wkp-klarna-config"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert config["messages"]["aborted"] == "The payment was not completed. You can try again."


def test_unknown_outcome_page_in_swedish(shop, payway):
    """F-case read timeout on place_order: the Swedish reader is told they will not be charged twice."""
    payway.add(responses.POST, CREATE_V2, json=session_json())
    payway.add(responses.POST, PLACE_V2, body=requests.ReadTimeout("slow"))
    reader = Client()
    _attempt, checkout_url = start_checkout_in_swedish(reader, shop)

    response = reader.post(
        checkout_url,
        {
            "klarna_authorization_token": "b4bd3423-24e3-4c4e-8d9c-3bcb4b7b0aab",
            "email": "reader@example.com",
            "first_name": "Rea",
            "last_name": "Der",
        },
        secure=True,
        **BROWSER,
        **SWEDISH,
    )

    html = response.content.decode()
    assert "Vi kontrollerar ditt köp" in html
    assert "du debiteras inte två gånger" in html
    assert "charged twice" not in html


# -- what editors see ------------------------------------------------------------------------------


def test_editor_labels_are_swedish_for_a_swedish_editor():
    """Wagtail shows the admin in each editor's language: block, page, setting and state labels follow."""
    with translation.override("sv"):
        assert str(PaywallBlock().meta.label) == "Betalvägg"
        assert str(OfferBlock().meta.label) == "Erbjudande"
        assert str(KlarnaPurchasePage._meta.verbose_name) == "Köpsida för Klarna"
        assert str(PaywallSettings._meta.get_field("test_mode").verbose_name) == "testläge"
        assert str(AttemptState.UNKNOWN.label) == "Okänt utfall"
    with translation.override("en"):
        assert str(PaywallBlock().meta.label) == "Paywall"


# -- the shipped translation files -----------------------------------------------------------------


def test_po_file_has_no_untranslated_or_fuzzy_entries():
    entries = translated_entries(PO_FILE)
    assert len(entries) > 100  # the parser found the catalogue, not an empty file
    assert untranslated_or_fuzzy(entries) == []


def test_po_header_is_swedish_and_final():
    header = next(e for e in parse_po(PO_FILE.read_text(encoding="utf-8")) if e["msgid"] == "")
    assert "fuzzy" not in header["flags"]  # gettext ignores a fuzzy header's charset and plural rule
    assert "Language: sv\n" in header["msgstr"][0]
    assert "Plural-Forms: nplurals=2; plural=(n != 1);" in header["msgstr"][0]


def test_translations_keep_every_placeholder():
    for entry in translated_entries(PO_FILE):
        for msgstr in entry["msgstr"]:
            if entry["msgid_plural"] is None:
                assert placeholders(msgstr) == placeholders(entry["msgid"]), entry["msgid"]
            else:
                assert set(placeholders(msgstr)) <= set(placeholders(entry["msgid_plural"])), entry["msgid"]


def test_plural_entries_have_both_swedish_forms():
    plurals = [entry for entry in translated_entries(PO_FILE) if entry["msgid_plural"] is not None]
    assert plurals
    for entry in plurals:
        assert len(entry["msgstr"]) == 2 and entry["msgstr"][0] != entry["msgstr"][1], entry["msgid"]


def test_mo_file_is_compiled_from_the_current_po_file():
    """The .mo holds exactly the .po's translations, so nobody forgets compilemessages.

    Compared by content rather than by file times, which a git checkout does not keep.
    """
    with MO_FILE.open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)._catalog

    expected = {}
    for entry in translated_entries(PO_FILE):
        key = entry["msgid"] if entry["msgctxt"] is None else f"{entry['msgctxt']}\x04{entry['msgid']}"
        if entry["msgid_plural"] is None:
            expected[key] = entry["msgstr"][0]
        else:
            for n, msgstr in enumerate(entry["msgstr"]):
                expected[(key, n)] = msgstr
    compiled = {key: value for key, value in catalog.items() if key != ""}

    assert compiled == expected


@pytest.mark.skipif(not shutil.which("xgettext"), reason="needs GNU gettext (apt-get install gettext)")
def test_po_file_covers_every_marked_string(tmp_path, monkeypatch):
    """A string marked in the code or templates but missing from the .po would show in English.

    makemessages runs on a copy of the package, so the checkout is never changed; new strings arrive there
    as untranslated entries. Fix a failure with ``django-admin makemessages -l sv --no-wrap`` run inside
    ``wagtail_klarna_paywall/``, translate, then ``compilemessages``.
    """
    copy = tmp_path / "wagtail_klarna_paywall"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    monkeypatch.chdir(copy)

    call_command("makemessages", locale=["sv"], no_wrap=True, verbosity=0)

    refreshed = translated_entries(copy / "locale" / "sv" / "LC_MESSAGES" / "django.po")
    assert untranslated_or_fuzzy(refreshed) == []
    assert {e["msgid"] for e in refreshed} == {e["msgid"] for e in translated_entries(PO_FILE)}


def test_funnel_period_choices_follow_the_active_language():
    """The choices are built at import time; their text must still be translated per request."""
    from django.utils import translation

    from wagtail_klarna_paywall.newsroom.reports import PeriodForm

    choices = dict(PeriodForm().fields["period"].choices)
    with translation.override("en"):
        english = str(choices["30"])
    with translation.override("sv"):
        swedish = str(choices["30"])
    assert "30" in english and "30" in swedish and english != swedish
