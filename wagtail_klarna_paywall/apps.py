from django.apps import AppConfig
from django.conf import settings
from django.utils.translation import gettext_lazy as _


class WagtailKlarnaPaywallConfig(AppConfig):
    name = "wagtail_klarna_paywall"
    label = "wagtail_klarna_paywall"
    verbose_name = _("Klarna paywall")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks, and connects every signal receiver of the package.
        from . import checks, signal_handlers  # noqa: F401

        # Migrations made on Wagtail 8 name the page model through its WAGTAIL_PAGE_MODEL setting (the page
        # model is swappable there). Wagtail 7.4 has no such setting: give it the one page model 7.4 knows,
        # so the same migrations run on both.
        if not hasattr(settings, "WAGTAIL_PAGE_MODEL"):
            settings.WAGTAIL_PAGE_MODEL = "wagtailcore.Page"
