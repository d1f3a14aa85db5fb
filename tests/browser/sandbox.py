"""The sandbox as the browser flows see it: where it runs, its database, what a page reported, and how
Chromium is started. Nothing here imports Django or Playwright (the conftest checks Playwright is there).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.demo_site import FakeControls

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


@dataclass
class Sandbox(FakeControls):
    """The running sandbox: its URL, its database and (``FakeControls``) the fake Payway's controls."""

    base_url: str
    fake_url: str
    db_path: Path
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    # The database ------------------------------------------------------------------------------------

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
