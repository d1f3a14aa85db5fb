"""The fake SSO2 end to end: the demo readers log in through it, over real HTTP for the server calls.

The browser's hops run through Django's test client; SSO2 Session Status, Logout, the ticket exchange and
``me/active_products`` go from the real clients to the fake served by ``live_server``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from django.conf import settings as django_settings
from django.test import Client
from freezegun import freeze_time

from wagtail_klarna_paywall.fake import sso as fake_sso
from wagtail_klarna_paywall.fake import state
from wagtail_klarna_paywall.login import sso
from wagtail_klarna_paywall.payway import reset_client
from wagtail_klarna_paywall.payway.sso_client import reset_sso_client
from wagtail_klarna_paywall.reading import access

SECRET = django_settings.WAGTAIL_KLARNA_PAYWALL["CLIENT_SECRET"]


@pytest.fixture
def fake(live_server, settings):
    state.reset()
    fake_sso.reset()
    settings.WAGTAIL_KLARNA_PAYWALL = {
        **settings.WAGTAIL_KLARNA_PAYWALL,
        "API_URL": f"{live_server.url}/fake-payway",
        "SSO_URL": f"{live_server.url}/fake-payway/sso",
        "READ_TIMEOUT": 5.0,
    }
    reset_client()
    reset_sso_client()
    yield live_server
    reset_client()
    reset_sso_client()
    state.reset()
    fake_sso.reset()


def go(client: Client, url: str, **kwargs):
    """One browser hop to ``url`` (any host: the site and the fake are the same Django project)."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return client.get(path, secure=parts.scheme != "http", **kwargs)


def follow(client: Client, response, stop_at: str | None = None, limit: int = 10):
    for _ in range(limit):
        if response.status_code != 302 or (stop_at and stop_at in urlsplit(response["Location"]).path):
            return response
        response = go(client, response["Location"])
    raise AssertionError("redirect loop")


def log_in(client: Client, email: str, next_url: str = "/story/"):
    """The whole dance: login → Identify → landing → complete → login form → complete → ``next_url``."""
    response = client.get("/klarna-paywall/sso/login/", {"next": next_url}, secure=True)
    response = follow(client, response, stop_at="/fake-payway/sso/login")
    assert urlsplit(response["Location"]).path == "/fake-payway/sso/login"
    form = go(client, response["Location"])
    assert form.status_code == 200 and b"subscriber@example.com" in form.content
    response = client.post(
        form.request["PATH_INFO"] + "?" + form.request["QUERY_STRING"],
        {
            "email": email,
            "password": state.DEMO_PASSWORD,
            "r": parse_qs(form.request["QUERY_STRING"])["r"][0],
        },
    )
    assert response.status_code == 302, response.content
    return follow(client, response, stop_at=next_url)


def request_for(client: Client):
    from importlib import import_module

    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.COOKIES.update({name: morsel.value for name, morsel in client.cookies.items()})
    engine = import_module(django_settings.SESSION_ENGINE)
    request.session = engine.SessionStore(request.COOKIES.get(django_settings.SESSION_COOKIE_NAME))
    return request


@pytest.mark.django_db(transaction=True)
def test_subscriber_logs_in_and_has_access(fake):
    client = Client()
    response = log_in(client, "subscriber@example.com")
    assert response.status_code == 302 and response["Location"] == "/story/"
    request = request_for(client)
    assert access.reader_has_access(request, ["digital"]) is True
    assert fake_sso.calls("sessionstatus") == 1 and fake_sso.calls("identify") == 1


@pytest.mark.django_db(transaction=True)
def test_reader_without_subscription_logs_in_without_access(fake):
    client = Client()
    log_in(client, "reader@example.com")
    request = request_for(client)
    assert sso.SSO2IdentityProvider().get_identity_token(request)
    assert access.reader_has_access(request, ["digital"]) is False
    assert access.owned_product_codes(request) == frozenset()


@pytest.mark.django_db(transaction=True)
def test_wrong_password_stays_on_the_form(fake):
    client = Client()
    response = client.get("/klarna-paywall/sso/login/", {"next": "/"}, secure=True)
    response = follow(client, response, stop_at="/fake-payway/sso/login")
    form_url = response["Location"]
    parts = urlsplit(form_url)
    response = client.post(
        f"{parts.path}?{parts.query}", {"email": "reader@example.com", "password": "wrong", "r": "/"}
    )
    assert response.status_code == 400 and b"Wrong e-mail or password" in response.content


@pytest.mark.django_db(transaction=True)
def test_second_login_in_the_same_browser_skips_the_form(fake):
    client = Client()
    log_in(client, "subscriber@example.com")
    response = client.get("/klarna-paywall/sso/login/", {"next": "/again/"}, secure=True)
    response = follow(client, response, stop_at="/again/")
    assert response["Location"] == "/again/"
    assert fake_sso.calls("authenticate") == 1


@pytest.mark.django_db(transaction=True)
def test_termination_at_sso_logs_the_reader_out_here(fake):
    client = Client()
    log_in(client, "subscriber@example.com")
    sid = client.session[sso.SESSION_KEY]["sid"]
    fake_sso.terminate(sid)
    request = request_for(client)
    with freeze_time(dt.timedelta(seconds=301)):
        assert sso.SSO2IdentityProvider().get_identity_token(request) is None
    assert sso.SESSION_KEY not in request.session


@pytest.mark.django_db(transaction=True)
def test_logout_ends_the_fake_sso_session(fake):
    client = Client()
    log_in(client, "subscriber@example.com")
    sid = client.session[sso.SESSION_KEY]["sid"]
    response = client.post("/klarna-paywall/sso/logout/", {"next": "/story/"}, secure=True)
    assert response["Location"] == "/story/"
    assert fake_sso.get_session(sid).sts == "terminated"
    assert sso.SESSION_KEY not in client.session


@pytest.mark.django_db(transaction=True)
def test_the_identity_token_never_reaches_the_browser_or_a_log(fake, caplog):
    """S02/S03 over the whole login: no body, header, cookie or log line carries the identity token."""
    caplog.set_level(logging.DEBUG)
    client = Client()
    seen: list[str] = []
    original = client.request

    def recording(**request):
        response = original(**request)
        seen.append(response.content.decode(errors="replace"))
        seen.extend(str(value) for value in response.headers.values())
        seen.extend(morsel.value for morsel in response.cookies.values())
        return response

    client.request = recording
    log_in(client, "subscriber@example.com")
    request = request_for(client)
    assert access.reader_has_access(request, ["digital"])  # the token also travels to me/active_products
    token = client.session[sso.SESSION_KEY]["token"]
    assert token and not any(token in item for item in seen)
    assert token not in caplog.text and "Bearer " not in caplog.text


@pytest.mark.django_db
def test_fake_answers_are_signed_like_sso2():
    """Answers pass our own verification; requests with a foreign signature are refused."""
    session = fake_sso.new_session()
    fake_sso.log_in(session.sid, state.SUBSCRIBER_ACCOUNT_ID)
    client = Client()
    from django.test import RequestFactory

    good = sso.session_token(RequestFactory().get("/"), sid=session.sid, lks="anon")
    response = client.post(
        "/fake-payway/sso/sessionstatus", json.dumps({"t": good}), content_type="application/json"
    )
    status = sso.read_answer(response.json()["t"])
    assert status.sid == session.sid and status.logged_in and status.at
    assert state.redeem_ticket(status.at) == state.SUBSCRIBER_ACCOUNT_ID

    forged = jwt.encode(
        jwt.decode(good, SECRET, algorithms=["HS256"], audience="pw-sso"), "x", algorithm="HS256"
    )
    response = client.post(
        "/fake-payway/sso/sessionstatus", json.dumps({"t": forged}), content_type="application/json"
    )
    assert response.status_code == 400
    assert Client().get("/fake-payway/sso/identify", {"t": forged, "r": "/"}).status_code == 400


@pytest.mark.django_db
def test_unknown_sso_session_is_session_not_found():
    from django.test import RequestFactory

    token = sso.session_token(RequestFactory().get("/"), sid="nope")
    response = Client().post(
        "/fake-payway/sso/sessionstatus", json.dumps({"t": token}), content_type="application/json"
    )
    status = sso.read_answer(response.json()["t"])
    assert status.err == "session_not_found" and status.ended


# -- the claim variants of the fake's answers --------------------------------------------------------


def _status_answer(sid: str) -> dict:
    from django.test import RequestFactory

    token = sso.session_token(RequestFactory().get("/"), sid=sid)
    response = Client().post(
        "/fake-payway/sso/sessionstatus", json.dumps({"t": token}), content_type="application/json"
    )
    return jwt.decode(response.json()["t"], options={"verify_signature": False})


EXPECTED_CLAIMS = {
    "client-aud": {"aud": django_settings.WAGTAIL_KLARNA_PAYWALL["CLIENT_ID"], "iss": "pw-sso"},
    "pw-sso-aud": {"aud": "pw-sso", "iss": django_settings.WAGTAIL_KLARNA_PAYWALL["ORGANISATION_ID"]},
    "none": {"aud": None, "iss": None},
}


@pytest.mark.django_db
@pytest.mark.parametrize("variant", sorted(EXPECTED_CLAIMS))
def test_fake_answers_with_the_configured_claim_variant(settings, variant):
    settings.WAGTAIL_KLARNA_PAYWALL_FAKE = {"SSO2_CLAIMS": variant}
    fake_sso.reset()
    session = fake_sso.new_session()
    claims = _status_answer(session.sid)
    assert {"aud": claims.get("aud"), "iss": claims.get("iss")} == EXPECTED_CLAIMS[variant]
    assert sso.answer_shape(claims) == variant
    assert claims["sid"] == session.sid and claims["exp"] > claims["iat"]


@pytest.mark.django_db
def test_claim_variant_switches_at_run_time_through_the_control_api():
    fake_sso.reset()
    session = fake_sso.new_session()
    client = Client()
    assert client.get("/fake-payway/sso/_control").json()["claims"] == "client-aud"
    for variant in ("pw-sso-aud", "none", "client-aud"):
        response = client.post(
            "/fake-payway/sso/_control", json.dumps({"claims": variant}), content_type="application/json"
        )
        assert response.json()["claims"] == variant
        assert sso.answer_shape(_status_answer(session.sid)) == variant
    client.post("/fake-payway/sso/_control", json.dumps({"claims": "none"}), content_type="application/json")
    response = client.post(
        "/fake-payway/sso/_control", json.dumps({"reset": True}), content_type="application/json"
    )
    assert response.json()["claims"] == "client-aud"
    bad = client.post(
        "/fake-payway/sso/_control", json.dumps({"claims": "sideways"}), content_type="application/json"
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_parameter"
    assert client.get("/fake-payway/sso/_control").json()["claims"] == "client-aud"


def test_unknown_configured_claim_variant_is_a_configuration_error(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.WAGTAIL_KLARNA_PAYWALL_FAKE = {"SSO2_CLAIMS": "sideways"}
    with pytest.raises(ImproperlyConfigured):
        fake_sso.configured_claims()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("variant", sorted(EXPECTED_CLAIMS))
def test_subscriber_logs_in_under_every_claim_variant(fake, variant):
    fake_sso.set_claims(variant)
    client = Client()
    response = log_in(client, "subscriber@example.com")
    assert response.status_code == 302 and response["Location"] == "/story/"
    assert access.reader_has_access(request_for(client), ["digital"]) is True


@pytest.mark.parametrize(
    ("return_url", "configured", "expected"),
    [
        ("https://news.example:8000/klarna-paywall/sso/complete/", [], "/"),
        ("https://news.example:8000/klarna-paywall/sso/complete/", ["news.example:8000"], "same"),
        ("https://evil.example/klarna-paywall/sso/complete/", ["news.example:8000"], "/"),
        ("/klarna-paywall/sso/complete/", [], "same"),
    ],
)
def test_login_form_returns_only_to_its_own_host_or_the_configured_sites(
    settings, return_url, configured, expected
):
    """A fake served as its own process (another origin than the site) names the site in RETURN_HOSTS."""
    from django.test import RequestFactory

    from wagtail_klarna_paywall.fake import sso as fake_sso_views

    settings.WAGTAIL_KLARNA_PAYWALL_FAKE = {"RETURN_HOSTS": configured}
    request = RequestFactory().get("/fake-payway/sso/login", {"r": return_url}, HTTP_HOST="127.0.0.1:8001")
    response = fake_sso_views.login_form(request)
    assert response.status_code == 200
    shown = return_url if expected == "same" else expected
    assert f'value="{shown}"' in response.content.decode()
