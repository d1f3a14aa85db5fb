"""Step 1 of the purchase flow: the reader pressed "buy" (``docs/payway-contract.md``).

:func:`start_purchase` finds or creates the reader's open attempt for the offer (single flight: a unique
constraint plus a row lock), and reuses its Payway session while it has at least
``SESSION_REUSE_MARGIN`` left, or creates one (v1 with the reader's identity, else v2).

It is also where the session rate limits (:mod:`.ratelimit`, docs/reliability.md S13) are counted: only
this function knows whether a new Payway session is about to be created, so it reserves the budget right
before ``create_session`` and nowhere else. A refused reservation writes nothing (no attempt, no event)
and returns RATE_LIMITED with the seconds to wait.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import signals
from ..conf import paywall_settings
from ..exceptions import (
    AuthenticationExpired,
    ErrorCode,
    PaywallError,
)
from ..messages import NO_PAYMENT_METHOD, TOO_MANY_ATTEMPTS
from ..models import (
    OPEN_STATES,
    AttemptState,
    EventKind,
    PaywallSettings,
    PurchaseAttempt,
    record_event,
)
from ..payway import client as payway_client_module
from ..payway import get_client
from . import ratelimit
from .attempts import (
    OWN_OFFER_FIELDS,
    SESSION_LIFETIME,
    Reader,
    can_reuse_session,
    choose_payment_method_category,
    confirmation_page_for,
    confirmation_url,
    merchant_reference,
    offer_fields,
    offer_key,
    offer_product_key,
    previous_order,
    record_error,
    send_signal,
    session_category_identifiers,
    site_settings,
)

if TYPE_CHECKING:
    from wagtail.models import Page, Site

    from ..blocks import Offer
    from ..payway.client import PaywayClient

logger = logging.getLogger("wagtail_klarna_paywall.purchase.session")

# -- step 1: buy ------------------------------------------------------------------------------------


class BuyStatus:
    READY = "ready"  # the attempt has a usable session: show the widget
    EXISTING = "existing"  # the reader already bought (or is buying) this product: show that attempt
    FAILED = "failed"  # no session; ``error_code`` says why (the attempt, if any, may be retried)
    LOGIN = "login"  # the reader's identity token was refused: log in again
    #: A new session was needed and a rate limit refused it: nothing was written or sent;
    #: ``retry_after`` says in how many seconds the reader may try again.
    RATE_LIMITED = "rate_limited"


@dataclass
class BuyResult:
    status: str
    attempt: PurchaseAttempt | None = None
    error_code: str = ""
    #: Seconds until a RATE_LIMITED reader may try again (0 otherwise).
    retry_after: int = 0


def _get_or_create_open_attempt(
    defaults: dict[str, Any], reader: Reader, key: str
) -> tuple[PurchaseAttempt, bool]:
    """The reader's open attempt for the offer, and whether this call created it."""
    # The partial unique constraint wkp_one_open_attempt_per_reader_offer makes this single-flight:
    # a concurrent create loses with IntegrityError (after the winner's commit), and the retry finds the
    # winner's row.
    open_attempts = PurchaseAttempt.objects.filter(
        reader_key=reader.key, offer_key=key, state__in=OPEN_STATES
    )
    for attempt_number in range(3):
        # A key made by this request names no attempt yet: straight to the insert (the constraint still
        # holds, and a failed insert looks again).
        attempt = None if reader.new and attempt_number == 0 else open_attempts.first()
        if attempt is not None:
            return attempt, False
        try:
            with transaction.atomic():
                return PurchaseAttempt.objects.create(reader_key=reader.key, offer_key=key, **defaults), True
        except IntegrityError:
            continue
    raise IntegrityError("Could not get or create the open purchase attempt")


#: What a new session changes on the attempt (saved with ``update_fields``: a full save would also
#: rewrite the reference, the reader, the pages and the timeline).
_NEW_SESSION_FIELDS = (
    "product_code",
    "product_kind",
    "product_name",
    "offer_label",
    "selling_points",
    "period_type",
    "period_id",
    "is_trial",
    "price",
    "price_period",
    "access_codes",
    "product_key",
    "account_key",
    "confirmation_page",
    "existing_customer",
    "payway_session_id",
    "klarna_client_token",
    "payment_method_categories",
    "payment_method_category",
    "session_created_at",
    "session_expires_at",
    "traffic_source",
    "state",
    "error_code",
    "updated_at",
)


def start_purchase(
    *,
    reader: Reader,
    offer: Offer,
    offer_page: Page,
    purchase_page: Page,
    site: Site | None,
    traffic_source: str = "",
    ip: str = "",
    now: dt.datetime | None = None,
    client: PaywayClient | None = None,
) -> BuyResult:
    """The reader pressed "buy" on ``offer`` (configured on ``offer_page``, bought on ``purchase_page``).

    Returns READY with an attempt holding a usable Payway session (reused or new), EXISTING with the
    reader's recent order of this product, LOGIN when Payway refused the reader's identity token,
    RATE_LIMITED (with ``retry_after``) when a new session was needed and the reader's or ``ip``'s budget
    is spent, or FAILED with an ``error_code`` (nothing was bought). Never raises for Payway failures.
    ``ip`` is the buyer's address for the per-IP limits; empty means not limited per IP.
    """
    now = now or timezone.now()
    settings_obj = site_settings(site)

    for _ in range(3):
        # A reader first seen in this request, without a Payway account, has bought nothing yet.
        fresh = reader.new and not reader.account_key
        previous = None if fresh else previous_order(reader, offer, now, site)
        if previous is not None:
            return BuyResult(BuyStatus.EXISTING, previous)

        confirmation_page = confirmation_page_for(offer, purchase_page, settings_obj)
        if confirmation_page is None:
            logger.error("No live confirmation page for offer %s on page %s", offer.ref, offer_page.pk)
            return BuyResult(BuyStatus.FAILED, None, ErrorCode.CONFIGURATION)

        reference = uuid.uuid4()
        defaults = {
            "reference": reference,
            "user_id": reader.user_id,
            "account_key": reader.account_key or "",
            "product_key": offer_product_key(offer, site),
            "site": site,
            "page": offer_page,
            "purchase_page": purchase_page,
            "confirmation_page": confirmation_page,
            "traffic_source": traffic_source[:100],
            "merchant_reference": merchant_reference(
                settings_obj.merchant_reference_pattern,
                page_id=offer_page.pk,
                offer_code=offer.product_code,
                attempt=reference,
            ),
            "test_mode": settings_obj.test_mode or not paywall_settings.is_production,
            **offer_fields(offer),
        }
        result = _prepare_session(
            defaults,
            offer_key(offer_page, offer),
            reader,
            offer,
            confirmation_page,
            settings_obj,
            traffic_source,
            ip,
            now,
            client,
        )
        if result is not None:
            return result
        # The attempt left the open states between our read and our lock (another tab placed it): look again.
    return BuyResult(BuyStatus.FAILED, None, ErrorCode.GENERIC)


def _prepare_session(
    defaults: dict[str, Any],
    key: str,
    reader: Reader,
    offer: Offer,
    confirmation_page: Page,
    settings_obj: PaywallSettings,
    traffic_source: str,
    ip: str,
    now: dt.datetime,
    client: PaywayClient | None,
) -> BuyResult | None:
    """Under the open attempt's row lock (the attempt is created if there is none): reuse its session or
    create one. None if the attempt left the open states meanwhile.

    One transaction from the attempt's creation to the end, so that a buy the rate limit refuses leaves
    nothing behind: it is rolled back whole.
    """
    error: PaywallError | None = None
    started = False
    with transaction.atomic():
        attempt, created = _get_or_create_open_attempt(defaults, reader, key)
        if not created:
            # A row we just inserted is ours until we commit; one found may be another request's.
            attempt = PurchaseAttempt.objects.select_for_update().get(pk=attempt.pk)
            if attempt.state not in OPEN_STATES:
                return None
        with_identity = payway_client_module.uses_identity(
            trial=offer.is_trial, identity_token=reader.identity_token
        )
        record_event(attempt, EventKind.BUY)
        if can_reuse_session(attempt, reader, offer, now):
            changed = {"traffic_source": traffic_source[:100]} if traffic_source else {}
            current = offer_fields(offer)
            changed.update((name, current[name]) for name in OWN_OFFER_FIELDS)
            changed = {name: v for name, v in changed.items() if getattr(attempt, name) != v}
            if changed:
                for name, value in changed.items():
                    setattr(attempt, name, value)
                attempt.save(update_fields=[*changed, "updated_at"])
            record_event(attempt, EventKind.SESSION_REUSED)
            return BuyResult(BuyStatus.READY, attempt)

        # A new session: the editor changed the offer, the reader logged in or out, or the old session
        # is too close to its end (or there is none yet). Drop the old one first so that, should
        # create_session fail, no stale client token can be rendered.
        for name, value in offer_fields(offer).items():
            setattr(attempt, name, value)
        attempt.product_key = offer_product_key(offer, attempt.site)
        attempt.account_key = reader.account_key or ""
        attempt.confirmation_page = confirmation_page
        attempt.existing_customer = with_identity
        attempt.payway_session_id = ""
        attempt.klarna_client_token = ""
        attempt.payment_method_categories = []
        attempt.session_created_at = None
        attempt.session_expires_at = None
        if traffic_source:
            attempt.traffic_source = traffic_source[:100]
        # S13: counted here, right before the one call that creates a Payway session. Refused: undo the
        # BUY event (and the attempt, if this buy created it), send nothing.
        budget = ratelimit.reserve_session(reader_key=reader.key, ip=ip, trial=offer.is_trial)
        if not budget.allowed:
            transaction.set_rollback(True)
            return BuyResult(BuyStatus.RATE_LIMITED, None, TOO_MANY_ATTEMPTS, budget.retry_after)
        try:
            session = (client or get_client()).create_session(
                code=offer.product_code,
                confirmation_url=confirmation_url(attempt),
                # v1 requires period_type; a trial is named by its period_id
                # (docs/payway-contract.md#create_session).
                period_type=offer.period_type if (not offer.is_trial or with_identity) else None,
                period_id=offer.period_id or None,
                disable_account_info_overwrite=settings_obj.disable_account_info_overwrite,
                identity_token=reader.identity_token if with_identity else None,
            )
        except PaywallError as exc:
            error = exc
            record_error(attempt, exc)
            # Payway certainly did nothing, and trying again will not change that (a wrong offer, a missing
            # permission, our configuration): this attempt is over. An expired identity token is not: the
            # reader logs in again and goes on with the same attempt.
            terminal = not (
                exc.may_have_reached_payway or exc.transient or isinstance(exc, AuthenticationExpired)
            )
            if terminal and attempt.can_transition(AttemptState.FAILED):
                attempt.state = AttemptState.FAILED
                attempt.error_code = exc.error_code
                attempt.finished_at = now
            attempt.save()
        else:
            categories = [
                {"identifier": c.identifier, "name": c.name} for c in session.payment_method_categories
            ]
            attempt.payway_session_id = session.klarna_payments_session_id[:255]
            attempt.klarna_client_token = session.klarna_client_token
            attempt.payment_method_categories = categories
            attempt.payment_method_category = choose_payment_method_category(
                offer, categories, settings_obj.default_payment_method_category
            )[:50]
            attempt.session_created_at = now
            attempt.session_expires_at = now + SESSION_LIFETIME
            started = attempt.state == AttemptState.NEW
            attempt.state = AttemptState.SESSION_READY
            # No category fits: the checkout will show the fallback, not Klarna; say why where editors
            # look (the purchase log's error filter and, below, the attempt's timeline).
            attempt.error_code = "" if attempt.payment_method_category else NO_PAYMENT_METHOD
            attempt.save(update_fields=_NEW_SESSION_FIELDS)
            record_event(attempt, EventKind.SESSION_CREATED, endpoint=_session_endpoint(with_identity))
            if not attempt.payment_method_category:
                listed = ", ".join(session_category_identifiers(categories))
                record_event(
                    attempt,
                    EventKind.ERROR,
                    error_code=NO_PAYMENT_METHOD,
                    detail=f"{'trial' if offer.is_trial else 'offer'}; session lists: {listed}"[:255],
                )
                logger.warning(
                    "No Klarna payment method category fits attempt %s (session lists: %s)",
                    attempt.reference,
                    listed,
                )

    if error is not None:
        logger.warning(
            "create_session failed for attempt %s: %s (%s)",
            attempt.reference,
            error.error_code,
            type(error).__name__,
        )
        if isinstance(error, AuthenticationExpired) and with_identity:
            return BuyResult(BuyStatus.LOGIN, attempt, ErrorCode.AUTHENTICATION_EXPIRED)
        if attempt.state == AttemptState.FAILED:
            send_signal(signals.purchase_failed, attempt)
        # Our own system token refused twice: nothing the reader can fix by logging in.
        code = ErrorCode.UNAVAILABLE if isinstance(error, AuthenticationExpired) else error.error_code
        return BuyResult(BuyStatus.FAILED, attempt, code)
    if started:
        send_signal(signals.purchase_started, attempt)
    logger.info("Payway session created for attempt %s", attempt.reference)
    return BuyResult(BuyStatus.READY, attempt)


def _session_endpoint(with_identity: bool) -> str:
    if with_identity:
        return payway_client_module.CREATE_SESSION_IDENTITY_PATH
    return payway_client_module.CREATE_SESSION_NEW_CUSTOMER_PATH
