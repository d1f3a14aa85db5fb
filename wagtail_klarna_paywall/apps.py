from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WagtailKlarnaPaywallConfig(AppConfig):
    name = "wagtail_klarna_paywall"
    label = "wagtail_klarna_paywall"
    verbose_name = _("Klarna paywall")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
