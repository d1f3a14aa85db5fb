"""The fake Payway's variants: how it answers where Payway's docs are silent, one switch per open question.

Each answer shape a real Payway might plausibly send is a value of a switch, so the plugin is tested
against all of them. The current switches live in the fake's state (:func:`.state.variants`,
:func:`.state.set_variants`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from django.conf import settings

#: Each switch, its allowed values (the first is the default) and what it changes. Set them in
#: ``settings.WAGTAIL_KLARNA_PAYWALL_FAKE`` (upper-case names, e.g. ``{"ENVELOPE": "flat"}``; the sandbox
#: reads ``FAKE_PAYWAY_<NAME>`` from the environment) or at runtime through the control API
#: (``{"variants": {"envelope": "flat"}}``). :func:`.state.reset` goes back to the settings.
VARIANTS: dict[str, tuple[tuple[object, ...], str]] = {
    "envelope": (("item", "flat"), 'single objects wrapped as {"item": {...}}, or at the top level'),
    "redirect_field": (
        ("redirect_uri", "redirect_url"),
        "the field of place_order's answer that holds the Klarna hop",
    ),
    "categories": (
        ("standard", "direct_debit"),
        "the sessions' payment_method_categories: Klarna's groups, or those plus direct_debit",
    ),
    "order_scope_error": (
        (False, True),
        "place_order and place_trial_order answer 403 insufficient_scope (nothing is executed)",
    ),
}


@dataclass(frozen=True)
class Variants:
    envelope: str = "item"
    redirect_field: str = "redirect_uri"
    categories: str = "standard"
    order_scope_error: bool = False

    def as_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def checked_variants(values: dict[str, object], base: Variants | None = None) -> Variants:
    """``base`` with ``values`` applied; ValueError for an unknown switch or value."""
    changes: dict[str, object] = {}
    for name, value in values.items():
        if name not in VARIANTS:
            raise ValueError(f"unknown variant {name!r}; one of {', '.join(VARIANTS)}")
        allowed = VARIANTS[name][0]
        if isinstance(allowed[0], bool) and isinstance(value, str):
            # From the environment: the usual spellings only, so a typo fails instead of meaning "off".
            value = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}.get(
                value.strip().lower(), value
            )
        if value not in allowed or type(value) is not type(allowed[0]):
            raise ValueError(f"variant {name} must be one of {', '.join(map(str, allowed))}")
        changes[name] = value
    return dataclasses.replace(base or Variants(), **changes)


def configured_variants() -> Variants:
    options = getattr(settings, "WAGTAIL_KLARNA_PAYWALL_FAKE", {}) or {}
    return checked_variants(
        {name: options[name.upper()] for name in VARIANTS if options.get(name.upper()) not in (None, "")}
    )
