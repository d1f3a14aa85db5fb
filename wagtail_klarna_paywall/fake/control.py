"""Controls of the fake Payway: a JSON API for tests and scripts, and an HTML page for people.

``POST _control/`` takes a JSON object with any of::

    {"reset": true}
    {"fail_next": {"endpoint": "place_order", "status": 500, "code": "...", "field": "", "message": "",
                   "delay": 0, "garbage": false, "execute": false, "retry_after": null}}
                                                                        (or a list of such objects)
    {"slow_delay": 0.5}                                                 (seconds for the "slow" scenario)
    {"expire_tokens": true}                                             (every bearer token now answers 401)
    {"variants": {"envelope": "flat", "redirect_field": "redirect_url",
                  "categories": "direct_debit", "order_scope_error": true}}
                                                    (any of the switches of VARIANTS, until a reset)
    {"session_categories": {"regular": ["pay_now"], "trial": ["pay_now", "direct_debit"]}}
                                        (what create_session lists as payment_method_categories)
    {"products_shape": "product_codes"}  (how search items list their products; see catalogue.PRODUCTS_SHAPES)

and answers (like ``GET _control/``) with the counters, armed failures, sessions and orders. No token,
ticket or password is ever part of the answer.

The fake is for the sandbox and tests only: never route ``wagtail_klarna_paywall.fake.urls`` in production.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import state
from .klarna_payments import SCENARIOS
from .variants import VARIANTS

#: Failures a person can arm from the HTML page: label, and the keyword arguments of ``fail_next``.
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "500": ("500 internal_server_error", {"status": 500}),
    "503": ("503 service unavailable", {"status": 503}),
    "400": ("400 invalid_parameter", {"status": 400, "field": "code"}),
    "401": ("401 unauthorized (expired token)", {"status": 401}),
    "403": ("403 (payment_method_failed on place_order)", {"status": 403}),
    "404": ("404 not_found", {"status": 404}),
    "429": ("429 rate limited (Retry-After: 5)", {"status": 429, "retry_after": 5}),
    "garbage": ("200 with a body that is not JSON", {"garbage": True}),
    "slow": ("slow reply (then normal answer)", {"status": None}),
    "lost_reply": ("executed, then 500 (lost reply)", {"status": 500, "execute": True}),
}


def snapshot() -> dict[str, Any]:
    """What the fake holds, without secrets."""
    return {
        "calls": state.calls(),
        "slow_delay": state.slow_delay(),
        "variants": state.variants().as_json(),
        "products_shape": state.products_shape(),
        "session_categories": {
            kind: state.session_categories(trial=kind == "trial") for kind in ("regular", "trial")
        },
        "armed": [
            {
                "endpoint": f.endpoint,
                "status": f.status,
                "code": f.code,
                "field": f.field,
                "delay": f.delay,
                "garbage": f.garbage,
                "execute": f.execute,
            }
            for f in state.armed_failures()
        ],
        "sessions": [
            {
                "id": s.id,
                "version": s.version,
                "code": s.code,
                "period_id": s.period_id,
                "trial": s.trial,
                "status": s.status,
                "expired": s.expired(),
                "created_at": s.created_at.isoformat(),
                "expires_at": s.expires_at.isoformat(),
                "order_id": s.order_id,
            }
            for s in state.sessions()
        ],
        "orders": [
            {
                "id": o.id,
                "session_id": o.session_id,
                "account_id": o.account_id,
                "code": o.code,
                "trial": o.trial,
                "version": o.version,
                "merchant_reference": o.merchant_reference,
                "created_at": o.created_at.isoformat(),
            }
            for o in state.orders()
        ],
    }


def _arm(spec: Any) -> None:
    if not isinstance(spec, dict):
        raise ValueError("fail_next takes an object (or a list of objects)")
    known = {"endpoint", "status", "code", "field", "message", "delay", "garbage", "execute", "retry_after"}
    unknown = set(spec) - known
    if unknown:
        raise ValueError("Unknown parameters: " + ",".join(sorted(unknown)))
    status = spec.get("status", 500)
    if status is not None and not isinstance(status, int):
        raise ValueError("status must be an integer or null")
    state.fail_next(
        str(spec.get("endpoint", "")),
        status=status,
        code=str(spec.get("code") or ""),
        field=str(spec.get("field") or ""),
        message=str(spec.get("message") or ""),
        delay=float(spec.get("delay") or 0),
        garbage=bool(spec.get("garbage", False)),
        execute=bool(spec.get("execute", False)),
        retry_after=int(spec["retry_after"]) if spec.get("retry_after") is not None else None,
    )


@csrf_exempt
@require_http_methods(["GET", "POST"])
def control_api(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            body = json.loads(request.body or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            if body.get("reset"):
                state.reset()
            if "slow_delay" in body:
                state.set_slow_delay(float(body["slow_delay"]))
            if body.get("expire_tokens"):
                state.expire_access_tokens()
            if "variants" in body:
                if not isinstance(body["variants"], dict):
                    raise ValueError("variants takes an object")
                state.set_variants(**body["variants"])
            if "products_shape" in body:
                state.set_products_shape(str(body["products_shape"]))
            if "session_categories" in body:
                categories = body["session_categories"]
                if not isinstance(categories, dict) or set(categories) - {"regular", "trial"}:
                    raise ValueError("session_categories takes an object with regular and/or trial")
                state.set_session_categories(**categories)
            specs = body.get("fail_next")
            for spec in specs if isinstance(specs, list) else ([specs] if specs is not None else []):
                _arm(spec)
        except (TypeError, ValueError) as err:
            return JsonResponse({"code": "invalid_parameter", "message": str(err)}, status=400)
    return JsonResponse(snapshot())


@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    """The sandbox's control page. Its form is CSRF-protected like any page a person uses."""
    error = ""
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "reset":
                state.reset()
            elif action == "slow_delay":
                state.set_slow_delay(float(request.POST.get("slow_delay", "")))
            elif action == "variants":
                state.set_variants(**{name: request.POST[name] for name in VARIANTS if name in request.POST})
            elif action == "arm":
                preset = PRESETS.get(request.POST.get("preset", ""))
                if preset is None:
                    raise ValueError("Choose a failure")
                delay = float(request.POST.get("delay") or 0)
                state.fail_next(request.POST.get("endpoint", ""), delay=delay, **preset[1])
            else:
                raise ValueError("Unknown action")
        except ValueError as err:
            error = str(err)
        else:
            return HttpResponseRedirect(reverse("fake_payway:index"))
    context = {
        "error": error,
        "data": snapshot(),
        "endpoints": state.ENDPOINTS,
        "presets": [(key, label) for key, (label, _) in PRESETS.items()],
        "scenarios": SCENARIOS.items(),
        "variants": [
            (name, choices, help_text, getattr(state.variants(), name))
            for name, (choices, help_text) in VARIANTS.items()
        ],
        "accounts": state.accounts(),
    }
    return render(request, "wagtail_klarna_paywall_fake/control.html", context, status=400 if error else 200)
