"""The fake's threaded server (fake/server.py): replies on a keep-alive connection are not held back by a
delayed ACK, which would add about 40 ms to every Payway call a benchmark measures."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from django.core.servers.basehttp import WSGIRequestHandler

from wagtail_klarna_paywall.fake.server import NoDelayWSGIServer

#: Linux delays an ACK by at least 40 ms; a reply on loopback takes well under a millisecond.
DELAYED_ACK_SECONDS = 0.040


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


class RecordingServer(NoDelayWSGIServer):
    """Notes TCP_NODELAY as each accepted connection has it when the handler gets it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.nodelay: list[int] = []

    def get_request(self):
        connection, address = super().get_request()
        self.nodelay.append(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return connection, address


def small_json(environ, start_response):
    """A Payway-sized JSON answer: the status line, headers and body go out in separate writes."""
    body = b'{"item": {"order_id": "5e1f0000000000000000b001"}}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    server = RecordingServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=True)
    server.set_app(small_json)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def url(server: RecordingServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/"


def test_every_accepted_connection_has_tcp_nodelay(server):
    for _ in range(2):
        with requests.Session() as session:
            session.trust_env = False
            assert session.get(url(server), timeout=5).status_code == 200

    assert len(server.nodelay) == 2 and all(server.nodelay)


def test_keep_alive_replies_are_not_held_back_by_a_delayed_ack(server):
    with requests.Session() as session:
        session.trust_env = False
        session.get(url(server), timeout=5)  # connect outside the timing
        durations = []
        for _ in range(20):
            started = time.perf_counter()
            assert session.get(url(server), timeout=5).json()["item"]["order_id"]
            durations.append(time.perf_counter() - started)

    # One connection for all 21 requests: the stall this guards against happens only on keep-alive.
    assert len(server.nodelay) == 1
    assert statistics.median(durations) < DELAYED_ACK_SECONDS / 2, durations
