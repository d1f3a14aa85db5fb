from django.conf import settings
from django.urls import include, path
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.api.v2.router import WagtailAPIRouter
from wagtail.api.v2.views import PagesAPIViewSet
from wagtail.documents import urls as wagtaildocs_urls

from demo.feeds import ArticleFeed
from demo.views import search

api_router = WagtailAPIRouter("wagtailapi")
api_router.register_endpoint("pages", PagesAPIViewSet)

urlpatterns = [
    path("admin/", include(wagtailadmin_urls)),
    path("documents/", include(wagtaildocs_urls)),
    path("klarna-paywall/", include("wagtail_klarna_paywall.urls")),
    path("api/v2/", api_router.urls),
    path("rss/", ArticleFeed(), name="rss"),
    path("sok/", search, name="search"),
]

# The embedded fake Payway, unless it runs as its own process (the production profile) or a real Payway
# is configured.
if getattr(settings, "SERVE_FAKE_PAYWAY", True):
    urlpatterns.insert(2, path("fake-payway/", include("wagtail_klarna_paywall.fake.urls")))

if settings.DEBUG:
    from django.conf.urls.static import static
    from django.contrib.staticfiles.urls import staticfiles_urlpatterns

    urlpatterns += staticfiles_urlpatterns()
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

urlpatterns.append(path("", include(wagtail_urls)))
