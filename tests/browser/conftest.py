"""Fixtures for the browser flows: the sandbox on a live server, headless Chromium, and failure screenshots.

The sandbox runs as its own process (``runserver``, threaded, as ``sandbox/run`` serves it) with the
embedded fake Payway and the fake Klarna widget, on a fresh SQLite database in a temporary directory. Tests
drive it with Playwright's sync API in Debian's Chromium (no browser download: ``CHROMIUM_PATH``), and read
what happened from the outside: purchase attempts straight from that database, Payway calls from the fake's
JSON control API. Nothing here imports the project's Django settings, so the suite also runs beside
``tests.settings`` in one pytest process. The sandbox's handle and Chromium's settings are in ``sandbox.py``,
the reader's steps in ``steps.py``, the demo site's pages and the fake's controls in ``tests/demo_site.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.sandbox import (
    ARTIFACTS_DIR,
    CHROMIUM_ARGS,
    CHROMIUM_PATH,
    REPO_DIR,
    REPORTER_SCRIPT,
    SANDBOX_SETTINGS,
    TIMEOUT_MS,
    Sandbox,
    Watch,
)

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


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def context(browser, sandbox: Sandbox, watch: Watch, request: pytest.FixtureRequest):
    """A fresh browser context (no cookies: a new anonymous reader) in English, on a freshly reset fake."""
    yield from _reader_context(browser, sandbox, watch, request, locale="en-GB")


@pytest.fixture
def swedish_page(browser, sandbox: Sandbox, watch: Watch, request: pytest.FixtureRequest):
    """A page in a fresh browser context of a Swedish reader (``Accept-Language: sv-SE``)."""
    for ctx in _reader_context(browser, sandbox, watch, request, locale="sv-SE"):
        yield ctx.new_page()


@pytest.fixture
def swedish_page_without_javascript(browser, sandbox: Sandbox, watch: Watch, request: pytest.FixtureRequest):
    """As :func:`swedish_page`, in a browser that runs no JavaScript."""
    for ctx in _reader_context(browser, sandbox, watch, request, locale="sv-SE", javascript=False):
        yield ctx.new_page()


def _reader_context(
    browser,
    sandbox: Sandbox,
    watch: Watch,
    request: pytest.FixtureRequest,
    *,
    locale: str,
    javascript: bool = True,
):
    sandbox.reset_fake()
    sandbox.forget_purchases()
    ctx = browser.new_context(
        base_url=sandbox.base_url,
        locale=locale,
        java_script_enabled=javascript,
        viewport={"width": 1100, "height": 900},
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
