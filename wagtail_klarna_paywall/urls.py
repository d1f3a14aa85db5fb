"""Site URLs of the plugin (SSO2 landing, login and logout). Include under any prefix."""

from django.urls import path  # noqa: F401

app_name = "wagtail_klarna_paywall"
urlpatterns: list = []
