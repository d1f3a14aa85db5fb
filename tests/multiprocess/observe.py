"""Observers installed in the profile's workers by ``tests/multiprocess/settings.py`` (never in a site)."""

from __future__ import annotations

import os
import threading

WORKER_HEADER = "X-Test-Worker"


def worker_header(get_response):
    """Middleware: name the worker process that answered."""

    def middleware(request):
        response = get_response(request)
        response[WORKER_HEADER] = str(os.getpid())
        return response

    return middleware


def connects_key(prefix: str) -> str:
    return f"{prefix}:observe:payway-connects"


def count_payway_connects(redis_url: str, prefix: str) -> None:
    """Count, per worker process, the TCP connections urllib3 opens (the Payway client's pool: one connect
    per new pooled socket). The counts go to a Redis hash so the benchmark can read every worker's."""
    import redis
    import urllib3.connection

    client = redis.Redis.from_url(redis_url)
    key = connects_key(prefix)
    original = urllib3.connection.HTTPConnection.connect
    lock = threading.Lock()

    def connect(conn):
        result = original(conn)
        with lock:
            client.hincrby(key, str(os.getpid()), 1)
        return result

    urllib3.connection.HTTPConnection.connect = connect
