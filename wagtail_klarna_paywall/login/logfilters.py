"""Logging filters: SSO2 tokens out of logged request lines.

SSO2 sends the browser to our landing URL with ``?t=<signed answer>``, and that answer may carry the
reader's ticket ``at``. The web server logs the request line, so without help the ticket lands in the
access log. :class:`RedactSSO2Tokens` replaces the value of every token-like query parameter in a record's
message and arguments (``t``, ``at``, ``ticket``, ``token``, ``access_token``, ``refresh_token``,
``id_token``) with ``[redacted]``, whatever URL it is on. Attach it to the loggers that write request
lines: ``django.server`` (runserver), ``django.request``, ``gunicorn.access``; the README shows how.

Plain standard library on purpose: gunicorn loads it from its ``logconfig_dict`` before Django is set up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

#: Query parameters whose values are secrets. Matched case-insensitively, after ``?``, ``&`` or ``;``, or
#: at the start of a bare query string (gunicorn's ``%(q)s`` atom).
TOKEN_PARAMETERS = ("t", "at", "ticket", "token", "access_token", "refresh_token", "id_token")
REDACTED = "[redacted]"

_NAMES = "|".join(TOKEN_PARAMETERS)
_PATTERN = re.compile(
    # In a URL or query string as sent ...
    rf"(?P<lead>(?:^|[?&;])(?:{_NAMES})=)[^&;\s\"'#]*"
    # ... or percent-encoded inside another URL's parameter (a JWT's characters are never encoded).
    rf"|(?P<encoded>(?:%3F|%26)(?:{_NAMES})%3D)[^&%;\s\"'#]*",
    re.IGNORECASE,
)


def _replace(match: re.Match[str]) -> str:
    return (match["lead"] or match["encoded"]) + REDACTED


def redact(text: str) -> str:
    """``text`` with the value of every token-like query parameter replaced."""
    return _PATTERN.sub(_replace, text) if ("=" in text or "%3" in text.upper()) else text


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactSSO2Tokens(logging.Filter):
    """Removes SSO2 tokens from a record's ``msg`` and ``args`` (tuple or mapping); never drops a record.

    The arguments are redacted in place, keeping their type, so formats such as gunicorn's
    ``%({x-forwarded-for}i)s`` still find their (case-insensitive) atoms.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_redact_value(value) for value in args)
        elif isinstance(args, Mapping):
            if isinstance(args, dict):
                for key, value in list(args.items()):
                    if isinstance(value, str):
                        dict.__setitem__(args, key, redact(value))
            else:
                record.args = {key: _redact_value(value) for key, value in args.items()}
        return True
