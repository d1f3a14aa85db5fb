"""One order per reader and product: the claims that stop a reader paying twice for what they hold.

Whatever the entry point (the purchase page's offer, an article's paywall), tab, device or worker process,
a reader gets at most one order for a product (:func:`~.attempts.product_key`: title, kind, code) within
the rebuy window. The reader is every identity of the buyer (:func:`reader_identities`: the browser
reader, their Payway account, the e-mail address a new customer typed), and each (identity, product) has
one :class:`ProductClaim` row, unique in the database. :func:`claim_and_mark_placing` takes them in the
same transaction as the attempt's PLACING mark, committed before Payway is called
(``docs/payway-contract.md``); :mod:`.orders` calls it and does the rest.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction

from ..messages import ALREADY_BOUGHT
from ..models import AttemptState, EventKind, ProductClaim, PurchaseAttempt, record_event
from ..payway.types import CustomerInfo
from . import accounts
from .attempts import ORDERED_STATES, REBUY_GUARD, Reader, update_if


def reader_identities(
    attempt: PurchaseAttempt, reader: Reader, identity_token: str | None, customer: CustomerInfo | None
) -> list[str] | None:
    """Every key that names the buyer of ``attempt``: the browser reader, their Payway account and, for a
    new customer, the typed e-mail address (keyed hashes only). None when a logged-in purchase's account
    cannot be named."""
    keys = {attempt.reader_key, reader.key}
    account = reader.account_key
    if not account and identity_token:
        account = accounts.account_key(None, identity_token)
    account = account or attempt.account_key
    if account:
        keys.add(account)
    elif attempt.existing_customer:
        return None
    if customer is not None and not attempt.existing_customer:
        email = accounts.email_key(customer.email)
        if email:
            keys.add(email)
    return sorted(key for key in keys if key)


def _mark_placing(attempt: PurchaseAttempt, placing: dict[str, Any], now: dt.datetime) -> int:
    """The exactly-once gate: SESSION_READY -> PLACING (the ``placing`` fields), for the one request whose
    UPDATE changes the row."""
    return update_if(
        attempt,
        PurchaseAttempt.objects.filter(
            pk=attempt.pk, state=AttemptState.SESSION_READY, session_expires_at__gt=now
        ).exclude(payway_session_id=""),
        **placing,
    )


def claim_and_mark_placing(
    attempt: PurchaseAttempt, keys: list[str], product: str, now: dt.datetime
) -> tuple[int, PurchaseAttempt | None]:
    """Move ``attempt`` to PLACING while claiming ``product`` for every identity in ``keys``, in one
    short transaction committed before Payway is called. Returns (rows moved, None), or (0, the attempt
    holding the product) after marking ``attempt`` FAILED "already_bought".

    Why claim rows and not a partial unique index: "one order per reader and product" must hold across
    several identities of one buyer (session, account, typed e-mail) and only within the rebuy window.
    A unique index can neither span several keys of one row nor say "within the last 48 hours" (its
    predicate must be immutable, so ``now()`` is out), and an index on the attempts would also keep
    refusing after the window. So each (identity, product) has one :class:`ProductClaim` row, unique in
    the database. This step first makes the conditional UPDATE to PLACING: only the request that changes
    the row goes on (a second submit, or an attempt that cannot be placed, claims nothing). It then
    inserts the rows, held by ``attempt``: when none existed, nobody else holds the product and that
    is all. When one existed, the unique constraint fails the INSERT and the transaction is rolled back
    whole; a second one makes the mark again, creates the missing rows and locks them all (``SELECT ...
    FOR UPDATE``, in sorted key order so two buyers sharing a key cannot deadlock), and refuses while
    another attempt holding one of them is placing, placed, confirmed or unknown before ``held_until``:
    the attempt is then marked FAILED in the same transaction, so its PLACING mark is never seen.
    Otherwise it takes the rows. Concurrent submits, tabs, devices and worker processes queue on the
    unique index and the row locks; the first one commits its claim, and every later one sees it.
    """
    held_until = now + REBUY_GUARD
    placing = {
        "state": AttemptState.PLACING,
        "placing_at": now,
        "error_code": "",
        "product_key": product,
        "updated_at": now,
    }
    # What the attempt was, should the first transaction roll back.
    unplaced = {name: getattr(attempt, name) for name in placing}
    try:
        return _claim_new_rows(attempt, keys, product, placing, held_until, now)
    except IntegrityError:
        # A row exists (an earlier purchase, or another request's, committed first): everything was
        # rolled back, the PLACING mark too. Mark again, and read who holds the rows.
        for name, value in unplaced.items():
            setattr(attempt, name, value)
    return _claim_existing_rows(attempt, keys, product, placing, held_until, now)


def _claim_new_rows(
    attempt: PurchaseAttempt,
    keys: list[str],
    product: str,
    placing: dict[str, Any],
    held_until: dt.datetime,
    now: dt.datetime,
) -> tuple[int, None]:
    """The usual case, a first purchase of the product by every identity: no row exists, so no attempt
    holds one, and one plain INSERT both creates the rows and holds them. Raises IntegrityError (the
    transaction rolled back) when a row exists; another request inserting one of these keys meanwhile
    makes it wait for that commit, then fail."""
    # Durable: committed when the block ends, whatever the caller does (Django refuses to nest it).
    with transaction.atomic(durable=True):
        rows = _mark_placing(attempt, placing, now)
        if rows:
            ProductClaim.objects.bulk_create(
                ProductClaim(reader_key=key, product_key=product, attempt=attempt, held_until=held_until)
                for key in keys
            )
            # The intent, committed with the mark and the claims: the reader authorized, Payway is next.
            record_event(attempt, EventKind.AUTHORIZED)
        return rows, None


def _claim_existing_rows(
    attempt: PurchaseAttempt,
    keys: list[str],
    product: str,
    placing: dict[str, Any],
    held_until: dt.datetime,
    now: dt.datetime,
) -> tuple[int, PurchaseAttempt | None]:
    """A buyer with a claim row already: lock every row, refuse while another attempt holds one, else
    take them (see :func:`claim_and_mark_placing`)."""
    with transaction.atomic(durable=True):
        rows = _mark_placing(attempt, placing, now)
        if not rows:
            return 0, None
        claims = _locked_claims(keys, product, attempt, held_until)
        holder_ids = {
            claim.attempt_id
            for claim in claims
            if claim.attempt_id
            and claim.attempt_id != attempt.pk
            and claim.held_until is not None
            and claim.held_until > now
        }
        holder = (
            PurchaseAttempt.objects.filter(pk__in=holder_ids, state__in=ORDERED_STATES)
            .order_by("placing_at", "pk")
            .first()
            if holder_ids
            else None
        )
        if holder is not None:
            # The rows this attempt created stay pointing at it; a FAILED attempt holds nothing.
            update_if(
                attempt,
                PurchaseAttempt.objects.filter(pk=attempt.pk, state=AttemptState.PLACING),
                state=AttemptState.FAILED,
                placing_at=None,
                error_code=ALREADY_BOUGHT,
                duplicate_of=holder,
                finished_at=now,
                updated_at=now,
            )
            return 0, holder
        # The rows this request created (the keys that had none) are already held as they should be.
        taken = [
            claim.pk for claim in claims if (claim.attempt_id, claim.held_until) != (attempt.pk, held_until)
        ]
        if taken:
            ProductClaim.objects.filter(pk__in=taken).update(
                attempt=attempt, held_until=held_until, updated_at=now
            )
        # The intent, committed with the mark and the claims: the reader authorized, Payway is next.
        record_event(attempt, EventKind.AUTHORIZED)
        return rows, None


def _locked_claims(
    keys: list[str], product: str, attempt: PurchaseAttempt, held_until: dt.datetime
) -> list[ProductClaim]:
    """The claim rows of (each of ``keys``, ``product``), created when missing and locked until the
    transaction ends, in key order (two buyers sharing a key cannot deadlock). Two statements whatever the
    number of keys: one INSERT that skips rows that exist (``ON CONFLICT DO NOTHING``; a row another
    request is creating makes it wait for that request's commit), then one ``SELECT ... FOR UPDATE``, whose
    fresh snapshot sees every row, committed by whoever made it.

    Only the request that has just moved ``attempt`` to PLACING calls it, for a buyer who has a row
    already, so the rows it creates (the missing keys) are held by ``attempt`` at once and need no update;
    should ``attempt`` end FAILED in this transaction instead, a claim counts only while its attempt is in
    an ordered state."""
    held = [
        ProductClaim(reader_key=k, product_key=product, attempt=attempt, held_until=held_until) for k in keys
    ]
    ProductClaim.objects.bulk_create(held, ignore_conflicts=True)
    claims = list(
        ProductClaim.objects.select_for_update()
        .filter(product_key=product, reader_key__in=keys)
        .order_by("reader_key")
    )
    if len(claims) != len(set(keys)):
        raise IntegrityError("Could not lock the product claims")
    return claims
