"""Template context for the demo site's layout."""

from django.conf import settings


def _reader_logged_in(request) -> bool:
    # Reads the session only when the browser sent a session cookie: an anonymous page must neither
    # create a session nor vary on one.
    from wagtail_klarna_paywall.login import sso

    return sso.reader_key(request) is not None


def _reader_has_grant(request) -> bool:
    # A new customer reads what they bought in this browser without a login; "log out" ends that.
    from wagtail_klarna_paywall.reading import grants

    return grants.has_grants(request)


def sandbox(request):
    return {
        # A link to the fake Payway's control page, where a visitor arms failures (500, 403, slow replies...).
        # The production profile runs the fake as its own process, on FAKE_PAYWAY_PORT.
        "fake_payway": not settings.USE_REAL_PAYWAY,
        "fake_payway_url": "/fake-payway/"
        if getattr(settings, "SERVE_FAKE_PAYWAY", True)
        else f"http://{request.get_host().rsplit(':', 1)[0]}:{settings.FAKE_PAYWAY_PORT}/fake-payway/",
        # Called by the template only where it is used (the header).
        "reader_logged_in": lambda: _reader_logged_in(request),
        "reader_has_grant": lambda: _reader_has_grant(request),
    }
