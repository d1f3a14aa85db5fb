"""The offer block's product field in the admin: a hidden input with Wagtail's chooser button.

Apart from the chooser's views (``chooser.py``) because the blocks use it: it imports nothing that
imports the blocks, so the block reaches it without an import loop. Nothing here reads the catalogue:
opening the editor must work while Payway is down.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _
from wagtail.admin.staticfiles import versioned_static
from wagtail.admin.telepath import register
from wagtail.admin.widgets.chooser import BaseChooser, BaseChooserAdapter

#: The chooser viewset's name, which its URL names start with.
VIEWSET_NAME = "wagtail_klarna_paywall_offer_chooser"


def _chooser_media() -> forms.Media:
    """Wagtail's chooser widget script and ours (and the offer block's styles), for both the widget and
    its telepath adapter."""
    return forms.Media(
        js=[
            versioned_static("wagtailadmin/js/chooser-widget.js"),
            versioned_static("wagtail_klarna_paywall/chooser.js"),
        ],
        css={"all": [versioned_static("wagtail_klarna_paywall/offer-block.css")]},
    )


class ProductChooserWidget(BaseChooser):
    """Hidden input holding the product code, with Wagtail's chooser button. Nothing to type."""

    choose_one_text = _("Choose a Payway product")
    choose_another_text = _("Choose another product")
    link_to_chosen_text = _("Edit")
    show_edit_link = False
    icon = "tag"
    classname = "wkp-product-chooser"
    chooser_modal_url_name = f"{VIEWSET_NAME}:choose"

    def get_value_data(self, value: Any) -> dict[str, Any] | None:
        # The code is all this field holds; the product's name sits in its sibling field. No catalogue
        # read here: opening the editor must work while Payway is down.
        if not value:
            return None
        return {"id": str(value), "title": str(value), "edit_url": None}

    @property
    def media(self) -> forms.Media:
        return _chooser_media()


class ProductChooserWidgetAdapter(BaseChooserAdapter):
    js_constructor = "wagtail_klarna_paywall.ProductChooser"

    @property
    def media(self) -> forms.Media:
        return _chooser_media()


register(ProductChooserWidgetAdapter(), ProductChooserWidget)
