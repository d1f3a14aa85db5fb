"""The package's signal receivers, all connected in one place: imported once by
:meth:`wagtail_klarna_paywall.apps.WagtailKlarnaPaywallConfig.ready`.

- ``setting_changed`` for ``WAGTAIL_KLARNA_PAYWALL``: forget everything built from it (the settings'
  cached values, the process-wide Payway and SSO2 clients, the identity provider), so a changed setting
  (``override_settings`` in tests, a reloaded configuration) is read afresh.
- Page, site and paywall-settings changes: forget cached paywall markup (:mod:`.reading.render_cache`) and
  which paywalls a page holds (:mod:`.newsroom.paywall_views`), in every process that can publish (web
  workers, scheduled publishing, management commands). Those modules own their receivers and connect them.
- ``user_logged_out``: a Django logout ends what the browser read through a purchase made in it
  (:mod:`.reading.grants`).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.core.signals import setting_changed
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .conf import SETTINGS_NAME, paywall_settings
from .login.identity import reset_identity_provider
from .models import PaywallSettings
from .newsroom import paywall_views
from .payway import reset_client
from .payway.sso_client import reset_sso_client
from .purchase import attempts
from .reading import grants, render_cache


@receiver(setting_changed, dispatch_uid="wagtail_klarna_paywall.signal_handlers.settings")
def reload_plugin_settings(*, setting: str, **kwargs: Any) -> None:
    """Forget what was built from ``WAGTAIL_KLARNA_PAYWALL`` when it changes."""
    if setting != SETTINGS_NAME:
        return
    paywall_settings.reload()
    reset_client()
    reset_sso_client()
    reset_identity_provider()


user_logged_out.connect(
    grants.on_user_logged_out, dispatch_uid="wagtail_klarna_paywall.reading.grants.logout"
)
render_cache.connect()
paywall_views.connect()
# The flow remembers each site's settings for the request (purchase.attempts.site_settings).
post_save.connect(
    attempts.forget_settings, sender=PaywallSettings, dispatch_uid="wagtail_klarna_paywall.settings_saved"
)
post_delete.connect(
    attempts.forget_settings, sender=PaywallSettings, dispatch_uid="wagtail_klarna_paywall.settings_gone"
)
