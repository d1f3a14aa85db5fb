"""Typed requests and results of the Payway API. Parsing lives in ``parsing.py``; these are plain data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from ..exceptions import ErrorCode

#: Scopes asked for by system tokens (grant_type=none): catalogue reads and v2 purchases.
SYSTEM_SCOPES = (
    "/external/product/r",
    "/external/title/r",
    "/external/klarna_payments/r",
    "/external/klarna_payments/w",
)
#: Scopes asked for by identity tokens (grant_type=ticket): v1 purchases and /me checks.
IDENTITY_SCOPES = ("/external/klarna_payments/w", "/external/me/w")

#: Payway ``code`` values of the errors raised by the four ``raise_on_*`` flags, mapped to our
#: error codes. Payway's real codes are undocumented (docs/payway-contract.md#account-sync-flags): this
#: is the one place to change once Adeprimo confirms them.
ACCOUNT_SYNC_ERROR_CODES: dict[str, ErrorCode] = {
    "ssn_already_taken": ErrorCode.SSN_ALREADY_TAKEN,
    "ssn_already_set": ErrorCode.SSN_ALREADY_SET,
    "account_update_error": ErrorCode.ACCOUNT_UPDATE,
    "delivery_address_error": ErrorCode.DELIVERY_ADDRESS,
}

#: Payway ``code`` values of a 403 on place_order / place_trial_order that mean "payment method failed":
#: Klarna refused the reader (docs/payway-contract.md, "Errors"). A 403 there with no code at all means the
#: same; any other code (a missing scope, identity or permission) is a configuration error. The one place
#: to change once Adeprimo confirms Payway's real codes. Compared case-insensitively.
PAYMENT_METHOD_FAILED_CODES = frozenset({"payment_method_failed"})

PERIOD_LIMITED = "limited"
PERIOD_RECURRING = "recurring"
PRODUCT_PACKAGE = "package"
PRODUCT_CAMPAIGN = "campaign"


@dataclass(frozen=True)
class AccessToken:
    access_token: str = field(repr=False)
    expires_at: dt.datetime
    refresh_token: str = field(default="", repr=False)
    scope: str = ""

    def expires_within(self, seconds: float, now: dt.datetime | None = None) -> bool:
        now = now or dt.datetime.now(dt.timezone.utc)
        return self.expires_at - now <= dt.timedelta(seconds=seconds)


@dataclass(frozen=True)
class PaymentMethodCategory:
    identifier: str
    name: str = ""
    descriptive_asset_url: str = ""
    standard_asset_url: str = ""


@dataclass(frozen=True)
class KlarnaSession:
    """create_session's answer: client token for the browser, session id for place_order.

    docs/payway-contract.md#create_session.
    """

    klarna_client_token: str = field(repr=False)
    klarna_payments_session_id: str
    payment_method_categories: tuple[PaymentMethodCategory, ...] = ()


@dataclass(frozen=True)
class BrowserInfo:
    ip: str = ""
    language: str = ""
    user_agent: str = ""


@dataclass(frozen=True)
class CustomerInfo:
    """v2 ``customer_info`` of a new customer. Never stored by the plugin."""

    email: str = field(repr=False)
    first_name: str = field(repr=False)
    last_name: str = field(repr=False)


@dataclass(frozen=True)
class AccountSyncFlags:
    """The four ``raise_on_*`` flags, always sent explicitly (docs/payway-contract.md#account-sync-flags)."""

    raise_on_ssn_already_taken_error: bool = True
    raise_on_ssn_already_set_error: bool = False
    raise_on_account_update_error: bool = False
    raise_on_delivery_address_error: bool = False


@dataclass(frozen=True)
class PlacedOrder:
    """place_order's answer. ``redirect_uri`` is untrusted until checked against the allow-list.

    docs/payway-contract.md#place_order-and-place_trial_order.

    Only the typed fields are kept; :mod:`.parsing` reads them from ``redirect_uri``/``redirect_url`` and
    ``order_id``/``id``.
    """

    redirect_uri: str = ""
    order_id: str = ""


@dataclass(frozen=True)
class PaymentPeriod:
    id: str
    type: str
    enabled: bool
    iteration_type: str
    iteration_length: int
    price: Decimal | None
    payment_method: str = "klarna_payments"


@dataclass(frozen=True)
class Title:
    code: str
    name: str
    image_url: str = ""
    url: str = ""


@dataclass(frozen=True)
class Product:
    """A package or campaign from the product search APIs."""

    id: str
    product_code: str
    name: str
    kind: str  # PRODUCT_PACKAGE or PRODUCT_CAMPAIGN
    title_code: str = ""
    description: str = ""
    valid_from: dt.datetime | None = None
    valid_to: dt.datetime | None = None
    expired: bool = False
    image_url: str = ""
    #: Codes of the products the package or campaign contains: what ``me/active_products`` lists for a
    #: buyer, so what access checks compare. Empty when the catalogue lists none (see ``parsing.py``).
    included_product_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProductPage:
    items: tuple[Product, ...]
    page_number: int = 1
    page_size: int = 25
    more_results_available: bool = False


@dataclass(frozen=True)
class ActiveProducts:
    account_id: str
    active_products: tuple[str, ...] = ()


@dataclass(frozen=True)
class Account:
    """The reader's Payway account (``GET /external/api/v3/me``), reduced to what the plugin may use.

    ``id`` names the account (the one-order-per-reader guard keys on a hash of it); the e-mail and names
    prefill forms. Personal data: never logged, never stored as is. Everything else ``/me`` returns
    (personnummer, address, products) is dropped while parsing.
    """

    id: str
    email: str = field(default="", repr=False)
    first_name: str = field(default="", repr=False)
    last_name: str = field(default="", repr=False)
