"""The fake Payway API's token, catalogue and identity endpoints (and its 404 for any other API path).

The same paths, shapes and error conventions as Payway, served by Django. The Klarna Payments endpoints
(create_session, place_order, ...) are in :mod:`.klarna_payments`; the pages that stand in for Klarna's
side of the browser are in :mod:`.klarna`.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ..conf import paywall_settings
from . import catalogue, state
from .http import (
    ApiError,
    error_response,
    invalid,
    item_response,
    items_response,
    payway_endpoint,
    query,
    require_identity,
)

PRODUCT_READ = "/external/product/r"
TITLE_READ = "/external/title/r"
ME = "/external/me/w"

TITLE_CODE = re.compile(r"^[a-zA-Z\-_0-9]{1,15}$")
TAGS = re.compile(r"^([a-zA-Z0-9]+,?\s*)+$")


# -- token endpoint ---------------------------------------------------------------------------------


@payway_endpoint("access_token", methods=("POST",))
def access_token(request: HttpRequest) -> HttpResponse:
    """``POST api/authorization/access_token`` (form-encoded): grant_type none, ticket or refresh_token."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise ApiError(
            400, "invalid_content_type_error", "Content-Type must be application/x-www-form-urlencoded"
        )
    allowed = {"client_id", "client_secret", "grant_type", "scope", "ticket", "refresh_token"}
    unknown = [name for name in request.POST if name not in allowed]
    if unknown:
        raise ApiError(400, "unknown_parameter", "Unknown parameters: " + ",".join(unknown))
    if not _client_credentials_valid(
        request.POST.get("client_id", ""), request.POST.get("client_secret", "")
    ):
        raise ApiError(401, "invalid_client", "Unknown client or wrong client secret")

    grant_type = request.POST.get("grant_type", "")
    scopes = _requested_scopes(request.POST.get("scope", ""))
    refresh_token = ""
    if grant_type == "none":
        account_id = None
    elif grant_type == "ticket":
        account_id = state.redeem_ticket(request.POST.get("ticket", ""))
        if account_id is None:
            raise ApiError(400, "invalid_grant", "The ticket is unknown or already used", "ticket")
        refresh_token = state.issue_refresh_token(account_id)
    elif grant_type == "refresh_token":
        account_id = state.redeem_refresh_token(request.POST.get("refresh_token", ""))
        if account_id is None:
            raise ApiError(
                400, "invalid_grant", "The refresh token is unknown or already used", "refresh_token"
            )
        refresh_token = state.issue_refresh_token(account_id)
    else:
        raise invalid("grant_type", "grant_type must be one of none, ticket, refresh_token")

    token = state.issue_access_token(account_id, scopes=scopes)
    body = {
        "access_token": token.value,
        "token_type": "bearer",
        "expires_in": state.TOKEN_LIFETIME,
        "scope": " ".join(sorted(token.scopes)),
    }
    if refresh_token:
        body["refresh_token"] = refresh_token
    return JsonResponse(body)


def _client_credentials_valid(client_id: str, client_secret: str) -> bool:
    """The fake accepts the credentials the site is configured with (any, when none are configured)."""
    expected_id, expected_secret = paywall_settings.CLIENT_ID, paywall_settings.CLIENT_SECRET
    if not expected_id and not expected_secret:
        return bool(client_id)
    return secrets.compare_digest(client_id.encode(), str(expected_id).encode()) and secrets.compare_digest(
        client_secret.encode(), str(expected_secret).encode()
    )


def _requested_scopes(raw: str) -> frozenset[str]:
    scopes = frozenset(raw.split())
    if not scopes:
        return state.ALL_SCOPES
    unknown = sorted(scopes - state.ALL_SCOPES)
    if unknown:
        raise ApiError(
            400, "invalid_scope", "Scopes not granted to this client: " + " ".join(unknown), "scope"
        )
    return scopes


# -- catalogue --------------------------------------------------------------------------------------


@payway_endpoint("titles", scope=TITLE_READ)
def titles(request: HttpRequest) -> HttpResponse:
    """``GET external/api/v1/titles/``."""
    query(request, ())
    return items_response([dict(catalogue.TITLE)])


@payway_endpoint("find_title", scope=TITLE_READ)
def find_title(request: HttpRequest) -> HttpResponse:
    """``GET external/api/v1/titles/find_one?title_code=``."""
    title_code = _title_code(query(request, ("title_code",)))
    if title_code != catalogue.TITLE_CODE:
        raise ApiError(404, "not_found", "No title has this code")
    return item_response(dict(catalogue.TITLE))


@payway_endpoint("package_search", scope=PRODUCT_READ)
def package_search(request: HttpRequest) -> HttpResponse:
    """``GET external/api/v2/products/package/search``."""
    return _search(request, catalogue.PACKAGES)


@payway_endpoint("campaign_search", scope=PRODUCT_READ)
def campaign_search(request: HttpRequest, version: str) -> HttpResponse:
    """``GET external/api/v2|v3/products/campaign/search``."""
    return _search(request, catalogue.CAMPAIGNS)


def _title_code(params: dict[str, str]) -> str:
    title_code = params.get("title_code", "")
    if not title_code:
        raise invalid("title_code", "title_code is required")
    if not TITLE_CODE.match(title_code):
        raise invalid("title_code", "Parameter must match format (/^[a-zA-Z-_0-9]+$/) and be 1..15 long")
    return title_code


def _int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d+", raw) or not low <= int(raw) <= high:
        raise invalid(name, f"{name} must be an integer between {low} and {high}")
    return int(raw)


def _search(request: HttpRequest, products: tuple[catalogue.Product, ...]) -> HttpResponse:
    params = query(request, ("title_code", "page_size", "page_number", "tags", "include_inactive"))
    title_code = _title_code(params)
    page_size = _int_param(params, "page_size", 25, 1, 25)
    page_number = _int_param(params, "page_number", 1, 1, 1000)
    if "tags" in params and (len(params["tags"]) > 100 or not TAGS.match(params["tags"])):
        raise invalid("tags", "tags must be a comma-separated list of words")
    include_inactive = params.get("include_inactive", "false").lower()
    if include_inactive not in ("true", "false"):
        raise invalid("include_inactive", "include_inactive must be true or false")
    # The demo products carry no tags, so a tag filter is accepted and has nothing to narrow.
    matching = [
        p
        for p in products
        if title_code == catalogue.TITLE_CODE and (include_inactive == "true" or not p.expired)
    ]
    start = (page_number - 1) * page_size
    page = matching[start : start + page_size]
    shape = state.products_shape()
    return items_response(
        [product.as_json(shape) for product in page],
        {
            "page_size": page_size,
            "page_number": page_number,
            "more_results_available": start + page_size < len(matching),
        },
    )


# -- identity ---------------------------------------------------------------------------------------


@payway_endpoint("active_products", scope=ME)
def active_products(request: HttpRequest) -> HttpResponse:
    """``GET external/api/v1/me/active_products[?include_articles=true]`` with an identity token."""
    token = require_identity(request)
    params = query(request, ("include_articles",))
    account = state.get_account(token.account_id or "")
    if account is None:
        raise ApiError(404, "not_found", "No account is tied to the access token")
    item: dict[str, Any] = {
        "id": account.id,
        "active_products": sorted(account.products),
        "external_plus_products": [],
    }
    if params.get("include_articles", "").lower() == "true":
        item["active_articles"] = []
    return item_response(item)


#: Shapes the fake's ``/v3/me`` answers in turn, so the client's tolerant parsing meets each of them: the
#: documented ``{"item": {...}}``, the bare object, and ``account_id`` instead of ``id``.
ME_SHAPES = ("item", "bare", "account_id")


@payway_endpoint("me", scope=ME)
def me(request: HttpRequest) -> HttpResponse:
    """``GET external/api/v3/me`` with an identity token: the account behind it (404 without one).

    The documented shape is ``{"item": {"id", "email", "first_name", "last_name", ...}}``; the other
    plausible shapes of :data:`ME_SHAPES` are answered in rotation (a model of Payway, not its spec).
    """
    token = require_identity(request)
    account = state.get_account(token.account_id or "")
    if account is None:
        raise ApiError(404, "not_found", "No account is tied to the access token")
    fields: dict[str, Any] = {
        "id": account.id,
        "email": account.email,
        "status": "active",
        "verified": True,
        "customer_number": account.customer_number,
        "first_name": account.first_name,
        "last_name": account.last_name,
        "user_products": [
            {"product_code": code, "state": "active", "title_code": catalogue.TITLE_CODE}
            for code in sorted(account.products)
        ],
    }
    shape = ME_SHAPES[(state.calls("me") - 1) % len(ME_SHAPES)]
    if shape == "bare":
        return JsonResponse(fields)
    if shape == "account_id":
        fields["account_id"] = fields.pop("id")
    return item_response(fields)


@csrf_exempt
def not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    """Any other API path: Payway's 404 body instead of Django's HTML page."""
    return error_response(404, "not_found", "No such endpoint")
