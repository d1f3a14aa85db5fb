"""The one place Payway responses are read (docs/payway-contract.md#envelope).

Payway's response bodies are only partly documented, so every reader here is tolerant: a single object is
read from ``item`` when that key holds an object, else from the top level; lists come from ``items``;
unknown fields are ignored; optional fields fall back to empty values. Only the fields the package cannot
work without are required; their absence is a :class:`~wagtail_klarna_paywall.exceptions.MalformedResponse`.

These functions take already-decoded JSON and raise ``MalformedResponse`` without an endpoint; the client
fills the endpoint in. Error messages name fields, never their values (values may be tokens or personal data).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ..exceptions import MalformedResponse
from .types import (
    PRODUCT_CAMPAIGN,
    PRODUCT_PACKAGE,
    AccessToken,
    Account,
    ActiveProducts,
    KlarnaSession,
    PaymentMethodCategory,
    PaymentPeriod,
    PlacedOrder,
    Product,
    ProductPage,
    Title,
)

#: Used when a token response lacks ``expires_in``: the shorter of the two lifetimes the docs give.
DEFAULT_TOKEN_LIFETIME = 3600

# Where place_order's Klarna hop and order id may be found, in order of preference
# (docs/payway-contract.md#place_order-and-place_trial_order).
REDIRECT_FIELDS = ("redirect_uri", "redirect_url")
ORDER_ID_FIELDS = ("order_id", "id")

# Where a package or campaign search item lists the products it contains. Payway documents that a package
# consists of products and that access is checked on their codes, but the readable part of the search
# pages stops before any such field: every plausible name is read, each holding codes or objects.
INCLUDED_PRODUCTS_FIELDS = ("products", "included_products", "packaged_products", "product_codes")
# Inside one entry of those lists, when it is an object (v3 product search names it ``product_code``).
INCLUDED_PRODUCT_CODE_FIELDS = ("product_code", "code")
# A campaign is always based on a package; its products may be listed on that nested package instead.
BASE_PACKAGE_FIELDS = ("package", "base_package")


@dataclass(frozen=True)
class ErrorBody:
    """Payway's ``{"code", "field", "message"}`` error body, every part optional."""

    code: str = ""
    field: str = ""
    message: str = ""


# -- envelope ---------------------------------------------------------------------------------------


def unwrap_item(data: Any) -> dict[str, Any]:
    """The object of a single-object response: ``data["item"]`` when it is an object, else ``data``."""
    if not isinstance(data, dict):
        raise MalformedResponse("expected a JSON object")
    item = data.get("item")
    return item if isinstance(item, dict) else data


def unwrap_items(data: Any) -> list[dict[str, Any]]:
    """The objects of a list response: ``data["items"]`` (a bare list is accepted too).

    Entries that are not objects are skipped rather than failing the whole list.
    """
    if isinstance(data, dict):
        items = data.get("items")
        if items is None and isinstance(data.get("item"), dict):
            items = data["item"].get("items")
    else:
        items = data
    if not isinstance(items, list):
        raise MalformedResponse("expected a list in 'items'")
    return [entry for entry in items if isinstance(entry, dict)]


# -- scalar helpers ---------------------------------------------------------------------------------


def _required_str(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise MalformedResponse(f"missing required field '{name}'")
    return value


def _str(obj: dict[str, Any], *names: str) -> str:
    """The first of ``names`` holding a non-empty string (numbers are accepted as text), else ``""``."""
    for name in names:
        value = obj.get(name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, str) and value:
            return value
    return ""


def _bool(value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _decimal(value: Any, name: str) -> Decimal | None:
    """Prices as ``Decimal`` (via ``str`` so a JSON float such as 99.9 stays 99.9)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MalformedResponse(f"field '{name}' is not a number")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError) as err:
        raise MalformedResponse(f"field '{name}' is not a number") from err
    if not number.is_finite():
        raise MalformedResponse(f"field '{name}' is not a number")
    return number


def _datetime(value: Any) -> dt.datetime | None:
    """An ISO 8601 timestamp (``2020-05-27T09:40:26+02:00``); unreadable values become ``None``."""
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


# -- tokens -----------------------------------------------------------------------------------------


def parse_access_token(data: Any, *, now: dt.datetime | None = None) -> AccessToken:
    """The token endpoint's answer: ``access_token`` required, ``expires_in`` seconds trusted.

    docs/payway-contract.md#tokens.
    """
    obj = unwrap_item(data)
    token = _required_str(obj, "access_token")
    lifetime = _int(obj.get("expires_in"), DEFAULT_TOKEN_LIFETIME)
    now = now or dt.datetime.now(dt.timezone.utc)
    return AccessToken(
        access_token=token,
        expires_at=now + dt.timedelta(seconds=max(lifetime, 0)),
        refresh_token=_str(obj, "refresh_token"),
        scope=_str(obj, "scope"),
    )


# -- Klarna Payments --------------------------------------------------------------------------------


def _payment_method_category(obj: dict[str, Any]) -> PaymentMethodCategory | None:
    identifier = _str(obj, "identifier")
    if not identifier:
        return None
    assets = obj.get("asset_urls")
    assets = assets if isinstance(assets, dict) else {}
    return PaymentMethodCategory(
        identifier=identifier,
        name=_str(obj, "name"),
        descriptive_asset_url=_str(assets, "descriptive"),
        standard_asset_url=_str(assets, "standard"),
    )


def parse_klarna_session(data: Any) -> KlarnaSession:
    """create_session: client token and session id required, categories optional.

    docs/payway-contract.md#create_session.
    """
    obj = unwrap_item(data)
    raw_categories = obj.get("payment_method_categories")
    categories: list[PaymentMethodCategory] = []
    if isinstance(raw_categories, list):
        for entry in raw_categories:
            category = _payment_method_category(entry) if isinstance(entry, dict) else None
            if category is not None:
                categories.append(category)
    return KlarnaSession(
        klarna_client_token=_required_str(obj, "klarna_client_token"),
        klarna_payments_session_id=_required_str(obj, "klarna_payments_session_id"),
        payment_method_categories=tuple(categories),
    )


def parse_placed_order(data: Any) -> PlacedOrder:
    """place_order / place_trial_order: every field optional; a bare 2xx is success.

    An empty body counts as an empty object: the order was placed and nothing else is known
    (docs/payway-contract.md#place_order-and-place_trial_order).
    """
    if data is None:
        return PlacedOrder()
    obj = unwrap_item(data)
    return PlacedOrder(redirect_uri=_str(obj, *REDIRECT_FIELDS), order_id=_str(obj, *ORDER_ID_FIELDS))


def parse_payment_periods(data: Any) -> list[PaymentPeriod]:
    """Klarna ``payment_periods``: ``id`` required per period; prices as ``Decimal``."""
    periods = []
    for obj in unwrap_items(data):
        periods.append(
            PaymentPeriod(
                id=_required_str(obj, "id"),
                type=_str(obj, "type"),
                enabled=_bool(obj.get("enabled"), True),
                iteration_type=_str(obj, "iteration_type"),
                iteration_length=_int(obj.get("iteration_length"), 1),
                price=_decimal(obj.get("price"), "price"),
                payment_method=_str(obj, "payment_method") or "klarna_payments",
            )
        )
    return periods


# -- catalogue --------------------------------------------------------------------------------------


def parse_titles(data: Any) -> list[Title]:
    """``titles``: ``code`` required; ``image_url``/``url`` may be null."""
    return [
        Title(
            code=_required_str(obj, "code"),
            name=_str(obj, "name"),
            image_url=_str(obj, "image_url"),
            url=_str(obj, "url"),
        )
        for obj in unwrap_items(data)
    ]


def included_product_codes(obj: dict[str, Any]) -> tuple[str, ...]:
    """The product codes a package or campaign search item says it contains, in order, without repeats.

    Reads every name in :data:`INCLUDED_PRODUCTS_FIELDS` (entries are code strings, or objects with a
    code under :data:`INCLUDED_PRODUCT_CODE_FIELDS`) and, for campaigns, the same on a nested package.
    Anything else is skipped: an unreadable list must not hide the codes a readable one gives.
    """
    codes: list[str] = []
    sources = [obj, *(obj[name] for name in BASE_PACKAGE_FIELDS if isinstance(obj.get(name), dict))]
    for source in sources:
        for name in INCLUDED_PRODUCTS_FIELDS:
            entries = source.get(name)
            if not isinstance(entries, list):
                continue
            for entry in entries:
                if isinstance(entry, dict):
                    code = _str(entry, *INCLUDED_PRODUCT_CODE_FIELDS)
                elif isinstance(entry, (str, int)) and not isinstance(entry, bool):
                    code = str(entry).strip()
                else:
                    code = ""
                if code and code not in codes:
                    codes.append(code)
    return tuple(codes)


def parse_product_page(data: Any, *, kind: str, page_number: int, page_size: int) -> ProductPage:
    """Package or campaign search: ``product_code`` required per item; ``page_info`` optional."""
    assert kind in (PRODUCT_PACKAGE, PRODUCT_CAMPAIGN)
    products = tuple(
        Product(
            id=_str(obj, "id"),
            product_code=_required_str(obj, "product_code"),
            name=_str(obj, "name"),
            kind=kind,
            title_code=_str(obj, "title_code"),
            description=_str(obj, "description"),
            valid_from=_datetime(obj.get("valid_from")),
            valid_to=_datetime(obj.get("valid_to")),
            expired=_bool(obj.get("expired"), False),
            image_url=_str(obj, "image_url"),
            included_product_codes=included_product_codes(obj),
        )
        for obj in unwrap_items(data)
    )
    page_info = data.get("page_info") if isinstance(data, dict) else None
    page_info = page_info if isinstance(page_info, dict) else {}
    return ProductPage(
        items=products,
        page_number=_int(page_info.get("page_number"), page_number),
        page_size=_int(page_info.get("page_size"), page_size),
        more_results_available=_bool(page_info.get("more_results_available"), False),
    )


# -- identity ---------------------------------------------------------------------------------------


def parse_active_products(data: Any) -> ActiveProducts:
    """``me/active_products``: the account ``id`` and its product codes (non-strings skipped)."""
    obj = unwrap_item(data)
    codes = obj.get("active_products")
    codes = codes if isinstance(codes, list) else []
    return ActiveProducts(
        account_id=_str(obj, "id", "account_id"),
        active_products=tuple(code for code in codes if isinstance(code, str) and code),
    )


def parse_account(data: Any) -> Account:
    """``/v3/me``: the account's ``id`` (required: without it the reader cannot be told apart), e-mail and
    names. The object may sit under ``item``, ``account`` or ``user`` or at the top level; ``id`` may also be
    spelt ``account_id`` or ``_id``. Only these four fields are read (``/me`` also returns a personnummer,
    an address and products, which must not travel further)."""
    obj = unwrap_item(data)
    for wrapper in ("account", "user"):
        inner = obj.get(wrapper)
        if isinstance(inner, dict) and not _str(obj, "id", "account_id", "_id"):
            obj = inner
            break
    account_id = _str(obj, "id", "account_id", "_id")
    if not account_id:
        raise MalformedResponse("/me has no account id")
    return Account(
        id=account_id,
        email=_str(obj, "email", "email_address"),
        first_name=_str(obj, "first_name", "firstname", "given_name"),
        last_name=_str(obj, "last_name", "lastname", "family_name"),
    )


# -- errors -----------------------------------------------------------------------------------------


def parse_error_body(data: Any) -> ErrorBody:
    """Payway's ``{"code", "field", "message"}`` (or OAuth's ``{"error", "error_description"}`` from the
    token endpoint), tolerating missing keys and bodies that are not objects."""
    if not isinstance(data, dict):
        return ErrorBody()
    obj = data.get("item") if isinstance(data.get("item"), dict) else data
    return ErrorBody(
        code=_str(obj, "code", "error"),
        field=_str(obj, "field"),
        message=_str(obj, "message", "error_description"),
    )
