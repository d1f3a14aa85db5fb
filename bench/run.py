"""Run the benchmarks: ``.venv/bin/python bench/run.py [--quick] [--only render,purchase,catalogue]``.

Sets up its own database (a throwaway SQLite file, or ``--database-url postgres://.../name``, which is
DROPPED and recreated), migrates it, serves the fake Payway on a local thread server, builds the demo
pages, and runs (a) article render, (b) purchase flow, (c) chooser catalogue. Each prints its figures
and ratios against a baseline measured in the same run and writes ``bench/results/<name>.json``.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ("render", "purchase", "catalogue")


def _recreate_postgres(url: str) -> None:
    import dj_database_url
    import psycopg

    config = dj_database_url.parse(url)
    name = config["NAME"]
    if not name or name in ("postgres", "template0", "template1"):
        raise SystemExit("--database-url must name a throwaway database (it is dropped and recreated)")
    admin = psycopg.connect(
        host=config["HOST"] or None,
        port=config["PORT"] or None,
        user=config["USER"] or None,
        password=config["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run, noisier figures)")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS)
    )
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    args = parser.parse_args()
    selected = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(selected) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    sys.path.insert(0, str(ROOT))
    from bench.common import free_port

    tmp = tempfile.mkdtemp(prefix="wkp-bench-")
    database_url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
    if database_url.startswith(("postgres://", "postgresql://")):
        _recreate_postgres(database_url)
    port = free_port()
    os.environ["BENCH_DATABASE_URL"] = database_url
    os.environ["BENCH_FAKE_URL"] = f"http://127.0.0.1:{port}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    try:
        _run(selected, args.quick, port)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(selected: list[str], quick: bool, port: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.common import FakePaywayServer, Site, machine

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    info = machine()
    print(
        f"Machine: {info['cpus']} CPUs, Python {info['python']}, Django {info['django']}, "
        f"Wagtail {info['wagtail']}, {info['database']} (migrated in {time.perf_counter() - started:.0f} s)"
    )
    with FakePaywayServer(port) as server:
        site = Site()
        site.fake_server = server
        if "render" in selected:
            from bench import render

            render.run(site, quick=quick)
        if "purchase" in selected:
            from bench import purchase_flow

            purchase_flow.run(site, quick=quick)
        if "catalogue" in selected:
            from bench import catalogue_reads

            catalogue_reads.run(quick=quick)
    connection.close()
    print(f"\nResults written to {Path(__file__).resolve().parent / 'results'}/ (machine: {info})")


if __name__ == "__main__":
    main()
