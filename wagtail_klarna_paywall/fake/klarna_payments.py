"""The fake Payway's Klarna Payments endpoints: create_session, place_order, place_trial_order and
payment_periods, on Payway's paths and with its error conventions.

Behaviour the public docs leave open is decided here, once, the way ``docs/payway-contract.md``
assumes it: create_session answers ``{"item": {klarna_client_token,
klarna_payments_session_id, payment_method_categories}}``; place_order answers ``{"item": {order_id,
redirect_uri}}``; a 403 ``payment_method_failed`` terminates the session. Where the docs are silent the
fake can answer each plausible way: see the switches in :data:`.variants.VARIANTS` (flat answers,
``redirect_url``, categories with ``direct_debit``, a 403 scope error on orders).

Outcomes of place_order are chosen by the Klarna authorization token, which the fake widget
(``static/wagtail_klarna_paywall_fake/fake-klarna.js``) builds as ``fake-auth-<scenario>-<random>``; see
:data:`SCENARIOS`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from . import catalogue, klarna, state
from .http import (
    ApiError,
    garbage_response,
    invalid,
    item_response,
    items_response,
    json_body,
    payway_endpoint,
    query,
    require_identity,
)

KP_WRITE = "/external/klarna_payments/w"
KP_READ = "/external/klarna_payments/r"

#: What a ``fake-auth-<scenario>-<random>`` authorization token makes place_order do.
SCENARIOS = {
    "ok": "the order is placed",
    "payment_method_failed": "403 payment_method_failed; the session is terminated",
    "validation": "400 invalid_parameter with a field",
    "expired_token": "401: the bearer token is revoked as if it had expired",
    "server_error": "500 internal_server_error; nothing is placed",
    "slow": "the order is placed, then the reply waits longer than the client's read timeout",
    "garbage": "the order is placed, then the reply is 200 with a body that is not JSON",
    "ssn_already_taken": "400 ssn_already_taken when raise_on_ssn_already_taken_error is true, else placed",
    "bad_redirect": "the order is placed with redirect_uri https://evil.example/phish",
}
AUTHORIZATION_TOKEN = re.compile(r"^fake-auth-(?P<scenario>[a-z_]+)-[A-Za-z0-9]{4,64}$")
BAD_REDIRECT = "https://evil.example/phish"

CATEGORY_NAMES = {
    "pay_now": "Betala nu",
    "pay_later": "Betala senare",
    "pay_over_time": "Dela upp",
    "klarna": "Betala med Klarna",
    "direct_debit": "Autogiro",
}
REGULAR_CATEGORIES = ("pay_now", "pay_later", "pay_over_time")
#: Klarna allows only direct debit (grouped under pay_now) for a 0-amount trial purchase.
TRIAL_CATEGORIES = ("pay_now",)
#: The ``categories`` variant "direct_debit": sessions that also list the older direct_debit identifier
#: (for trials not first, so a plugin that takes the first category gets it wrong).
DIRECT_DEBIT_REGULAR_CATEGORIES = (*REGULAR_CATEGORIES, "direct_debit")
DIRECT_DEBIT_TRIAL_CATEGORIES = ("pay_now", "direct_debit")

PERIOD_TYPES = ("limited", "recurring")
OBJECT_ID = re.compile(r"^[a-f\d]{24}$")
RAISE_FLAGS = (
    "raise_on_ssn_already_taken_error",
    "raise_on_ssn_already_set_error",
    "raise_on_account_update_error",
    "raise_on_delivery_address_error",
)
PLACE_ORDER_FIELDS = (
    "klarna_authorization_token",
    "klarna_payments_session_id",
    "browser_ip",
    "browser_language",
    "browser_user_agent",
    "traffic_source",
    "merchant_reference",
    *RAISE_FLAGS,
)
CUSTOMER_FIELDS = ("email", "first_name", "last_name")


# -- Klarna Payments: create_session ----------------------------------------------------------------


@payway_endpoint("create_session", methods=("POST",), scope=KP_WRITE)
def create_session(request: HttpRequest, version: str) -> HttpResponse:
    """``POST external/api/v1|v2/klarna_payments/create_session``; v1 needs an identity token."""
    v = int(version)
    token = require_identity(request) if v == 1 else request.fake_payway_token  # type: ignore[attr-defined]
    body = json_body(
        request,
        (
            "code",
            "period_type",
            "period_id",
            "confirmation_url",
            "start_date",
            "disable_account_info_overwrite",
        ),
    )

    code = body.get("code")
    if not isinstance(code, str) or not code:
        raise invalid("code", "code is required")
    product = catalogue.find_product(code)
    if product is None:
        raise invalid("code", "No package or campaign has this code")
    if product.expired:
        raise invalid("code", "The package or campaign is no longer valid")

    period_type = body.get("period_type")
    period_id = body.get("period_id")
    if period_type is not None and period_type not in PERIOD_TYPES:
        raise invalid("period_type", "period_type must be limited or recurring")
    if period_id is not None and (not isinstance(period_id, str) or not OBJECT_ID.match(period_id)):
        raise invalid("period_id", r"Parameter must match format (/^[a-f\d]{24}$/)")
    if v == 1 and period_type is None:
        raise invalid("period_type", "period_type is required")
    if period_type is None and period_id is None:
        raise invalid("period_type", "period_type or period_id is required")

    if period_id is not None:
        period = product.period(period_id)
        if period is None or not period.enabled:
            raise invalid("period_id", "The period is not a Klarna payment period of this product")
        if period_type is not None and period.type != period_type:
            raise invalid("period_type", "period_type does not match the period")
    else:
        period = next((p for p in product.periods if p.enabled and p.type == period_type), None)
        if period is None:
            raise invalid("period_type", f"The product has no {period_type} Klarna payment period")
    if product.trial and period_id is None:
        raise invalid("period_id", "A trial campaign needs the period_id of its trial period")

    confirmation_url = body.get("confirmation_url")
    if not isinstance(confirmation_url, str) or not _absolute_http_url(confirmation_url):
        raise invalid("confirmation_url", "confirmation_url must be an absolute http(s) URL")

    start_date = None
    if "start_date" in body:
        start_date = _parse_date(body["start_date"])
        if start_date < timezone.localdate():
            raise invalid("start_date", "start_date must be today or later")

    overwrite = body.get("disable_account_info_overwrite", False)
    if not isinstance(overwrite, bool):
        raise invalid("disable_account_info_overwrite", "disable_account_info_overwrite must be a boolean")

    session_id = state.new_session_id()
    # An explicit list (control key session_categories) wins over the direct_debit variant's lists.
    categories = state.session_categories(trial=product.trial)
    if categories is None and state.variants().categories == "direct_debit":
        categories = DIRECT_DEBIT_TRIAL_CATEGORIES if product.trial else DIRECT_DEBIT_REGULAR_CATEGORIES
    if categories is None:
        categories = TRIAL_CATEGORIES if product.trial else REGULAR_CATEGORIES
    session = state.Session(
        id=session_id,
        version=v,
        code=product.code,
        product_kind=product.kind,
        period_id=period.id,
        period_type=period.type,
        trial=product.trial,
        confirmation_url=confirmation_url,
        categories=categories,
        client_token=_client_token(session_id, categories),
        account_id=token.account_id if v == 1 else None,
        start_date=start_date,
        disable_account_info_overwrite=overwrite,
    )
    state.add_session(session)
    return item_response(
        {
            "klarna_client_token": session.client_token,
            "klarna_payments_session_id": session.id,
            "payment_method_categories": [_category(request, identifier) for identifier in categories],
        }
    )


def _absolute_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _parse_date(value: Any) -> dt.date:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise invalid("start_date", "start_date must be a date (YYYY-MM-DD)")


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _client_token(session_id: str, categories: tuple[str, ...]) -> str:
    """A JWT-shaped client token like Klarna's (the fake widget only needs a non-empty string)."""
    header = {"alg": "none", "typ": "JWT", "fake": True}
    payload = {"session_id": session_id, "payment_method_categories": list(categories), "fake_klarna": True}
    return f"{_b64(header)}.{_b64(payload)}.{_b64(secrets.token_bytes(16))}"


def _category(request: HttpRequest, identifier: str) -> dict[str, Any]:
    badge = klarna.badge_url(request)
    return {
        "identifier": identifier,
        "name": CATEGORY_NAMES[identifier],
        "asset_urls": {"descriptive": badge, "standard": badge},
    }


# -- Klarna Payments: place_order / place_trial_order -----------------------------------------------


@payway_endpoint("place_order", methods=("POST",), scope=KP_WRITE)
def place_order(request: HttpRequest, version: str) -> HttpResponse:
    """``POST external/api/v1|v2/klarna_payments/place_order``."""
    return _place(request, int(version), trial=False)


@payway_endpoint("place_trial_order", methods=("POST",), scope=KP_WRITE)
def place_trial_order(request: HttpRequest) -> HttpResponse:
    """``POST external/api/v2/klarna_payments/place_trial_order``."""
    return _place(request, 2, trial=True)


def _place(request: HttpRequest, version: int, *, trial: bool) -> HttpResponse:
    token = require_identity(request) if version == 1 else request.fake_payway_token  # type: ignore[attr-defined]
    allowed = PLACE_ORDER_FIELDS + (("customer_info",) if version == 2 else ())
    body = json_body(request, allowed)

    for name in ("klarna_payments_session_id", "klarna_authorization_token"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise invalid(name, f"{name} is required")
    for name in (
        "browser_ip",
        "browser_language",
        "browser_user_agent",
        "traffic_source",
        "merchant_reference",
    ):
        if name in body and not isinstance(body[name], str):
            raise invalid(name, f"{name} must be a string")
    for name in RAISE_FLAGS:
        if name in body and not isinstance(body[name], bool):
            raise invalid(name, f"{name} must be a boolean")
    customer = _customer_info(body.get("customer_info")) if version == 2 else None

    match = AUTHORIZATION_TOKEN.match(body["klarna_authorization_token"])
    if match is None or match["scenario"] not in SCENARIOS:
        raise invalid("klarna_authorization_token", "Invalid authorization token")
    scenario = match["scenario"]
    if state.variants().order_scope_error:
        # The order_scope_error variant: the API client lacks a scope for orders. Refused before anything
        # is executed, like a missing scope on any endpoint; nothing is consumed.
        raise ApiError(403, "insufficient_scope", f"The access token lacks the scope {KP_WRITE} for orders")
    if scenario == "expired_token":
        # Rejected before execution, as Payway rejects an expired bearer token: nothing is consumed.
        state.revoke_access_token(token.value)
        raise ApiError(401, "unauthorized", "The access token has expired")

    with state.locked():
        session = _live_session(body["klarna_payments_session_id"], version=version, trial=trial, token=token)
        if not state.consume_authorization_token(body["klarna_authorization_token"]):
            raise invalid("klarna_authorization_token", "Authorization token already consumed")
        if scenario == "payment_method_failed":
            session.status = state.SESSION_TERMINATED
            raise ApiError(
                403, "payment_method_failed", "The payment method failed; the purchase was refused"
            )
        if scenario == "validation":
            raise invalid("klarna_authorization_token", "Klarna could not validate the authorization")
        if scenario == "server_error":
            raise ApiError(500, "internal_server_error", "An unexpected error occurred")
        if scenario == "ssn_already_taken" and body.get("raise_on_ssn_already_taken_error", True):
            # Never echo a personnummer, not even a fake one.
            raise ApiError(400, "ssn_already_taken", "The social security number belongs to another account")
        order = _complete(session, body, customer, token)

    if scenario == "slow":
        state.sleep(state.slow_delay())
    if scenario == "garbage":
        return garbage_response()
    redirect_uri = BAD_REDIRECT if scenario == "bad_redirect" else klarna.hop_url(request, session.id)
    return item_response({"order_id": order.id, state.variants().redirect_field: redirect_uri})


def _customer_info(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise invalid("customer_info", "customer_info is required")
    unknown = [f"customer_info.{name}" for name in value if name not in CUSTOMER_FIELDS]
    if unknown:
        raise ApiError(400, "unknown_parameter", "Unknown parameters: " + ",".join(unknown))
    for name in CUSTOMER_FIELDS:
        if not isinstance(value.get(name), str) or not value[name].strip():
            raise invalid(f"customer_info.{name}", f"customer_info.{name} is required")
    try:
        validate_email(value["email"])
    except DjangoValidationError as err:
        raise invalid("customer_info.email", "customer_info.email is not an e-mail address") from err
    return value


def _live_session(session_id: str, *, version: int, trial: bool, token: state.AccessToken) -> state.Session:
    """The session place_order may use, or the 400 Payway would answer. Call with the state lock held."""
    field = "klarna_payments_session_id"
    session = state.get_session(session_id)
    if session is None:
        raise invalid(field, "Unknown session")
    if session.expired():
        raise invalid(field, "The session has expired")
    if session.status == state.SESSION_COMPLETED:
        raise invalid(field, "A purchase has already been made in this session")
    if session.status == state.SESSION_TERMINATED:
        raise invalid(field, "The session has been terminated")
    if session.version != version:
        raise invalid(field, f"The session was not created with the v{version} API")
    if version == 1 and session.account_id != token.account_id:
        raise invalid(field, "The session belongs to another account")
    if trial and not session.trial:
        raise invalid(field, "The session does not support trial orders")
    if not trial and session.trial:
        raise invalid(field, "A trial session needs place_trial_order")
    return session


def _complete(
    session: state.Session,
    body: dict[str, Any],
    customer: dict[str, str] | None,
    token: state.AccessToken,
) -> state.Order:
    if customer is None:
        account_id = token.account_id
    else:
        account_id = state.account_for_customer(
            customer["email"], customer["first_name"].strip(), customer["last_name"].strip()
        ).id
    product = catalogue.find_product(session.code)
    assert product is not None and account_id is not None
    state.grant(account_id, product.grants)
    order = state.Order(
        id=state.new_order_id(),
        session_id=session.id,
        account_id=account_id,
        code=session.code,
        period_id=session.period_id,
        trial=session.trial,
        version=session.version,
        merchant_reference=body.get("merchant_reference", ""),
        traffic_source=body.get("traffic_source", ""),
    )
    state.add_order(order)
    session.status = state.SESSION_COMPLETED
    session.order_id = order.id
    return order


# -- Klarna Payments: payment periods ---------------------------------------------------------------


@payway_endpoint("payment_periods", scope=KP_READ)
def payment_periods(request: HttpRequest, version: str) -> HttpResponse:
    """``GET external/api/v1|v2/klarna_payments/payment_periods?code=``."""
    code = query(request, ("code",)).get("code", "")
    if not code:
        raise invalid("code", "code is required")
    if len(code) > 1024:
        raise invalid("code", "code is too long")
    product = catalogue.find_product(code)
    if product is None:
        raise ApiError(404, "not_found", "No package or campaign has this code")
    return items_response([period.as_json() for period in product.periods])
