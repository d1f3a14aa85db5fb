"""No model change may ship without its migration; the migrations start from one initial migration."""

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
    """One initial migration; model changes since come as numbered migrations after it."""
    from pathlib import Path

    import wagtail_klarna_paywall

    migrations = Path(wagtail_klarna_paywall.__file__).parent / "migrations"
    names = sorted(p.name for p in migrations.glob("0*.py"))
    # One initial migration; changes since then are added after it, never folded back into it.
    assert [name for name in names if name.startswith("0001_")] == ["0001_initial.py"]
    assert names[0] == "0001_initial.py"


#: Wagtail 7.4's last core migration. Migrations made on Wagtail 8 depend on a later one that 7.4 lacks.
WAGTAIL_74_LAST = "0097_baselogentry_uuid_action_timestamp_indexes"


def test_migrations_run_on_wagtail_7_4_too():
    """makemigrations on Wagtail 8 writes a dependency on its newest core migration; 7.4 (the floor of the
    supported range) does not have it. After regenerating a migration, point its wagtailcore dependency
    back at WAGTAIL_74_LAST (the page model itself is handled in apps.py)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    files = [
        root / "wagtail_klarna_paywall/migrations/0001_initial.py",
        root / "tests/testapp/migrations/0001_initial.py",
        root / "sandbox/demo/migrations/0001_initial.py",
    ]
    for path in files:
        lines = [line.strip() for line in path.read_text().splitlines()]
        dependencies = [line for line in lines if line.startswith("('wagtailcore'")]
        assert dependencies == [f"('wagtailcore', '{WAGTAIL_74_LAST}'),"], (path, dependencies)
    # Later migrations need no wagtailcore dependency of their own (0001 has it); one that names a newer
    # core migration would not run on 7.4.
    later = [
        path
        for folder in (
            "wagtail_klarna_paywall/migrations",
            "tests/testapp/migrations",
            "sandbox/demo/migrations",
        )
        for path in sorted((root / folder).glob("0*.py"))
        if not path.name.startswith("0001_")
    ]
    for path in later:
        for line in path.read_text().splitlines():
            line = line.strip()
            if line.startswith("('wagtailcore'"):
                assert f"'{WAGTAIL_74_LAST}'" in line or line < f"('wagtailcore', '{WAGTAIL_74_LAST}'", (
                    path,
                    line,
                )
