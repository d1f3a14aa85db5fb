"""Fixtures for the browser flows: the sandbox on a live server, headless Chromium, and failure screenshots.

The sandbox runs as its own process (``runserver``, threaded, as ``sandbox/run`` serves it) with the
embedded fake Payway and the fake Klarna widget, on a fresh SQLite database in a temporary directory. Tests
drive it with Playwright's sync API in Debian's Chromium (no browser download: ``CHROMIUM_PATH``), and read
what happened from the outside: purchase attempts straight from that database, Payway calls from the fake's
JSON control API. Nothing here imports the project's Django settings, so the suite also runs beside
``tests.settings`` in one pytest process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_DIR = Path(__file__).resolve().parents[2]
CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS_DIR = Path(os.environ.get("KLARNA_PAYWALL_ARTIFACTS", "test-artifacts")) / "browser"
#: DEBUG settings, as ``sandbox/run`` serves them (outside DEBUG the flow pages insist on HTTPS, which
#: runserver does not speak), with the per-IP purchase limits raised for a suite of readers on one address.
SANDBOX_SETTINGS = os.environ.get("KLARNA_PAYWALL_BROWSER_SETTINGS", "tests.browser.sandbox_settings")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Short waits: every step is local, so anything slower than this is a failure, not a slow machine.
TIMEOUT_MS = 10_000

# Runs before each document's own scripts and reports every CSP violation to the test (through a binding,
# so reports survive the navigations of a flow). Injected by the browser, so the page's CSP does not apply.
REPORTER_SCRIPT = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__wkpReportCsp({
    page: document.location.href, directive: e.violatedDirective, blocked: e.blockedURI,
    source: e.sourceFile, line: e.lineNumber, disposition: e.disposition,
  });
});
"""

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder is a browser test, and skips (saying why) without Chromium."""
    reason = ""
    if sync_playwright is None:
        reason = "the playwright package is not installed (pip install -e '.[test]')"
    elif not Path(CHROMIUM_PATH).is_file() or not os.access(CHROMIUM_PATH, os.X_OK):
        reason = f"no Chromium at {CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)"
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


# -- the sandbox server ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Sandbox:
    """The running sandbox: its URL, its database and the fake Payway's controls."""

    base_url: str
    fake_url: str
    db_path: Path
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    # The fake Payway (in the server process) -----------------------------------------------------------

    def control(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET (or POST ``body`` to) the fake Payway's JSON control API; its snapshot."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.fake_url}/_control/",
            data=data,
            method="POST" if body is not None else "GET",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def reset_fake(self) -> None:
        self.control({"reset": True})

    def forget_purchases(self) -> None:
        """Start a test as on a new day for the money rules: the earlier tests' orders move out of the
        48-hour rebuy window and their product claims go, so a test that buys what an earlier test bought
        (the same fake account or e-mail) is not told it already has it."""
        with sqlite3.connect(self.db_path, timeout=20) as db:
            db.execute("DELETE FROM wagtail_klarna_paywall_productclaim")
            db.execute(
                "UPDATE wagtail_klarna_paywall_purchaseattempt"
                " SET placing_at = datetime(placing_at, '-30 days') WHERE placing_at IS NOT NULL"
            )

    def sso_claims(self, variant: str | None) -> str:
        """Make the fake SSO2 sign its answers with the ``variant`` aud/iss shape (None: the configured
        one), in the running server; the variant now in force."""
        request = urllib.request.Request(
            f"{self.fake_url}/sso/_control",
            data=json.dumps({"claims": variant}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["claims"]

    def calls(self) -> dict[str, int]:
        """Requests per Payway endpoint, whatever their answer."""
        return self.control()["calls"]

    def payway(self) -> dict[str, int]:
        """What reached Payway: sessions it created, place_order / place_trial_order requests, orders.

        Sessions are counted, not create_session requests: a reset makes the fake forget the site's cached
        system token, so the first create_session after it is refused (401, nothing created) and retried
        once with a new token, as the client must. That retry is the client's business, not the flow's.
        """
        snapshot = self.control()
        return {
            "sessions": len(snapshot["sessions"]),
            "place_order": snapshot["calls"]["place_order"],
            "place_trial_order": snapshot["calls"]["place_trial_order"],
            "orders": len(snapshot["orders"]),
        }

    # The database ------------------------------------------------------------------------------------

    def query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with sqlite3.connect(self.db_path, timeout=10) as conn:
            conn.row_factory = sqlite3.Row
            return conn.execute(sql, params).fetchall()

    def attempt(self, reference: str) -> sqlite3.Row:
        """The purchase attempt with this reference (a UUID in any spelling)."""
        ref = reference.replace("-", "").lower()
        rows = self.query(
            "SELECT * FROM wagtail_klarna_paywall_purchaseattempt"
            " WHERE replace(lower(reference), '-', '') = ?",
            (ref,),
        )
        assert rows, f"no purchase attempt with reference {reference} in {self.db_path}"
        return rows[0]

    def attempt_count(self) -> int:
        return self.query("SELECT count(*) FROM wagtail_klarna_paywall_purchaseattempt")[0][0]

    def events(self, reference: str, kind: str) -> int:
        """How many timeline events of ``kind`` the attempt has."""
        attempt_id = self.attempt(reference)["id"]
        return self.query(
            "SELECT count(*) FROM wagtail_klarna_paywall_purchaseevent WHERE attempt_id = ? AND kind = ?",
            (attempt_id, kind),
        )[0][0]

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _run(args: list[str], env: dict[str, str], log) -> None:
    result = subprocess.run(args, cwd=REPO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=300)
    if result.returncode:
        log.flush()
        tail = Path(log.name).read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(args[1:])} failed ({result.returncode}), log {log.name}:\n{tail}")


def _wait_until_up(url: str, process: subprocess.Popen, log_path: Path, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the sandbox server exited ({process.returncode}):\n{log_path.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the sandbox server did not answer at {url} within {deadline_s} s")


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """The sandbox with demo content on a free port, for the whole session."""
    if sync_playwright is None or not Path(CHROMIUM_PATH).is_file():
        pytest.skip("no Chromium or Playwright: see the skip reason of the tests")
    # Memory-backed when there is one: two hundred migrations on SQLite are mostly fsync otherwise.
    shm = Path("/dev/shm")
    # Screenshots of an earlier run's failures would pass for this run's.
    for old in [*ARTIFACTS_DIR.glob("*.png"), *ARTIFACTS_DIR.glob("*.log")]:
        old.unlink()
    tmp = Path(tempfile.mkdtemp(prefix="wkp-browser-", dir=shm if shm.is_dir() else None))
    port = _free_port()
    db_path = tmp / "db.sqlite3"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PAYWAY_", "DATABASE_URL", "WAGTAILADMIN_BASE_URL"))
    }
    env.update(
        # The repository root, so the sandbox process finds tests.browser.sandbox_settings.
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_DIR), os.environ.get("PYTHONPATH", "")])),
        DJANGO_SETTINGS_MODULE=SANDBOX_SETTINGS,
        DATABASE_URL=f"sqlite:///{db_path}",
        PORT=str(port),
        PYTHONUNBUFFERED="1",
    )
    manage = [sys.executable, str(REPO_DIR / "sandbox" / "manage.py")]
    log_path = tmp / "server.log"
    with open(tmp / "setup.log", "w") as log:
        _run([*manage, "migrate", "--noinput", "-v", "0"], env, log)
        _run([*manage, "build_demo_content"], env, log)
    server_log = open(log_path, "w")  # noqa: SIM115 - open for the server's lifetime
    # runserver is threaded by default: the site calls the fake Payway in this same process over HTTP.
    process = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=REPO_DIR,
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    # The site is "localhost" (build_demo_content): its canonical URL, used for the confirmation URL,
    # must be the origin the browser uses, or the reader's session cookie would not come along.
    base_url = f"http://localhost:{port}"
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/fake-payway/_control/", process, log_path)
        yield Sandbox(
            base_url=base_url,
            fake_url=f"http://127.0.0.1:{port}/fake-payway",
            db_path=db_path,
            log_path=log_path,
            process=process,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        server_log.close()
        # The server's log is worth keeping next to the screenshots; the database is not.
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_path, ARTIFACTS_DIR / "sandbox-server.log")
        shutil.rmtree(tmp, ignore_errors=True)


# -- the browser -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser(sandbox: Sandbox):
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watch:
    """What a page reported while a test ran: console errors, failed requests and CSP violations."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[dict[str, Any]] = field(default_factory=list)
    posts: list[str] = field(default_factory=list)
    responses: list[Any] = field(default_factory=list)

    def console(self, page: Any, message: Any) -> None:
        if message.type != "error":
            return
        source = (message.location or {}).get("url", "")
        # Browsers fetch /favicon.ico on their own; the demo site has none (not a page's doing).
        if "Failed to load resource" in message.text and source.endswith("/favicon.ico"):
            return
        self.console_errors.append(f"{page.url}: {message.text} ({source})")

    def problems(self) -> list[str]:
        """CSP violations, console errors and uncaught page errors, as readable lines."""
        return (
            [f"CSP violation: {v}" for v in self.csp_violations]
            + [f"console error: {line}" for line in self.console_errors]
            + [f"page error: {line}" for line in self.page_errors]
        )


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def context(browser, sandbox: Sandbox, watch: Watch, request: pytest.FixtureRequest):
    """A fresh browser context (no cookies: a new anonymous reader) in English, on a freshly reset fake."""
    sandbox.reset_fake()
    sandbox.forget_purchases()
    ctx = browser.new_context(
        base_url=sandbox.base_url, locale="en-GB", viewport={"width": 1100, "height": 900}
    )
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.expose_function("__wkpReportCsp", lambda violation: watch.csp_violations.append(violation))
    ctx.add_init_script(REPORTER_SCRIPT)

    def on_page(page) -> None:
        page.on("console", lambda msg: watch.console(page, msg))
        page.on("pageerror", lambda err: watch.page_errors.append(f"{page.url}: {err}"))
        page.on("request", lambda req: req.method == "POST" and watch.posts.append(req.url))
        page.on("response", lambda response: watch.responses.append(response))

    ctx.on("page", on_page)
    request.node._wkp_context = ctx
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep a full-page screenshot of every open page of a failed test under ``test-artifacts/browser``."""
    outcome = yield
    report = outcome.get_result()
    if report.when not in ("setup", "call") or not report.failed:
        return
    ctx = getattr(item, "_wkp_context", None)
    if ctx is None:
        return
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.name)
    for number, open_page in enumerate(ctx.pages):
        suffix = f"-{number}" if number else ""
        path = ARTIFACTS_DIR / f"{name}{suffix}.png"
        try:
            open_page.screenshot(path=str(path), full_page=True, timeout=5000)
        except Exception as err:  # noqa: BLE001 - a screenshot must never hide the real failure
            report.sections.append(("screenshot", f"could not save {path}: {err}"))
        else:
            report.sections.append(("screenshot", f"saved {path} ({open_page.url})"))
    sandbox = item.funcargs.get("sandbox")
    if isinstance(sandbox, Sandbox):
        report.sections.append(("sandbox server log (tail)", sandbox.log_tail()))
