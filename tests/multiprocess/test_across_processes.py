"""The concurrency guarantees across gunicorn worker processes (the production profile, over HTTP).

Threads in one process share one cache and one GIL; these cases run the same guarantees where a real
site runs them: requests of one reader spread over 4 worker processes, on PostgreSQL and Redis. Payway
calls and orders are counted by the fake Payway (its own process) through its control API.

Mutation check (exactly-once): remove ``state=AttemptState.SESSION_READY`` from the conditional UPDATE in
``purchase.place_order`` (the exactly-once gate) and run ``test_exactly_once_per_attempt``: it fails with
more than one ``place_order`` per attempt (docs/performance.md records the run).
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.multiprocess.profile import (
    ARTICLE,
    PURCHASE_PAGE,
    WORKERS,
    Answer,
    Profile,
    Reader,
    authorization,
    random_ip,
    reference_of,
    report,
    run_together,
)

pytestmark = [pytest.mark.postgres, pytest.mark.multiprocess]

#: Concurrent submits of one attempt, and attempts: more submits than one worker has threads.
SUBMITS = 16
ATTEMPTS = 4
#: The fake's place_order answers after this long, so the losers arrive while the winner is placing.
PLACE_DELAY = 0.5


def no_server_errors(answers: list) -> None:
    errors = [a if isinstance(a, BaseException) else f"HTTP {a.status}" for a in answers if _bad(a)]
    assert not errors, f"{len(errors)} failed requests, e.g. {errors[:3]}"


def _bad(answer) -> bool:
    return isinstance(answer, BaseException) or answer.status >= 500


def workers_of(answers: list[Answer]) -> set[str]:
    return {a.worker for a in answers if isinstance(a, Answer) and a.worker}


def started_checkout(reader: Reader, offer: dict[str, str]) -> tuple[str, dict[str, str]]:
    answer = reader.buy(offer)
    assert answer.status == 303, f"buy answered {answer.status}: {answer.text[:300]}"
    return answer.location, reader.checkout_form(answer.location)


def attempt_row(profile: Profile, reference: str) -> dict:
    rows = profile.sql(
        "SELECT state, product_code, payway_session_id, order_id FROM wagtail_klarna_paywall_purchaseattempt"
        " WHERE reference = %s",
        (reference,),
    )
    assert rows, f"no attempt {reference}"
    state, product_code, session_id, order_id = rows[0]
    return {"state": state, "product_code": product_code, "session_id": session_id, "order_id": order_id}


def test_profile_is_the_production_profile(profile: Profile):
    """DEBUG off, static files from whitenoise, plain http sent to https, the fake not routed by the site."""
    reader = Reader(profile)
    plain = reader.http.get(profile.base_url + PURCHASE_PAGE, allow_redirects=False, timeout=30)
    assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")
    assert reader.get("/fake-payway/_control/").status == 404
    page = reader.get(PURCHASE_PAGE)
    assert page.status == 200
    css = next(part.split('"')[0] for part in page.text.split('href="/static/')[1:] if ".css" in part)
    static = reader.http.get(f"{profile.base_url}/static/{css}", timeout=30)
    assert static.status_code == 200
    assert "max-age=315360000" in static.headers.get("Cache-Control", ""), static.headers
    assert reader.get("/does-not-exist/").status == 404
    assert "Traceback" not in reader.get("/does-not-exist/").text


def test_exactly_once_per_attempt(fake: Profile):
    """K concurrent submits of one attempt, spread over the workers: one place_order per attempt."""
    offer = Reader(fake).offers()[0]
    before = fake.control()["calls"]["place_order"]
    fake.slow("place_order", ATTEMPTS, PLACE_DELAY)
    answers: list = []
    references = []
    for _ in range(ATTEMPTS):
        reader = Reader(fake)
        checkout, form = started_checkout(reader, offer)
        token = authorization()
        references.append(reference_of(checkout))
        answers += run_together([lambda: reader.pay(checkout, form, token) for _ in range(SUBMITS)])
    snapshot = fake.control()
    placed = snapshot["calls"]["place_order"] - before
    sessions = {attempt_row(fake, reference)["session_id"] for reference in references}
    by_session = Counter(o["session_id"] for o in snapshot["orders"] if o["session_id"] in sessions)
    no_server_errors(answers)
    statuses = Counter(a.status for a in answers)
    served_by = workers_of(answers)
    report(
        f"exactly-once: {ATTEMPTS} attempts x {SUBMITS} concurrent submits over {len(served_by)} workers: "
        f"place_order {placed}, orders per session {sorted(by_session.values())}, "
        f"answers {dict(statuses)}"
    )
    assert placed == ATTEMPTS
    assert sorted(by_session.values()) == [1] * ATTEMPTS
    assert set(statuses) <= {200, 303}, statuses
    assert len(served_by) >= 2, "the submits never reached a second worker"
    for reference in references:
        assert attempt_row(fake, reference)["state"] in ("placed", "confirmed")


def test_single_flight_buy(fake: Profile):
    """K concurrent buy clicks of one reader on different workers: one Payway session, one checkout.

    Sessions are counted at the fake: what Payway created, not the requests it got.
    """
    reader = Reader(fake)
    offers = reader.offers()
    # An earlier buy gives the reader a session (a browser without a cookie is a new reader each time).
    started_checkout(reader, offers[1])
    before = len(fake.control()["sessions"])
    fake.slow("create_session", 1, PLACE_DELAY)
    answers = run_together([lambda: reader.buy(offers[0]) for _ in range(SUBMITS)])
    created = len(fake.control()["sessions"]) - before
    no_server_errors(answers)
    statuses = Counter(a.status for a in answers)
    checkouts = {a.location for a in answers if a.status == 303}
    report(
        f"single flight: {SUBMITS} clicks over {len(workers_of(answers))} workers: "
        f"sessions created {created}, checkouts {len(checkouts)}, answers {dict(statuses)}"
    )
    assert created == 1
    assert len(checkouts) == 1
    # The rate limit is reserved under the attempt's row lock, right before create_session: clicks that
    # lose the race reuse the winner's session and take no turn of the reader's budget, so none is 429.
    assert set(statuses) == {303}, statuses


def test_one_order_per_reader_and_product(fake: Profile):
    """One reader, two entry points selling the same product (the purchase page and the article's
    paywall), both paid at once on different workers: one order."""
    reader = Reader(fake)
    page_offer = reader.offers()[0]
    checkout_a, form_a = started_checkout(reader, page_offer)
    product = attempt_row(fake, reference_of(checkout_a))["product_code"]
    article = reader.get(ARTICLE).text
    candidates = [
        {"action": f"{PURCHASE_PAGE}buy/", "csrf": "", "page": page, "offer": offer}
        for page, offer in _article_offers(article)
    ]
    for candidate in candidates:
        checkout_b, form_b = started_checkout(reader, candidate)
        if attempt_row(fake, reference_of(checkout_b))["product_code"] == product:
            break
    else:
        pytest.fail(f"the article offers no {product}")
    answers = run_together(
        [
            lambda: reader.pay(checkout_a, form_a, authorization()),
            lambda: reader.pay(checkout_b, form_b, authorization()),
        ]
    )
    no_server_errors(answers)
    sessions = {attempt_row(fake, reference_of(c))["session_id"] for c in (checkout_a, checkout_b)}
    orders = [o for o in fake.control()["orders"] if o["session_id"] in sessions]
    report(f"per product: two entry points paid at once: {len(orders)} order(s) of {product}")
    assert len(orders) == 1


def _article_offers(html: str) -> list[tuple[str, str]]:
    import re

    return re.findall(r'name="page" value="(\d+)">\s*<input type="hidden" name="offer" value="([^"]+)"', html)


def _start_login(reader: Reader, profile: Profile) -> str:
    """SSO2 Identify through the fake (its own process): the landing URL it sends the browser back to."""
    login = reader.get("/klarna-paywall/sso/login/?next=/")
    assert login.status == 302 and "/fake-payway/sso/identify" in login.location, login.location
    identify = reader.http.get(login.location, allow_redirects=False, timeout=30)
    landing = identify.headers.get("Location", "")
    assert identify.status_code == 302 and "/klarna-paywall/sso/landing/" in landing, identify.text[:300]
    return landing


def test_sso_landing_is_single_use_across_workers(fake: Profile):
    """A landing URL (which may carry a login ticket) works once, whichever worker it reaches again."""
    reader = Reader(fake)
    landing = _start_login(reader, fake)
    answers = []
    # One at a time, each on a new connection, until at least three workers have answered.
    for _ in range(24):
        answers.append(reader.get(landing))
        if len(workers_of(answers)) >= min(3, WORKERS) and len(answers) >= 6:
            break
    accepted = [a for a in answers if a.status == 302]
    report(
        f"landing single use: {len(answers)} replays over {len(workers_of(answers))} workers: "
        f"{len(accepted)} accepted, answers {dict(Counter(a.status for a in answers))}"
    )
    assert len(workers_of(answers)) >= 2
    assert len(accepted) == 1
    assert {a.status for a in answers} == {302, 400}


def test_rate_limit_per_ip_holds_across_workers(fake: Profile):
    """RATE_LIMITS["ip"] (30 new Payway sessions per 10 minutes, the profile's default) counts in the shared
    cache: 36 new readers from one IP at once, spread over the workers, get exactly 30 sessions."""
    from wagtail_klarna_paywall.conf import DEFAULTS

    limit = DEFAULTS["RATE_LIMITS"]["ip"][0]
    ip = random_ip()
    readers = [Reader(fake, ip=ip) for _ in range(limit + 6)]
    offers = [reader.offers()[0] for reader in readers]
    before = len(fake.control()["sessions"])
    answers = run_together([lambda r=r, o=o: r.buy(o) for r, o in zip(readers, offers, strict=True)])
    created = len(fake.control()["sessions"]) - before
    no_server_errors(answers)
    statuses = Counter(a.status for a in answers)
    report(
        f"rate limit per IP: {len(readers)} readers over {len(workers_of(answers))} workers: "
        f"sessions created {created}, answers {dict(statuses)}"
    )
    assert created == limit
    assert statuses == {303: limit, 429: 6}


def _purchase_links(html: str) -> set[str]:
    import re

    return set(re.findall(r'<form class="wkp-buy-form" method="get" action="([^"]+)">', html))


def _article_on_every_worker(reader: Reader) -> dict[str, set[str]]:
    """GET the article until every worker has answered; the paywall's purchase links per worker."""
    seen: dict[str, set[str]] = {}
    for _ in range(WORKERS * 30):
        answer = reader.get(ARTICLE)
        assert answer.status == 200
        seen.setdefault(answer.worker, set()).update(_purchase_links(answer.text))
        if len(seen) == WORKERS:
            return seen
    pytest.fail(f"only {len(seen)} of {WORKERS} workers answered")


def test_render_cache_edit_is_seen_by_every_worker_at_once(fake: Profile):
    """The paywall's HTML is cached; an editor (another process) moves the purchase page, and the very next
    render on EVERY worker links to the new URL (the shared generation token), not within 300 s."""
    reader = Reader(fake)
    before = _article_on_every_worker(reader)  # every worker now holds the paywall in the cache
    assert all(links == {PURCHASE_PAGE} for links in before.values()), before
    moved = f"kop-{secrets.token_hex(3)}"
    move = (
        "from wagtail_klarna_paywall.models import KlarnaPurchasePage as P; "
        "p = P.objects.get(slug={old!r}); p.slug = {new!r}; p.save_revision().publish()"
    )
    fake.manage("shell", "-c", move.format(old="kop", new=moved))
    try:
        started = time.monotonic()
        after = _article_on_every_worker(reader)
        fresh = sum(links == {f"/{moved}/"} for links in after.values())
        report(
            f"render cache: purchase page moved by another process; {fresh} of {len(after)} workers linked "
            f"to the new URL on their next render ({time.monotonic() - started:.1f} s to reach all)"
        )
        assert all(links == {f"/{moved}/"} for links in after.values()), after
    finally:
        fake.manage("shell", "-c", move.format(old=moved, new="kop"))


#: A sentence after the paywall of ARTICLE (build_demo_content): shown only to a reader with access.
PAID_TEXT = "Bygget blev nära 20 miljoner kronor dyrare"


def _hop(reader: Reader, profile: Profile, url: str, data: dict | None = None) -> str:
    """One browser hop, to the site (through the proxy) or to the fake SSO2 (its own origin, its cookies
    kept by ``reader.http``); the Location it answers."""
    if urlsplit(url).port == urlsplit(profile.fake_url).port:
        method = "POST" if data is not None else "GET"
        response = reader.http.request(method, url, data=data, allow_redirects=False, timeout=30)
        assert response.status_code in (200, 302), (url, response.status_code, response.text[:300])
        return response.headers.get("Location", "") or url
    answer = reader.post(url, data) if data is not None else reader.get(url)
    assert answer.status in (200, 302), (url, answer.status, answer.text[:300])
    return answer.location


def test_a_login_through_the_fake_sso2_is_seen_by_every_worker(fake: Profile):
    """The subscriber logs in on SSO2's form (the fake, another process and origin) and comes back; every
    worker then shows the article's paid text: the session and the access answer are shared."""
    reader = Reader(fake)
    url = _hop(reader, fake, f"/klarna-paywall/sso/login/?next={ARTICLE}")
    for _ in range(8):  # Identify, landing, complete: until the login form
        if "/fake-payway/sso/login" in url:
            break
        url = _hop(reader, fake, url)
    assert "/fake-payway/sso/login" in url, url
    return_to = parse_qs(urlsplit(url).query)["r"][0]
    url = _hop(reader, fake, url, {"email": "subscriber@example.com", "password": "demo", "r": return_to})
    for _ in range(8):  # back to the site: complete, then the article
        if urlsplit(url).path == ARTICLE:
            break
        url = _hop(reader, fake, url)
    assert urlsplit(url).path == ARTICLE, url
    seen: dict[str, bool] = {}
    for _ in range(WORKERS * 30):
        answer = reader.get(ARTICLE)
        seen[answer.worker] = seen.get(answer.worker, True) and PAID_TEXT in answer.text
        if len(seen) == WORKERS:
            break
    report(
        f"login across processes: {sum(seen.values())} of {len(seen)} workers show the subscriber "
        "the paid text"
    )
    assert len(seen) == WORKERS and all(seen.values()), seen


def test_losing_the_cache_buys_nothing_twice_and_keeps_the_reader(fake: Profile):
    """Redis emptied between the buy and the pay (docs/deployment.md, "When the cache is lost"): the
    submits still place exactly one order, and the reader is the same reader (cached_db sessions are read
    back from PostgreSQL), so the checkout goes on instead of starting a second Payway session."""
    reader = Reader(fake)
    checkout, form = started_checkout(reader, reader.offers()[0])
    before = fake.control()["calls"]["place_order"]
    fake.slow("place_order", 1, PLACE_DELAY)
    deleted = fake.flush_cache()
    answers = run_together([lambda: reader.pay(checkout, form, authorization()) for _ in range(SUBMITS)])
    placed = fake.control()["calls"]["place_order"] - before
    no_server_errors(answers)
    report(
        f"cache lost: {deleted} keys deleted before {SUBMITS} concurrent submits over "
        f"{len(workers_of(answers))} workers: place_order {placed}, "
        f"answers {dict(Counter(a.status for a in answers))}"
    )
    assert deleted > 0
    assert placed == 1
    assert attempt_row(fake, reference_of(checkout))["state"] in ("placed", "confirmed")
    # The reader's session survived: the confirmation page is theirs.
    confirmation = next(a.location for a in answers if a.status == 303)
    assert reader.get(confirmation).status == 200
