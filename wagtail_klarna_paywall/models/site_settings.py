"""The plugin's settings per site, edited in Wagtail's Settings menu."""

from __future__ import annotations

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from wagtail.admin.panels import FieldPanel, MultiFieldPanel, PageChooserPanel
from wagtail.contrib.settings.models import BaseSiteSetting, register_setting

from ..blocks import PAYMENT_METHOD_CATEGORY_CHOICES


@register_setting(icon="password")
class PaywallSettings(BaseSiteSetting):
    """Editorial knobs per site. No secrets here: they stay in Django settings (``conf.py``)."""

    title_code = models.CharField(
        _("Payway title code"),
        max_length=15,
        blank=True,
        help_text=_("The Payway title whose packages and campaigns editors choose from."),
    )
    default_confirmation_page = models.ForeignKey(
        "wagtailcore.Page",
        verbose_name=_("default confirmation page"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Where readers land after paying when a paywall names no confirmation page."),
    )
    default_payment_method_category = models.CharField(
        _("default Klarna payment method category"),
        max_length=50,
        default="pay_now",
        help_text=_("Loaded in the Klarna widget when Payway's session does not list categories."),
    )
    disable_account_info_overwrite = models.BooleanField(
        _("keep existing account information"),
        default=False,
        help_text=_("Stop data from Klarna from overwriting what a reader's Payway account already holds."),
    )
    raise_on_ssn_already_taken_error = models.BooleanField(
        _("stop if the personal identity number belongs to another account"), default=True
    )
    raise_on_ssn_already_set_error = models.BooleanField(
        _("stop if the account already has another personal identity number"), default=False
    )
    raise_on_account_update_error = models.BooleanField(
        _("stop if the account cannot be updated with Klarna's data"), default=False
    )
    raise_on_delivery_address_error = models.BooleanField(
        _("stop if the delivery address from Klarna cannot be stored"), default=False
    )
    traffic_source_default = models.CharField(
        _("default traffic source"),
        max_length=100,
        blank=True,
        help_text=_("Sent to Payway when the reader's link carries no utm_source."),
    )
    merchant_reference_pattern = models.CharField(
        _("merchant reference pattern"),
        max_length=100,
        default="{page_id}-{offer_code}",
        help_text=_("Placeholders: {page_id}, {offer_code}, {attempt}."),
    )
    test_mode = models.BooleanField(
        _("test mode"),
        default=False,
        help_text=_("Shows a visible test-mode ribbon on purchase pages."),
    )
    purchase_grant_hours = models.PositiveSmallIntegerField(
        _("read on after paying (hours)"),
        default=72,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 31)],
        help_text=_(
            "For how long the browser a new customer paid in reads what they bought without logging in."
        ),
    )
    analytics_events = models.BooleanField(
        _("analytics events"),
        default=False,
        help_text=_(
            "Push GA4 ecommerce events (paywall shown, offer chosen, checkout begun, purchase) to "
            "window.dataLayer for the site's tag manager. They carry no personal data."
        ),
    )

    customer_service = models.CharField(
        _("customer service"),
        max_length=255,
        blank=True,
        help_text=_(
            'Shown to readers on every purchase error page, e.g. "Customer service: help@example.com, '
            '010-123 45 67". Leave empty to show no contact line.'
        ),
    )

    panels = [
        MultiFieldPanel(
            [
                FieldPanel("title_code"),
                PageChooserPanel(
                    "default_confirmation_page", "wagtail_klarna_paywall.PurchaseConfirmationPage"
                ),
                FieldPanel(
                    "default_payment_method_category",
                    widget=forms.Select(choices=[c for c in PAYMENT_METHOD_CATEGORY_CHOICES if c[0]]),
                ),
                FieldPanel("test_mode"),
                FieldPanel("purchase_grant_hours"),
                FieldPanel("customer_service"),
            ],
            heading=_("Catalogue and purchase"),
        ),
        MultiFieldPanel(
            [
                FieldPanel("traffic_source_default"),
                FieldPanel("merchant_reference_pattern"),
            ],
            heading=_("Order references"),
        ),
        MultiFieldPanel(
            [
                FieldPanel("disable_account_info_overwrite"),
                FieldPanel("raise_on_ssn_already_taken_error"),
                FieldPanel("raise_on_ssn_already_set_error"),
                FieldPanel("raise_on_account_update_error"),
                FieldPanel("raise_on_delivery_address_error"),
            ],
            heading=_("Payway account updates from Klarna"),
        ),
        MultiFieldPanel([FieldPanel("analytics_events")], heading=_("Analytics")),
    ]

    class Meta:
        verbose_name = _("Klarna paywall")
