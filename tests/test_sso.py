"""SSO2: JWTs both ways, the landing view, ticket exchange, session rotation, polling, logout."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import responses
from django.conf import settings
from django.core.cache import caches
from django.template.loader import render_to_string
from django.test import RequestFactory
from freezegun import freeze_time

from tests.factories import SSO_CLIENT_ID as CLIENT_ID
from tests.factories import SSO_SECRET as SECRET
from tests.factories import answer, land, start_login
from wagtail_klarna_paywall.exceptions import InvalidSSOToken
from wagtail_klarna_paywall.login import sso
from wagtail_klarna_paywall.models import LoginFailure, SSOLandingClaim
from wagtail_klarna_paywall.newsroom import funnel

pytestmark = pytest.mark.django_db

ORG = settings.WAGTAIL_KLARNA_PAYWALL["ORGANISATION_ID"]
SSO = settings.WAGTAIL_KLARNA_PAYWALL["SSO_URL"]
TOKEN_URL = settings.WAGTAIL_KLARNA_PAYWALL["API_URL"] + "/api/authorization/access_token"
IDENTITY_TOKEN = "IDENTITY-SENTINEL-7f3a9c"
TICKET = "TICKET-SENTINEL-51b2"


def token_reply(rsps, access_token: str = IDENTITY_TOKEN, expires_in: int = 3600, refresh: str = "") -> None:
    body = {"access_token": access_token, "expires_in": expires_in}
    if refresh:
        body["refresh_token"] = refresh
    rsps.add(responses.POST, TOKEN_URL, json=body)


def status_reply(rsps, **claims) -> None:
    rsps.add(responses.POST, f"{SSO}/sessionstatus", json={"t": answer(**claims)})


def logged_in_client(client, rsps, *, sid: str = "sid-1", refresh: str = "", expires_in: int = 3600):
    _identify, r = start_login(client)
    token_reply(rsps, expires_in=expires_in, refresh=refresh)
    response = land(client, answer(sid=sid, sts="loggedin", at=TICKET), r)
    assert response.status_code == 302, response.content
    return client


def session_state(client) -> dict:
    return client.session.get(sso.SESSION_KEY) or {}


# -- our JWTs ----------------------------------------------------------------------------------------


def test_identify_token_claims_are_signed_with_the_client_secret():
    with freeze_time("2026-11-25 12:00:00"):
        token = sso.identify_token()
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="pw-sso", issuer=ORG)
    assert claims["cid"] == CLIENT_ID
    assert claims["iat"] == claims["nbf"] == calendar.timegm((2026, 11, 25, 12, 0, 0))
    assert claims["exp"] - claims["iat"] == 60
    assert claims["nbf"] == claims["iat"]
    assert "sid" not in claims
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret", algorithms=["HS256"], audience="pw-sso")


def test_session_token_carries_sid_ip_agent_and_last_known_status():
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="Reader/1.0")
    token = sso.session_token(request, sid="sid-9", lks="loggedin")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="pw-sso", issuer=ORG)
    assert (claims["sid"], claims["ipa"], claims["uas"], claims["lks"]) == (
        "sid-9",
        "203.0.113.9",
        "Reader/1.0",
        "loggedin",
    )
    assert claims["exp"] - claims["iat"] == 10
    assert "lks" not in jwt.decode(
        sso.session_token(request, sid="sid-9"), SECRET, algorithms=["HS256"], audience="pw-sso"
    )


def test_client_ip_trusts_only_the_configured_proxies(settings):
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7")
    assert sso.client_ip(request) == "10.0.0.1"
    settings.WAGTAIL_KLARNA_PAYWALL = {**settings.WAGTAIL_KLARNA_PAYWALL, "TRUSTED_PROXY_COUNT": 1}
    assert sso.client_ip(request) == "198.51.100.7"


# -- SSO2's JWTs -------------------------------------------------------------------------------------


def test_answer_is_read():
    status = sso.read_answer(answer(sid="s1", sts="loggedin", at="t1"))
    assert (status.sid, status.sts, status.at, status.logged_in, status.ended) == (
        "s1",
        "loggedin",
        "t1",
        True,
        False,
    )


#: Every aud/iss shape an SSO2 answer may have: Payway documents neither claim for its answers.
SHAPES = {
    "client-aud": {"aud": CLIENT_ID, "iss": "pw-sso"},
    "client-aud-list": {"aud": [CLIENT_ID], "iss": "pw-sso"},
    "pw-sso-aud": {"aud": "pw-sso", "iss": ORG},
    "none": {"aud": None, "iss": None},
    "aud-only": {"aud": CLIENT_ID, "iss": None},
    "iss-only": {"aud": None, "iss": ORG},
    "other": {"aud": "someone-else", "iss": "evil"},
}


@pytest.mark.parametrize("shape", SHAPES)
def test_answers_are_accepted_whatever_their_aud_and_iss(shape):
    """aud/iss never decide: the signature, the time claims and sid/sts do."""
    status = sso.read_answer(answer(sid="s1", sts="loggedin", at="t1", **SHAPES[shape]))
    assert (status.sid, status.sts, status.at) == ("s1", "loggedin", "t1")


def test_answer_shape_is_logged_once_per_process(caplog, monkeypatch):
    monkeypatch.setattr(sso, "_shapes_seen", set())
    caplog.set_level(logging.INFO, logger="wagtail_klarna_paywall.login.sso")
    for _ in range(3):
        sso.read_answer(answer(sid="s", sts="anon", **SHAPES["pw-sso-aud"]))
    sso.read_answer(answer(sid="s", sts="anon", **SHAPES["none"]))
    sso.read_answer(answer(sid="s", sts="anon", **SHAPES["other"]))
    sso.read_answer(answer(sid="s", sts="anon", **SHAPES["other"]))
    lines = [r.getMessage() for r in caplog.records if "aud/iss" in r.getMessage()]
    assert lines[0] == "SSO2 answers carry the aud/iss shape 'pw-sso-aud'"
    assert lines[1] == "SSO2 answers carry the aud/iss shape 'none'"
    assert len(lines) == 3 and "unexpected aud/iss (aud='someone-else', iss='evil')" in lines[2]
    assert [r.levelname for r in caplog.records if "aud/iss" in r.getMessage()] == ["INFO", "INFO", "WARNING"]


@pytest.mark.parametrize(
    ("claims", "shape"),
    [
        ({"aud": CLIENT_ID, "iss": "pw-sso"}, "client-aud"),
        ({"aud": "pw-sso", "iss": ORG}, "pw-sso-aud"),
        ({}, "none"),
        ({"aud": "pw-sso", "iss": "pw-sso"}, "other"),
    ],
)
def test_answer_shape_names(claims, shape):
    assert sso.answer_shape(claims) == shape


def _our_identify_token():
    return sso.identify_token()


def _our_session_token():
    return sso.session_token(RequestFactory().get("/"), sid="s", lks="loggedin")


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(
            lambda: answer(secret="not-our-secret", sid="s", sts="loggedin", at="x"), id="wrong-secret"
        ),
        # Tokens we sign for SSO2 carry aud "pw-sso" like one answer shape, but never an sts.
        pytest.param(_our_identify_token, id="our-identify-token-replayed"),
        pytest.param(_our_session_token, id="our-session-token-replayed"),
        pytest.param(lambda: answer(sts="loggedin"), id="no-sid"),
        pytest.param(lambda: answer(sid="s"), id="no-sts"),
        pytest.param(lambda: answer(sid="s", sts="admin"), id="unknown-status"),
        pytest.param(lambda: answer(sid="s", sts="anon", exp=None), id="no-expiry"),
        pytest.param(lambda: answer(sid="s", sts="anon", nbf=int(time.time()) + 600), id="not-yet-valid"),
        pytest.param(lambda: raw_answer('{"sid":"s","sts":"anon","exp":1e999}'), id="exp-1e999"),
        pytest.param(
            lambda: raw_answer(f'{{"sid":"s","sts":"anon","exp":{_later()},"iat":1e999}}'), id="iat-1e999"
        ),
        pytest.param(
            lambda: raw_answer(f'{{"sid":"s","sts":"anon","exp":{_later()},"nbf":-1e999}}'), id="nbf-1e999"
        ),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
        pytest.param(lambda: "å.b.c", id="non-ascii"),
        pytest.param(lambda: "", id="empty"),
    ],
)
def test_bad_answers_are_rejected(make_token):
    with pytest.raises(InvalidSSOToken):
        sso.read_answer(make_token())


def _later(seconds: int = 60) -> int:
    return int(time.time()) + seconds


def raw_answer(payload_json: str, secret: str = SECRET) -> str:
    """A signed JWT whose payload is exactly ``payload_json`` (``1e999`` is JSON, not a Python float)."""
    segments = [
        jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()),
        jwt.utils.base64url_encode(payload_json.encode()),
    ]
    signing_input = b".".join(segments)
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return b".".join([*segments, jwt.utils.base64url_encode(signature)]).decode()


@pytest.mark.parametrize("claim", ["raa", "frf"])
@pytest.mark.parametrize("value", ["1e999", "-1e999", "NaN", "Infinity", '"many"', "true", "[1]"])
def test_unreadable_counters_are_ignored_not_fatal(claim, value):
    """A signed answer with raa/frf = 1e999 used to raise OverflowError: the counter is just unknown."""
    status = sso.read_answer(raw_answer(f'{{"sid":"s","sts":"anon","exp":{_later()},"{claim}":{value}}}'))
    assert status.sid == "s" and getattr(status, claim) is None


def test_readable_counters_are_kept():
    status = sso.read_answer(raw_answer(f'{{"sid":"s","sts":"anon","exp":{_later()},"raa":2,"frf":30.0}}'))
    assert (status.raa, status.frf) == (2, 30)


def test_tampered_payload_is_rejected():
    header, _payload, signature = answer(sid="s", sts="anon").split(".")
    forged = jwt.utils.base64url_encode(
        json.dumps({"sid": "victim", "sts": "loggedin", "exp": int(time.time()) + 60}).encode()
    ).decode()
    with pytest.raises(InvalidSSOToken):
        sso.read_answer(f"{header}.{forged}.{signature}")


def test_none_algorithm_is_rejected():
    token = jwt.encode({"sid": "s", "sts": "loggedin", "exp": int(time.time()) + 60}, None, algorithm="none")
    with pytest.raises(InvalidSSOToken):
        sso.read_answer(token)


def test_expiry_allows_120_seconds_of_clock_skew():
    with freeze_time("2026-11-25 12:00:00"):
        token = answer(sid="s", sts="anon", lifetime=10)
    with freeze_time("2026-11-25 12:02:05"):  # 115 s after expiry
        assert sso.read_answer(token).sid == "s"
    with freeze_time("2026-11-25 12:02:15"), pytest.raises(InvalidSSOToken):  # 125 s after expiry
        sso.read_answer(token)


# -- login and landing -------------------------------------------------------------------------------


def test_login_redirects_to_identify_with_a_fresh_token_and_our_return_url(client):
    identify, r = start_login(client, "/article/?x=1")
    assert identify.startswith(f"{SSO}/identify?")
    t = parse_qs(urlsplit(identify).query)["t"][0]
    claims = jwt.decode(t, SECRET, algorithms=["HS256"], audience="pw-sso", issuer=ORG)
    assert claims["cid"] == CLIENT_ID
    parts = urlsplit(r)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "testserver",
        "/klarna-paywall/sso/complete/",
    )
    assert parse_qs(parts.query)["next"] == ["/article/?x=1"]
    assert parse_qs(parts.query)["state"][0]


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example/x",
        "http://testserver/a",
        "javascript:alert(1)",
        "relative/path",
        "/" + "a" * 3000,
    ],
)
def test_login_refuses_foreign_or_insecure_next(client, next_url):
    """B12."""
    _identify, r = start_login(client, next_url)
    assert parse_qs(urlsplit(r).query)["next"] == ["/"]


def test_landing_logged_in_exchanges_the_ticket_and_rotates_the_session_key(client):
    """S15: the Django session key changes at login."""
    _identify, r = start_login(client)
    key_before = client.session.session_key
    with responses.RequestsMock() as rsps:
        token_reply(rsps)
        response = land(client, answer(sid="sid-1", sts="loggedin", at=TICKET), r)
        body = parse_qs(rsps.calls[0].request.body)
    assert response.status_code == 302
    assert response["Location"] == r
    assert response["Referrer-Policy"] == "no-referrer"
    assert body["grant_type"] == ["ticket"] and body["ticket"] == [TICKET]
    assert client.session.session_key != key_before
    state = session_state(client)
    assert state["sid"] == "sid-1" and state["sts"] == "loggedin" and state["token"] == IDENTITY_TOKEN
    # S02: never in a body, a cookie or a header.
    assert IDENTITY_TOKEN not in response.content.decode()
    assert all(IDENTITY_TOKEN not in morsel.value for morsel in response.cookies.values())
    assert all(IDENTITY_TOKEN not in value for value in response.headers.values())


def test_landing_anonymous_stores_the_sso_session_only(client):
    _identify, r = start_login(client)
    with responses.RequestsMock():
        response = land(client, answer(sid="sid-a", sts="anon"), r)
    assert response.status_code == 302
    assert session_state(client) == {
        "sid": "sid-a",
        "sts": "anon",
        "checked": session_state(client)["checked"],
    }


@pytest.mark.parametrize(
    ("make_token", "detail"),
    [
        pytest.param(
            lambda: answer(secret="x", sid="s", sts="loggedin", at=TICKET),
            "InvalidSignatureError",
            id="tampered",
        ),
        pytest.param(
            lambda: answer(sid="s", sts="loggedin", at=TICKET, exp=int(time.time()) - 300),
            "ExpiredSignatureError",
            id="expired",
        ),
        pytest.param(_our_identify_token, "MissingRequiredClaimError", id="our-identify-token"),
        pytest.param(lambda: raw_answer('{"sid":"s","sts":"loggedin","exp":1e999}'), "", id="exp-1e999"),
    ],
)
def test_landing_rejects_bad_tokens_with_a_humane_page(client, make_token, detail):
    _identify, r = start_login(client)
    with responses.RequestsMock():  # any Payway call would fail the test
        response = land(client, make_token(), r)
    assert response.status_code == 400
    assert b"could not log you in" in response.content
    assert b"had already been used" in response.content
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    assert not session_state(client).get("token")
    # The editors see it in the error panel, with its cause.
    failure = LoginFailure.objects.get()
    assert (failure.endpoint, failure.error_code, failure.http_status) == (
        "sso_landing",
        "sso_token_invalid",
        400,
    )
    assert detail in failure.detail
    assert failure in funnel.recent_errors()


@pytest.mark.parametrize("shape", ["client-aud", "pw-sso-aud", "none", "other"])
def test_landing_logs_in_whatever_the_aud_and_iss(client, shape):
    _identify, r = start_login(client)
    with responses.RequestsMock() as rsps:
        token_reply(rsps)
        response = land(client, answer(sid="sid-1", sts="loggedin", at=TICKET, **SHAPES[shape]), r)
    assert response.status_code == 302 and response["Location"] == r
    assert session_state(client)["token"] == IDENTITY_TOKEN
    assert not LoginFailure.objects.exists()


def test_refused_login_page_is_in_swedish_for_swedish_readers(client):
    _identify, r = start_login(client)
    with responses.RequestsMock():
        response = client.get(
            "/klarna-paywall/sso/landing/",
            {"t": answer(secret="x", sid="s", sts="anon"), "r": r},
            secure=True,
            HTTP_ACCEPT_LANGUAGE="sv",
        )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Vi kunde inte logga in dig" in html and "Du har inte debiterats något" in html


def test_landing_refuses_a_login_this_browser_did_not_start(client):
    """Login CSRF: a landing URL made for another browser is refused (and writes nothing)."""
    _identify, r = start_login(client)
    other = client.__class__()
    with responses.RequestsMock():
        response = land(other, answer(sid="s", sts="loggedin", at=TICKET), r)
        forged = land(other, answer(secret="x", sid="s", sts="loggedin", at=TICKET), r)
    assert response.status_code == 400 and forged.status_code == 400
    assert not LoginFailure.objects.exists()


def test_landing_token_works_once(client):
    _identify, r = start_login(client)
    token = answer(sid="sid-a", sts="anon")
    assert land(client, token, r).status_code == 302
    response = land(client, token, r)
    assert response.status_code == 400
    assert LoginFailure.objects.get().error_code == "sso_token_replayed"


def test_landing_token_works_once_in_any_process(client):
    """The single-use record is in the database, not in a worker's cache: a second process (here: an
    emptied local cache) refuses the URL too."""
    _identify, r = start_login(client)
    token = answer(sid="sid-a", sts="anon")
    assert land(client, token, r).status_code == 302
    for cache in caches.all():
        cache.clear()
    assert land(client, token, r).status_code == 400
    assert SSOLandingClaim.objects.count() == 1


def test_landing_token_with_a_reencoded_signature_is_still_a_replay(client):
    """A token's signature can be spelt more than one way (PyJWT accepts base64 padding, older releases
    also spare bits), so the record keys on the signed part, which no re-spelling changes."""
    _identify, r = start_login(client)
    token = answer(sid="sid-a", sts="anon")
    variant = token + "="  # 43 signature characters + one pad: a valid spelling of the same signature
    assert sso.read_answer(variant).sid == "sid-a"
    assert land(client, token, r).status_code == 302
    assert land(client, variant, r).status_code == 400


def test_claim_once_prunes_expired_records():
    with freeze_time("2026-11-25 12:00:00"):
        old = answer(sid="old", sts="anon", lifetime=10)
        assert sso.claim_once(old, sso.read_answer(old))
    with freeze_time("2026-11-25 12:10:00"):
        new = answer(sid="new", sts="anon", lifetime=10)
        assert sso.claim_once(new, sso.read_answer(new))
        assert SSOLandingClaim.objects.count() == 1
        # The expiry bounds the record: past exp + leeway the token itself is refused.
        record = SSOLandingClaim.objects.get()
        assert record.expires_at.timestamp() == pytest.approx(time.time() + 10 + sso.LEEWAY + 1, abs=1)
        assert not sso.claim_once(new, sso.read_answer(new))


def test_claim_once_survives_an_absurd_expiry():
    token = raw_answer('{"sid":"s","sts":"anon","exp":1e300}')
    status = sso.read_answer(token)
    assert sso.claim_once(token, status) and not sso.claim_once(token, status)


NON_ASCII_STATES = ["%C3%A5", "%FF", "%ED%A0%80", "%E2%80%8B" + "a" * 5, "a" * 500]


@pytest.mark.parametrize("state", NON_ASCII_STATES)
def test_complete_with_a_non_ascii_or_invalid_state_is_refused_not_a_500(client, state):
    start_login(client)
    response = client.get(f"/klarna-paywall/sso/complete/?next=%2F&state={state}", secure=True)
    assert response.status_code == 400
    assert b"could not log you in" in response.content


@pytest.mark.parametrize("state", NON_ASCII_STATES)
def test_landing_with_a_non_ascii_state_in_its_return_url_is_refused_not_a_500(client, state):
    start_login(client)
    r = f"https://testserver/klarna-paywall/sso/complete/?next=%2F&state={state}"
    with responses.RequestsMock():
        response = land(client, answer(sid="s", sts="loggedin", at=TICKET), r)
        garbled = client.get(
            f"/klarna-paywall/sso/landing/?t={answer(sid='s2', sts='anon')}%C3&r={state}", secure=True
        )
    assert response.status_code == 400 and garbled.status_code == 400
    assert not session_state(client).get("token")


@pytest.mark.parametrize(
    "r", ["https://evil.example/klarna-paywall/sso/complete/?state=x", "", "javascript:alert(1)"]
)
def test_landing_never_redirects_off_site(client, r):
    """B12."""
    start_login(client)
    response = land(client, answer(sid="s", sts="anon"), r)
    assert response.status_code == 400


def test_landing_survives_a_failed_ticket_exchange(client):
    _identify, r = start_login(client)
    with responses.RequestsMock() as rsps:
        rsps.add(
            responses.POST, TOKEN_URL, json={"code": "invalid_parameter", "message": "bad ticket"}, status=400
        )
        response = land(client, answer(sid="s", sts="loggedin", at=TICKET), r)
    assert response.status_code == 502
    assert b"could not log you in" in response.content
    assert b"could not be confirmed just now" in response.content
    assert not session_state(client).get("token")
    failure = LoginFailure.objects.get()
    assert (failure.error_code, failure.detail, failure.http_status) == (
        "sso_ticket_exchange",
        "ValidationError",
        502,
    )
    # Nothing Payway said ("bad ticket"), and neither the ticket nor the token, is kept.
    assert all(TICKET not in str(v) and "bad ticket" not in str(v) for v in vars(failure).values())


def test_refused_logins_are_pruned_by_age_and_count(monkeypatch):
    from wagtail_klarna_paywall.models import logins as models

    with freeze_time("2026-01-01 12:00:00"):
        models.record_login_failure("sso_landing", "sso_token_invalid", http_status=400)
    with freeze_time("2026-06-01 12:00:00"):
        models.record_login_failure("sso_landing", "sso_token_replayed", http_status=400)
    assert list(LoginFailure.objects.values_list("error_code", flat=True)) == ["sso_token_replayed"]
    monkeypatch.setattr(models, "LOGIN_FAILURE_MAX_ROWS", 3)
    for i in range(5):
        models.record_login_failure("sso_complete", f"code_{i}", http_status=502)
    assert list(LoginFailure.objects.values_list("error_code", flat=True)) == ["code_4", "code_3", "code_2"]


def test_refused_logins_show_in_the_error_panel(client):
    from wagtail_klarna_paywall.newsroom.reports import ErrorPanel

    _identify, r = start_login(client)
    land(client, answer(secret="x", sid="s", sts="anon"), r)
    errors = ErrorPanel().get_context_data({})["errors"]
    assert [e.error_code for e in errors] == ["sso_token_invalid"]
    html = render_to_string("wagtail_klarna_paywall/admin/error_list.html", {"errors": errors})
    assert "Login refused" in html and "sso_landing" in html and "InvalidSignatureError" in html


# -- complete: the login form round trip -------------------------------------------------------------


def test_anonymous_sso_session_goes_to_the_login_form_then_logs_in(client):
    _identify, r = start_login(client, "/article/")
    land(client, answer(sid="sid-a", sts="anon"), r)
    response = client.get(r, secure=True)
    assert response.status_code == 302
    form = urlsplit(response["Location"])
    assert f"{form.scheme}://{form.netloc}{form.path}" == f"{SSO}/login"
    back = parse_qs(form.query)["r"][0]
    assert back == r
    with responses.RequestsMock() as rsps:
        status_reply(rsps, sid="sid-a", sts="loggedin", at=TICKET)
        token_reply(rsps)
        response = client.get(back, secure=True)
        sent = jwt.decode(
            json.loads(rsps.calls[0].request.body)["t"], SECRET, algorithms=["HS256"], audience="pw-sso"
        )
    assert response.status_code == 302 and response["Location"] == "/article/"
    assert sent["sid"] == "sid-a" and sent["lks"] == "anon"
    assert session_state(client)["token"] == IDENTITY_TOKEN


def test_reader_who_leaves_the_login_form_returns_anonymous(client):
    _identify, r = start_login(client, "/article/")
    land(client, answer(sid="sid-a", sts="anon"), r)
    client.get(r, secure=True)
    with responses.RequestsMock() as rsps:
        status_reply(rsps, sid="sid-a", sts="anon")
        response = client.get(r, secure=True)
    assert response["Location"] == "/article/"
    assert not session_state(client).get("token")


def test_login_when_already_logged_in_here_goes_straight_on(client):
    with responses.RequestsMock() as rsps:
        logged_in_client(client, rsps)
    with responses.RequestsMock():
        response = client.get("/klarna-paywall/sso/login/", {"next": "/article/"}, secure=True)
    assert response["Location"] == "/article/"


def test_already_logged_in_at_sso_skips_the_form(client):
    _identify, r = start_login(client, "/article/")
    with responses.RequestsMock() as rsps:
        token_reply(rsps)
        land(client, answer(sid="sid-1", sts="loggedin", at=TICKET), r)
    with responses.RequestsMock():
        response = client.get(r, secure=True)
    assert response["Location"] == "/article/"
    assert sso.PENDING_LOGIN_KEY not in client.session


# -- the identity provider ---------------------------------------------------------------------------


def provider_request(client, path: str = "/"):
    """A request carrying ``client``'s cookies, with its session loaded like SessionMiddleware does."""
    from importlib import import_module

    request = RequestFactory().get(path, HTTP_USER_AGENT="Reader/1.0")
    request.COOKIES.update({name: morsel.value for name, morsel in client.cookies.items()})
    engine = import_module(settings.SESSION_ENGINE)
    request.session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    return request


def test_anonymous_reader_is_never_looked_up():
    """L01: no session cookie, no session access and no Payway call."""
    request = RequestFactory().get("/")
    request.session = _ExplodingSession()
    with responses.RequestsMock():
        assert sso.SSO2IdentityProvider().get_identity_token(request) is None


class _ExplodingSession(dict):
    def __getattribute__(self, name):
        raise AssertionError("the session was touched")


def test_logged_in_reader_gets_the_token_without_io_until_the_poll_interval(client):
    with responses.RequestsMock() as rsps:
        logged_in_client(client, rsps)
    request = provider_request(client)
    with responses.RequestsMock():
        assert sso.SSO2IdentityProvider().get_identity_token(request) == IDENTITY_TOKEN
    assert not request.session.modified


@pytest.mark.parametrize(
    "claims", [{"sts": "terminated"}, {"sts": "anon", "err": "session_not_found"}, {"sts": "anon"}]
)
def test_ended_sso_session_logs_the_reader_out_here(client, claims):
    with responses.RequestsMock() as rsps:
        logged_in_client(client, rsps)
    request = provider_request(client)
    with freeze_time(dt.timedelta(seconds=301)), responses.RequestsMock() as rsps:
        status_reply(rsps, sid="sid-1", **claims)
        assert sso.SSO2IdentityProvider().get_identity_token(request) is None
    assert sso.SESSION_KEY not in request.session


def test_still_logged_in_keeps_the_token_and_records_the_poll(client):
    with responses.RequestsMock() as rsps:
        logged_in_client(client, rsps)
    request = provider_request(client)
    later = time.time() + 301
    with freeze_time(dt.timedelta(seconds=301)), responses.RequestsMock() as rsps:
        status_reply(rsps, sid="sid-1", sts="loggedin", at="another-ticket")
        assert sso.SSO2IdentityProvider().get_identity_token(request) == IDENTITY_TOKEN
        assert len(rsps.calls) == 1  # a valid token is not exchanged again
    assert request.session[sso.SESSION_KEY]["checked"] == pytest.approx(later, abs=2)


def test_sso_outage_keeps_the_reader_logged_in_and_retries_soon(client):
    with responses.RequestsMock() as rsps:
        logged_in_client(client, rsps)
    request = provider_request(client)
    with freeze_time(dt.timedelta(seconds=301)), responses.RequestsMock() as rsps:
        rsps.add(responses.POST, f"{SSO}/sessionstatus", status=503)
        assert sso.SSO2IdentityProvider().get_identity_token(request) == IDENTITY_TOKEN


def test_expired_token_is_refreshed_with_the_refresh_token(client):
    with responses.RequestsMock() as rsps:
        logged_in_client(client, rsps, refresh="REFRESH-1", expires_in=30)
    request = provider_request(client)
    with responses.RequestsMock() as rsps:
        token_reply(rsps, access_token="FRESH-TOKEN")
        assert sso.SSO2IdentityProvider().get_identity_token(request) == "FRESH-TOKEN"
        body = parse_qs(rsps.calls[0].request.body)
    assert body["grant_type"] == ["refresh_token"] and body["refresh_token"] == ["REFRESH-1"]


def test_expired_token_without_refresh_token_gets_a_new_ticket(client):
    with responses.RequestsMock() as rsps:
        logged_in_client(client, rsps, expires_in=30)
    request = provider_request(client)
    with responses.RequestsMock() as rsps:
        status_reply(rsps, sid="sid-1", sts="loggedin", at="ticket-2")
        token_reply(rsps, access_token="FRESH-TOKEN")
        assert sso.SSO2IdentityProvider().get_identity_token(request) == "FRESH-TOKEN"
        assert parse_qs(rsps.calls[1].request.body)["ticket"] == ["ticket-2"]


def test_forget_drops_the_token_and_asks_sso_next_time(client):
    with responses.RequestsMock() as rsps:
        logged_in_client(client, rsps)
    request = provider_request(client)
    provider = sso.SSO2IdentityProvider()
    provider.forget(request)
    assert "token" not in request.session[sso.SESSION_KEY]
    with responses.RequestsMock() as rsps:
        status_reply(rsps, sid="sid-1", sts="loggedin", at="ticket-2")
        token_reply(rsps, access_token="FRESH-TOKEN")
        assert provider.get_identity_token(request) == "FRESH-TOKEN"


def test_login_url_keeps_only_safe_next():
    provider = sso.SSO2IdentityProvider()
    request = RequestFactory().get("/", secure=True)
    assert provider.login_url(request, "/a/?b=1") == "/klarna-paywall/sso/login/?" + urlencode(
        {"next": "/a/?b=1"}
    )
    assert provider.login_url(request, "https://evil.example/") == "/klarna-paywall/sso/login/?next=%2F"
    assert sso.safe_next_url(request, "https://testserver/a/") == "https://testserver/a/"
    assert sso.safe_next_url(request, "http://testserver/a/") == "/"  # https outside DEBUG


def test_token_is_not_stored_in_cookie_sessions(client, settings):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    _identify, r = start_login(client)
    with responses.RequestsMock() as rsps:
        token_reply(rsps)
        response = land(client, answer(sid="s", sts="loggedin", at=TICKET), r)
    assert response.status_code == 502
    assert all(IDENTITY_TOKEN not in morsel.value for morsel in client.cookies.values())


# -- logout ------------------------------------------------------------------------------------------


def test_logout_ends_the_sso_session_and_flushes_ours(client):
    with responses.RequestsMock() as rsps:
        logged_in_client(client, rsps)
    key = client.session.session_key
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, f"{SSO}/logout", json={"t": answer(sid="sid-1", sts="terminated")})
        response = client.post("/klarna-paywall/sso/logout/", {"next": "/article/"}, secure=True)
        sent = jwt.decode(
            json.loads(rsps.calls[0].request.body)["t"], SECRET, algorithms=["HS256"], audience="pw-sso"
        )
    assert response.status_code == 302 and response["Location"] == "/article/"
    assert sent["sid"] == "sid-1" and sent["exp"] - sent["iat"] == 10
    assert client.session.session_key != key
    assert sso.SESSION_KEY not in client.session


def test_logout_is_local_even_when_sso_is_down(client):
    with responses.RequestsMock() as rsps:
        logged_in_client(client, rsps)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, f"{SSO}/logout", status=500)
        response = client.post("/klarna-paywall/sso/logout/", secure=True)
    assert response.status_code == 302
    assert sso.SESSION_KEY not in client.session


def test_logout_get_only_asks(client):
    with responses.RequestsMock() as rsps:
        logged_in_client(client, rsps)
    with responses.RequestsMock():
        response = client.get("/klarna-paywall/sso/logout/", secure=True)
    assert response.status_code == 200
    assert session_state(client)["token"] == IDENTITY_TOKEN
    assert IDENTITY_TOKEN not in response.content.decode()
