"""The fake's stand-ins for Klarna's side of the browser: the hop page after place_order, a test page for
the fake widget, and the URLs of the widget's static files.

The widget itself is ``static/wagtail_klarna_paywall_fake/fake-klarna.js``, a fake of Klarna's Payments
SDK. A site loads it instead of Klarna's by naming :data:`WIDGET_SCRIPT` in
``WAGTAIL_KLARNA_PAYWALL["KLARNA_SDK_URL"]`` (the sandbox, the benchmarks and the tests do); the plugin
itself never names it.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse

from . import state

#: The fake widget, as a static file path (what ``KLARNA_SDK_URL`` takes).
WIDGET_SCRIPT = "wagtail_klarna_paywall_fake/fake-klarna.js"
#: The badge create_session lists as every payment method category's asset.
BADGE = "wagtail_klarna_paywall_fake/fake-klarna.svg"


def badge_url(request: HttpRequest) -> str:
    return request.build_absolute_uri(static(BADGE))


def hop_url(request: HttpRequest, session_id: str) -> str:
    """Where place_order sends the reader: :func:`klarna_hop` for this session."""
    return request.build_absolute_uri(reverse("fake_payway:klarna-hop", args=[session_id]))


def klarna_hop(request: HttpRequest, session_id: str) -> HttpResponse:
    """Stands in for Klarna's page after place_order: sends the browser on to the confirmation URL."""
    session = state.get_session(session_id)
    if session is None or session.status != state.SESSION_COMPLETED:
        return render(request, "wagtail_klarna_paywall_fake/hop_unknown.html", status=404)
    return HttpResponseRedirect(session.confirmation_url)


#: The policy a careful publisher's purchase page would send: the fake widget must work under it.
STRICT_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'"


def klarna_widget_test(request: HttpRequest) -> HttpResponse:
    """A bare page loading the fake Klarna SDK under a strict CSP (browser tests drive it)."""
    response = render(
        request, "wagtail_klarna_paywall_fake/widget_test.html", {"widget_script": WIDGET_SCRIPT}
    )
    response["Content-Security-Policy"] = STRICT_CSP
    return response
