"""The fake Payway's fixed catalogue: one title, three packages (one expired), two campaigns.

Codes and ids are stable: the sandbox's demo content, the editor tests and the purchase tests all refer to
them. Every payment period has its own 24-hex id (the real docs' examples repeat one, which is a typo).

As in Payway, a package or campaign code is not what a buyer holds: each one contains products
(``grants``), and ``me/active_products`` lists those product codes. No product code here equals a package
or campaign code, and the campaigns grant the same product as the "Digital" package, so an access check
on package codes fails against this fake as it would against Payway. Search items list their products
under ``products`` as objects shaped like Payway's product search items.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

TITLE_CODE = "demo"
TITLE = {
    "name": "Demo-tidningen",
    "code": TITLE_CODE,
    "image_url": None,
    "merchant_image_url": None,
    "url": None,
    "rgb": None,
}

#: The free trial campaign's one period; place_trial_order needs a session made with this period id.
TRIAL_PERIOD_ID = "5f0d1c2b3a4e5f6a7b8c9d0e"

#: Product codes every purchase grants (Payway's access checks are on product codes, not package codes).
DIGITAL = "digital"
PAPER_WEEKEND = "paper_weekend"

#: How search items list their products (Payway's field is undocumented; see ``payway/parsing.py``):
#: objects under ``products`` (the default, shaped like Payway's product search items), plain codes under
#: ``product_codes``, ``{"code"}`` objects under ``included_products``, on a nested base ``package``, or
#: not at all. Chosen with ``state.set_products_shape``.
PRODUCTS_SHAPE_OBJECTS = "products"
PRODUCTS_SHAPE_CODES = "product_codes"
PRODUCTS_SHAPE_INCLUDED = "included_products"
PRODUCTS_SHAPE_PACKAGE = "package"
PRODUCTS_SHAPE_NONE = "none"
PRODUCTS_SHAPES = (
    PRODUCTS_SHAPE_OBJECTS,
    PRODUCTS_SHAPE_CODES,
    PRODUCTS_SHAPE_INCLUDED,
    PRODUCTS_SHAPE_PACKAGE,
    PRODUCTS_SHAPE_NONE,
)

#: The products of the catalogue (Payway's "packaged products"), by code.
INCLUDED_PRODUCTS: dict[str, dict] = {
    DIGITAL: {
        "id": "64a0c0ffee0000000000c001",
        "product_code": DIGITAL,
        "type": "product",
        "name": "Digitalt innehåll",
        "description": "Alla artiklar på sajten och i appen.",
        "image_url": None,
        "print_product": False,
    },
    PAPER_WEEKEND: {
        "id": "64a0c0ffee0000000000c002",
        "product_code": PAPER_WEEKEND,
        "type": "product",
        "name": "Papperstidningen lördag och söndag",
        "description": "Papperstidningen i brevlådan på helgen.",
        "image_url": None,
        "print_product": True,
    },
}

_TZ = dt.timezone(dt.timedelta(hours=1))


@dataclass(frozen=True)
class Period:
    id: str
    type: str  # "recurring" or "limited"
    iteration_type: str
    iteration_length: int
    price: Decimal
    enabled: bool = True

    def as_json(self) -> dict:
        price = int(self.price) if self.price == self.price.to_integral_value() else float(self.price)
        return {
            "id": self.id,
            "payment_method": "klarna_payments",
            "type": self.type,
            "enabled": self.enabled,
            "iteration_type": self.iteration_type,
            "iteration_length": self.iteration_length,
            "price": price,
        }


@dataclass(frozen=True)
class Product:
    id: str
    code: str
    kind: str  # "package" or "campaign"
    name: str
    description: str
    periods: tuple[Period, ...]
    grants: tuple[str, ...]
    valid_from: dt.datetime = dt.datetime(2020, 1, 1, tzinfo=_TZ)
    valid_to: dt.datetime | None = None
    trial: bool = False

    @property
    def expired(self) -> bool:
        # A fixed past valid_to rather than a comparison with "now": frozen clocks in tests must not
        # turn the live demo products into expired ones.
        return self.valid_to is not None and self.valid_to < dt.datetime(2025, 1, 1, tzinfo=_TZ)

    def period(self, period_id: str) -> Period | None:
        return next((p for p in self.periods if p.id == period_id), None)

    def as_json(self, products_shape: str = "products") -> dict:
        return {
            "id": self.id,
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "expired": self.expired,
            "product_code": self.code,
            "integration_code": self.code,
            "title_code": TITLE_CODE,
            "name": self.name,
            "description": self.description,
            "additional_short_description": None,
            "image_url": None,
            **self.products_json(products_shape),
        }

    def products_json(self, shape: str) -> dict:
        """The item's list of the products it contains, in one of the shapes the client accepts."""
        objects = [dict(INCLUDED_PRODUCTS[code]) for code in self.grants]
        if shape == PRODUCTS_SHAPE_CODES:
            return {"product_codes": list(self.grants)}
        if shape == PRODUCTS_SHAPE_INCLUDED:
            return {"included_products": [{"code": code} for code in self.grants]}
        if shape == PRODUCTS_SHAPE_PACKAGE:
            return {"package": {"product_code": "base_" + self.code, "products": objects}}
        if shape == PRODUCTS_SHAPE_NONE:
            return {}
        return {"products": objects}


PACKAGES: tuple[Product, ...] = (
    Product(
        id="64a0c0ffee0000000000a001",
        code="demo_digital",
        kind="package",
        name="Digital",
        description="Alla artiklar på sajten och i appen.",
        periods=(
            Period("5f0d1c2b3a4e5f6a7b8c9d01", "recurring", "month", 1, Decimal(139)),
            Period("5f0d1c2b3a4e5f6a7b8c9d02", "limited", "year", 1, Decimal(1390)),
        ),
        grants=(DIGITAL,),
    ),
    Product(
        id="64a0c0ffee0000000000a002",
        code="demo_digital_weekend",
        kind="package",
        name="Digital + helg",
        description="Allt digitalt och papperstidningen på helgen.",
        periods=(Period("5f0d1c2b3a4e5f6a7b8c9d03", "recurring", "month", 1, Decimal(249)),),
        grants=(DIGITAL, PAPER_WEEKEND),
    ),
    Product(
        id="64a0c0ffee0000000000a003",
        code="demo_old",
        kind="package",
        name="Digital (gammal)",
        description="Ett paket som inte längre säljs.",
        periods=(Period("5f0d1c2b3a4e5f6a7b8c9d05", "recurring", "month", 1, Decimal(99)),),
        grants=(DIGITAL,),
        valid_to=dt.datetime(2021, 12, 31, 23, 59, 59, tzinfo=_TZ),
    ),
)

CAMPAIGNS: tuple[Product, ...] = (
    Product(
        id="64a0c0ffee0000000000b001",
        code="demo_campaign_3m99",
        kind="campaign",
        name="3 månader för 99 kr",
        description="Digital i tre månader, sedan ordinarie pris.",
        periods=(Period("5f0d1c2b3a4e5f6a7b8c9d04", "recurring", "month", 1, Decimal(99)),),
        grants=(DIGITAL,),
    ),
    Product(
        id="64a0c0ffee0000000000b002",
        code="demo_trial_14d",
        kind="campaign",
        name="Prova gratis i 14 dagar",
        description="Gratis i 14 dagar, sedan Digital till ordinarie pris.",
        periods=(Period(TRIAL_PERIOD_ID, "recurring", "day", 14, Decimal(0)),),
        grants=(DIGITAL,),
        trial=True,
    ),
)

PRODUCTS: dict[str, Product] = {product.code: product for product in PACKAGES + CAMPAIGNS}


def find_product(code: str) -> Product | None:
    return PRODUCTS.get(code)
