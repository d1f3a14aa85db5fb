from django.urls import include, path
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls

urlpatterns = [
    path("admin/", include(wagtailadmin_urls)),
    path("fake-payway/", include("wagtail_klarna_paywall.fake.urls")),
    path("klarna-paywall/", include("wagtail_klarna_paywall.urls")),
    path("", include(wagtail_urls)),
]
