"""No model change may ship without its migration (the package keeps one initial migration until release)."""

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command


@pytest.mark.django_db
def test_no_missing_migrations():
    labels = [
        config.label
        for config in apps.get_app_configs()
        if config.name.startswith(("wagtail_klarna_paywall", "tests."))
    ]
    assert {"wagtail_klarna_paywall", "testapp"} <= set(labels)
    out = StringIO()
    try:
        call_command("makemigrations", *labels, check=True, dry_run=True, stdout=out, stderr=out)
    except SystemExit:  # --check exits 1 when a migration is missing
        pytest.fail(f"Missing migrations:\n{out.getvalue()}")
    assert "No changes detected" in out.getvalue()


def test_package_keeps_one_initial_migration():
    from pathlib import Path

    import wagtail_klarna_paywall

    migrations = Path(wagtail_klarna_paywall.__file__).parent / "migrations"
    assert sorted(p.name for p in migrations.glob("0*.py")) == ["0001_initial.py"]
