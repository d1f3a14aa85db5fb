from django.urls import include, path
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.api.v2.router import WagtailAPIRouter
from wagtail.api.v2.views import PagesAPIViewSet

from tests.testapp.feeds import ArticleFeed

api_router = WagtailAPIRouter("wagtailapi")
api_router.register_endpoint("pages", PagesAPIViewSet)

urlpatterns = [
    path("admin/", include(wagtailadmin_urls)),
    path("fake-payway/", include("wagtail_klarna_paywall.fake.urls")),
    path("klarna-paywall/", include("wagtail_klarna_paywall.urls")),
    path("api/v2/", api_router.urls),
    path("feeds/articles/", ArticleFeed(), name="article-feed"),
    path("", include(wagtail_urls)),
]
