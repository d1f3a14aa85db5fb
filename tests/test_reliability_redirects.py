"""Open-redirect corpus (docs/reliability.md B10, B11, B12; figure (c)2).

Every payload below is served as Payway's ``redirect_uri`` after a successful ``place_order``. None may be
followed: the order stands (the attempt is ``placed``), the reader is sent to OUR confirmation page, and a
security event is recorded. The same corpus goes through :func:`redirects.is_allowed_klarna_redirect`
directly, and through the SSO views' own return parameters (``next`` on login and logout, ``r`` on the
SSO2 landing), which must fall back to this site.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from tests.factories import AUTH_TOKEN as VALID_TOKEN
from tests.factories import CUSTOMER as VALID_CUSTOMER
from tests.factories import PLACE_V2, TOKEN_URL, answer, order_json, start_login
from tests.factories import stored_attempt as _attempt
from wagtail_klarna_paywall.models import AttemptState, EventKind
from wagtail_klarna_paywall.purchase import attempts, redirects

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

HOMOGRAPH = "klаrna.com"  # the second letter is a Cyrillic a (U+0430)

#: (id, payload): never to be followed, whatever the route.
REDIRECTS: list[tuple[str, str]] = [
    # B10: classic payloads.
    ("javascript", "javascript:alert(document.domain)"),
    ("javascript-mixed-case", "JaVaScRiPt:alert(1)"),
    ("javascript-tab", "java\tscript:alert(1)"),
    ("javascript-leading-space", " javascript:alert(1)"),
    ("data-html", "data:text/html,<script>alert(1)</script>"),
    ("data-base64", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="),
    ("vbscript", "vbscript:msgbox(1)"),
    ("plain-http-klarna", "http://payments.klarna.com/eu/hpp/redirect/abc"),
    ("ftp-klarna", "ftp://payments.klarna.com/x"),
    ("protocol-relative", "//evil.example"),
    ("protocol-relative-3", "///evil.example/"),
    ("protocol-relative-4", "////evil.example/"),
    ("scheme-no-slashes", "https:evil.example"),
    ("scheme-one-slash", "https:/evil.example"),
    ("double-backslash", "\\\\evil.example"),
    ("slash-backslash", "/\\evil.example"),
    ("backslash-slash", "\\/evil.example"),
    ("https-evil", "https://evil.example/"),
    ("http-evil", "http://evil.example/"),
    ("leading-space", " https://payments.klarna.com/x"),
    ("leading-nul", "\x00https://payments.klarna.com/x"),
    ("leading-tab", "\thttps://payments.klarna.com/x"),
    ("trailing-crlf-header", "https://payments.klarna.com/x\r\nSet-Cookie: pwned=1"),
    ("relative-path", "/thanks/?ref=x"),
    # B11: lookalike hosts.
    ("suffix-domain", "https://payments.klarna.com.evil.example/"),
    ("bare-suffix-domain", "https://klarna.com.evil.example/"),
    ("prefix-lookalike", "https://evilklarna.com/"),
    ("hyphen-lookalike", "https://klarna-com.evil.example/"),
    ("userinfo", "https://user@payments.klarna.com/"),
    ("userinfo-host-swap", "https://payments.klarna.com@evil.example/"),
    ("backslash-userinfo", "https://payments.klarna.com\\@evil.example/"),
    ("fragment-trick", "https://evil.example#@payments.klarna.com/"),
    ("query-trick", "https://evil.example?.klarna.com/"),
    ("explicit-443", "https://payments.klarna.com:443/"),
    ("other-port", "https://payments.klarna.com:8443/"),
    ("upper-case-host", "https://PAYMENTS.KLARNA.COM/x"),
    ("mixed-case-host", "https://Payments.Klarna.com/x"),
    ("trailing-dot", "https://payments.klarna.com./x"),
    ("encoded-dot", "https://payments.klarna.com%2eevil.example/"),
    ("idn-homograph", f"https://payments.{HOMOGRAPH}/"),
    ("idn-homograph-punycode", "https://payments." + HOMOGRAPH.encode("idna").decode() + "/"),
    ("ipv4", "https://127.0.0.1/"),
    ("ipv6", "https://[::1]/"),
    ("over-2kb", "https://payments.klarna.com/" + "a" * 2100),
]

#: Klarna's own hosts: followed.
ALLOWED = [
    "https://klarna.com/",
    "https://klarna.com/se/",
    "https://x.klarna.com/eu/hpp/redirect/abc",
    "https://pay.klarna.com/eu/hpp/redirect/abc?x=1#y",
    # Every subdomain of an allow-listed host is Klarna's
    # (docs/payway-contract.md#klarna-redirect-allow-list).
    "https://evil.payments.klarna.com/",
]

IDS = [name for name, _payload in REDIRECTS]
PAYLOADS = [payload for _name, payload in REDIRECTS]
# A path on this site is a fine place to return to after logging in; only the Klarna hop refuses it.
SSO_REDIRECTS = [(name, payload) for name, payload in REDIRECTS if name != "relative-path"]
SSO_IDS = [name for name, _payload in SSO_REDIRECTS]
SSO_PAYLOADS = [payload for _name, payload in SSO_REDIRECTS]


def test_the_corpus_is_big_enough():
    """Figure (c)2: R >= 30 open-redirect payloads."""
    assert len(REDIRECTS) >= 30
    assert len(set(PAYLOADS)) == len(PAYLOADS)


@pytest.mark.parametrize("url", PAYLOADS, ids=IDS)
def test_allow_list_refuses(url):
    """B10/B11: the allow-list function itself, outside DEBUG."""
    assert redirects.is_allowed_klarna_redirect(url, debug=False) is False


@pytest.mark.parametrize("url", ALLOWED)
def test_allow_list_accepts_klarna(url):
    assert redirects.is_allowed_klarna_redirect(url, debug=False) is True


@pytest.mark.parametrize("url", ["https://evil.example/", "https://klarna.com/"])
def test_allow_list_is_exactly_the_configured_hosts(url):
    """An explicit, narrower list is honoured; an empty list allows nothing."""
    assert redirects.is_allowed_klarna_redirect(url, hosts=["pay.klarna.com"], debug=False) is False
    assert redirects.is_allowed_klarna_redirect(url, hosts=[], debug=False) is False


# -- end to end: Payway answers a placed order with a hostile redirect ---------------------------------


@pytest.fixture(scope="module")
def shop(module_shop):
    """One shop for the module's cases, rolled back when the module is done."""
    return module_shop


def _reader(shop):
    """A reader with a Django session and a ready v2 attempt."""
    client = Client()
    session = SessionStore()
    session["wagtail_klarna_paywall_reader"] = True
    session.create()
    client.cookies["sessionid"] = session.session_key
    attempt = _attempt(shop, attempts.anonymous_reader_key(session.session_key), AttemptState.SESSION_READY)
    return client, attempt


RESULTS: list[dict] = []


@pytest.mark.parametrize("url", PAYLOADS, ids=IDS)
def test_hostile_redirect_is_never_followed(shop, db, url):
    """B10/B11: the order stands, the reader lands on our confirmation page, a security event is recorded;
    a resubmit replays the same safe answer and never calls Payway again."""
    client, attempt = _reader(shop)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        payway.add(responses.POST, TOKEN_URL, json={"access_token": "system", "expires_in": 3600})
        payway.add(
            responses.POST,
            PLACE_V2,
            body=json.dumps(order_json(redirect=url)),
            content_type="application/json",
        )
        first = client.post(
            f"/subscribe/checkout/{attempt.reference}/",
            {"klarna_authorization_token": VALID_TOKEN, **VALID_CUSTOMER},
            secure=True,
        )
        again = client.post(
            f"/subscribe/checkout/{attempt.reference}/",
            {"klarna_authorization_token": VALID_TOKEN, **VALID_CUSTOMER},
            secure=True,
        )
        place_calls = sum(1 for call in payway.calls if call.request.url == PLACE_V2)

    ours = f"/thanks/?ref={attempt.reference}"
    followed = first.get("Location") != ours or again.get("Location") != ours
    RESULTS.append({"id": url, "followed": followed})
    assert (first.status_code, first["Location"]) == (303, ours)
    assert (again.status_code, again["Location"]) == (303, ours)
    assert place_calls == 1
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.PLACED
    assert attempt.redirect_rejected is True
    assert attempt.redirect_uri == ""
    event = attempt.events.get(kind=EventKind.SECURITY)
    assert event.error_code == "redirect_rejected"
    # The log keeps scheme and host at most, never the path or query Payway sent.
    assert "\r" not in event.detail and "<script" not in event.detail and "a" * 100 not in event.detail

    # The confirmation page then shows the purchase as done.
    page = client.get(ours, secure=True)
    assert page.status_code == 200
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.CONFIRMED


def test_allowed_redirect_is_followed_once(shop, db):
    """The control case: Klarna's own host is followed, and stored for a replay."""
    client, attempt = _reader(shop)
    url = "https://pay.klarna.com/eu/hpp/redirect/abc"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        payway.add(responses.POST, TOKEN_URL, json={"access_token": "system", "expires_in": 3600})
        payway.add(responses.POST, PLACE_V2, json=order_json(redirect=url))
        response = client.post(
            f"/subscribe/checkout/{attempt.reference}/",
            {"klarna_authorization_token": VALID_TOKEN, **VALID_CUSTOMER},
            secure=True,
        )
    assert (response.status_code, response["Location"]) == (303, url)
    attempt.refresh_from_db()
    assert (attempt.redirect_uri, attempt.redirect_rejected) == (url, False)
    assert not attempt.events.filter(kind=EventKind.SECURITY).exists()


# -- B12: our own return parameters ----------------------------------------------------------------------


def _next_of_complete_url(location: str) -> str:
    """login -> SSO2 identify?r=<our complete URL ?next=...>: the ``next`` we will follow."""
    complete = parse_qs(urlsplit(location).query)["r"][0]
    return parse_qs(urlsplit(complete).query)["next"][0]


@pytest.mark.parametrize(
    "url", [*SSO_PAYLOADS, "https://testserver.evil.example/"], ids=[*SSO_IDS, "own-host-suffix"]
)
def test_sso_login_next_falls_back_to_this_site(db, url):
    """B12: login's ``next`` is carried through SSO2 only when it is on this site."""
    client = Client()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        response = client.get("/klarna-paywall/sso/login/", {"next": url}, secure=True)
        assert len(payway.calls) == 0
    assert response.status_code == 302
    assert _next_of_complete_url(response["Location"]) == "/"
    RESULTS.append({"id": f"login:{url}", "followed": _next_of_complete_url(response["Location"]) != "/"})


@pytest.mark.parametrize("url", SSO_PAYLOADS, ids=SSO_IDS)
def test_sso_logout_next_falls_back_to_this_site(db, url):
    """B12: logout (POST) goes to ``next`` only on this site; its confirmation page links there only."""
    client = Client()
    response = client.post("/klarna-paywall/sso/logout/", {"next": url}, secure=True)
    assert (response.status_code, response["Location"]) == (302, "/")
    page = client.get("/klarna-paywall/sso/logout/", {"next": url}, secure=True)
    assert page.status_code == 200
    assert url not in page.content.decode()
    RESULTS.append({"id": f"logout:{url}", "followed": response["Location"] != "/"})


@pytest.mark.parametrize("url", SSO_PAYLOADS, ids=SSO_IDS)
def test_sso_landing_refuses_a_foreign_return_url(db, url):
    """B12: SSO2's landing, with a valid answer for a login this browser started, never goes on to an
    ``r`` that is not on this site."""
    client = Client()
    start_login(client)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as payway:
        response = client.get(
            "/klarna-paywall/sso/landing/", {"t": answer(sid="sid-a", sts="anon"), "r": url}, secure=True
        )
        assert len(payway.calls) == 0
    assert response.status_code == 400
    assert "Location" not in response
    assert url not in response.content.decode()
    RESULTS.append({"id": f"landing:{url}", "followed": "Location" in response})


def test_sso_landing_control_case(db):
    """The same answer with our own return URL is followed (so the refusals above are about ``r``)."""
    client = Client()
    _identify, r = start_login(client)
    response = client.get(
        "/klarna-paywall/sso/landing/", {"t": answer(sid="sid-a", sts="anon"), "r": r}, secure=True
    )
    assert (response.status_code, response["Location"]) == (302, r)


def test_redirect_summary(capsys):
    """Figure (c)2: payloads and how many were followed."""
    if not RESULTS:
        pytest.skip("run the whole module for the summary")
    followed = sum(1 for r in RESULTS if r["followed"])
    with capsys.disabled():
        print(
            f"\n[reliability redirects] R={len(REDIRECTS)} open-redirect payloads; "
            f"{len(RESULTS)} checks (place_order redirect_uri; SSO login next, logout next, landing r); "
            f"followed={followed}"
        )
    assert followed == 0
