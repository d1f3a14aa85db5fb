"""A threaded WSGI server for processes that serve the fake Payway on a thread of their own (the benchmarks).

Django's ``ThreadedWSGIServer`` writes a reply in several small ``send()`` calls (status line, headers,
body). With Nagle's algorithm on, a later write waits until the client acknowledges the earlier one, and
the client holds that ACK back (about 40 ms on Linux) hoping to send it with data of its own: on a
keep-alive connection every reply then stalls for the delayed ACK, which is time no real Payway costs.
``TCP_NODELAY`` on each accepted connection sends every write at once, as gunicorn does for the
production profile's fake.
"""

from __future__ import annotations

import socket
from typing import Any

from django.core.servers.basehttp import ThreadedWSGIServer


class NoDelayWSGIServer(ThreadedWSGIServer):
    """Django's threaded development server with ``TCP_NODELAY`` on every accepted connection."""

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address
