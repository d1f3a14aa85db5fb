"""SSO2: JWTs both ways, the landing view, ticket exchange, session rotation, polling, logout."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import responses
from django.conf import settings
from django.test import RequestFactory
from freezegun import freeze_time

from wagtail_klarna_paywall import sso
from wagtail_klarna_paywall.exceptions import InvalidSSOToken

pytestmark = pytest.mark.django_db

SECRET = settings.WAGTAIL_KLARNA_PAYWALL["CLIENT_SECRET"]
CLIENT_ID = settings.WAGTAIL_KLARNA_PAYWALL["CLIENT_ID"]
ORG = settings.WAGTAIL_KLARNA_PAYWALL["ORGANISATION_ID"]
SSO = settings.WAGTAIL_KLARNA_PAYWALL["SSO_URL"]
TOKEN_URL = settings.WAGTAIL_KLARNA_PAYWALL["API_URL"] + "/api/authorization/access_token"
IDENTITY_TOKEN = "IDENTITY-SENTINEL-7f3a9c"
TICKET = "TICKET-SENTINEL-51b2"


def answer(secret: str = SECRET, lifetime: int = 10, **claims) -> str:
    """A JWT as SSO2 answers: our client id as audience, SSO2 as issuer."""
    now = int(time.time())
    payload = {"iss": "pw-sso", "aud": CLIENT_ID, "iat": now, "nbf": now, "exp": now + lifetime}
    payload.update(claims)
    payload = {key: value for key, value in payload.items() if value is not None}
    return jwt.encode(payload, secret, algorithm="HS256")


def token_reply(rsps, access_token: str = IDENTITY_TOKEN, expires_in: int = 3600, refresh: str = "") -> None:
    body = {"access_token": access_token, "expires_in": expires_in}
    if refresh:
        body["refresh_token"] = refresh
    rsps.add(responses.POST, TOKEN_URL, json=body)


def status_reply(rsps, **claims) -> None:
    rsps.add(responses.POST, f"{SSO}/sessionstatus", json={"t": answer(**claims)})


def start_login(client, next_url: str = "/article/") -> tuple[str, str]:
    """GET our login view; returns (identify URL, return URL ``r`` it carries)."""
    response = client.get("/klarna-paywall/sso/login/", {"next": next_url}, secure=True)
    assert response.status_code == 302
    location = response["Location"]
    return location, parse_qs(urlsplit(location).query)["r"][0]


def land(client, token: str, return_url: str):
    return client.get("/klarna-paywall/sso/landing/", {"t": token, "r": return_url}, secure=True)


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


def test_answer_without_aud_and_iss_is_accepted():
    status = sso.read_answer(answer(sid="s1", sts="anon", aud=None, iss=None))
    assert status.sts == "anon"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(answer(secret="not-our-secret", sid="s", sts="loggedin", at="x"), id="wrong-secret"),
        pytest.param(answer(sid="s", sts="loggedin", aud="pw-sso"), id="our-own-token-replayed"),
        pytest.param(answer(sid="s", sts="loggedin", aud="someone-else"), id="wrong-audience"),
        pytest.param(answer(sid="s", sts="loggedin", iss="evil"), id="wrong-issuer"),
        pytest.param(answer(sts="loggedin"), id="no-sid"),
        pytest.param(answer(sid="s", sts="admin"), id="unknown-status"),
        pytest.param(answer(sid="s", sts="anon", exp=None), id="no-expiry"),
        pytest.param("not.a.jwt", id="garbage"),
        pytest.param("", id="empty"),
    ],
)
def test_bad_answers_are_rejected(token):
    with pytest.raises(InvalidSSOToken):
        sso.read_answer(token)


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
    "make_token",
    [
        pytest.param(lambda: answer(secret="x", sid="s", sts="loggedin", at=TICKET), id="tampered"),
        pytest.param(
            lambda: answer(sid="s", sts="loggedin", at=TICKET, exp=int(time.time()) - 300), id="expired"
        ),
        pytest.param(lambda: answer(sid="s", sts="loggedin", at=TICKET, aud="pw-sso"), id="wrong-audience"),
        pytest.param(lambda: answer(sid="s", sts="loggedin", at=TICKET, iss="other"), id="wrong-issuer"),
    ],
)
def test_landing_rejects_bad_tokens_with_a_humane_page(client, make_token):
    _identify, r = start_login(client)
    with responses.RequestsMock():  # any Payway call would fail the test
        response = land(client, make_token(), r)
    assert response.status_code == 400
    assert b"could not log you in" in response.content
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    assert not session_state(client).get("token")


def test_landing_refuses_a_login_this_browser_did_not_start(client):
    """Login CSRF: a landing URL made for another browser is refused."""
    _identify, r = start_login(client)
    other = client.__class__()
    with responses.RequestsMock():
        response = land(other, answer(sid="s", sts="loggedin", at=TICKET), r)
    assert response.status_code == 400


def test_landing_token_works_once(client):
    _identify, r = start_login(client)
    token = answer(sid="sid-a", sts="anon")
    assert land(client, token, r).status_code == 302
    assert land(client, token, r).status_code == 400


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
    assert not session_state(client).get("token")


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
