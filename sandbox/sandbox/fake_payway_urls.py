"""URLs of the fake Payway's own process (``sandbox.settings.fake_payway``).

Real SSO2 sends the browser to the landing URL registered for the API client; the fake names it with
``reverse("wagtail_klarna_paywall:sso_landing")`` on the site the reader came from. This process does not
serve the site, so the site's landing path is declared here under that name, at the prefix the sandbox
site includes the plugin's URLs (``klarna-paywall/``), and answers 404 if it is ever asked for.
"""

from django.http import Http404
from django.urls import include, path


def _site_only(request):
    raise Http404("served by the site, not by the fake Payway")


site_urls = ([path("sso/landing/", _site_only, name="sso_landing")], "wagtail_klarna_paywall")

urlpatterns = [
    path("fake-payway/", include("wagtail_klarna_paywall.fake.urls")),
    path("klarna-paywall/", include(site_urls)),
]
