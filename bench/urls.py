"""The test site's URLs plus the two bare baselines of the purchase benchmark.

``bench/bare/`` (GET) answers without touching the database or the session; ``bench/bare-post/`` (POST,
CSRF checked by the middleware like every form) inserts one row. Both pass through the site's whole
middleware stack, so a step's ratio to them is what the flow adds to Django itself.
"""

from __future__ import annotations

import datetime as dt
import secrets

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone

from tests.urls import urlpatterns as site_urlpatterns
from wagtail_klarna_paywall.models import SSOLandingClaim


def bare_get(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def bare_post(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(status=405)
    # One INSERT into the plugin's simplest table (a primary key and a timestamp).
    expires = timezone.now() + dt.timedelta(hours=1)
    SSOLandingClaim.objects.create(digest=secrets.token_hex(32), expires_at=expires)
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("bench/bare/", bare_get),
    path("bench/bare-post/", bare_post),
    *site_urlpatterns,
]
