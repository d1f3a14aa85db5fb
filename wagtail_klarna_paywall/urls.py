"""Site URLs of the plugin (SSO2 landing, login and logout; the paywall-view beacon). Include under any
prefix."""

from django.urls import path

from .login import views as sso_views
from .newsroom import paywall_views

app_name = "wagtail_klarna_paywall"
urlpatterns: list = [
    path("sso/login/", sso_views.login, name="sso_login"),
    path("sso/landing/", sso_views.landing, name="sso_landing"),
    path("sso/complete/", sso_views.complete, name="sso_complete"),
    path("sso/logout/", sso_views.logout, name="sso_logout"),
    path("paywall-view/", paywall_views.record_view, name="paywall_view"),
]
