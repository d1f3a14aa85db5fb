"""SSO2 tokens never reach a logged request line (runserver, Django's request log, gunicorn's access log)."""

from __future__ import annotations

import io
import logging
import logging.config

import pytest

from wagtail_klarna_paywall.login.logfilters import REDACTED, RedactSSO2Tokens, redact

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzaWQiOiJzIiwic3RzIjoibG9nZ2VkaW4iLCJhdCI6IlRJQ0tFVCJ9.c2lnbmF0dXJl"
TICKET = "TICKET-51b2"
LANDING = f"/klarna-paywall/sso/landing/?t={JWT}&r=https%3A%2F%2Fsite%2Fklarna-paywall%2Fsso%2Fcomplete%2F"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"GET {LANDING} HTTP/1.1", f"GET /klarna-paywall/sso/landing/?t={REDACTED}&r=https%3A%2F%2Fsite"),
        (f"t={JWT}&r=%2F", f"t={REDACTED}&r=%2F"),  # gunicorn's %(q)s: a bare query string
        (f"/x/?next=%2F&at={TICKET}&T={JWT}", f"/x/?next=%2F&at={REDACTED}&T={REDACTED}"),
        (f"/x/?ticket={TICKET};token={JWT}", f"/x/?ticket={REDACTED};token={REDACTED}"),
        (f"/x/?access_token={JWT}&refresh_token={TICKET}", f"/x/?access_token={REDACTED}&refresh_token="),
        (f"https://sso/identify%3Ft%3D{JWT}%26r%3D1", f"https://sso/identify%3Ft%3D{REDACTED}%26r%3D1"),
    ],
)
def test_token_values_are_redacted(line, expected):
    redacted = redact(line)
    assert redacted.startswith(expected)
    assert JWT not in redacted and TICKET not in redacted


@pytest.mark.parametrize(
    "line",
    ["/nyheter/?format=json&state=abc&start=1", "GET /kop/ HTTP/1.1", "at the landing", "t = 3", ""],
)
def test_other_text_is_left_alone(line):
    assert redact(line) == line


def _logger(name: str, stream: io.StringIO, fmt: str = "%(message)s") -> logging.Logger:
    logger = logging.getLogger(name)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(RedactSSO2Tokens())
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_runserver_request_lines_are_token_free():
    """django.server logs ``'"%s" %s %s', requestline, status, size``: the token is in the arguments."""
    stream = io.StringIO()
    logger = _logger("tests.logfilters.django_server", stream)
    logger.info('"%s" %s %s', f"GET {LANDING} HTTP/1.1", "302", "0")
    assert stream.getvalue().startswith(f'"GET /klarna-paywall/sso/landing/?t={REDACTED}&r=')
    assert JWT not in stream.getvalue()


def test_preformatted_messages_are_token_free():
    stream = io.StringIO()
    _logger("tests.logfilters.preformatted", stream).warning(f"Bad Request: {LANDING}")
    assert JWT not in stream.getvalue() and f"t={REDACTED}" in stream.getvalue()


class SafeAtoms(dict):
    """Like gunicorn's atoms wrapper: case-insensitive ``{header}i`` keys, ``-`` for a missing atom."""

    def __getitem__(self, key):
        if key.startswith("{"):
            return super().get(key.lower(), "-")
        return super().get(key, "-")


def test_gunicorn_access_lines_are_token_free():
    """gunicorn logs ``access_log_format % atoms``: a mapping the filter must redact in place, keeping its
    type so ``%({x-forwarded-for}i)s`` still finds the header."""
    stream = io.StringIO()
    logger = _logger("tests.logfilters.gunicorn_access", stream)
    atoms = SafeAtoms(
        {
            "h": "10.0.0.1",
            "r": f"GET {LANDING} HTTP/1.1",
            "q": LANDING.split("?", 1)[1],
            "U": "/klarna-paywall/sso/landing/",
            "s": 302,
            "f": f"https://site{LANDING}",
            "{x-forwarded-for}i": "203.0.113.9",
            "{raw_uri}e": LANDING,
        }
    )
    logger.info('%(h)s "%(r)s" %(s)s "%(f)s" q=%(q)s fwd=%({X-Forwarded-For}i)s raw=%({raw_uri}e)s', atoms)
    line = stream.getvalue()
    assert JWT not in line
    assert line.count(f"t={REDACTED}") == 4
    assert "fwd=203.0.113.9" in line and " 302 " in line


def test_filter_never_drops_a_record():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain %s", ("text",), None)
    assert RedactSSO2Tokens().filter(record) is True and record.getMessage() == "plain text"


def test_dictconfig_factory_path_works():
    """The dotted path the README and the sandbox give ``()`` in LOGGING / logconfig_dict.

    Resolved the way dictConfig resolves it, without reconfiguring this process's logging.
    """
    configurator = logging.config.DictConfigurator({})
    log_filter = configurator.configure_filter(
        {"()": "wagtail_klarna_paywall.login.logfilters.RedactSSO2Tokens"}
    )
    stream = io.StringIO()
    logger = _logger("tests.logfilters.dictconfig", stream)
    logger.handlers[0].filters = [log_filter]
    logger.warning("%s", LANDING)
    assert JWT not in stream.getvalue() and f"t={REDACTED}" in stream.getvalue()


def test_sandbox_wires_the_filter_into_its_request_loggers():
    from sandbox.sandbox.settings import base

    filters = base.LOGGING["filters"]
    name = next(k for k, v in filters.items() if v["()"].endswith("logfilters.RedactSSO2Tokens"))
    assert name in base.LOGGING["handlers"]["django.server"]["filters"]
    assert base.LOGGING["loggers"]["django.server"]["handlers"] == ["django.server"]
    assert name in base.LOGGING["loggers"]["django.request"]["filters"]


GUNICORN_PROBE = r"""
import logging, logging.config, re, sys
from pathlib import Path
from gunicorn.glogging import CONFIG_DEFAULTS, SafeAtoms

readme = Path(sys.argv[1]).read_text()
block = re.search(r"```python\n# gunicorn.conf.py\n(.*?)```", readme, re.S).group(1)
namespace = {}
exec(block, namespace)
config = dict(CONFIG_DEFAULTS)
config.update(namespace["logconfig_dict"])  # what gunicorn's Logger.setup does
logging.config.dictConfig(config)
line = "GET " + sys.argv[2] + " HTTP/1.1"
atoms = SafeAtoms({"h": "10.0.0.1", "r": line, "s": 302, "b": "0", "f": "-", "a": "UA"})
logging.getLogger("gunicorn.access").info('%(h)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"', atoms)
logging.getLogger("gunicorn.error").error("Error handling request %s", sys.argv[2])
"""


def test_the_readme_gunicorn_configuration_redacts_access_and_error_lines():
    """The README's ``logconfig_dict``, applied as gunicorn applies it, in a process of its own."""
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("gunicorn")
    readme = Path(__file__).resolve().parents[1] / "README.md"
    result = subprocess.run(
        [sys.executable, "-c", GUNICORN_PROBE, str(readme), LANDING],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert JWT not in result.stdout + result.stderr
    assert f'"GET /klarna-paywall/sso/landing/?t={REDACTED}&r=' in result.stdout
    assert f"Error handling request /klarna-paywall/sso/landing/?t={REDACTED}" in result.stderr
