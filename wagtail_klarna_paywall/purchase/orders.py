"""Steps 2 and 3 of the purchase flow: place the order once, then confirm (``docs/payway-contract.md``).

2. :func:`place_order`: the reader authorized in Klarna's widget. The attempt is moved from
   ``session_ready`` to ``placing`` by a conditional UPDATE committed BEFORE Payway is called, so whatever
   the number of submits, tabs or workers, exactly one request calls Payway. Its outcome is committed
   before the reader gets an answer; every later request gets that stored outcome (:func:`stored_outcome`).
   The same step claims the product for every identity of the buyer (:mod:`.claims`): while another
   attempt of theirs holds it, this one ends FAILED "already_bought" and nothing is sent (one order per
   reader and product).
3. :func:`confirm`: the reader is back on the confirmation page; ``placed`` becomes ``confirmed`` once.

The two milestones, placed and confirmed, are the attempt's ``placed_at`` and ``confirmed_at``, set by the
conditional UPDATE that reaches the state; the events record what may happen more than once.

Rules held here: a POST that may have reached Payway is never re-sent (its outcome is "unknown" and
is settled, not retried); nothing secret or personal is stored or logged.

``place_order`` needs autocommit: inside ``transaction.atomic`` or with ``ATOMIC_REQUESTS`` the ``placing``
mark would not be committed before the call, so it refuses there and sends nothing. Where the reader is
sent afterwards is :mod:`.redirects`' to decide.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connections, router
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from .. import signals
from ..exceptions import (
    AuthenticationExpired,
    ErrorCode,
    PaymentMethodFailed,
    PaywallError,
    PaywayError,
    PermissionDenied,
)
from ..messages import ALREADY_BOUGHT, DECLINED_IN_WIDGET, SESSION_EXPIRED, UNKNOWN_OUTCOME
from ..models import (
    AttemptState,
    EventKind,
    PurchaseAttempt,
    record_event,
)
from ..payway import get_client
from ..payway.types import BrowserInfo, CustomerInfo
from . import claims
from .attempts import (
    PLACING_LEASE,
    Reader,
    account_sync_flags,
    attempt_product_key,
    confirmation_path,
    record_error,
    send_signal,
    site_settings,
    update_if,
)
from .redirects import describe_url, is_allowed_klarna_redirect

if TYPE_CHECKING:
    from ..payway.client import PaywayClient

logger = logging.getLogger("wagtail_klarna_paywall.purchase.orders")

# -- step 2: place the order ------------------------------------------------------------------------


class Outcome:
    REDIRECT = "redirect"  # to Klarna (allow-listed URL)
    CONFIRMATION = "confirmation"  # straight to our confirmation page
    IN_PROGRESS = "in_progress"  # another request is placing this attempt right now
    DECLINED = "declined"
    FAILED = "failed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    RETRY = "retry"  # nothing reached Payway: the reader may authorize and submit again
    LOGIN = "login"  # the reader must log in (again) to buy as an existing customer
    ALREADY_BOUGHT = "already_bought"  # the reader's other attempt holds this product: nothing was sent
    NOT_PLACEABLE = "not_placeable"  # the attempt has no session yet (never placed)


@dataclass
class PlaceResult:
    outcome: str
    attempt: PurchaseAttempt
    error_code: str = ""
    redirect_url: str = ""
    #: True for the request that actually called Payway (False for a replay of a stored outcome).
    called_payway: bool = False


def expire_stale_placing(attempt: PurchaseAttempt, now: dt.datetime | None = None) -> PurchaseAttempt:
    """A ``placing`` attempt past its lease lost its worker: mark it ``unknown`` (never re-placed)."""
    now = now or timezone.now()
    if attempt.state != AttemptState.PLACING or attempt.placing_at is None:
        return attempt
    if now - attempt.placing_at < PLACING_LEASE:
        return attempt
    rows = update_if(
        attempt,
        PurchaseAttempt.objects.filter(
            pk=attempt.pk, state=AttemptState.PLACING, placing_at__lte=now - PLACING_LEASE
        ),
        state=AttemptState.UNKNOWN,
        error_code=UNKNOWN_OUTCOME,
        finished_at=now,
        updated_at=now,
    )
    if rows:
        record_event(attempt, EventKind.ERROR, error_code=UNKNOWN_OUTCOME, detail="placing lease expired")
        logger.error("Attempt %s was left placing past its lease: outcome unknown", attempt.reference)
        send_signal(signals.purchase_failed, attempt)
    return attempt


def stored_outcome(attempt: PurchaseAttempt, request: Any = None) -> PlaceResult:
    """What a request for an attempt that is no longer ``session_ready`` gets: its stored outcome."""
    attempt = expire_stale_placing(attempt)
    state = attempt.state
    if state == AttemptState.PLACING:
        return PlaceResult(Outcome.IN_PROGRESS, attempt)
    if state in (AttemptState.PLACED, AttemptState.CONFIRMED):
        if (
            attempt.redirect_uri
            and not attempt.redirect_rejected
            and is_allowed_klarna_redirect(attempt.redirect_uri)
        ):
            return PlaceResult(Outcome.REDIRECT, attempt, redirect_url=attempt.redirect_uri)
        return PlaceResult(Outcome.CONFIRMATION, attempt, redirect_url=confirmation_path(attempt, request))
    if state == AttemptState.DECLINED:
        return PlaceResult(Outcome.DECLINED, attempt, attempt.error_code)
    if state == AttemptState.FAILED:
        if attempt.error_code == ALREADY_BOUGHT:
            return PlaceResult(Outcome.ALREADY_BOUGHT, attempt, ALREADY_BOUGHT)
        return PlaceResult(Outcome.FAILED, attempt, attempt.error_code)
    if state == AttemptState.UNKNOWN:
        return PlaceResult(Outcome.UNKNOWN, attempt, UNKNOWN_OUTCOME)
    if state == AttemptState.EXPIRED:
        return PlaceResult(Outcome.EXPIRED, attempt, SESSION_EXPIRED)
    return PlaceResult(Outcome.NOT_PLACEABLE, attempt)


def _inside_a_transaction() -> bool:
    """Whether the PLACING mark could not be committed before the call: the database wraps each request
    in a transaction (``ATOMIC_REQUESTS``), or the caller holds one open (an atomic block of its own;
    Django's test cases' blocks excepted, as for ``durable``)."""
    connection = connections[router.db_for_write(PurchaseAttempt)]
    return bool(connection.settings_dict.get("ATOMIC_REQUESTS")) or any(
        not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks
    )


def _finish(attempt: PurchaseAttempt, from_states: tuple[str, ...], **fields: Any) -> bool:
    """Conditional, monotonic state change; returns whether this call made it. Updates ``attempt``."""
    fields.setdefault("updated_at", timezone.now())
    queryset = PurchaseAttempt.objects.filter(pk=attempt.pk, state__in=from_states)
    return bool(update_if(attempt, queryset, **fields))


@sensitive_variables("authorization_token", "customer")
def place_order(
    attempt: PurchaseAttempt,
    reader: Reader,
    *,
    authorization_token: str,
    browser: BrowserInfo,
    customer: CustomerInfo | None = None,
    now: dt.datetime | None = None,
    client: PaywayClient | None = None,
    request: Any = None,
) -> PlaceResult:
    """Place the order of ``attempt`` exactly once (invariants I1-I3). See the module docstring.

    ``request`` is only passed through to build a site-relative confirmation URL.
    """
    now = now or timezone.now()
    if attempt.state != AttemptState.SESSION_READY:
        return stored_outcome(attempt, request)
    identity_token = reader.identity_token if attempt.existing_customer else None
    if attempt.existing_customer and not identity_token:
        # The session was made for the reader's Payway account; they have logged out since.
        return PlaceResult(Outcome.LOGIN, attempt, ErrorCode.LOGIN_REQUIRED)
    if not attempt.existing_customer and customer is None:
        return PlaceResult(Outcome.RETRY, attempt, ErrorCode.INVALID_CUSTOMER)
    if _inside_a_transaction():
        # The PLACING mark below would stay uncommitted during the call (check E010): refuse rather than
        # risk a rolled-back mark and a second order. Nothing has been sent; the attempt stays as it was.
        logger.error(
            "Refusing to place attempt %s: called inside a transaction (ATOMIC_REQUESTS, check E010, or an "
            "atomic block around the view)",
            attempt.reference,
        )
        return PlaceResult(Outcome.RETRY, attempt, ErrorCode.CONFIGURATION)

    keys = claims.reader_identities(attempt, reader, identity_token, customer)
    if keys is None:
        # A logged-in purchase whose Payway account cannot be named: the guard could not see this
        # reader's other devices, so nothing is sent. The attempt stays ready.
        record_event(
            attempt, EventKind.ERROR, error_code=ErrorCode.UNAVAILABLE, detail="Payway account unknown"
        )
        return PlaceResult(Outcome.RETRY, attempt, ErrorCode.UNAVAILABLE)

    # The exactly-once gate: only the request whose UPDATE changes the row calls Payway, and only while
    # no other attempt of the same reader holds the product (:func:`.claims.claim_and_mark_placing`). Its
    # transaction commits the PLACING mark and the claim before the call (I2).
    rows, holder = claims.claim_and_mark_placing(attempt, keys, attempt_product_key(attempt), now)
    if holder is not None:
        record_event(
            attempt,
            EventKind.ERROR,
            error_code=ALREADY_BOUGHT,
            detail=f"already bought in attempt {holder.reference}; nothing sent to Payway",
        )
        logger.info(
            "Attempt %s not placed: attempt %s holds the product", attempt.reference, holder.reference
        )
        send_signal(signals.purchase_failed, attempt)
        return PlaceResult(Outcome.ALREADY_BOUGHT, attempt, ALREADY_BOUGHT)
    if not rows:
        if attempt.state == AttemptState.SESSION_READY:
            # The session is past its 48 hours (or was never made): this attempt cannot be placed.
            if attempt.session_expires_at is not None and _finish(
                attempt,
                (AttemptState.SESSION_READY,),
                state=AttemptState.EXPIRED,
                error_code=SESSION_EXPIRED,
                finished_at=now,
            ):
                record_event(attempt, EventKind.ERROR, error_code=SESSION_EXPIRED)
                return PlaceResult(Outcome.EXPIRED, attempt, SESSION_EXPIRED)
            return PlaceResult(Outcome.NOT_PLACEABLE, attempt)
        return stored_outcome(attempt, request)

    settings_obj = site_settings(attempt.site)
    try:
        order = (client or get_client()).place_order(
            klarna_payments_session_id=attempt.payway_session_id,
            klarna_authorization_token=authorization_token,
            browser=browser,
            flags=account_sync_flags(settings_obj),
            traffic_source=attempt.traffic_source or settings_obj.traffic_source_default,
            merchant_reference=attempt.merchant_reference,
            customer=None if attempt.existing_customer else customer,
            identity_token=identity_token,
            trial=attempt.is_trial,
        )
    # Every failure, even a bug, must leave a stored outcome: the attempt is PLACING and may be at Payway.
    except BaseException as exc:  # noqa: BLE001
        return _order_failed(attempt, exc, now)
    return _order_placed(attempt, order, request)


def _order_placed(attempt: PurchaseAttempt, order: Any, request: Any) -> PlaceResult:
    now = timezone.now()
    redirect = order.redirect_uri or ""
    allowed = is_allowed_klarna_redirect(redirect)
    rejected = bool(redirect) and not allowed
    # UNKNOWN too: a lease that ran out while Payway was slow must not hide the order it did place.
    made = _finish(
        attempt,
        (AttemptState.PLACING, AttemptState.UNKNOWN),
        state=AttemptState.PLACED,
        order_id=(order.order_id or "")[:255],
        redirect_uri=redirect if allowed else "",
        redirect_rejected=rejected,
        error_code="",
        placed_at=now,
        finished_at=now,
    )
    if made:
        # The milestone is ``placed_at``, written above (models.MILESTONES): no event.
        logger.info("Order placed for attempt %s", attempt.reference)
        if rejected:
            record_event(
                attempt,
                EventKind.SECURITY,
                error_code=ErrorCode.REDIRECT_REJECTED,
                detail=f"redirect not allowed: {describe_url(redirect)}"[:255],
            )
            logger.warning(
                "Attempt %s: Payway's redirect is not on the Klarna allow-list; sent the reader to the "
                "confirmation page instead",
                attempt.reference,
            )
        send_signal(signals.purchase_completed, attempt)
    result = stored_outcome(attempt, request)
    result.called_payway = True
    return result


def _order_failed(attempt: PurchaseAttempt, exc: BaseException, now: dt.datetime) -> PlaceResult:
    """Store the outcome of a failed place_order (committed before the reader is answered)."""
    if not isinstance(exc, Exception):
        # KeyboardInterrupt/SystemExit while the request may be at Payway: record what we can, then go.
        _finish(
            attempt,
            (AttemptState.PLACING,),
            state=AttemptState.UNKNOWN,
            error_code=UNKNOWN_OUTCOME,
            finished_at=now,
        )
        raise exc
    record_error(attempt, exc)
    code = str(getattr(exc, "error_code", ErrorCode.GENERIC))
    common = {
        "payway_status": getattr(exc, "status", None),
        "payway_code": str(getattr(exc, "code", "") or "")[:100],
        "payway_field": str(getattr(exc, "field", "") or "")[:100],
    }
    # Our exceptions classify themselves (exceptions.py); anything else is a bug, and may have reached Payway.
    refused = isinstance(exc, PaywallError) and exc.refused
    not_sent = isinstance(exc, PaywallError) and not exc.refused and not exc.may_have_reached_payway

    if not_sent:
        # Nothing reached Payway (a connect failure) or Payway refused the token before executing
        # anything (401): the attempt is placeable again (docs/payway-contract.md#never-re-send).
        _finish(
            attempt,
            (AttemptState.PLACING,),
            state=AttemptState.SESSION_READY,
            placing_at=None,
            error_code=code[:50],
            **common,
        )
        logger.warning("place_order not executed for attempt %s: %s", attempt.reference, code)
        if isinstance(exc, AuthenticationExpired):
            if attempt.existing_customer:
                return PlaceResult(Outcome.LOGIN, attempt, code, called_payway=True)
            # Our own system token was refused twice: nothing the reader can fix by logging in.
            code = ErrorCode.UNAVAILABLE
        return PlaceResult(Outcome.RETRY, attempt, code, called_payway=True)

    if refused:
        # Payway's definite no: no order exists. Klarna's refusal is the reader's (declined); any other
        # is ours (failed).
        state, outcome = AttemptState.FAILED, Outcome.FAILED
        if isinstance(exc, PaymentMethodFailed):
            state, outcome = AttemptState.DECLINED, Outcome.DECLINED
        elif isinstance(exc, PermissionDenied):
            # A 403 with a scope, identity or permission code: our configuration, not Klarna's refusal,
            # so never DECLINED. Whether Payway rejects such a 403 before executing anything is not
            # documented (docs/payway-contract.md, "Errors"), so we decide conservatively: the attempt is
            # not put back to session_ready (its single-use authorization is never re-sent), it ends
            # FAILED with the error recorded for the editors' error panel, and the reader is told
            # payments cannot be taken just now. A later try is a new attempt with a new session and a
            # new authorization.
            logger.error(
                "place_order refused for attempt %s: configuration error (HTTP 403 %s)",
                attempt.reference,
                getattr(exc, "code", "") or "without a code",
            )
    else:
        # PaywayTimeout (incl. a lost connection), ServerError, MalformedResponse, RateLimited, or a bug:
        # the order may exist. Never re-sent; settled by reconciliation
        # (docs/payway-contract.md#never-re-send).
        if not isinstance(exc, PaywayError):
            logger.exception(
                "Unexpected error placing the order of attempt %s", attempt.reference, exc_info=exc
            )
        state, outcome, code = AttemptState.UNKNOWN, Outcome.UNKNOWN, UNKNOWN_OUTCOME

    made = _finish(
        attempt, (AttemptState.PLACING,), state=state, error_code=code[:50], finished_at=now, **common
    )
    log = logger.error if outcome == Outcome.UNKNOWN else logger.warning
    log("place_order for attempt %s ended %s (%s)", attempt.reference, state, type(exc).__name__)
    if made:
        if state == AttemptState.DECLINED:
            record_event(attempt, EventKind.DECLINED, error_code=code[:50])
        send_signal(signals.purchase_failed, attempt)
        return PlaceResult(outcome, attempt, code, called_payway=True)
    result = stored_outcome(attempt)
    result.called_payway = True
    return result


def record_validation_error(attempt: PurchaseAttempt, code: str) -> None:
    """The browser's submission was rejected before any Payway call (no body is recorded)."""
    record_event(attempt, EventKind.ERROR, error_code=code[:50], detail="rejected before calling Payway")


# -- the widget said no -----------------------------------------------------------------------------


def decline_in_widget(attempt: PurchaseAttempt, now: dt.datetime | None = None) -> PlaceResult:
    """Klarna's widget answered ``show_form: false``: this session cannot be paid. Terminal; a retry
    starts a new attempt with a new session."""
    now = now or timezone.now()
    if _finish(
        attempt,
        (AttemptState.SESSION_READY, AttemptState.NEW),
        state=AttemptState.DECLINED,
        error_code=DECLINED_IN_WIDGET,
        finished_at=now,
    ):
        record_event(attempt, EventKind.DECLINED, error_code=DECLINED_IN_WIDGET)
        send_signal(signals.purchase_failed, attempt)
    return stored_outcome(attempt)


# -- step 3: confirmation ---------------------------------------------------------------------------


def confirm(attempt: PurchaseAttempt, now: dt.datetime | None = None) -> bool:
    """Mark a placed attempt confirmed; True only for the one request that did it (C06). The milestone
    is ``confirmed_at``, set by the same conditional UPDATE (models.MILESTONES): no event."""
    now = now or timezone.now()
    if attempt.state != AttemptState.PLACED:
        return False
    return _finish(attempt, (AttemptState.PLACED,), state=AttemptState.CONFIRMED, confirmed_at=now)
