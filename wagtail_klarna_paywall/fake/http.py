"""Payway's HTTP conventions, as the fake speaks them: envelopes, error bodies, bearer tokens, strict input.

Error bodies are ``{"code", "field", "message"}`` (``field`` only when one parameter is at fault). The codes
for a missing/expired token (401 ``unauthorized``) and a missing scope or identity (403
``insufficient_scope`` / ``identity_required``) are the fake's choice: Payway does not document them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import state

#: Body of a 2xx reply that is not JSON (the "garbage" failure).
GARBAGE_BODY = "<html><body><h1>502 Bad Gateway</h1><p>upstream hiccup</p></body></html>"


class ApiError(Exception):
    """Raised inside a fake view to answer with Payway's error body."""

    def __init__(self, status: int, code: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def response(self) -> JsonResponse:
        return error_response(self.status, self.code, self.message, self.field)


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, field)


def error_response(status: int, code: str, message: str, field: str = "") -> JsonResponse:
    body = {"code": code, "message": message}
    if field:
        body["field"] = field
    return JsonResponse(body, status=status)


def item_response(item: dict[str, Any], status: int = 200) -> JsonResponse:
    """A single object, wrapped in ``item`` or at the top level (the ``envelope`` variant)."""
    if state.variants().envelope == "flat":
        return JsonResponse(item, status=status)
    return JsonResponse({"item": item}, status=status)


def items_response(items: list[dict[str, Any]], page_info: dict[str, Any] | None = None) -> JsonResponse:
    body: dict[str, Any] = {"items": items}
    if page_info is not None:
        body["page_info"] = page_info
    return JsonResponse(body)


def garbage_response() -> HttpResponse:
    return HttpResponse(GARBAGE_BODY, content_type="text/html; charset=utf-8")


def _failure_response(failure: state.Failure) -> HttpResponse:
    if failure.garbage:
        return garbage_response()
    assert failure.status is not None
    message = failure.message or f"Armed failure ({failure.status}) from the fake Payway control API"
    response = error_response(failure.status, failure.code, message, failure.field)
    if failure.retry_after is not None:
        response["Retry-After"] = str(failure.retry_after)
    return response


def _unknown(names: Iterable[str]) -> ApiError:
    return ApiError(400, "unknown_parameter", "Unknown parameters: " + ",".join(names))


def json_body(request: HttpRequest, allowed: Iterable[str]) -> dict[str, Any]:
    """The JSON object body, after Payway's content-type and unknown-parameter checks."""
    if request.content_type != "application/json":
        raise ApiError(400, "invalid_content_type_error", "Content-Type must be application/json")
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, "invalid_parameter", "The request body is not valid JSON") from err
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_parameter", "The request body must be a JSON object")
    allowed = set(allowed)
    unknown = [name for name in body if name not in allowed]
    if unknown:
        raise _unknown(unknown)
    return body


def query(request: HttpRequest, allowed: Iterable[str]) -> dict[str, str]:
    """The query string as a dict (last value wins), rejecting parameters the endpoint does not know."""
    allowed = set(allowed)
    unknown = [name for name in request.GET if name not in allowed]
    if unknown:
        raise _unknown(unknown)
    return {name: request.GET[name] for name in request.GET}


def bearer_token(request: HttpRequest) -> state.AccessToken:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ApiError(401, "unauthorized", "An access token is required")
    token = state.find_access_token(value.strip())
    if token is None:
        raise ApiError(401, "unauthorized", "The access token is not valid")
    if token.expired():
        raise ApiError(401, "unauthorized", "The access token has expired")
    return token


def require_identity(request: HttpRequest) -> state.AccessToken:
    token: state.AccessToken = request.fake_payway_token  # type: ignore[attr-defined]
    if not token.has_identity:
        raise ApiError(403, "identity_required", "This endpoint needs an access token with identity")
    return token


def payway_endpoint(
    name: str, *, methods: tuple[str, ...] = ("GET",), scope: str | None = None
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Count the call, apply an armed failure, check method, bearer token and scope, map ApiError.

    ``scope=None`` means no bearer token is needed (the token endpoint). The view finds the checked token
    on ``request.fake_payway_token``.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        def run(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = error_response(405, "method_not_allowed", f"Use {' or '.join(methods)}")
                response["Allow"] = ", ".join(methods)
                return response
            try:
                if scope is not None:
                    token = bearer_token(request)
                    if scope not in token.scopes:
                        raise ApiError(403, "insufficient_scope", f"The access token lacks the scope {scope}")
                    request.fake_payway_token = token  # type: ignore[attr-defined]
                return view(request, *args, **kwargs)
            except ApiError as err:
                return err.response()

        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            state.record_call(name)
            failure = state.pop_failure(name)
            if failure is None:
                return run(request, *args, **kwargs)
            if failure.execute:
                response = run(request, *args, **kwargs)
                state.sleep(failure.delay)
                return response if failure.status is None else _failure_response(failure)
            state.sleep(failure.delay)
            if failure.status is None:
                return run(request, *args, **kwargs)
            return _failure_response(failure)

        return wrapper

    return decorator
