"""Purchase attempts, their states, the product claims that keep one order per reader and product,
and each attempt's timeline of events."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


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


#: Monotonic state machine: the only transitions allowed (``PurchaseAttempt.can_transition`` reads it).
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    AttemptState.NEW: frozenset(
        {AttemptState.SESSION_READY, AttemptState.FAILED, AttemptState.EXPIRED, AttemptState.DECLINED}
    ),
    # SESSION_READY -> FAILED includes "already_bought": the placing step found the product held by the
    # reader's other attempt (purchase.claims.claim_and_mark_placing) and sent nothing to Payway.
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
    # How the offer was presented when the reader chose it: the checkout and the confirmation describe
    # what was bought as it was offered, whatever the editor changes on the page since.
    offer_label = models.CharField(_("offer label"), max_length=255, blank=True)
    selling_points = models.JSONField(_("selling points"), default=list, blank=True)
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
    # The milestones (see MILESTONES): set by the conditional UPDATE that reaches the state, once.
    placed_at = models.DateTimeField(_("placed at"), null=True, blank=True, db_index=True)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True, db_index=True)
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


#: The once-only milestones of a purchase, as (state, the attempt's field that holds when it was reached).
#: They are not events: the conditional UPDATE that moves the attempt there sets the time in the same
#: statement, so a milestone can be neither recorded twice nor missed, and costs no second write. The
#: funnel counts them and the purchase log's timeline shows them from these fields.
MILESTONES: tuple[tuple[str, str], ...] = (
    (AttemptState.PLACED, "placed_at"),
    (AttemptState.CONFIRMED, "confirmed_at"),
)


class EventKind(models.TextChoices):
    """What may happen to an attempt any number of times (a click, a session, an authorization, an
    error); the once-only milestones are :data:`MILESTONES`."""

    BUY = "buy", _("Buy clicked")
    SESSION_CREATED = "session_created", _("Session created")
    SESSION_REUSED = "session_reused", _("Session reused")
    AUTHORIZED = "authorized", _("Authorization posted")
    DECLINED = "declined", _("Declined")
    ERROR = "error", _("Error")
    SECURITY = "security", _("Security event")
    RECONCILED = "reconciled", _("Reconciled")


class PurchaseEvent(models.Model):
    """The timeline of an attempt, with its :data:`MILESTONES`; also feeds the funnel and the error
    panel. No personal data."""

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
