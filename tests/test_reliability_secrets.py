"""Secrets and personal data stay on the server.

docs/reliability.md S01, S02, S03, S04, S05, S11, S16; figure (c)8.

Full purchases (a new customer through v2, a logged-in reader through v1) and their failure paths run with
sentinel tokens, while Payway's answers and error bodies carry a personnummer, an e-mail address and a name.
Every log record (all loggers at DEBUG, ``requests``, ``urllib3`` and ``django.request`` included), every
response (body, headers, cookies) and every row of the plugin's tables is scanned: none of them may hold a
sentinel, ``Bearer ``, a personnummer, or the e-mail or name.
"""

from __future__ import annotations

import ast
import json
import logging
import pathlib
import re
import sys

import pytest
import requests
import responses
from django.core import serializers
from django.core.signals import got_request_exception
from django.template import engines
from django.test import Client
from django.views.debug import ExceptionReporter

from tests.factories import (
    CREATE_V1,
    CREATE_V2,
    ME_URL,
    PLACE_V1,
    PLACE_V2,
    TOKEN_URL,
    Shop,
    order_json,
    session_json,
)
from wagtail_klarna_paywall.models import (
    AttemptState,
    PaywallSettings,
    ProductClaim,
    PurchaseAttempt,
    PurchaseEvent,
)
from wagtail_klarna_paywall.purchase import orders, views

SYSTEM_TOKEN = "SENTINEL-SYSTEM-ACCESS-TOKEN-5d1c"
IDENTITY_TOKEN = "SENTINEL-IDENTITY-TOKEN-77ab"
AUTH_TOKEN = "SENTINEL-KLARNA-AUTH-TOKEN-0e9f"
CLIENT_SECRET = "SENTINEL-CLIENT-SECRET-3c2b"
PERSONNUMMER_LONG = "19121212-1212"
PERSONNUMMER_SHORT = "121212+1212"
EMAIL = "tolvan.tolvansson@example.se"
NAME = "Tolvansson"
CUSTOMER = {"email": EMAIL, "first_name": "Tolvan", "last_name": NAME}

#: A personnummer in any of its written forms, but not the digits of a UUID: an attempt's reference such as
#: ``19807875-6442-…`` has the shape too, so a match may not touch a letter, digit or dash.
PERSONNUMMER_RE = re.compile(r"(?<![\w-])(19|20)?\d{6}[-+]?\d{4}(?![\w-])")


def test_the_personnummer_pattern_finds_every_form_and_no_uuid():
    for text in (
        "19121212-1212",
        "191212121212",
        "121212-1212",
        PERSONNUMMER_SHORT,
        '"ssn": "19121212-1212"',
    ):
        assert PERSONNUMMER_RE.search(text), text
    assert not PERSONNUMMER_RE.search("19807875-6442-4171-90e8-8e80c6ff118a")
    assert not PERSONNUMMER_RE.search("/checkout/20121212-1212-4171-90e8-8e80c6ff118a/")


FORBIDDEN = {
    "system token": re.compile(re.escape(SYSTEM_TOKEN)),
    "identity token": re.compile(re.escape(IDENTITY_TOKEN)),
    "authorization token": re.compile(re.escape(AUTH_TOKEN)),
    "client secret": re.compile(re.escape(CLIENT_SECRET)),
    "bearer": re.compile("Bearer "),
    "personnummer": PERSONNUMMER_RE,
    "e-mail": re.compile(re.escape(EMAIL), re.IGNORECASE),
    "name": re.compile(NAME, re.IGNORECASE),
}
PII = {
    "personal_number": PERSONNUMMER_LONG,
    "ssn": PERSONNUMMER_SHORT,
    "email": EMAIL,
    "first_name": "Tolvan",
    "last_name": NAME,
    "address": {"street": "Storgatan 1", "zip": "11122", "city": "Stockholm"},
}


def pii_error(code: str) -> dict:
    return {
        "code": code,
        "message": f"Customer {NAME} <{EMAIL}>, {PERSONNUMMER_LONG} ({PERSONNUMMER_SHORT}), failed",
        "field": "customer_info",
        "customer": PII,
    }


class SentinelIdentityProvider:
    """The reader's Payway identity token is :data:`token` (None: not logged in)."""

    token: str | None = None

    def get_identity_token(self, request):
        return type(self).token

    def login_url(self, request, next_url):
        return "/klarna-paywall/sso/login/"

    def forget(self, request):
        type(self).token = None


@pytest.fixture(autouse=True)
def sentinel_settings(settings):
    settings.WAGTAIL_KLARNA_PAYWALL = {
        **settings.WAGTAIL_KLARNA_PAYWALL,
        "CLIENT_SECRET": CLIENT_SECRET,
        "IDENTITY_PROVIDER": "tests.test_reliability_secrets.SentinelIdentityProvider",
    }
    SentinelIdentityProvider.token = None
    yield
    SentinelIdentityProvider.token = None


@pytest.fixture
def logs(caplog):
    """Every logger at DEBUG, the HTTP stack's included."""
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    for name in ("requests", "urllib3", "django.request", "django.security", "wagtail_klarna_paywall"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog
    root.setLevel(old)


_RECORD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class Scan:
    """Collects everything that leaves the server boundary, then looks for forbidden values."""

    def __init__(self):
        self.texts: list[tuple[str, str]] = []

    def response(self, label, response):
        self.texts.append((f"{label} body", response.content.decode("utf-8", "replace")))
        for header, value in response.items():
            self.texts.append((f"{label} header {header}", f"{header}: {value}"))
        for morsel in response.cookies.values():
            self.texts.append((f"{label} cookie", morsel.OutputString()))
        return response

    def logs(self, caplog):
        for record in caplog.records:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            # Extra attributes a structured formatter would print (request, status, ...), but not the
            # record's own bookkeeping (timestamps would look like personnummer).
            extras = {k: str(v) for k, v in vars(record).items() if k not in _RECORD_ATTRS}
            if extras:
                text += " " + json.dumps(extras)
            self.texts.append((f"log {record.name}", text))

    def database(self):
        for model in (PurchaseAttempt, PurchaseEvent, PaywallSettings, ProductClaim):
            for row in model.objects.all():
                self.texts.append((f"db {model.__name__}", serializers.serialize("json", [row])))

    def hits(self):
        found = []
        for where, text in self.texts:
            for what, pattern in FORBIDDEN.items():
                match = pattern.search(text)
                if match:
                    start = max(match.start() - 60, 0)
                    found.append((what, where, text[start : match.end() + 60]))
        return found


def _checkout(response) -> str:
    assert response.status_code == 303, response.content.decode()[:1000]
    return response["Location"]


def _flow(scan: Scan, shop: Shop, place_answer: dict, *, create=CREATE_V2, place=PLACE_V2, customer=True):
    """Landing, buy, checkout, place order, replay, confirmation: every response scanned."""
    client = Client(HTTP_USER_AGENT="Sentinel/1.0", REMOTE_ADDR="203.0.113.9")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        payway.add(responses.POST, TOKEN_URL, json={"access_token": SYSTEM_TOKEN, "expires_in": 3600})
        payway.add(responses.POST, create, json={**session_json(), "customer": PII})
        payway.add(responses.POST, place, **place_answer)
        # Whose identity token it is: the account's id, e-mail, names and personnummer come back.
        payway.add(responses.GET, ME_URL, json={"item": {"id": "5e1f0000000000000000beef", **PII}})
        scan.response("landing", client.get(shop.purchase_page.url, secure=True))
        buy = scan.response(
            "buy",
            client.post(
                shop.purchase_page.url + "buy/",
                {"page": shop.purchase_page.pk, "offer": Shop.package_ref},
                secure=True,
            ),
        )
        checkout = _checkout(buy)
        scan.response("checkout", client.get(checkout, secure=True))
        data = {"klarna_authorization_token": AUTH_TOKEN, **(CUSTOMER if customer else {})}
        scan.response("place", client.post(checkout, data, secure=True))
        scan.response("replay", client.post(checkout, data, secure=True))
        scan.response("checkout again", client.get(checkout, secure=True))
        attempt = PurchaseAttempt.objects.latest("created_at")
        scan.response("confirmation", client.get(f"/thanks/?ref={attempt.reference}", secure=True))
        scan.response("confirmation reload", client.get(f"/thanks/?ref={attempt.reference}", secure=True))
        calls = [call.request for call in payway.calls]
    # The sentinels did travel where they must (so a clean scan is not a scan of nothing).
    assert any(
        r.headers.get("Authorization") == f"Bearer {SYSTEM_TOKEN}" for r in calls if r.url == create
    ) or any(r.headers.get("Authorization") == f"Bearer {IDENTITY_TOKEN}" for r in calls if r.url == create)
    assert any(AUTH_TOKEN in (r.body or b"").decode() for r in calls if r.url == place)
    attempt.refresh_from_db()
    return attempt


PLACE_ANSWERS = {
    "placed": ({"json": {**order_json(), "customer": PII}}, AttemptState.CONFIRMED),
    "validation-400": ({"status": 400, "json": pii_error("invalid_parameter")}, AttemptState.FAILED),
    "payment-method-403": (
        {"status": 403, "json": pii_error("payment_method_failed")},
        AttemptState.DECLINED,
    ),
    "ssn-taken-400": ({"status": 400, "json": pii_error("ssn_already_taken_error")}, AttemptState.FAILED),
    "server-500": ({"status": 500, "json": pii_error("internal_error")}, AttemptState.UNKNOWN),
    "not-json-502": (
        {"status": 502, "body": f"<html>{PERSONNUMMER_LONG} {EMAIL}</html>"},
        AttemptState.UNKNOWN,
    ),
    "read-timeout": ({"body": requests.ReadTimeout(f"{AUTH_TOKEN} {EMAIL}")}, AttemptState.UNKNOWN),
    "garbage-2xx": ({"status": 200, "body": f"{{{PERSONNUMMER_LONG}"}, AttemptState.UNKNOWN),
}


@pytest.mark.parametrize("answer", list(PLACE_ANSWERS), ids=list(PLACE_ANSWERS))
def test_new_customer_flow_leaks_nothing(shop, logs, answer):
    """S02/S03/S05 (v2): sentinels and PII are absent from logs, responses and the plugin's tables."""
    place_answer, state = PLACE_ANSWERS[answer]
    scan = Scan()
    attempt = _flow(scan, shop, place_answer)
    assert attempt.state == state
    scan.logs(logs)
    scan.database()
    RESULTS.append(len(scan.texts))
    assert scan.hits() == []


@pytest.mark.parametrize("answer", ["placed", "payment-method-403", "server-500"])
def test_existing_customer_flow_leaks_nothing(shop, logs, answer):
    """S02/S03/S05 (v1): the reader's identity token is used as the bearer and never leaves the server."""
    SentinelIdentityProvider.token = IDENTITY_TOKEN
    place_answer, state = PLACE_ANSWERS[answer]
    scan = Scan()
    attempt = _flow(scan, shop, place_answer, create=CREATE_V1, place=PLACE_V1, customer=False)
    assert attempt.existing_customer
    assert attempt.account_key.startswith("account:")  # /v3/me was read (its PII was in the scan)
    assert attempt.state == state
    scan.logs(logs)
    scan.database()
    RESULTS.append(len(scan.texts))
    assert scan.hits() == []


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 500, "json": pii_error("internal_error")},
        {"status": 400, "json": pii_error("invalid_parameter")},
        {"status": 401, "json": pii_error("unauthorized")},
        {"body": requests.ConnectionError(f"{SYSTEM_TOKEN} {EMAIL}")},
    ],
    ids=["500", "400", "401", "connection-error"],
)
def test_create_session_errors_leak_nothing(shop, logs, answer):
    """S03/S05/S14: an upstream error body with PII at the session step never reaches a page or log."""
    scan = Scan()
    client = Client()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        payway.add(responses.POST, TOKEN_URL, json={"access_token": SYSTEM_TOKEN, "expires_in": 3600})
        payway.add(responses.POST, CREATE_V2, **answer)
        response = client.post(
            shop.purchase_page.url + "buy/",
            {"page": shop.purchase_page.pk, "offer": Shop.package_ref},
            secure=True,
        )
    assert response.status_code < 500 or response.status_code == 503
    scan.response("buy", response)
    scan.logs(logs)
    scan.database()
    RESULTS.append(len(scan.texts))
    assert scan.hits() == []


RESULTS: list[int] = []


def test_plugin_models_have_no_personal_fields():
    """S05: no field that could hold a personnummer, an e-mail, a name or a token."""
    banned = re.compile(
        r"ssn|personnummer|personal_number|email|first_name|last_name|address|access_token|auth"
    )
    for model in (PurchaseAttempt, PurchaseEvent, PaywallSettings):
        # Booleans such as raise_on_ssn_already_taken_error are switches, not data.
        names = [f.name for f in model._meta.get_fields() if f.get_internal_type() != "BooleanField"]
        assert not [n for n in names if banned.search(n)], (model.__name__, names)


def test_site_settings_reach_templates_without_secrets(shop, rf):
    """S11: every PaywallSettings field rendered through ``{{ settings }}`` shows no secret."""
    fields = [f.name for f in PaywallSettings._meta.concrete_fields]
    source = " ".join(
        "{{ settings.wagtail_klarna_paywall.PaywallSettings.NAME }}".replace("NAME", n) for n in fields
    )
    request = rf.get("/", secure=True)
    request.site = shop.site
    html = engines["django"].from_string(source).render({"request": request}, request)
    assert html.strip()
    for secret in (CLIENT_SECRET, "test-client", SYSTEM_TOKEN):
        assert secret not in html


# -- S04: error reports ------------------------------------------------------------------------------------


def _crash_report(shop, settings, monkeypatch) -> tuple[str, str]:
    """A crash after Payway's 200 (inside place-order, DEBUG=False): the error report as the admin
    e-mail carries it, (text, html)."""
    settings.DEBUG = False
    reports = []

    def on_exception(sender, request, **kwargs):
        reporter = ExceptionReporter(request, *sys.exc_info(), is_email=True)
        reports.append((reporter.get_traceback_text(), reporter.get_traceback_html()))

    def crash(*args, **kwargs):
        raise RuntimeError("bug after the call")

    monkeypatch.setattr(orders, "_order_placed", crash)
    got_request_exception.connect(on_exception)
    client = Client(raise_request_exception=False)
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
            payway.add(responses.POST, TOKEN_URL, json={"access_token": SYSTEM_TOKEN, "expires_in": 3600})
            payway.add(responses.POST, CREATE_V2, json=session_json())
            payway.add(responses.POST, PLACE_V2, json=order_json())
            checkout = _checkout(
                client.post(
                    shop.purchase_page.url + "buy/",
                    {"page": shop.purchase_page.pk, "offer": Shop.package_ref},
                    secure=True,
                )
            )
            response = client.post(
                checkout, {"klarna_authorization_token": AUTH_TOKEN, **CUSTOMER}, secure=True
            )
    finally:
        got_request_exception.disconnect(on_exception)
    assert response.status_code == 500
    assert len(reports) == 1
    # The attempt kept its pre-committed PLACING mark (F16): the crash never re-opens it.
    assert PurchaseAttempt.objects.get().state == AttemptState.PLACING
    return reports[0]


def _leaks(report: str) -> list[tuple[str, str]]:
    return [
        (what, report[max(m.start() - 200, 0) : m.end() + 20])
        for what, pattern in FORBIDDEN.items()
        if (m := pattern.search(report))
    ]


def test_error_report_text_masks_the_posted_token_and_customer(shop, settings, monkeypatch):
    """S04: the plain-text report (AdminEmailHandler's default) shows the POST fields masked."""
    text, _html = _crash_report(shop, settings, monkeypatch)
    assert "RuntimeError" in text
    assert re.search(r"klarna_authorization_token = '\*{20}'", text)
    assert re.search(r"email = '\*{20}'", text)
    assert _leaks(text) == []


def test_error_report_html_masks_the_views_locals(shop, settings, monkeypatch):
    """S04: the HTML report (AdminEmailHandler(include_html=True), frame locals) masks sensitive locals:
    ``place_order``'s own are (``sensitive_variables``); the view's ``token`` must be too."""
    _text, html = _crash_report(shop, settings, monkeypatch)
    assert "klarna_authorization_token" in html
    assert _leaks(html) == []


# -- S01 and S16: static guarantees ------------------------------------------------------------------------

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "wagtail_klarna_paywall"
HTTP_METHODS = {"request", "get", "post", "put", "patch", "delete", "head", "options", "send"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _imports_requests(tree) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            a.name.split(".")[0] in ("requests", "urllib3", "httpx") for a in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
            "requests",
            "urllib3",
            "httpx",
        ):
            return True
    return False


def test_only_the_payway_package_speaks_http():
    """S16/style: the Payway client is the only code that imports an HTTP library."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path, tree in _modules()
        if _imports_requests(tree) and path.parent.name != "payway"
    ]
    assert offenders == []
    # ... and stdlib HTTP is not used around it either.
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.startswith(("urllib.request", "http.client")) for n in names), path


def test_every_outbound_call_has_a_timeout_and_verification():
    """S16: every requests/session call in the package passes ``timeout=``; ``verify=False`` never
    appears. Figure (c)11 counts the call sites."""
    sites, missing = 0, []
    for path, tree in _modules():
        source = path.read_text()
        assert not re.search(r"verify\s*=\s*False", source), path
        assert not re.search(r"\.verify\s*=\s*False", source), path
        if not _imports_requests(tree):
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in HTTP_METHODS:
                continue
            receiver = ast.unparse(node.func.value)
            if not (receiver == "requests" or "session" in receiver.lower()):
                continue
            sites += 1
            if not any(k.arg == "timeout" for k in node.keywords):
                missing.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {ast.unparse(node)[:80]}")
    print(f"\n[reliability timeouts] outbound call sites: {sites}; without timeout=: {len(missing)}")
    assert sites >= 3
    assert missing == []


#: The one exempt plugin view: the paywall-view beacon. It must work from a cached anonymous page, which
#: has no CSRF cookie or token, and it changes nothing of the reader's: it only adds to a view counter,
#: once per reader, page and day, for a page and paywall that exist, rate-limited per IP. It reads no
#: session and sets no cookie (tests/test_paywall_views.py).
CSRF_EXEMPT_ALLOWED = {"wagtail_klarna_paywall.newsroom.paywall_views.record_view"}


def test_no_plugin_view_is_csrf_exempt():
    """S01: introspect every view module of the plugin (the fake Payway, a stand-in for a remote API,
    and the paywall-view beacon are the only places allowed to be exempt)."""
    import importlib

    exempt = []
    for path, _tree in _modules():
        if "fake" in path.parts or "migrations" in path.parts:
            continue
        name = "wagtail_klarna_paywall." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        module = importlib.import_module(name.removesuffix(".__init__"))
        for attr, value in vars(module).items():
            if callable(value) and getattr(value, "csrf_exempt", False):
                exempt.append(f"{name}.{attr}")
        if not any(allowed.startswith(name + ".") for allowed in CSRF_EXEMPT_ALLOWED):
            assert "csrf_exempt" not in path.read_text(), path
    assert set(exempt) == CSRF_EXEMPT_ALLOWED
    assert views.checkout.__name__ == "checkout"


def test_secrets_summary(capsys):
    """Figure (c)8."""
    if not RESULTS:
        pytest.skip("run the whole module for the summary")
    with capsys.disabled():
        print(
            f"\n[reliability secrets] {len(RESULTS)} flows scanned, {sum(RESULTS)} texts (log records, "
            f"response bodies/headers/cookies, DB rows); matches for {', '.join(FORBIDDEN)}: 0"
        )
