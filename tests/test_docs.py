"""Nothing in the repository cites a document that is not in it.

Every ``*.py``, ``*.md``, ``*.html``, ``*.js``, ``*.txt``, ``*.toml`` (and ``*.ini``, ``*.cfg``, ``*.in``,
``*.sh`` and the ``run`` scripts) of the repository, environments, caches and build output excluded, is
scanned for:

- references to files that do not exist: any ``*.md``, any path under one of the repository's top-level
  directories (``docs/...``, ``tests/...``, ``wagtail_klarna_paywall/...``), any ``test_*.py``;
- the names of documents kept outside the repository, and numbered citations of them ("contract" plus a
  number, a section sign, "reference" plus a number, "catalogue" plus a case id);
- citations of ``docs/payway-contract.md#<anchor>`` whose anchor is not a heading of that file;
- reliability case ids and "(c)" figures that ``docs/reliability.md`` does not define.

The "Decided in" lines of ``docs/payway-contract.md`` must name files and names that exist, so the document
cannot drift from the code unnoticed. The citation format is explained at the top of that file
(docs/payway-contract.md#how-to-cite-this-document).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = "docs/payway-contract.md"
RELIABILITY = "docs/reliability.md"

SCANNED_SUFFIXES = (".py", ".md", ".html", ".js", ".txt", ".toml", ".ini", ".cfg", ".in", ".sh")
#: Scripts without a suffix (``tests/run``, ``sandbox/run``, ``.ci/run``).
SCANNED_NAMES = ("run",)
#: Directory names that never hold the project's own text: environments, caches, build output.
SKIPPED_DIR_NAMES = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        ".tox",
        "node_modules",
        "build",
        "dist",
        "htmlcov",
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
        "test-artifacts",
    }
)
#: Generated or local data inside the repository (see .gitignore).
SKIPPED_PATHS = frozenset({"sandbox/static", "sandbox/media", "bench/results"})
#: A path starting with one of these names is a path in this repository, whatever its extension.
TOP_LEVEL_DIRS = ("docs", "tests", "wagtail_klarna_paywall", "sandbox", "bench", ".ci")

#: The sections code cites most; removing one would orphan its citations.
REQUIRED_SECTIONS = (
    "Envelope",
    "Tokens",
    "SSO2 answers",
    "Catalogue",
    "Product codes and access",
    "Current account (/v3/me)",
    "create_session",
    "place_order and place_trial_order",
    "Account-sync flags",
    "Errors",
    "Never re-send",
    "Klarna redirect allow-list",
    "Session reuse",
    "Payment method category",
    "One order per reader and product",
    "Reading on after paying",
    "Klarna JS SDK",
    "Open questions for Adeprimo",
)

# Names of documents that live outside the repository. Each is split in two so that this file, which
# must name them to find them, does not cite them itself.
OUTSIDE_DOCUMENTS = (
    re.compile("payway-klarna" + "-api"),
    re.compile("reliability" + "-catalogue"),
    re.compile(r"(?<![\w-])style" + r"\.md"),
    re.compile(r"(?<![\w/.-])shared" + "/"),
    re.compile(r"(?<![\w.-])/work" + "/"),
    re.compile(r"\bproject" + r"\s+contract\b", re.IGNORECASE),
    re.compile(r"\bproject's\s+API" + r"\s+reference\b", re.IGNORECASE),
)
NUMBERED_CITATIONS = (
    (re.compile(r"\bcontract\s+\d", re.IGNORECASE), "cite docs/payway-contract.md#<section> instead"),
    (re.compile(r"§\s*\d"), "cite docs/payway-contract.md#<section> or docs/reliability.md instead"),
    (re.compile(r"\breference\s+\d", re.IGNORECASE), "cite docs/payway-contract.md#<section> instead"),
    (re.compile(r"\bcatalogue\s+[A-Z]\d", re.IGNORECASE), "cite docs/reliability.md <id> instead"),
)

URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s)>\"'`\]]+")
FILE_REFERENCE = re.compile(
    r"(?<![\w./*{}<>%$~@-])"
    r"((?:[\w-][\w.-]*/)*[\w-][\w.-]*\.(?:md|py|txt|toml|html|js|css|json|svg|po|ini|cfg))"
    r"(?![\w/*{}<>%$-])"
)
CONTRACT_ANCHOR = re.compile(re.escape(CONTRACT) + r"#([\w-]+)")
#: The other accepted form, ``(docs/payway-contract.md, "Errors")``: the heading itself, in quotes.
CONTRACT_HEADING = re.compile(re.escape(CONTRACT) + r",\s*(?:section\s+)?\"([^\"\n]+)\"")
CASE_ID = re.compile(r"\b[BCFLS](?:0[1-9]|1\d)\b")
FIGURE = re.compile(r"figure \(c\)(\d+)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class RepoIndex:
    paths: frozenset[str]
    contract_anchors: frozenset[str]
    case_ids: frozenset[str]
    figures: frozenset[str]

    def exists(self, reference: str, cited_from: str) -> bool:
        """``reference`` names a file of the repository: as a repository path, relative to the citing
        file, or as the tail of a path (a template name, a test module named without ``tests/``)."""
        if reference in self.paths:
            return True
        relative = os.path.normpath(os.path.join(os.path.dirname(cited_from), reference)).replace(os.sep, "/")
        if relative in self.paths:
            return True
        return any(path.endswith("/" + reference) for path in self.paths)


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation but ``-`` and ``_`` dropped, spaces to
    hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(markdown: str) -> list[str]:
    found, in_code = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and (match := HEADING.match(line)):
            found.append(match.group(1))
    return found


def repository_files(root: Path = ROOT) -> list[str]:
    files = []
    for directory, subdirectories, names in os.walk(root):
        relative_dir = Path(directory).relative_to(root).as_posix()
        subdirectories[:] = sorted(
            name
            for name in subdirectories
            if name not in SKIPPED_DIR_NAMES
            and not name.endswith(".egg-info")
            and (f"{relative_dir}/{name}" if relative_dir != "." else name) not in SKIPPED_PATHS
        )
        for name in names:
            files.append((Path(directory) / name).relative_to(root).as_posix())
    return sorted(files)


def build_index(root: Path = ROOT) -> RepoIndex:
    reliability = (root / RELIABILITY).read_text(encoding="utf-8")
    contract = (root / CONTRACT).read_text(encoding="utf-8")
    return RepoIndex(
        paths=frozenset(repository_files(root)),
        contract_anchors=frozenset(anchor(heading) for heading in headings(contract)),
        case_ids=frozenset(re.findall(r"^\|\s*([A-Z]\d\d)\s*\|", reliability, re.MULTILINE)),
        figures=frozenset(re.findall(r"^(\d+)\.\s+\*\*", reliability, re.MULTILINE)),
    )


def _must_exist(reference: str) -> bool:
    name = reference.rsplit("/", 1)[-1]
    return (
        reference.endswith(".md")
        or ("/" in reference and reference.split("/", 1)[0] in TOP_LEVEL_DIRS)
        or (name.startswith("test_") and name.endswith(".py"))
    )


def offences(path: str, text: str, index: RepoIndex) -> list[str]:
    """What ``text`` (the content of ``path``) cites that is not in the repository."""
    found: list[str] = []

    def report(position: int, what: str) -> None:
        found.append(f"{path}:{text.count(chr(10), 0, position) + 1}: {what}")

    for pattern in OUTSIDE_DOCUMENTS:
        for match in pattern.finditer(text):
            report(match.start(), f"names a document outside the repository ({match.group(0)!r})")
    for pattern, advice in NUMBERED_CITATIONS:
        for match in pattern.finditer(text):
            report(match.start(), f"{match.group(0)!r} cites a document outside the repository: {advice}")
    for match in CONTRACT_ANCHOR.finditer(text):
        if match.group(1) not in index.contract_anchors:
            report(match.start(), f"{match.group(0)!r}: no such section in {CONTRACT}")
    for match in CONTRACT_HEADING.finditer(text):
        if anchor(match.group(1)) not in index.contract_anchors:
            report(match.start(), f"{match.group(0)!r}: no such section in {CONTRACT}")
    for match in CASE_ID.finditer(text):
        if match.group(0) not in index.case_ids:
            report(match.start(), f"case id {match.group(0)!r} is not defined in {RELIABILITY}")
    for match in FIGURE.finditer(text):
        if match.group(1) not in index.figures:
            report(match.start(), f"{match.group(0)!r} is not a figure of {RELIABILITY}")
    # URLs are cited pages, not files of the repository (and their paths look like file names).
    without_urls = URL.sub(lambda match: " " * len(match.group(0)), text)
    for match in FILE_REFERENCE.finditer(without_urls):
        reference = match.group(1)
        if _must_exist(reference) and not index.exists(reference, path):
            report(match.start(), f"cites {reference!r}, which is not in the repository")
    return found


def decided_in_offences(contract_text: str, index: RepoIndex, root: Path = ROOT) -> list[str]:
    """Each "Decided in:" entry of the contract names existing files, and names each of them defines."""
    found: list[str] = []
    for number, line in enumerate(contract_text.splitlines(), start=1):
        if "Decided in:" not in line:
            continue
        # The entry runs on until the next bullet, heading or blank line.
        rest = contract_text.splitlines()[number:]
        entry = [line.split("Decided in:", 1)[1]]
        for following in rest:
            if not following.strip() or following.startswith(("- ", "#")) or "Decided in:" in following:
                break
            entry.append(following)
        current: str | None = None
        for token in re.findall(r"`([^`]+)`", " ".join(entry)):
            if "/" in token and re.search(r"\.\w+$", token):
                current = token if token in index.paths else None
                if current is None:
                    found.append(f"{CONTRACT}:{number}: decided in {token!r}, which does not exist")
            elif current and re.fullmatch(r"[A-Za-z_][\w.]*", token):
                name = token.rsplit(".", 1)[-1]
                source = (root / current).read_text(encoding="utf-8")
                if not re.search(rf"\b{re.escape(name)}\b", source):
                    found.append(
                        f"{CONTRACT}:{number}: decided in {current} {token!r}, but {current} has no "
                        f"{name!r}; move the line with the decision"
                    )
    return found


@pytest.fixture(scope="module")
def index() -> RepoIndex:
    return build_index()


def scanned_files() -> list[str]:
    return [
        path
        for path in repository_files()
        if path.endswith(SCANNED_SUFFIXES) or path.rsplit("/", 1)[-1] in SCANNED_NAMES
    ]


# -- the repository ---------------------------------------------------------------------------------


def test_nothing_cites_a_file_outside_the_repository(index):
    found = []
    for path in scanned_files():
        found.extend(offences(path, (ROOT / path).read_text(encoding="utf-8", errors="replace"), index))
    assert not found, "\n".join(found)


def test_decided_in_lines_name_existing_files_and_names(index):
    contract = (ROOT / CONTRACT).read_text(encoding="utf-8")
    assert contract.count("Decided in:") >= 30, "the contract lost its 'Decided in' lines"
    found = decided_in_offences(contract, index)
    assert not found, "\n".join(found)


def test_contract_has_the_sections_code_cites(index):
    for section in REQUIRED_SECTIONS:
        assert anchor(section) in index.contract_anchors, section


def test_the_scan_covers_the_repository():
    files = set(scanned_files())
    for expected in (
        "README.md",
        CONTRACT,
        RELIABILITY,
        "pyproject.toml",
        "tox.ini",
        "tests/run",
        "wagtail_klarna_paywall/payway/client.py",
        "wagtail_klarna_paywall/static/wagtail_klarna_paywall/purchase.js",
        "wagtail_klarna_paywall/templates/wagtail_klarna_paywall/checkout.html",
        "tests/test_docs.py",
    ):
        assert expected in files, expected
    assert not any(part in SKIPPED_DIR_NAMES for path in files for part in path.split("/")[:-1])


# -- the scanner itself -----------------------------------------------------------------------------

#: Marks the middle of each offending example, so that this file holds none of them whole; unmarked when
#: the example is scanned.
MARK = "\u00a6"
OFFENDING = {
    "numbered contract rule": "never re-sent (contract ¦7).",
    "section sign": "as the docs say (§¦4.4).",
    "numbered reference": "see the reference ¦2.4 for the claims",
    "catalogue case": "refused (catalogue ¦B10).",
    "outside api reference": "assumed (see payway-kl¦arna-api.m¦d)",
    "outside reliability catalogue": "the reliabi¦lity-catalogue.m¦d cases",
    "outside style guide": "as style.m¦d asks",
    "outside shared folder": "read shared¦/notes.txt",
    "outside absolute path": "in /work¦/main",
    "outside contract by name": "decided by the project ¦contract",
    "missing markdown file": "details in docs/nowhere.m¦d",
    "missing bare markdown file": "see NOTES-nowhere.m¦d",
    "missing test module": "held by tests/test_nowhere.p¦y::test_it",
    "missing bare test module": "held by test_nowhere.p¦y",
    "missing package module": "see wagtail_klarna_paywall/nowhere.p¦y",
    "unknown contract section": "docs/payway-contract.m¦d#no-such-section",
    "unknown quoted contract section": '(docs/payway-contract.m¦d, "No such section")',
    "undefined case id": "refused (docs/reliability.md B¦17).",
    "undefined figure": "figure (c)¦99",
}


def unmark(text: str) -> str:
    return text.replace(MARK, "")


@pytest.mark.parametrize("text", OFFENDING.values(), ids=OFFENDING.keys())
def test_scanner_refuses(index, text):
    assert MARK in text and offences(unmark("wagtail_klarna_paywall/example.p¦y"), text, index) == []
    assert offences(unmark("wagtail_klarna_paywall/example.p¦y"), unmark(text), index)


@pytest.mark.parametrize(
    "text",
    [
        "never re-sent (docs/payway-contract.md#never-re-send).",
        "see docs/payway-contract.md#current-account-v3me and docs/payway-contract.md",
        'the 403 classes (docs/payway-contract.md, "Errors"; docs/payway-contract.md, section "Tokens")',
        "refused (docs/reliability.md B10, B11; F01-F06; figure (c)2).",
        "held by tests/test_docs.py::test_scanner_refuses and test_views.py",
        "the template wagtail_klarna_paywall/includes/base.html",
        "{% include 'wagtailadmin/shared/header.html' %} and response.json() and django.utils.html",
        "Klarna's https://x.klarnacdn.net/kp/lib/v1/api.js and https://example.com/notes.md",
        "README.md and ../README.md from docs/, LICENSE",
        "the contract of a package, the reference implementation, a catalogue of offers",
    ],
)
def test_scanner_accepts(index, text):
    assert offences(unmark("docs/example.m¦d"), text, index) == []


def test_decided_in_checker_refuses_missing_files_and_names(index):
    text = (
        "- **A rule**: assumed. Decided in: `wagtail_klarna_paywall/payway/client.py` `_api_error` and\n"
        "  `NO_SUCH_NAME`.\n"
        "- **Another**: assumed. Decided in: `wagtail_klarna_paywall/nowhere.p¦y` `anything`.\n"
        "- **Fine**: assumed. Decided in: `wagtail_klarna_paywall/purchase/attempts.py` `previous_order`.\n"
    )
    found = decided_in_offences(unmark(text), index)
    assert len(found) == 2
    assert "NO_SUCH_NAME" in found[0]
    assert "nowhere.py" in found[1]


def test_anchor_is_githubs():
    assert anchor("Current account (/v3/me)") == "current-account-v3me"
    assert anchor("place_order and place_trial_order") == "place_order-and-place_trial_order"
    assert anchor("Account-sync flags") == "account-sync-flags"
