"""Checks that the production profile's PostgreSQL and Redis answer, and creates its database if missing.

Run by ``sandbox/run-production`` with ``DATABASE_URL`` and ``REDIS_URL`` set. Exits 2, saying how to start
the service, when one does not answer.
"""

from __future__ import annotations

import os
import sys

import dj_database_url

POSTGRES_HELP = """\
PostgreSQL does not answer at {where} ({error}).
Start it, for example:
  Debian/Ubuntu:  sudo apt-get install postgresql && sudo pg_ctlcluster <version> main start
  Docker:         docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16
or point DATABASE_URL at yours (postgres://user:password@host:5432/wkp_sandbox)."""

REDIS_HELP = """\
Redis does not answer at {where} ({error}).
Start it, for example:
  Debian/Ubuntu:  sudo apt-get install redis-server   (or: redis-server --daemonize yes --save "")
  Docker:         docker run -d -p 6379:6379 redis:7
or point REDIS_URL at yours (redis://host:6379/0)."""


def ensure_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    config = dj_database_url.parse(url)
    if not config["ENGINE"].endswith("postgresql"):
        raise SystemExit(f"DATABASE_URL must name PostgreSQL for the production profile: {config['ENGINE']}")
    where = f"{config['HOST'] or 'localhost'}:{config['PORT'] or 5432}"
    params = {
        "host": config["HOST"] or None,
        "port": config["PORT"] or None,
        "user": config["USER"] or None,
        "password": config["PASSWORD"] or None,
        "connect_timeout": 3,
    }
    try:
        admin = psycopg.connect(dbname="postgres", autocommit=True, **params)
    except psycopg.OperationalError as err:
        print(POSTGRES_HELP.format(where=where, error=str(err).strip().splitlines()[0]), file=sys.stderr)
        raise SystemExit(2) from None
    with admin:
        name = config["NAME"]
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"==> Created the PostgreSQL database {name!r} at {where}")
        else:
            print(f"==> PostgreSQL database {name!r} at {where}")


def ensure_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as err:
        print(REDIS_HELP.format(where=url, error=err), file=sys.stderr)
        raise SystemExit(2) from None
    print(f"==> Redis at {url}")


if __name__ == "__main__":
    ensure_database(os.environ["DATABASE_URL"])
    ensure_redis(os.environ["REDIS_URL"])
