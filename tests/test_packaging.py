"""The wheel a publisher installs: templates, static files and translations in; tests and sandbox out."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "wagtail_klarna_paywall"
# Data files (not Python) that must travel with the package: the plugin's, and the fake app's own.
DATA_DIRS = ("templates", "static", "locale", "fake/templates", "fake/static")


def _package_data_files() -> set[str]:
    files = set()
    for name in DATA_DIRS:
        base = PACKAGE / name
        for path in base.rglob("*") if base.is_dir() else ():
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".swp"):
                files.add(path.relative_to(ROOT).as_posix())
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """Build the wheel from a copy of the tree, so parallel runs never share a build/ directory."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".tox", "build", "dist", "*.egg-info", "__pycache__", "node_modules", "*.sqlite3"
        ),
    )
    out = tmp / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            ".",
        ],
        cwd=src,
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("wagtail_klarna_paywall-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


@pytest.fixture(scope="module")
def names(wheel) -> set[str]:
    return set(wheel.namelist())


@pytest.mark.slow
def test_wheel_holds_every_template_static_and_locale_file(names):
    expected = _package_data_files()
    assert any(name.endswith(".html") for name in expected), "the package has no templates yet"
    assert expected <= names, sorted(expected - names)


@pytest.mark.slow
def test_wheel_holds_the_fake_widget_and_templates(names):
    assert "wagtail_klarna_paywall/fake/static/wagtail_klarna_paywall_fake/fake-klarna.js" in names
    assert "wagtail_klarna_paywall/fake/templates/wagtail_klarna_paywall_fake/sso_login.html" in names
    assert any(n.startswith("wagtail_klarna_paywall/templates/wagtail_klarna_paywall/") for n in names)
    if (PACKAGE / "static/wagtail_klarna_paywall/purchase.js").exists():
        assert "wagtail_klarna_paywall/static/wagtail_klarna_paywall/purchase.js" in names
    # Swedish is compiled once, near a release; from then on both files must ship.
    if any(path.is_file() for path in (PACKAGE / "locale").rglob("*")):
        assert "wagtail_klarna_paywall/locale/sv/LC_MESSAGES/django.po" in names
        assert "wagtail_klarna_paywall/locale/sv/LC_MESSAGES/django.mo" in names


@pytest.mark.slow
def test_wheel_holds_every_module_and_the_migration(names):
    modules = {
        path.relative_to(ROOT).as_posix() for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts
    }
    assert "wagtail_klarna_paywall/migrations/0001_initial.py" in modules
    assert modules <= names, sorted(modules - names)


@pytest.mark.slow
def test_wheel_leaves_out_tests_sandbox_and_bench(names):
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level <= {"wagtail_klarna_paywall", f"wagtail_klarna_paywall-{_version()}.dist-info"}, (
        top_level
    )
    assert not [n for n in names if n.endswith((".pyc", ".sqlite3"))]


@pytest.mark.slow
def test_wheel_metadata(wheel):
    (meta_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    meta = Parser().parsestr(wheel.read(meta_name).decode())
    assert meta["Name"] == "wagtail-klarna-paywall"
    assert meta["Version"] == _version()
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert meta["Requires-Python"] == ">=3.10"
    runtime = {
        req.split(">", 1)[0].split("<", 1)[0].strip().lower()
        for req in meta.get_all("Requires-Dist")
        if "extra ==" not in req
    }
    # Only what is justified at run time (issue 2): the framework, HTTP, and JWTs for SSO2.
    assert runtime == {"django", "wagtail", "requests", "pyjwt"}, runtime
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wheel.namelist())


def _version() -> str:
    from wagtail_klarna_paywall import __version__

    return __version__


def test_readme_documents_every_setting():
    """The README's configuration reference names every key of ``conf.DEFAULTS`` (and no stale ones)."""
    from wagtail_klarna_paywall.conf import DEFAULTS

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.MULTILINE))
    assert documented == set(DEFAULTS), (set(DEFAULTS) - documented, documented - set(DEFAULTS))
