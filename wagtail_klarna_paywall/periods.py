"""Offer periods: stored as data (Payway's unit and length), shown in the reader's language.

The chooser stores ``"month"`` or ``"3 month"`` (never words in the editor's language), so a Swedish site
shows Swedish whatever language its editor's admin speaks.
"""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext_lazy as _

#: Period units the chooser stores (Payway's ``iteration_type``), in words for readers and editors.
PERIOD_UNITS: dict[str, tuple[Any, Any]] = {
    "day": (_("day"), _("days")),
    "week": (_("week"), _("weeks")),
    "month": (_("month"), _("months")),
    "year": (_("year"), _("years")),
}
_PERIOD_RE = re.compile(r"^(?:(\d{1,4}) )?(day|week|month|year)s?$")


def period_code(iteration_type: str, iteration_length: int) -> str:
    """What an offer stores as its period: ``"month"`` or ``"3 month"``, data in no one's language."""
    unit = (iteration_type or "").strip().lower()
    return unit if iteration_length == 1 else f"{iteration_length} {unit}"


def _parse(value: Any) -> tuple[int, str] | None:
    """(length, unit) of a stored period, or None for anything else (text an editor typed)."""
    match = _PERIOD_RE.match((value or "").strip() if isinstance(value, str) else "")
    return (int(match.group(1) or 1), match.group(2)) if match else None


def period_label(value: Any) -> str:
    """A stored period in the reader's (or editor's) language: ``"month"`` -> "månad", ``"3 month"`` ->
    "3 månader". Anything else (text an editor typed) is shown as it is."""
    parsed = _parse(value)
    if parsed is None:
        return (value or "").strip() if isinstance(value, str) else ""
    length, unit = parsed
    singular, plural = PERIOD_UNITS[unit]
    return str(singular) if length == 1 else f"{length} {plural}"


def period_duration(value: Any) -> str:
    """A stored period as a length of time, always counted: ``"month"`` -> "1 månad", ``"14 day"`` ->
    "14 dagar" (for "free for ..."). Anything else is shown as it is."""
    parsed = _parse(value)
    if parsed is None:
        return (value or "").strip() if isinstance(value, str) else ""
    length, unit = parsed
    singular, plural = PERIOD_UNITS[unit]
    return f"{length} {singular if length == 1 else plural}"
