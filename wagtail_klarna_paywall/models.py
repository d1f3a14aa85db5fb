"""Per-site settings, purchase attempts and their timeline, and the plugin's page types."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from wagtail.admin.panels import FieldPanel, MultiFieldPanel, PageChooserPanel
from wagtail.contrib.routable_page.models import RoutablePageMixin, path
from wagtail.contrib.settings.models import BaseSiteSetting, register_setting
from wagtail.fields import RichTextField, StreamField
from wagtail.models import Page

from .blocks import PAYMENT_METHOD_CATEGORY_CHOICES, OfferBlock
from .purchase.hardening import HardenedPageMixin, is_unrouted, not_found


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


class AttemptState(models.TextChoices):
    NEW = "new", _("New")
    SESSION_READY = "session_ready", _("Session ready")
    PLACING = "placing", _("Placing order")
    PLACED = "placed", _("Order placed")
    CONFIRMED = "confirmed", _("Confirmed")
    DECLINED = "declined", _("Declined")
    FAILED = "failed", _("Failed")
    UNKNOWN = "unknown", _("Outcome unknown")
    EXPIRED = "expired", _("Expired")


#: Monotonic state machine: the only transitions ``PurchaseAttempt.transition`` allows.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    AttemptState.NEW: frozenset(
        {AttemptState.SESSION_READY, AttemptState.FAILED, AttemptState.EXPIRED, AttemptState.DECLINED}
    ),
    # SESSION_READY -> FAILED includes "already_bought": the placing step found the product held by the
    # reader's other attempt (purchase._claim_and_mark_placing) and sent nothing to Payway.
    AttemptState.SESSION_READY: frozenset(
        {AttemptState.PLACING, AttemptState.DECLINED, AttemptState.FAILED, AttemptState.EXPIRED}
    ),
    # PLACING -> SESSION_READY only when nothing reached Payway (a connect failure, or a 401 rejected
    # before execution): the attempt may then be placed again with a fresh authorization.
    AttemptState.PLACING: frozenset(
        {
            AttemptState.PLACED,
            AttemptState.DECLINED,
            AttemptState.FAILED,
            AttemptState.UNKNOWN,
            AttemptState.SESSION_READY,
        }
    ),
    AttemptState.UNKNOWN: frozenset({AttemptState.PLACED, AttemptState.FAILED, AttemptState.CONFIRMED}),
    AttemptState.PLACED: frozenset({AttemptState.CONFIRMED}),
    AttemptState.CONFIRMED: frozenset(),
    AttemptState.DECLINED: frozenset(),
    AttemptState.FAILED: frozenset(),
    AttemptState.EXPIRED: frozenset(),
}

#: States in which an attempt may still get (or reuse) a Payway session and be bought.
OPEN_STATES = (AttemptState.NEW, AttemptState.SESSION_READY)


class PurchaseAttempt(models.Model):
    """One reader's attempt to buy one offer: the unit that gets at most one ``place_order``.

    Holds no access tokens, authorization tokens, personnummer or customer names. The Klarna
    *client* token is kept because it is made for the browser (it is rendered into the purchase page)
    and must be the same on every render of a reused session; it grants nothing against Payway.
    """

    reference = models.UUIDField(_("reference"), default=uuid.uuid4, unique=True, editable=False)
    state = models.CharField(
        _("state"), max_length=20, choices=AttemptState.choices, default=AttemptState.NEW, db_index=True
    )
    # Reader: a user, or a hash of the anonymous Django session key ("anon:<sha256>").
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reader_key = models.CharField(_("reader"), max_length=80, db_index=True)
    # A keyed hash of the reader's Payway account ("account:<hmac>"), when they were logged in: the same
    # reader on another device or after a new login (see accounts.py). Never the account id itself.
    account_key = models.CharField(_("Payway account (hashed)"), max_length=80, blank=True, db_index=True)
    existing_customer = models.BooleanField(
        _("existing customer"), default=False, help_text=_("Bought through v1 with the reader's identity.")
    )
    site = models.ForeignKey(
        "wagtailcore.Site",
        verbose_name=_("site"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    page = models.ForeignKey(
        "wagtailcore.Page",
        verbose_name=_("article"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    purchase_page = models.ForeignKey(
        "wagtailcore.Page",
        verbose_name=_("purchase page"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    confirmation_page = models.ForeignKey(
        "wagtailcore.Page",
        verbose_name=_("confirmation page"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The offer, copied from the page's configuration at buy time (the browser never chooses these).
    offer_key = models.CharField(_("offer"), max_length=200, help_text=_("Where the offer is configured."))
    product_code = models.CharField(_("product code"), max_length=1024, db_index=True)
    # The codes that open content (a paywall's ``access_product_codes``) which the offer named at buy
    # time: what a placed attempt lets its browser read before Payway's login is involved (grants.py).
    access_codes = models.JSONField(_("access codes"), default=list, blank=True)
    product_kind = models.CharField(_("product kind"), max_length=20)
    # What is bought, whatever page or block offers it: "<title code>:<kind>:<code>" (purchase.product_key).
    product_key = models.CharField(_("product"), max_length=255, blank=True, db_index=True)
    product_name = models.CharField(_("product name"), max_length=255, blank=True)
    period_type = models.CharField(_("period type"), max_length=20, blank=True)
    period_id = models.CharField(_("period id"), max_length=24, blank=True)
    is_trial = models.BooleanField(_("trial"), default=False)
    payment_method_category = models.CharField(_("Klarna payment method"), max_length=50, blank=True)
    price = models.DecimalField(_("price"), max_digits=12, decimal_places=2, null=True, blank=True)
    price_period = models.CharField(_("price period"), max_length=50, blank=True)
    # Payway session.
    payway_session_id = models.CharField(_("Payway session"), max_length=255, blank=True, db_index=True)
    klarna_client_token = models.TextField(_("Klarna client token"), blank=True)
    payment_method_categories = models.JSONField(
        _("Klarna payment methods offered"), default=list, blank=True
    )
    session_created_at = models.DateTimeField(_("session created"), null=True, blank=True)
    session_expires_at = models.DateTimeField(_("session expires"), null=True, blank=True)
    # Order.
    traffic_source = models.CharField(_("traffic source"), max_length=100, blank=True)
    merchant_reference = models.CharField(_("merchant reference"), max_length=255, blank=True)
    order_id = models.CharField(_("Payway order id"), max_length=255, blank=True, db_index=True)
    redirect_uri = models.URLField(_("Klarna redirect"), max_length=2000, blank=True)
    redirect_rejected = models.BooleanField(
        _("redirect rejected"),
        default=False,
        help_text=_(
            "Payway's redirect failed the Klarna allow-list; the reader was sent to the confirmation page."
        ),
    )
    error_code = models.CharField(_("error code"), max_length=50, blank=True, db_index=True)
    payway_status = models.PositiveSmallIntegerField(_("Payway status"), null=True, blank=True)
    payway_code = models.CharField(_("Payway code"), max_length=100, blank=True)
    payway_field = models.CharField(_("Payway field"), max_length=100, blank=True)
    test_mode = models.BooleanField(_("test mode"), default=False)
    duplicate_of = models.ForeignKey(
        "self",
        verbose_name=_("already bought in"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("The reader's earlier order of the same product, which stopped this one."),
    )
    # Timeline.
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    placing_at = models.DateTimeField(_("placing started at"), null=True, blank=True)
    placed_at = models.DateTimeField(_("placed at"), null=True, blank=True)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    #: Wagtail's reference index would re-index every attempt on every save (the purchase log's viewset
    #: registers the model): a write and a few queries per step of the flow, for links to pages that
    #: editors never follow from an attempt ("usage" of a page counts content, not purchases).
    wagtail_reference_index_ignore = True

    class Meta:
        verbose_name = _("purchase attempt")
        verbose_name_plural = _("purchase attempts")
        ordering = ["-created_at"]
        permissions = [("view_purchase_log", _("Can view the Klarna purchase log"))]
        constraints = [
            # Single flight: one open attempt per reader and offer, whatever the concurrency (C01).
            models.UniqueConstraint(
                fields=["reader_key", "offer_key"],
                condition=models.Q(state__in=["new", "session_ready"]),
                name="wkp_one_open_attempt_per_reader_offer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_code} ({self.get_state_display()}) {self.reference}"

    def short_reference(self) -> str:
        """The reference's first group, as support reads it out and the reader's pages show it."""
        return str(self.reference)[:8]

    short_reference.short_description = _("Reference")
    short_reference.admin_order_field = "reference"

    def can_transition(self, new_state: str) -> bool:
        return new_state in ALLOWED_TRANSITIONS[self.state]


class ProductClaim(models.Model):
    """The right to order one product, held by one attempt per reader identity: the database side of the
    rule "one order per reader and product, whatever the entry point" (``purchase.place_order``).

    One row per (reader key, product key), unique. ``reader_key`` is any identity of the buyer: the
    attempt's reader (``user:``/``anon:``), their Payway account (``account:<hmac>``) or, for a new
    customer, the typed e-mail (``email:<hmac>``). The attempt that moved to ``placing`` holds the rows of
    all its identities until ``held_until`` (the rebuy window); the claim is free again once that attempt
    ends without an order (declined, failed, expired, or back to ``session_ready`` when nothing reached
    Payway) or the window has passed.
    """

    reader_key = models.CharField(max_length=80)
    product_key = models.CharField(max_length=255)
    attempt = models.ForeignKey(
        PurchaseAttempt, null=True, blank=True, on_delete=models.SET_NULL, related_name="claims"
    )
    held_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("product claim")
        verbose_name_plural = _("product claims")
        constraints = [
            models.UniqueConstraint(
                fields=["reader_key", "product_key"], name="wkp_one_claim_per_reader_product"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_key} ({self.attempt_id or '-'})"


class EventKind(models.TextChoices):
    BUY = "buy", _("Buy clicked")
    SESSION_CREATED = "session_created", _("Session created")
    SESSION_REUSED = "session_reused", _("Session reused")
    AUTHORIZED = "authorized", _("Authorization posted")
    PLACED = "placed", _("Order placed")
    CONFIRMED = "confirmed", _("Confirmed")
    DECLINED = "declined", _("Declined")
    ERROR = "error", _("Error")
    SECURITY = "security", _("Security event")
    RECONCILED = "reconciled", _("Reconciled")


class PurchaseEvent(models.Model):
    """The timeline of an attempt; also feeds the funnel and the error panel. No personal data."""

    attempt = models.ForeignKey(
        PurchaseAttempt, verbose_name=_("purchase attempt"), on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(_("event"), max_length=20, choices=EventKind.choices, db_index=True)
    state = models.CharField(_("state"), max_length=20, choices=AttemptState.choices, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    endpoint = models.CharField(_("endpoint"), max_length=200, blank=True)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    error_code = models.CharField(_("error code"), max_length=50, blank=True)
    payway_code = models.CharField(_("Payway code"), max_length=100, blank=True)
    detail = models.CharField(_("detail"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("purchase event")
        verbose_name_plural = _("purchase events")
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["kind", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.created_at:%Y-%m-%d %H:%M:%S}"


def record_event(attempt: PurchaseAttempt, kind: str, **fields: Any) -> PurchaseEvent:
    return PurchaseEvent.objects.create(attempt=attempt, kind=kind, state=attempt.state, **fields)


class SSOLandingClaim(models.Model):
    """An SSO2 landing token already used: one row per token, shared by every worker process.

    The key is a SHA-256 of the token's signed part (never the token, which may carry a ticket); the
    primary key makes a second insert fail, which is how a replay is recognised. Rows are pruned once
    ``expires_at`` has passed, when the token itself is refused anyway.
    """

    digest = models.CharField(max_length=64, primary_key=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("used SSO2 landing token")

    def __str__(self) -> str:
        return f"{self.digest[:12]}… until {self.expires_at:%Y-%m-%d %H:%M:%S}"


class LoginFailure(models.Model):
    """A refused SSO2 login, for the editors' error panel (logins have no purchase attempt).

    Holds when, where and why only: no token, session id, account or IP. Recorded only for logins this
    browser really started, so a stream of forged landing URLs writes nothing; pruned after
    :data:`LOGIN_FAILURE_RETENTION`.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    endpoint = models.CharField(max_length=50)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=50)
    detail = models.CharField(max_length=100, blank=True)

    #: Lets the error panel list these beside purchase events (which link to their attempt).
    kind = "login_failed"
    attempt_id = None
    payway_code = ""
    is_login_failure = True

    class Meta:
        verbose_name = _("refused login")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.error_code} {self.created_at:%Y-%m-%d %H:%M:%S}"

    def get_kind_display(self) -> str:
        return str(_("Login refused"))


#: How long refused logins stay in the error panel's table, and how many rows it keeps at most (a script
#: that starts logins and lands garbage cannot grow it without bound).
LOGIN_FAILURE_RETENTION = dt.timedelta(days=90)
LOGIN_FAILURE_MAX_ROWS = 1000


def record_login_failure(endpoint: str, error_code: str, *, http_status: int, detail: str = "") -> None:
    """Keep a refused login for the error panel; drop rows past the retention or the row limit."""
    now = timezone.now()
    row = LoginFailure.objects.create(
        created_at=now,
        endpoint=endpoint[:50],
        http_status=http_status,
        error_code=error_code[:50],
        detail=detail[:100],
    )
    LoginFailure.objects.filter(
        models.Q(created_at__lt=now - LOGIN_FAILURE_RETENTION)
        | models.Q(pk__lte=row.pk - LOGIN_FAILURE_MAX_ROWS)
    ).delete()


class KlarnaPurchasePage(HardenedPageMixin, RoutablePageMixin, Page):
    """Hosts the purchase flow: offer choice, the Klarna widget, placing the order.

    Routes (all but the landing page are per attempt, keyed by its unguessable reference):
    ``""`` landing (GET; ``?offer=<ref>`` preselects), ``buy/`` (POST), ``checkout/<ref>/`` (GET widget,
    POST place order), ``checkout/<ref>/declined/`` (POST).
    """

    intro = RichTextField(_("intro"), blank=True)
    checkout_text = RichTextField(
        _("text beside the Klarna widget"), blank=True, help_text=_("e.g. terms of the subscription.")
    )
    customer_form_intro = RichTextField(_("text above the new-customer form"), blank=True)
    offers = StreamField(
        [("offer", OfferBlock())],
        verbose_name=_("offers"),
        blank=True,
        help_text=_("Offered when the page is opened directly; the first is the default."),
    )
    confirmation_page = models.ForeignKey(
        "wagtailcore.Page",
        verbose_name=_("confirmation page"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    content_panels = Page.content_panels + [
        FieldPanel("intro"),
        FieldPanel("offers"),
        FieldPanel("checkout_text"),
        FieldPanel("customer_form_intro"),
        PageChooserPanel("confirmation_page", "wagtail_klarna_paywall.PurchaseConfirmationPage"),
    ]
    # Any parent: publishers' trees differ, and a site may keep one purchase page per section.
    subpage_types: list[str] = []
    template = "wagtail_klarna_paywall/purchase_page.html"

    class Meta:
        verbose_name = _("Klarna purchase page")

    def serve(self, request, *args, **kwargs):
        if is_unrouted(request):
            return not_found(request)
        return super().serve(request, *args, **kwargs)

    @path("")
    def landing(self, request):
        from .purchase import views

        return views.purchase_landing(request, self)

    @path("buy/")
    def buy(self, request):
        from .purchase import views

        return views.buy(request, self)

    @path("checkout/<uuid:reference>/")
    def checkout(self, request, reference):
        from .purchase import views

        return views.checkout(request, self, reference)

    @path("checkout/<uuid:reference>/declined/")
    def declined(self, request, reference):
        from .purchase import views

        return views.declined(request, self, reference)


class PurchaseConfirmationPage(HardenedPageMixin, Page):
    """Where Klarna sends the reader after paying (``?ref=<attempt reference>``)."""

    body = RichTextField(_("thank-you text"), blank=True)

    content_panels = Page.content_panels + [FieldPanel("body")]
    subpage_types: list[str] = []
    template = "wagtail_klarna_paywall/confirmation_page.html"

    class Meta:
        verbose_name = _("purchase confirmation page")

    def serve(self, request, *args, **kwargs):
        from .purchase import views

        if is_unrouted(request):
            return not_found(request)
        return views.confirmation(request, self)


class PaywallViewDay(models.Model):
    """How many readers saw a paywall on one day: one row per day, page, paywall, offer set and reader state.

    Written only by :func:`wagtail_klarna_paywall.newsroom.paywall_views.fold`, from the shared-cache
    counters the
    view beacon increments; never on a page render. ``views`` is absolute: a fold sets it from the
    counter's current value (``base_views`` + ``cache_count``), so folding twice changes nothing.
    ``base_views`` keeps what was counted before the cache lost a counter (``cache_epoch`` changed, or the
    count went down), so a lost cache costs only what had not been folded yet. No reader is identified.
    """

    day = models.DateField(_("day"), db_index=True)
    page = models.ForeignKey(
        "wagtailcore.Page",
        verbose_name=_("article"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    paywall_id = models.CharField(_("paywall block"), max_length=64)
    #: A digest of the sorted product codes shown (``offer_codes``), so the set fits a unique key.
    offer_set = models.CharField(max_length=64)
    offer_codes = models.JSONField(_("offers shown"), default=list)
    reader_state = models.CharField(_("reader state"), max_length=20)
    views = models.PositiveIntegerField(_("paywall views"), default=0)
    base_views = models.PositiveIntegerField(default=0)
    cache_epoch = models.CharField(max_length=32, blank=True)
    cache_count = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("paywall views per day")
        verbose_name_plural = _("paywall views per day")
        constraints = [
            models.UniqueConstraint(
                fields=["day", "page", "paywall_id", "offer_set", "reader_state"],
                name="wkp_one_view_row_per_day_page_paywall_offers_state",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} page {self.page_id} {self.reader_state}: {self.views}"
