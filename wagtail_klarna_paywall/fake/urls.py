"""URLs of the fake Payway. Include them under a prefix (the sandbox and tests use ``fake-payway/``) and
point ``WAGTAIL_KLARNA_PAYWALL["API_URL"]`` at it. Never route these in production."""

from django.urls import path, re_path

from . import control, klarna, klarna_payments, sso, views

app_name = "fake_payway"
urlpatterns = [
    # People and test scripts.
    path("", control.index, name="index"),
    path("_control/", control.control_api, name="control"),
    # Klarna's hop after place_order (the fake's stand-in for a page on klarna.com).
    path("klarna/hop/<str:session_id>/", klarna.klarna_hop, name="klarna-hop"),
    path("klarna/widget-test/", klarna.klarna_widget_test, name="klarna-widget-test"),
    # The Payway API, on Payway's own paths.
    path("api/authorization/access_token", views.access_token, name="access-token"),
    re_path(
        r"^external/api/v(?P<version>[12])/klarna_payments/create_session$",
        klarna_payments.create_session,
        name="create-session",
    ),
    re_path(
        r"^external/api/v(?P<version>[12])/klarna_payments/place_order$",
        klarna_payments.place_order,
        name="place-order",
    ),
    path(
        "external/api/v2/klarna_payments/place_trial_order",
        klarna_payments.place_trial_order,
        name="place-trial-order",
    ),
    re_path(
        r"^external/api/v(?P<version>[12])/klarna_payments/payment_periods$",
        klarna_payments.payment_periods,
        name="payment-periods",
    ),
    re_path(r"^external/api/v1/titles/?$", views.titles, name="titles"),
    path("external/api/v1/titles/find_one", views.find_title, name="find-title"),
    path("external/api/v2/products/package/search", views.package_search, name="package-search"),
    re_path(
        r"^external/api/v(?P<version>[23])/products/campaign/search$",
        views.campaign_search,
        name="campaign-search",
    ),
    path("external/api/v1/me/active_products", views.active_products, name="active-products"),
    path("external/api/v3/me", views.me, name="me"),
    # Anything else under the API answers Payway's 404 body. Keep this last.
    re_path(r"^(?P<path>(?:external|api)/.*)$", views.not_found, name="not-found"),
]

# The fake SSO2 (identify, login form, sessionstatus, logout, and its controls) under <fake-payway>/sso/.
urlpatterns += [
    path("sso/_control", sso.control, name="sso_control"),
    path("sso/identify", sso.identify, name="sso_identify"),
    path("sso/login", sso.login_form, name="sso_login"),
    path("sso/sessionstatus", sso.session_status, name="sso_sessionstatus"),
    path("sso/logout", sso.logout, name="sso_logout"),
]
