"""System checks on WAGTAIL_KLARNA_PAYWALL: each id fires on a bad value, quiet on a good one (S09)."""

from __future__ import annotations

import os
import tempfile

import pytest
from django.core.checks import Error, Warning, run_checks
from django.test import override_settings

from tests.factories import STUB
from wagtail_klarna_paywall.checks import TAG, is_loopback_url
from wagtail_klarna_paywall.conf import PAYWAY_PRODUCTION_API_URL, PAYWAY_STAGE_API_URL, PAYWAY_STAGE_SSO_URL

VALID = {
    "API_URL": PAYWAY_STAGE_API_URL,
    "SSO_URL": PAYWAY_STAGE_SSO_URL,
    "CLIENT_ID": "client-id",
    "CLIENT_SECRET": "client-secret-SENTINEL",
    "ORGANISATION_ID": "org",
}
#: A value that removes the key from the settings dict.
_DELETE = object()


def messages_for(debug: bool = False, **changes):
    """Run the package's registered checks (through Django, so registration is tested too)."""
    config = {**VALID, **changes}
    for key in [key for key, value in changes.items() if value is _DELETE]:
        del config[key]
    with override_settings(WAGTAIL_KLARNA_PAYWALL=config, DEBUG=debug):
        return run_checks(tags=[TAG])


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_valid_settings_pass():
    assert messages_for() == []


def test_checks_are_registered_with_the_security_tag():
    with override_settings(WAGTAIL_KLARNA_PAYWALL={**VALID, "CLIENT_ID": ""}):
        assert "wagtail_klarna_paywall.E001" in ids(run_checks(tags=["security"]))


def test_production_settings_pass():
    assert messages_for(API_URL=PAYWAY_PRODUCTION_API_URL, SSO_URL="https://sso.worldoftulo.com") == []


# -- E001 credentials --------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["CLIENT_ID", "CLIENT_SECRET"])
@pytest.mark.parametrize("how", ["", None, _DELETE])
def test_e001_missing_credentials(missing, how):
    messages = messages_for(**{missing: how})

    assert ids(messages) == ["wagtail_klarna_paywall.E001"]
    assert isinstance(messages[0], Error)
    assert missing in messages[0].msg


def test_e001_does_not_echo_the_secret():
    messages = messages_for(CLIENT_ID="")

    assert "client-secret-SENTINEL" not in str(messages[0])


@pytest.mark.parametrize(
    "api_url", ["http://127.0.0.1:8000/fake-payway", "http://localhost:8000/fake", "http://[::1]/"]
)
def test_e001_not_raised_for_the_embedded_fake_on_loopback(api_url):
    assert messages_for(API_URL=api_url, CLIENT_ID="", CLIENT_SECRET="") == []


# -- E002 / E003 URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "check_id"), [("API_URL", "E002"), ("SSO_URL", "E003")])
def test_plain_http_outside_debug_is_an_error(name, check_id):
    messages = messages_for(**{name: "http://payway-api.stage.adeprimo.se"})

    assert ids(messages) == [f"wagtail_klarna_paywall.{check_id}"]
    assert isinstance(messages[0], Error)


@pytest.mark.parametrize("name", ["API_URL", "SSO_URL"])
def test_plain_http_is_allowed_in_debug(name):
    assert messages_for(debug=True, **{name: "http://payway.internal"}) == []


@pytest.mark.parametrize("name", ["API_URL", "SSO_URL"])
def test_plain_http_is_allowed_on_loopback(name):
    assert messages_for(**{name: "http://127.0.0.1:8000/fake-payway"}) == []


@pytest.mark.parametrize(("name", "check_id"), [("API_URL", "E002"), ("SSO_URL", "E003")])
@pytest.mark.parametrize("url", ["", None, "payway.example", "/relative", "ftp://payway.example"])
def test_urls_that_are_not_absolute_http_are_errors_even_in_debug(name, check_id, url):
    assert f"wagtail_klarna_paywall.{check_id}" in ids(messages_for(debug=True, **{name: url}))


# -- E004 / W001 timeouts ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CONNECT_TIMEOUT", "READ_TIMEOUT"])
@pytest.mark.parametrize("value", [None, 0, -1, "5", True])
def test_e004_missing_or_unusable_timeout(name, value):
    messages = messages_for(**{name: value})

    assert ids(messages) == ["wagtail_klarna_paywall.E004"]
    assert name in messages[0].msg


@pytest.mark.parametrize("value", [0.5, 10, 60])
def test_e004_and_w001_quiet_on_sane_timeouts(value):
    assert messages_for(CONNECT_TIMEOUT=value, READ_TIMEOUT=value) == []


def test_w001_read_timeout_above_60_seconds():
    messages = messages_for(READ_TIMEOUT=61)

    assert ids(messages) == ["wagtail_klarna_paywall.W001"]
    assert isinstance(messages[0], Warning)


# -- E005 redirect allow-list ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hosts",
    [[], (), None, "klarna.com", ["https://klarna.com"], ["klarna.com/path"], [""], ["klarna.com", 5]],
)
def test_e005_empty_or_malformed_redirect_hosts(hosts):
    assert ids(messages_for(KLARNA_REDIRECT_HOSTS=hosts)) == ["wagtail_klarna_paywall.E005"]


@pytest.mark.parametrize("hosts", [["klarna.com"], ("klarna.com", "playground.klarna.com")])
def test_e005_quiet_on_host_names(hosts):
    assert messages_for(KLARNA_REDIRECT_HOSTS=hosts) == []


# -- E006 Klarna SDK URL -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://x.klarnacdn.net/kp/lib/v1/api.js", "//x.klarnacdn.net/api.js", "", None]
)
def test_e006_sdk_url_must_be_https(url):
    assert ids(messages_for(debug=True, KLARNA_SDK_URL=url)) == ["wagtail_klarna_paywall.E006"]


@pytest.mark.parametrize(
    "url",
    [
        "https://x.klarnacdn.net/kp/lib/v1/api.js",
        # Served from this site: a static file path (the fake widget) or a path.
        "wagtail_klarna_paywall_fake/fake-klarna.js",
        "/static/sdk.js",
        # A loopback host is this machine (the sandbox), as for API_URL.
        "http://127.0.0.1:8000/static/sdk.js",
    ],
)
def test_e006_quiet_on_https_sdk_url_or_a_path_of_this_site(url):
    assert messages_for(KLARNA_SDK_URL=url) == []


# -- E007 not Klarna's SDK against production --------------------------------------------------------

FAKE_WIDGET = "wagtail_klarna_paywall_fake/fake-klarna.js"


@pytest.mark.parametrize("api_url", [PAYWAY_PRODUCTION_API_URL, PAYWAY_PRODUCTION_API_URL + "/"])
@pytest.mark.parametrize(
    "sdk_url",
    [FAKE_WIDGET, "/static/sdk.js", "https://cdn.example.com/api.js", "https://klarna.com.evil/a.js"],
)
def test_e007_not_klarnas_sdk_against_production(api_url, sdk_url):
    messages = messages_for(API_URL=api_url, KLARNA_SDK_URL=sdk_url)
    assert ids(messages) == ["wagtail_klarna_paywall.E007"]
    assert isinstance(messages[0], Error)


@pytest.mark.parametrize(
    ("api_url", "sdk_url"),
    [
        (PAYWAY_STAGE_API_URL, FAKE_WIDGET),
        ("http://127.0.0.1:8000/fake-payway", FAKE_WIDGET),
        (PAYWAY_PRODUCTION_API_URL, "https://x.klarnacdn.net/kp/lib/v1/api.js"),
        (PAYWAY_PRODUCTION_API_URL, "https://js.klarna.com/web-sdk/v1/klarna.js"),
    ],
)
def test_e007_quiet_otherwise(api_url, sdk_url):
    assert messages_for(API_URL=api_url, KLARNA_SDK_URL=sdk_url) == []


# -- E009 / W002 / W003 ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [["API_URL"], "https://payway.example"])
def test_e009_settings_must_be_a_dict(value):
    with override_settings(WAGTAIL_KLARNA_PAYWALL=value):
        assert ids(run_checks(tags=[TAG])) == ["wagtail_klarna_paywall.E009"]


def test_w002_unknown_key_suggests_the_close_one():
    messages = messages_for(READ_TIMOUT=5)

    assert ids(messages) == ["wagtail_klarna_paywall.W002"]
    assert isinstance(messages[0], Warning)
    assert "'READ_TIMOUT'" in messages[0].msg
    assert messages[0].hint == "Did you mean 'READ_TIMEOUT'?"


def test_w002_quiet_on_known_keys():
    assert messages_for(TRUSTED_PROXY_COUNT=1, KLARNA_SDK_URL=VALID["API_URL"] + "/a.js") == []


def test_w003_sso2_without_organisation_id():
    assert ids(messages_for(ORGANISATION_ID="")) == ["wagtail_klarna_paywall.W003"]


#: A site's own identity provider (importable, so E014 is quiet).
SITE_PROVIDER = STUB


def test_w003_quiet_with_another_identity_provider():
    assert messages_for(ORGANISATION_ID="", IDENTITY_PROVIDER=SITE_PROVIDER) == []


# -- E014 identity provider -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "myproject.identity.Provider",  # no such module
        "wagtail_klarna_paywall.login.sso.SSO2IdentityProvder",  # a typo in the class name
        "SSO2IdentityProvider",  # not a dotted path
        42,
    ],
)
def test_e014_an_identity_provider_that_does_not_load_is_an_error_at_startup(path):
    messages = messages_for(IDENTITY_PROVIDER=path)

    assert ids(messages) == ["wagtail_klarna_paywall.E014"]
    assert isinstance(messages[0], Error)
    assert "IDENTITY_PROVIDER" in messages[0].msg


def test_e014_a_provider_that_cannot_be_built_is_an_error():
    # A function that needs an argument: it imports, but the provider cannot be built from it.
    assert ids(messages_for(IDENTITY_PROVIDER="wagtail_klarna_paywall.login.identity.client_ip")) == [
        "wagtail_klarna_paywall.E014"
    ]


@pytest.mark.parametrize("path", [SITE_PROVIDER, "wagtail_klarna_paywall.login.sso.SSO2IdentityProvider", ""])
def test_e014_quiet_for_a_provider_that_loads_or_none(path):
    assert "wagtail_klarna_paywall.E014" not in ids(messages_for(IDENTITY_PROVIDER=path))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000/x", True),
        ("http://127.8.9.10/", True),
        ("http://localhost/", True),
        ("http://app.localhost/", True),
        ("http://[::1]:8000/", True),
        ("https://payway.test", False),
        ("http://10.0.0.1/", False),
        ("http://localhost.example.com/", False),
        (None, False),
    ],
)
def test_is_loopback_url(url, expected):
    assert is_loopback_url(url) is expected


def _environment_ids(**overrides) -> set[str]:
    with override_settings(**overrides):
        return {m.id for m in run_checks(tags=[TAG])}


def test_e010_atomic_requests_breaks_the_exactly_once_gate(settings):
    databases = {alias: {**db, "ATOMIC_REQUESTS": True} for alias, db in settings.DATABASES.items()}
    assert "wagtail_klarna_paywall.E010" in _environment_ids(DATABASES=databases)


def test_e010_quiet_with_autocommit_requests():
    assert "wagtail_klarna_paywall.E010" not in _environment_ids()


def test_e011_signed_cookie_sessions_would_put_identity_tokens_in_the_browser():
    engine = "django.contrib.sessions.backends.signed_cookies"
    assert "wagtail_klarna_paywall.E011" in _environment_ids(SESSION_ENGINE=engine)
    custom = {"IDENTITY_PROVIDER": SITE_PROVIDER}
    with override_settings(WAGTAIL_KLARNA_PAYWALL=custom):
        assert "wagtail_klarna_paywall.E011" not in _environment_ids(SESSION_ENGINE=engine)


def test_e011_quiet_with_server_side_sessions():
    assert "wagtail_klarna_paywall.E011" not in _environment_ids()


# -- deployment checks: more than one process (E012, E013, W004, W005) ----------------------------------

LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
DUMMY = "django.core.cache.backends.dummy.DummyCache"
REDIS = "django.core.cache.backends.redis.RedisCache"
FILE = "django.core.cache.backends.filebased.FileBasedCache"
DB_SESSIONS = "django.contrib.sessions.backends.db"
CACHED_DB_SESSIONS = "django.contrib.sessions.backends.cached_db"
#: A file-based cache creates its directory: outside the checkout.
_SCRATCH = os.path.join(tempfile.gettempdir(), "wkp-test-checks-cache")


def _deploy_messages(caches=None, engine=CACHED_DB_SESSIONS, paywall=None, **overrides):
    """The package's checks with --deploy, for these caches (alias -> backend) and session engine."""
    caches = caches or {"default": REDIS}
    config = {
        alias: {"BACKEND": backend, "LOCATION": "redis://127.0.0.1:1/0" if backend == REDIS else _SCRATCH}
        for alias, backend in caches.items()
    }
    with override_settings(
        CACHES=config, SESSION_ENGINE=engine, WAGTAIL_KLARNA_PAYWALL={**VALID, **(paywall or {})}, **overrides
    ):
        return run_checks(tags=[TAG], include_deployment_checks=True)


def _by_id(messages, check_id):
    return [m for m in messages if m.id == check_id]


def test_deploy_checks_quiet_on_a_shared_cache_and_cached_db_sessions():
    """The production profile's shape: Redis, cached_db sessions (no connection is made by the check)."""
    assert ids(_deploy_messages()) == []


def test_deploy_checks_do_not_run_without_deploy():
    with override_settings(CACHES={"default": {"BACKEND": LOCMEM}}, SESSION_ENGINE=DB_SESSIONS):
        assert {"wagtail_klarna_paywall.E012", "wagtail_klarna_paywall.W004"}.isdisjoint(
            ids(run_checks(tags=[TAG]))
        )


@pytest.mark.parametrize("backend", [LOCMEM, DUMMY])
def test_e012_process_local_cache_names_every_guarantee_it_breaks(backend):
    [message] = _by_id(_deploy_messages({"default": backend}), "wagtail_klarna_paywall.E012")
    assert isinstance(message, Error)
    assert backend.rsplit(".", 1)[-1] in message.msg
    assert "RATE_LIMITS" in message.hint
    assert "paywall" in message.hint
    assert "RedisCache" in message.hint
    # Said plainly: the money guarantee does not depend on the cache.
    assert "bought twice" in message.hint


def test_e012_names_the_landing_while_its_single_use_record_is_in_the_cache():
    from wagtail_klarna_paywall import checks

    [message] = _by_id(_deploy_messages({"default": LOCMEM}), "wagtail_klarna_paywall.E012")
    assert ("SSO2 landing" in message.hint) is checks._landing_single_use_in_cache()


def test_e012_without_rate_limits_still_needs_the_render_cache_shared():
    [message] = _by_id(
        _deploy_messages({"default": LOCMEM}, paywall={"RATE_LIMITS": None}), "wagtail_klarna_paywall.E012"
    )
    assert "RATE_LIMITS" not in message.hint
    assert "paywall" in message.hint


def test_e012_follows_the_plugins_cache_alias():
    caches = {"default": LOCMEM, "shared": REDIS}
    assert _by_id(_deploy_messages(caches, paywall={"CACHE": "shared"}), "wagtail_klarna_paywall.E012") == []
    caches = {"default": REDIS, "local": LOCMEM}
    assert _by_id(_deploy_messages(caches, paywall={"CACHE": "local"}), "wagtail_klarna_paywall.E012")


def test_w005_file_based_cache_is_host_local():
    messages = _deploy_messages({"default": FILE})
    [message] = _by_id(messages, "wagtail_klarna_paywall.W005")
    assert isinstance(message, Warning)
    assert "one host" in message.msg
    assert not _by_id(messages, "wagtail_klarna_paywall.E012")


@pytest.mark.parametrize("engine", ["django.contrib.sessions.backends.cache", CACHED_DB_SESSIONS])
def test_e013_cache_backed_sessions_on_a_process_local_cache(engine):
    caches = {"default": LOCMEM, "shared": REDIS}
    messages = _deploy_messages(caches, engine=engine, paywall={"CACHE": "shared"})
    [message] = _by_id(messages, "wagtail_klarna_paywall.E013")
    assert isinstance(message, Error)
    assert "SESSION_CACHE_ALIAS" in message.hint
    with override_settings(SESSION_CACHE_ALIAS="shared"):
        assert not _by_id(
            _deploy_messages(caches, engine=engine, paywall={"CACHE": "shared"}),
            "wagtail_klarna_paywall.E013",
        )


def test_w004_database_sessions_with_logged_in_readers_cost_a_measured_slowdown():
    [message] = _by_id(_deploy_messages(engine=DB_SESSIONS), "wagtail_klarna_paywall.W004")
    assert isinstance(message, Warning)
    assert "1.17" in message.hint and "1.05" in message.hint
    assert "cached_db" in message.hint


@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.cache",
        CACHED_DB_SESSIONS,
        "django.contrib.sessions.backends.signed_cookies",
    ],
)
def test_w004_quiet_with_sessions_that_need_no_query(engine):
    assert not _by_id(_deploy_messages(engine=engine), "wagtail_klarna_paywall.W004")


def test_w004_quiet_without_logged_in_readers():
    messages = _deploy_messages(engine=DB_SESSIONS, paywall={"IDENTITY_PROVIDER": ""})
    assert not _by_id(messages, "wagtail_klarna_paywall.W004")


def test_the_production_profile_passes_the_multiprocess_checks():
    """sandbox/sandbox/settings/production.py, as sandbox/run-production serves it."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="sandbox.settings.production", PYTHONPATH=str(root))
    result = subprocess.run(
        [sys.executable, str(root / "sandbox" / "manage.py"), "check", "--deploy", "--tag", TAG],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    for check_id in ("E012", "E013", "W004", "W005"):
        assert f"wagtail_klarna_paywall.{check_id}" not in output
