from django.apps import AppConfig
from django.conf import settings
from django.utils.translation import gettext_lazy as _


class WagtailKlarnaPaywallConfig(AppConfig):
    name = "wagtail_klarna_paywall"
    label = "wagtail_klarna_paywall"
    verbose_name = _("Klarna paywall")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .newsroom import paywall_views
        from .reading import render_cache

        # Forget cached paywall markup whenever a page or site changes, in every process that can publish
        # (web workers, scheduled publishing, management commands).
        render_cache.connect()
        # Forget which paywalls a page holds (what the view beacon accepts) when it changes.
        paywall_views.connect()

        # A Django logout ends what the browser read through a purchase made in it (grants.py).
        from django.contrib.auth.signals import user_logged_out

        from .reading.grants import on_user_logged_out

        user_logged_out.connect(
            on_user_logged_out, dispatch_uid="wagtail_klarna_paywall.reading.grants.logout"
        )

        # Migrations made on Wagtail 8 name the page model through its WAGTAIL_PAGE_MODEL setting (the page
        # model is swappable there). Wagtail 7.4 has no such setting: give it the one page model 7.4 knows,
        # so the same migrations run on both.
        if not hasattr(settings, "WAGTAIL_PAGE_MODEL"):
            settings.WAGTAIL_PAGE_MODEL = "wagtailcore.Page"
