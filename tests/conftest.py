"""Fixtures shared by the whole suite; what they build comes from ``tests/factories.py``.

Sub-suites (``browser/``, ``concurrency/``, ``multiprocess/``) add the fixtures only they need in their own
``conftest.py``. A module opts in to a fixture that changes settings for all its tests with
``pytest.mark.usefixtures`` (e.g. ``english_pages``, ``no_identity``, ``roomy_cache``, ``fresh_fake``).
"""

import pytest
import responses
from django.core.cache import caches
from django.db import transaction
from django.test import Client
from wagtail.models import Site

from tests import factories
from tests.factories import ACCOUNT_ID, ME_URL, SYSTEM_TOKEN, TOKEN_URL
from wagtail_klarna_paywall import signals
from wagtail_klarna_paywall.fake import state as fake_state
from wagtail_klarna_paywall.payway import reset_client


@pytest.fixture(autouse=True)
def _fresh_client_and_cache():
    """Each test gets a new Payway client (no cached token) and an empty cache."""
    reset_client()
    for cache in caches.all():
        cache.clear()
    yield
    reset_client()


# -- the shop and a fake Payway behind the real client -------------------------------------------------


@pytest.fixture
def shop(db):
    return factories.build_shop()


@pytest.fixture(scope="module")
def module_shop(django_db_setup, django_db_blocker):
    """The shop built once for a module; everything is rolled back when the module is done."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        # A test case's own transaction, as Django's TestCase marks its class-level ones: the flow's
        # durable blocks, and its refusal to place an order inside a caller's transaction, let it be.
        outer._from_testcase = True
        outer.__enter__()
        try:
            yield factories.build_shop()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def payway():
    """Fake Payway: a system token and happy create_session/place_order answers (tests add errors)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, TOKEN_URL, json={"access_token": SYSTEM_TOKEN, "expires_in": 3600})
        # Whose identity token it is (the one-order-per-reader guard keys logged-in readers on it).
        rsps.add(responses.GET, ME_URL, json={"item": {"id": ACCOUNT_ID, "email": "acc@example.com"}})
        yield rsps


@pytest.fixture
def signal_log():
    log = []

    def receiver(signal):
        def handler(sender, attempt, **kwargs):
            log.append((signal, attempt.reference, attempt.state))

        return handler

    handlers = {
        "started": receiver("started"),
        "completed": receiver("completed"),
        "failed": receiver("failed"),
    }
    signals.purchase_started.connect(handlers["started"])
    signals.purchase_completed.connect(handlers["completed"])
    signals.purchase_failed.connect(handlers["failed"])
    yield log
    signals.purchase_started.disconnect(handlers["started"])
    signals.purchase_completed.disconnect(handlers["completed"])
    signals.purchase_failed.disconnect(handlers["failed"])


# -- readers ---------------------------------------------------------------------------------------------


@pytest.fixture
def english_pages(settings):
    """The browser asks for Swedish (Payway must receive ``sv-SE``), but these tests read the English
    texts: offer the site in English only. Swedish rendering is tested in test_i18n."""
    settings.LANGUAGES = [("en", "English")]


@pytest.fixture
def no_identity(settings):
    """Readers are anonymous unless a test logs them in through the stub provider."""
    settings.WAGTAIL_KLARNA_PAYWALL = {**settings.WAGTAIL_KLARNA_PAYWALL, "IDENTITY_PROVIDER": factories.STUB}
    factories.StubIdentityProvider.token = None
    factories.StubIdentityProvider.forgotten = 0
    yield
    factories.StubIdentityProvider.token = None


@pytest.fixture
def logged_in(no_identity):
    """The reader is logged in through the stub identity provider (set up by ``no_identity`` first)."""
    factories.StubIdentityProvider.token = factories.IDENTITY_TOKEN


@pytest.fixture
def reader():
    return Client()


@pytest.fixture
def article(db):
    """The gated article (``factories.gated_article``)."""
    return factories.gated_article()


# -- editors ---------------------------------------------------------------------------------------------


@pytest.fixture
def editor(django_user_model):
    return factories.staff_user(django_user_model, "editor")


@pytest.fixture
def viewer(django_user_model):
    return factories.staff_user(django_user_model, "viewer", log=True)


# -- caches and the embedded fake ------------------------------------------------------------------------


@pytest.fixture
def roomy_cache(settings):
    """A cache that does not cull: Django's local-memory cache keeps 300 entries by default, and a day's
    reader hashes outnumber that in a burst (a production cache must have room for them too)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "paywall-views-tests",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }
    caches["default"].clear()


@pytest.fixture
def fresh_fake():
    """The embedded fake Payway forgets everything before and after the test."""
    fake_state.reset()
    yield
    fake_state.reset()


# -- pages and mocked HTTP -------------------------------------------------------------------------------


@pytest.fixture
def home(db):
    """The default site's root page, where new pages go."""
    return Site.objects.get(is_default_site=True).root_page


@pytest.fixture
def root(home):
    """The same page as ``home``, by the name the block and paywall-view tests use."""
    return home


@pytest.fixture
def rsps():
    """``responses`` for the test, answering only what the test adds (unfired answers are fine)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        yield mocked
