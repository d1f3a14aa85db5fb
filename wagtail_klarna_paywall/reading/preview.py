"""Preview modes that show a paywalled page as each kind of reader sees it."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from .access import ANONYMOUS, PREVIEW_MODE_ATTR, READER, SUBSCRIBER

PAYWALL_PREVIEW_MODES = [
    ("", _("Editor (everything)")),
    (ANONYMOUS, _("Anonymous reader")),
    (READER, _("Logged-in reader without subscription")),
    (SUBSCRIBER, _("Subscriber")),
]


class PaywallPreviewMixin:
    """Mix into a page model that renders ``{% paywalled_stream %}`` (before ``Page`` in the bases).

    The default mode shows editors everything; the others simulate a reader without calling Payway.
    """

    @property
    def preview_modes(self) -> list[tuple[str, Any]]:
        return PAYWALL_PREVIEW_MODES

    def serve_preview(self, request, mode_name):
        setattr(request, PREVIEW_MODE_ATTR, mode_name if mode_name in dict(PAYWALL_PREVIEW_MODES) else "")
        return super().serve_preview(request, mode_name)
