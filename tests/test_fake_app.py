"""The fake Payway is an app of its own: its templates and static files live under fake/, namespaced by its
label, and nothing of the plugin outside fake/ names them (a site without the fake installed loses nothing
but the fake)."""

from __future__ import annotations

from pathlib import Path

from django.apps import apps
from django.contrib.staticfiles import finders
from django.template.loader import get_template

import wagtail_klarna_paywall

PACKAGE = Path(wagtail_klarna_paywall.__file__).resolve().parent
FAKE = PACKAGE / "fake"
#: The fake app's label, which namespaces its templates and static files.
NAMESPACE = "wagtail_klarna_paywall_fake"


def _files(base: Path) -> list[Path]:
    return [p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]


def test_the_fake_app_label_is_its_namespace():
    assert apps.get_app_config(NAMESPACE).path == str(FAKE)


def test_the_fakes_templates_and_static_files_are_its_own_and_namespaced():
    for folder in ("templates", "static"):
        files = _files(FAKE / folder)
        assert files, f"fake/{folder} is empty"
        assert {f.relative_to(FAKE / folder).parts[0] for f in files} == {NAMESPACE}
    assert get_template(f"{NAMESPACE}/sso_login.html").origin.name.startswith(str(FAKE / "templates"))
    assert finders.find(f"{NAMESPACE}/fake-klarna.js").startswith(str(FAKE / "static"))


def test_the_plugins_own_templates_and_static_files_hold_nothing_of_the_fake():
    names = [f.relative_to(PACKAGE).as_posix() for d in ("templates", "static") for f in _files(PACKAGE / d)]
    assert names and [n for n in names if "fake" in n.lower()] == []


def test_no_code_outside_the_fake_names_its_files():
    """Production code reaches the fake widget only through the KLARNA_SDK_URL setting."""
    outside = [
        f
        for f in _files(PACKAGE)
        if FAKE not in f.parents and f.suffix in (".py", ".html", ".js", ".css", ".txt")
    ]
    needles = (NAMESPACE, "fake-klarna", "fake-sso", "sso_login.html", "fake_login")
    offenders = [
        f"{f.relative_to(PACKAGE)}: {needle}"
        for f in outside
        for needle in needles
        if needle in f.read_text(encoding="utf-8")
    ]
    assert outside and offenders == []


def test_the_fake_runs_as_its_own_process_without_the_plugin_app():
    """``sandbox/run-production`` serves the fake from a process whose only app is the fake (no database,
    no plugin models): nothing the fake imports may load the plugin's models."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="sandbox.settings.fake_payway",
        PYTHONPATH=os.pathsep.join([str(root), str(root / "sandbox")]),
    )
    code = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "import sandbox.fake_payway_urls\n"
        "print(Client().get('/fake-payway/sso/login').status_code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
