"""Wagtail registrations only; the code they register lives in the modules named below."""

from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.admin.menu import MenuItem

try:
    from wagtail.permissions import register_permission_policy
except ImportError:  # Wagtail 7.4: a viewset takes its policy from its own attribute
    register_permission_policy = None

from .models import PurchaseAttempt
from .newsroom import chooser, reports
from .newsroom.purchase_log import PurchaseLogViewSet, purchase_log_permission_policy

# -- operations: purchase log, funnel, error panel, test-mode ribbon (admin_views.py, reports.py) -------

# Registered before any view asks for a policy, so Wagtail never builds its default one for the model.
if register_permission_policy is not None:
    register_permission_policy(PurchaseAttempt, purchase_log_permission_policy)
else:
    PurchaseLogViewSet.permission_policy = purchase_log_permission_policy

purchase_log_viewset = PurchaseLogViewSet()


@hooks.register("register_admin_viewset")
def register_purchase_log():
    return purchase_log_viewset


@hooks.register("register_admin_urls")
def register_funnel_report_url():
    return [
        path(
            "klarna-paywall/funnel/",
            reports.FunnelReportView.as_view(),
            name="wagtail_klarna_paywall_funnel",
        )
    ]


class _PurchaseLogMenuItem(MenuItem):
    def is_shown(self, request):
        return reports.can_view(request.user)


@hooks.register("register_reports_menu_item")
def register_purchase_log_menu_item():
    return _PurchaseLogMenuItem(
        _("Klarna purchase log"), reverse("klarna_paywall_purchases:index"), icon_name="list-ul", order=900
    )


@hooks.register("register_reports_menu_item")
def register_funnel_menu_item():
    return _PurchaseLogMenuItem(
        _("Klarna purchase funnel"), reverse("wagtail_klarna_paywall_funnel"), icon_name="doc-full", order=901
    )


# -- editors: the offer chooser (chooser.py) ---------------------------------------------------------------


@hooks.register("register_admin_viewset")
def register_offer_chooser():
    return chooser.offer_chooser_viewset


# Offers saved while Payway was unreachable are accepted; the editor is told which ones once saved.
hooks.register("before_create_page", chooser.forget_unchecked_offers)
hooks.register("before_edit_page", chooser.forget_unchecked_offers)
hooks.register("after_create_page", chooser.warn_about_unchecked_offers)
hooks.register("after_edit_page", chooser.warn_about_unchecked_offers)


hooks.register("construct_homepage_panels", reports.add_dashboard_panels)
hooks.register("insert_global_admin_css", reports.test_mode_ribbon_css)
hooks.register("insert_global_admin_js", reports.test_mode_ribbon_html)
