"""Settling purchase attempts the web flow left behind: safe to run from cron as often as you like.

- An open attempt (NEW or SESSION_READY) whose Payway session is past its 48 hours, or a NEW attempt that
  never got a session within an hour, is abandoned: it becomes EXPIRED.
- A PLACING attempt older than the threshold was interrupted while its order call may have reached Payway
  (a crash or a lost worker after sending). It is never re-sent (docs/payway-contract.md#never-re-send):
  it becomes UNKNOWN and is flagged for follow-up (docs/reliability.md F03, F16).
- UNKNOWN attempts stay as they are. Settling one needs the reader's identity token (``me/active_products``)
  or a Payway account id, and the plugin keeps neither after the request, so they are listed for support.

Every change is a conditional update (``filter(pk=…, state=old).update(state=new)``), so it cannot
overwrite a state the web flow has just written, and records a ``reconciled`` event. A second run finds
nothing left to change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from ..models import ALLOWED_TRANSITIONS, AttemptState, EventKind, PurchaseAttempt, PurchaseEvent

#: A Payway session lives 48 hours (docs/payway-contract.md#create_session).
SESSION_LIFETIME = dt.timedelta(hours=48)
#: A NEW attempt normally gets its session within seconds; after this it was abandoned.
NEW_ATTEMPT_TIMEOUT = dt.timedelta(hours=1)
#: A PLACING attempt older than this is no longer being worked on by a request.
PLACING_TIMEOUT = dt.timedelta(minutes=10)

#: ``error_code`` given to attempts whose outcome became unknown here (the reader-message code).
UNKNOWN_ERROR_CODE = "unknown"


@dataclass(frozen=True)
class Change:
    reference: str
    product_code: str
    old_state: str
    new_state: str
    reason: str


@dataclass
class ReconcileResult:
    changes: list[Change] = field(default_factory=list)
    #: UNKNOWN attempts (after this run) that someone must check with Payway.
    follow_up: list[PurchaseAttempt] = field(default_factory=list)

    @property
    def expired(self) -> list[Change]:
        return [c for c in self.changes if c.new_state == AttemptState.EXPIRED]

    @property
    def unknown(self) -> list[Change]:
        return [c for c in self.changes if c.new_state == AttemptState.UNKNOWN]


def reconcile(
    *,
    now: dt.datetime | None = None,
    placing_timeout: dt.timedelta = PLACING_TIMEOUT,
    new_timeout: dt.timedelta = NEW_ATTEMPT_TIMEOUT,
    dry_run: bool = False,
) -> ReconcileResult:
    """Expire abandoned attempts, mark stale PLACING ones UNKNOWN, and list UNKNOWN ones for follow-up."""
    now = now or timezone.now()
    result = ReconcileResult()

    session_over = Q(session_expires_at__lt=now) | Q(
        session_expires_at__isnull=True, session_created_at__lt=now - SESSION_LIFETIME
    )
    stale_open = (Q(state=AttemptState.SESSION_READY) & session_over) | (
        Q(state=AttemptState.NEW) & (session_over | Q(created_at__lt=now - new_timeout))
    )
    for attempt in PurchaseAttempt.objects.filter(stale_open).order_by("pk"):
        reason = (
            "session past its 48 hours"
            if attempt.session_created_at or attempt.session_expires_at
            else "no session within an hour"
        )
        _move(attempt, AttemptState.EXPIRED, reason, now, result, dry_run)

    placing_since = Case(
        When(placing_at__isnull=False, then=F("placing_at")),
        default=F("updated_at"),
    )
    stale_placing = PurchaseAttempt.objects.alias(placing_since=placing_since).filter(
        state=AttemptState.PLACING, placing_since__lt=now - placing_timeout
    )
    for attempt in stale_placing.order_by("pk"):
        reason = f"placing for more than {int(placing_timeout.total_seconds() // 60)} min; outcome unknown"
        _move(attempt, AttemptState.UNKNOWN, reason, now, result, dry_run)

    result.follow_up = list(
        PurchaseAttempt.objects.filter(state=AttemptState.UNKNOWN)
        .defer("klarna_client_token")
        .order_by("created_at", "pk")
    )
    if dry_run:
        # Nothing was written; show what would need following up after a real run.
        pending = {c.reference for c in result.unknown}
        result.follow_up += list(
            PurchaseAttempt.objects.filter(reference__in=pending).defer("klarna_client_token")
        )
    return result


def _move(
    attempt: PurchaseAttempt,
    new_state: str,
    reason: str,
    now: dt.datetime,
    result: ReconcileResult,
    dry_run: bool,
) -> None:
    old_state = attempt.state
    assert new_state in ALLOWED_TRANSITIONS[old_state], (old_state, new_state)
    change = Change(str(attempt.reference), attempt.product_code, old_state, new_state, reason)
    if dry_run:
        result.changes.append(change)
        return
    fields: dict = {"state": new_state, "updated_at": now}
    if new_state == AttemptState.EXPIRED:
        fields["finished_at"] = now
    if new_state == AttemptState.UNKNOWN:
        fields["error_code"] = Case(
            When(error_code="", then=Value(UNKNOWN_ERROR_CODE)), default=F("error_code")
        )
    with transaction.atomic():
        # Conditional: if the web flow moved the attempt meanwhile, this matches nothing and we leave it.
        moved = PurchaseAttempt.objects.filter(pk=attempt.pk, state=old_state).update(**fields)
        if not moved:
            return
        PurchaseEvent.objects.create(
            attempt=attempt,
            kind=EventKind.RECONCILED,
            state=new_state,
            created_at=now,
            detail=f"{old_state} -> {new_state}: {reason}"[:255],
        )
    result.changes.append(change)
