"""Every label the plugin shows editors and readers has its own Swedish text.

The .po checks in test_i18n.py catch a marked string left untranslated; these catch the strings that were
never marked at all: a model field without a ``verbose_name`` (Django makes one from the field's name), a
block without a ``label`` (Wagtail does the same), a choice or a form label written as a plain string. Each
text is resolved in English and in Swedish; the two must differ, unless the text is one of the few that
read the same in both languages (:data:`SAME_IN_BOTH`).
"""

from __future__ import annotations

import gettext
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django import forms
from django.apps import apps
from django.db import models
from django.utils import translation
from wagtail import blocks

import wagtail_klarna_paywall
from wagtail_klarna_paywall.blocks import OfferBlock, PaywallBlock

#: Texts that are the same word in English and Swedish (names, codes, loanwords), compared in English.
SAME_IN_BOTH = frozenset({"Period", "period", "Digital", "%(price)s kr"})
#: The plugin's own bookkeeping, which no admin view or page lists (the funnel and the purchase log read
#: them as numbers): their field names are never shown.
INTERNAL_MODELS = frozenset({"ProductClaim", "SSOLandingClaim", "LoginFailure", "PaywallViewDay"})


def _modules() -> Iterator[object]:
    """Every module of the package that editors' or readers' texts can live in (not migrations, not the
    fake Payway, which no site shows)."""
    prefix = wagtail_klarna_paywall.__name__ + "."
    for info in pkgutil.walk_packages(wagtail_klarna_paywall.__path__, prefix):
        if ".migrations" in info.name or ".fake" in info.name or ".management" in info.name:
            continue
        yield importlib.import_module(info.name)


def _from_wagtail(model: type[models.Model], name: str) -> bool:
    """Whether ``name`` is a field or relation Wagtail declares on one of ``model``'s bases."""
    for base in model.__mro__[1:]:
        meta = getattr(base, "_meta", None)
        if meta is None or not base.__module__.startswith("wagtail."):
            continue
        if any(f.name == name for f in meta.get_fields(include_parents=True)):
            return True
        if name in vars(base):
            return True
    return False


def _texts_of_models() -> Iterator[tuple[str, object]]:
    for model in apps.get_app_config("wagtail_klarna_paywall").get_models():
        name = model.__name__
        yield f"{name} verbose_name", model._meta.verbose_name
        yield f"{name} verbose_name_plural", model._meta.verbose_name_plural
        if name in INTERNAL_MODELS:
            continue
        for model_field in model._meta.get_fields(include_parents=False):
            if not isinstance(model_field, models.Field) or model_field.auto_created:
                continue
            if model_field.model is not model or _from_wagtail(model, model_field.name):
                continue  # Wagtail's own (Page's fields, a site setting's site, revisions): its translation
            where = f"{name}.{model_field.name}"
            yield f"{where} verbose_name", model_field.verbose_name
            if model_field.help_text:
                yield f"{where} help_text", model_field.help_text
            for value, label in model_field.flatchoices or ():
                if value not in ("", None):
                    yield f"{where} choice {value!r}", label


def _texts_of_choices() -> Iterator[tuple[str, object]]:
    seen = set()
    for module in _modules():
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, models.Choices)
                and value.__module__.startswith(wagtail_klarna_paywall.__name__)
                and value not in seen
            ):
                seen.add(value)
                for member in value:
                    yield f"{value.__name__}.{member.name}", member.label


def _texts_of_block(block: blocks.Block, where: str) -> Iterator[tuple[str, object]]:
    yield f"{where} label", block.label
    for attribute in ("help_text", "description"):
        text = getattr(block.meta, attribute, None)
        if text:
            yield f"{where} {attribute}", text
    if isinstance(block, blocks.ChoiceBlock):
        for value, label in block.field.choices:
            if value not in ("", None):
                yield f"{where} choice {value!r}", label
    if isinstance(block, blocks.StructBlock):
        for name, child in block.child_blocks.items():
            yield from _texts_of_block(child, f"{where}.{name}")
    if isinstance(block, blocks.ListBlock):
        yield from _texts_of_block(block.child_block, f"{where}.item")


def _texts_of_blocks() -> Iterator[tuple[str, object]]:
    for block in (PaywallBlock(), OfferBlock()):
        block.set_name(type(block).__name__)
        yield from _texts_of_block(block, type(block).__name__)


def _texts_of_forms() -> Iterator[tuple[str, object]]:
    seen = set()
    for module in _modules():
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, forms.BaseForm)
                and value.__module__ == module.__name__
                and value not in seen
            ):
                seen.add(value)
                for name, form_field in value.base_fields.items():
                    where = f"{value.__name__}.{name}"
                    if form_field.label:
                        yield f"{where} label", form_field.label
                    if form_field.help_text:
                        yield f"{where} help_text", form_field.help_text
                    for choice, label in getattr(form_field, "choices", None) or ():
                        if choice not in ("", None) and not isinstance(label, (list, tuple)):
                            yield f"{where} choice {choice!r}", label


def _texts_of_admin_views() -> Iterator[tuple[str, object]]:
    """The admin's filters (their labels and choices), list columns, export headings and menu labels."""
    import django_filters
    from wagtail.admin.viewsets.base import ViewSet

    seen = set()
    for module in _modules():
        for value in vars(module).values():
            if not isinstance(value, type) or value in seen or value.__module__ != module.__name__:
                continue
            seen.add(value)
            if issubclass(value, django_filters.FilterSet):
                for name, item in value.base_filters.items():
                    yield f"{value.__name__}.{name} label", item.label
                    choices = item.extra.get("choices") or ()
                    # Callable choices are read from the database (codes in use): data, not texts.
                    for choice, label in () if callable(choices) else choices:
                        if choice not in ("", None):
                            yield f"{value.__name__}.{name} choice {choice!r}", label
            if issubclass(value, ViewSet):
                if getattr(value, "menu_label", None):
                    yield f"{value.__name__} menu_label", value.menu_label
                for column in getattr(value, "list_display", None) or ():
                    if hasattr(column, "label"):
                        yield f"{value.__name__} column {column.name}", column.label
                for name, heading in (getattr(value, "export_headings", None) or {}).items():
                    yield f"{value.__name__} export heading {name}", heading


def _all_texts() -> list[tuple[str, object]]:
    return [
        *_texts_of_models(),
        *_texts_of_choices(),
        *_texts_of_blocks(),
        *_texts_of_forms(),
        *_texts_of_admin_views(),
    ]


def _untranslated(texts: list[tuple[str, object]]) -> list[str]:
    missing = []
    for where, text in texts:
        with translation.override("en"):
            english = str(text)
        with translation.override("sv"):
            swedish = str(text)
        if not swedish.strip():
            missing.append(f"{where}: empty")
        elif swedish == english and english not in SAME_IN_BOTH:
            missing.append(f"{where}: {english!r}")
    return missing


@pytest.mark.django_db
def test_the_collectors_find_the_texts():
    """The check below looks where the texts are: each kind of place holds many."""
    assert len(list(_texts_of_models())) > 50
    assert len(list(_texts_of_choices())) > 10
    assert len(list(_texts_of_blocks())) > 30
    assert len(list(_texts_of_forms())) > 5
    assert len(list(_texts_of_admin_views())) > 10


@pytest.mark.django_db
def test_every_model_block_choice_and_form_text_is_swedish():
    assert _untranslated(_all_texts()) == []


def test_the_check_sees_an_unmarked_text():
    """A label Django or Wagtail made from a name is the same in both languages: reported."""
    block = blocks.CharBlock()
    block.set_name("selling_points")
    assert _untranslated(list(_texts_of_block(block, "example"))) == ["example label: 'Selling points'"]


def test_no_swedish_translation_is_the_english_text():
    """A msgstr copied from its msgid passes the .po checks but shows the reader English."""
    mo = Path(wagtail_klarna_paywall.__file__).parent / "locale" / "sv" / "LC_MESSAGES" / "django.mo"
    with mo.open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)._catalog
    copied = []
    for key, swedish in catalog.items():
        msgid = key[0] if isinstance(key, tuple) else key
        msgid = msgid.split("\x04", 1)[-1]  # without its context
        if msgid and swedish == msgid and msgid not in SAME_IN_BOTH:
            copied.append(msgid)
    assert copied == []
