"""Does this reader have access to this content? (Payway ``me/active_products``, cached per reader.)

INTERFACE SKELETON: being implemented.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.http import HttpRequest


def reader_has_access(request: HttpRequest, product_codes: Iterable[str]) -> bool:
    """True when the reader holds any of ``product_codes``. Never True for anonymous readers."""
    return False


def refresh_access(request: HttpRequest) -> None:
    """Forget the cached access of this reader (right after a purchase)."""
