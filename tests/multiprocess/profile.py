"""The production profile (``sandbox/run-production``) as a running thing, and readers that talk to it.

Shared by the multi-process tests (``tests/multiprocess``) and the load benchmark (``bench/profile.py``).
Nothing here imports Django's settings: the profile runs in its own processes (gunicorn workers on
PostgreSQL and Redis, the fake Payway on its own), and everything is observed from the outside: HTTP
against the site, the fake's JSON control API, and SQL against the profile's database.

The readers play the TLS proxy: every request carries ``X-Forwarded-Proto: https`` and an
``X-Forwarded-For`` with the reader's IP, and ``Connection: close`` (as a proxy talking HTTP/1.0 to its
upstream does), so consecutive requests land on whichever worker accepts them.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

from tests.demo_site import ARTICLE_CAMPAIGN_DIGITAL, PURCHASE_PAGE, FakeControls
from tests.multiprocess.observe import WORKER_HEADER

REPO_DIR = Path(__file__).resolve().parents[2]
RUN_PRODUCTION = REPO_DIR / "sandbox" / "run-production"
MANAGE = REPO_DIR / "sandbox" / "manage.py"
#: The profile's settings plus a response header naming the worker (``tests/multiprocess/settings.py``).
SETTINGS = "tests.multiprocess.settings"

#: The demo site's pages (``build_demo_content``): its purchase page, and an article with a paywall.
ARTICLE = ARTICLE_CAMPAIGN_DIGITAL
CUSTOMER = {"email": "last@example.com", "first_name": "Last", "last_name": "Läsare"}
#: The profile the tests start: gunicorn workers, and threads in each.
WORKERS = 4
THREADS = 4

#: Figures collected by the tests, printed at the end of the run (``conftest.pytest_terminal_summary``).
FIGURES: list[str] = []


def report(line: str) -> None:
    FIGURES.append(line)
    print(line)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def random_ip() -> str:
    """A private address, most likely used by no other reader of this run (rate limits count per IP)."""
    return f"10.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"


def authorization(scenario: str = "ok") -> str:
    """An authorization token as the fake Klarna widget hands it to the browser."""
    return f"fake-auth-{scenario}-{secrets.token_hex(8)}"


# -- the running profile ----------------------------------------------------------------------------


@dataclass
class Profile(FakeControls):
    """The running profile: its URLs, database, environment and log, and (``FakeControls``) the fake
    Payway's controls."""

    control_timeout: ClassVar[float] = 30

    base_url: str
    fake_url: str
    database_url: str
    env: dict[str, str]
    log_path: Path
    workers: int
    threads: int
    process: subprocess.Popen = field(repr=False)
    #: Folders of this run to remove when it stops (its collected static files).
    scratch: list[Path] = field(default_factory=list)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    # The site's database -------------------------------------------------------------------------------

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            return conn.execute(query, params).fetchall()

    def manage(self, *args: str, timeout: float = 120) -> str:
        """``sandbox/manage.py`` with the profile's settings, database and cache (an editor's process)."""
        result = subprocess.run(
            [sys.executable, str(MANAGE), *args],
            cwd=REPO_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
        return result.stdout

    def flush_cache(self) -> int:
        """Delete every key of this profile in Redis (its prefix only), as a restart without persistence
        would; the number of keys deleted."""
        import redis

        client = redis.Redis.from_url(self.env["REDIS_URL"])
        keys = list(client.scan_iter(match=f"{self.env['CACHE_KEY_PREFIX']}:*", count=1000))
        return client.delete(*keys) if keys else 0

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            # The script's own trap stops its two gunicorn masters; they stop their workers.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        for folder in self.scratch:
            shutil.rmtree(folder, ignore_errors=True)


def recreate_database(url: str) -> None:
    """Drop and create the profile's database: every run starts from the migrations."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name in ("postgres", "template0", "template1"):
        raise ValueError(f"refusing to recreate the database {name!r}")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def start_profile(
    *,
    database_url: str,
    redis_url: str,
    log_dir: Path,
    workers: int = 4,
    threads: int = 4,
    settings: str = SETTINGS,
    setup: bool = True,
    extra_env: dict[str, str] | None = None,
    static_root: Path | None = None,
    timeout: float = 300,
) -> Profile:
    """Start ``sandbox/run-production`` on free ports and wait until the site and the fake answer."""
    port, fake_port = free_port(), free_port()
    own_static = None if static_root else Path(tempfile.mkdtemp(prefix="wkp-static-"))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PAYWAY_", "DATABASE_URL", "WAGTAILADMIN_BASE_URL"))
    }
    env.update(
        SANDBOX_PYTHON=sys.executable,
        SANDBOX_SETTINGS=settings,
        DJANGO_SETTINGS_MODULE=settings,
        PYTHONPATH=os.pathsep.join([str(REPO_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]),
        PORT=str(port),
        FAKE_PAYWAY_PORT=str(fake_port),
        WEB_WORKERS=str(workers),
        WEB_THREADS=str(threads),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        # A fresh key space per start: rate-limit windows and sessions of an earlier run do not count.
        CACHE_KEY_PREFIX=f"wkp-test-{uuid.uuid4().hex[:12]}",
        SKIP_SETUP="0" if setup else "1",
        # Its own copy: two runs never collect into one folder (nor into the sandbox's).
        STATIC_ROOT=str(static_root or own_static),
        PYTHONUNBUFFERED="1",
        **(extra_env or {}),
    )
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"profile-{port}.log"
    log = open(log_path, "w")  # noqa: SIM115 - open for the profile's lifetime
    process = subprocess.Popen(
        ["bash", str(RUN_PRODUCTION)],
        cwd=REPO_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    profile = Profile(
        base_url=f"http://localhost:{port}",
        fake_url=f"http://127.0.0.1:{fake_port}/fake-payway",
        database_url=database_url,
        env=env,
        log_path=log_path,
        workers=workers,
        threads=threads,
        process=process,
        scratch=[own_static] if own_static else [],
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sandbox/run-production exited ({process.returncode}):\n{profile.log_tail()}")
        if answers("127.0.0.1", port) and answers("127.0.0.1", fake_port):
            try:
                with urllib.request.urlopen(profile.base_url + "/", timeout=5) as response:
                    if response.status == 200:
                        return profile
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
        time.sleep(0.5)
    profile.stop()
    raise RuntimeError(f"the profile did not answer within {timeout} s:\n{profile.log_tail()}")


def have_gunicorn() -> bool:
    return shutil.which("gunicorn") is not None or _importable("gunicorn")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# -- a reader's browser, behind the TLS proxy --------------------------------------------------------

FORM_RE = re.compile(
    r'<form class="wkp-buy-form" method="post" action="(?P<action>[^"]+)">\s*'
    r'<input type="hidden" name="csrfmiddlewaretoken" value="(?P<csrf>[^"]+)">\s*'
    r'<input type="hidden" name="page" value="(?P<page>\d+)">\s*'
    r'<input type="hidden" name="offer" value="(?P<offer>[^"]+)">'
)
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class FlowError(AssertionError):
    """A step of the flow answered something other than what a working site answers."""


@dataclass
class Answer:
    status: int
    location: str
    text: str
    worker: str
    seconds: float


class Reader:
    """One reader's browser: its own cookies and IP; requests go through ``requests`` without its cookie
    jar, because the site's cookies are ``Secure`` and this client speaks plain http to gunicorn."""

    def __init__(self, profile: Profile, ip: str | None = None) -> None:
        import requests

        self.profile = profile
        self.ip = ip or random_ip()
        self.cookies: dict[str, str] = {}
        #: What this reader types as a new customer: an address of their own, since the e-mail counts as the
        #: reader when an order is placed (one order per reader and product).
        self.email = f"last-{secrets.token_hex(6)}@example.com"
        self.http = requests.Session()
        self.http.trust_env = False

    def request(self, method: str, url: str, data: dict | None = None, timeout: float = 60) -> Answer:
        # The site's own absolute URLs are https (the proxy's side): this client is the proxy's upstream leg.
        public = f"https://{self.profile.host}"
        if url.startswith(public + "/"):
            url = self.profile.base_url + url[len(public) :]
        url = urljoin(self.profile.base_url + "/", url)
        headers = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": self.ip,
            "Connection": "close",
            "Accept-Language": "sv-SE,sv;q=0.9",
            "User-Agent": "MultiProcessSuite/1.0",
        }
        if method == "POST":
            # What a browser sends on the https page behind the proxy.
            headers["Origin"] = f"https://{self.profile.host}"
            headers["Referer"] = f"https://{self.profile.host}/"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        started = time.perf_counter()
        response = self.http.request(
            method, url, data=data, headers=headers, allow_redirects=False, timeout=timeout
        )
        seconds = time.perf_counter() - started
        for name, value in response.cookies.items():
            self.cookies[name] = value
        return Answer(
            status=response.status_code,
            location=response.headers.get("Location", ""),
            text=response.text,
            worker=response.headers.get(WORKER_HEADER, ""),
            seconds=seconds,
        )

    def get(self, url: str, **kwargs: Any) -> Answer:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, data: dict[str, str], **kwargs: Any) -> Answer:
        return self.request("POST", url, data, **kwargs)

    # The purchase flow ----------------------------------------------------------------------------------

    def offers(self, page: str = PURCHASE_PAGE) -> list[dict[str, str]]:
        answer = self.get(page)
        if answer.status != 200:
            raise FlowError(f"GET {page}: {answer.status}")
        return [match.groupdict() for match in FORM_RE.finditer(answer.text)]

    def buy(self, offer: dict[str, str]) -> Answer:
        """POST the buy form; a working buy answers 303 to the checkout.

        The form's CSRF token is this browser's cookie value (Django accepts the unmasked secret), so an
        offer read by another reader can be bought by this one; a reader without the cookie opens the
        purchase page first, as a browser would have.
        """
        if "csrftoken" not in self.cookies:
            self.offers()
        return self.post(offer["action"], {"csrfmiddlewaretoken": self.cookies["csrftoken"], **_form(offer)})

    def checkout_form(self, checkout: str) -> dict[str, str]:
        answer = self.get(checkout)
        if answer.status != 200:
            raise FlowError(f"GET {checkout}: {answer.status}")
        tokens = CSRF_RE.findall(answer.text)
        if not tokens or "clientToken" not in answer.text:
            raise FlowError(f"GET {checkout}: no checkout form")
        return {"csrfmiddlewaretoken": tokens[0]}

    def pay(self, checkout: str, form: dict, token: str, customer: Any = ...) -> Answer:
        """Submit the checkout; by default as a new customer typing this reader's own e-mail."""
        if customer is ...:
            customer = {**CUSTOMER, "email": self.email}
        return self.post(checkout, {**form, "klarna_authorization_token": token, **(customer or {})})


def _form(offer: dict[str, str]) -> dict[str, str]:
    return {"page": offer["page"], "offer": offer["offer"]}


def reference_of(checkout: str) -> str:
    return checkout.rstrip("/").rsplit("/", 1)[-1]


def run_together(tasks: list[Callable[[], Any]], timeout: float = 120) -> list[Any]:
    """Run every task on its own thread, released together; exceptions are returned, never lost."""
    barrier = threading.Barrier(len(tasks))
    results: list[Any] = [None] * len(tasks)

    def work(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = tasks[index]()
        except BaseException as exc:  # noqa: BLE001 - reported as that task's result
            results[index] = exc

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(tasks))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError("tasks did not finish in time")
    return results
