"""Purchase attempts and their readers: who is buying, what they buy, and where they land afterwards.

Shared by the two steps of the flow, :mod:`.session` (the reader pressed "buy") and :mod:`.orders` (the
reader authorized in Klarna's widget): reader keys, attempt lookup (and the security event when a
reference is someone else's), the product key the one-order rule counts by, the earlier order a reader
is shown instead of buying twice, the Klarna payment method category, and the confirmation URL.

Nothing secret or personal is stored or logged here (no access or authorization tokens, no personnummer,
no customer names or e-mail).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.core.cache import caches
from django.db import connections
from django.db.models import Q
from django.utils import timezone
from wagtail.models import Page, Site

from ..blocks import TRIAL_PAYMENT_METHOD_CATEGORIES
from ..conf import paywall_settings
from ..exceptions import (
    ConfigurationError,
    ErrorCode,
)
from ..models import (
    AttemptState,
    EventKind,
    PaywallSettings,
    PurchaseAttempt,
    record_event,
)
from ..payway import client as payway_client_module
from ..payway.types import AccountSyncFlags

if TYPE_CHECKING:
    from django.http import HttpRequest

    from ..blocks import Offer

logger = logging.getLogger("wagtail_klarna_paywall.purchase.attempts")

#: A Payway (and Klarna) session lives 48 hours (docs/payway-contract.md#create_session).
SESSION_LIFETIME = dt.timedelta(hours=48)
#: A ``placing`` attempt older than this has lost its worker (crash, killed process): it is shown as
#: "unknown" and settled, never placed again (docs/reliability.md F16). Well above any read timeout.
PLACING_LEASE = dt.timedelta(minutes=5)
#: After an order for a product (or while one is being placed or settled), the same reader pressing
#: "buy" on it again within this window is shown that purchase instead of paying twice (C05, C09).
REBUY_GUARD = dt.timedelta(hours=48)

#: States in which an order exists or may exist.
ORDERED_STATES = (AttemptState.PLACING, AttemptState.PLACED, AttemptState.CONFIRMED, AttemptState.UNKNOWN)

_MAX_REFERENCE = 255
_UTM_RE = re.compile(r"^[\w.\-+ ]{1,100}$")


# -- readers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """Who is buying. ``key`` is ``user:<pk>`` or ``anon:<sha256 of the session key>``."""

    key: str
    user_id: int | None = None
    #: The reader's Payway identity token (v1 purchases). Never stored.
    identity_token: str | None = field(default=None, repr=False)
    #: ``account:<keyed hash>`` of the reader's Payway account when logged in (:mod:`.accounts`): the
    #: same reader on every device and after every login.
    account_key: str | None = None
    #: The reader's key was made by this request (a Django session it created): no attempt can name it
    #: yet, so the flow need not look for one.
    new: bool = False


def user_reader_key(user_pk: Any) -> str:
    return f"user:{user_pk}"


def anonymous_reader_key(session_key: str) -> str:
    # Hashed so the purchase log never holds a value that would let someone hijack the session.
    return "anon:" + hashlib.sha256(session_key.encode()).hexdigest()


def attempt_by_reference(reference: Any) -> PurchaseAttempt | None:
    """The attempt with this reference, whoever made it; None for a malformed or unknown reference.
    Whether the asking reader may see it is the caller's to decide (:func:`is_readers`, or
    ``readers.made_in_this_browser``): one query by the unique reference, whichever way it is decided."""
    ref = parse_reference(reference)
    if ref is None:
        return None
    try:
        # get(), not first(): the reference is unique, and first()'s ORDER BY (the model's ordering) costs
        # a third of this read's time for nothing.
        return PurchaseAttempt.objects.get(reference=ref)
    except PurchaseAttempt.DoesNotExist:
        return None


#: What the confirmation page reads of an attempt: whose it is, its state and outcome, the summary, the
#: analytics event, the site and page it is adopted into (``readers.adopt``) and its article.
CONFIRMATION_FIELDS = (
    *("id", "reference", "state", "reader_key", "account_key", "existing_customer", "error_code"),
    *("placing_at", "placed_at", "product_code", "access_codes", "product_name", "offer_label"),
    *("selling_points", "is_trial", "price", "price_period"),
    *("site", "page", "purchase_page", "confirmation_page"),
)
#: What it reads of the article (attribute names): whether it is live, its type, and the path its URL is
#: made of (all that Wagtail's ``Page.get_url_parts`` needs; see ``pages.article_url``).
ARTICLE_ROUTE_FIELDS = ("live", "content_type_id", "url_path")


def attempt_to_confirm(reference: Any) -> PurchaseAttempt | None:
    """:func:`attempt_by_reference` for the confirmation page: only :data:`CONFIRMATION_FIELDS`, and the
    article (``attempt.page``) with only :data:`ARTICLE_ROUTE_FIELDS`, in one query. A field not read
    here still loads when it is used, one query more (``tests/test_flow_statements.py`` counts them).

    In SQL of its own (``Manager.raw``, made once from the models' table and column names): the ORM
    compiles its query on every call, and for these columns and a join that took ten times as long as
    the database took to run it, the largest cost of the page (docs/performance.md, "confirmation")."""
    ref = parse_reference(reference)
    if ref is None:
        return None
    alias = PurchaseAttempt.objects.db
    param = PurchaseAttempt._meta.get_field("reference").get_db_prep_value(ref, connections[alias])
    attempt = next(
        iter(PurchaseAttempt.objects.db_manager(alias).raw(_confirmation_sql(alias), [param])), None
    )
    if attempt is None:
        return None
    route = {name: attempt.__dict__.pop(f"article_{name}") for name in ARTICLE_ROUTE_FIELDS}
    if attempt.page_id is not None:
        route.update(id=attempt.page_id, live=bool(route["live"]))  # SQLite answers 0 or 1
        # from_db takes the values in the model's field order, whatever the order of the names.
        names = [f.attname for f in Page._meta.concrete_fields if f.attname in route]
        attempt.page = Page.from_db(alias, names, [route[name] for name in names])
    return attempt


@functools.cache
def _confirmation_sql(alias: str) -> str:
    quote = connections[alias].ops.quote_name
    meta, page_meta = PurchaseAttempt._meta, Page._meta
    select = [f"a.{quote(meta.get_field(name).column)}" for name in CONFIRMATION_FIELDS]
    select += [
        f"p.{quote(page_meta.get_field(name).column)} AS {quote('article_' + name)}"
        for name in ARTICLE_ROUTE_FIELDS
    ]
    # Quoted table and column names only; the reference is a parameter.
    return (
        f"SELECT {', '.join(select)} FROM {quote(meta.db_table)} a"  # noqa: S608
        f" LEFT OUTER JOIN {quote(page_meta.db_table)} p"
        f" ON p.{quote(page_meta.pk.column)} = a.{quote(meta.get_field('page').column)}"
        f" WHERE a.{quote(meta.get_field('reference').column)} = %s"
    )


def update_if(attempt: PurchaseAttempt, queryset: Any, **fields: Any) -> int:
    """A conditional UPDATE of ``attempt``'s row (``queryset`` holds the condition) that keeps ``attempt``
    in step. When it changed the row, the row is what this request wrote: no read-back. When it changed
    nothing, another request moved the attempt first: the row is read back."""
    rows = queryset.update(**fields)
    if rows:
        for name, value in fields.items():
            setattr(attempt, name, value)
    else:
        attempt.refresh_from_db()
    return rows


def is_readers(attempt: PurchaseAttempt, reader: Reader | None) -> bool:
    """Whether ``attempt`` is the reader's own: made in their browser, or by their Payway account on any
    device. Another reader's attempt must look like no attempt at all to them."""
    if reader is None:
        return False
    return attempt.reader_key == reader.key or bool(
        reader.account_key and attempt.account_key == reader.account_key
    )


def record_foreign_reference(attempt: PurchaseAttempt) -> None:
    """Someone opened the confirmation page with another reader's reference (B08): a security event."""
    record_event(
        attempt,
        EventKind.SECURITY,
        error_code=ErrorCode.FOREIGN_REFERENCE,
        detail="confirmation opened by another reader",
    )
    logger.warning("Confirmation page opened for attempt %s by another reader", attempt.reference)


def same_reader(one: PurchaseAttempt, other: PurchaseAttempt) -> bool:
    """Whether the reader of ``one`` may see ``other``: the same browser reader or the same account."""
    return is_readers(other, Reader(key=one.reader_key, account_key=one.account_key))


def parse_reference(reference: Any) -> uuid.UUID | None:
    if isinstance(reference, uuid.UUID):
        return reference
    if not isinstance(reference, str) or len(reference) > 64:
        return None
    try:
        return uuid.UUID(reference)
    except ValueError:
        return None


# -- settings helpers -------------------------------------------------------------------------------


def site_settings(site: Site | None = None, *, request: HttpRequest | None = None) -> PaywallSettings:
    """The site's paywall settings (Wagtail's get-or-create), or the model defaults, unsaved, when there is
    no site (a request to a host no site serves still gets a page). Given a ``request``, the site it was
    routed to.

    Every step of the flow needs them, several times (product key, rebuy guard, confirmation page,
    checkout, grants), and editors change them rarely, so they are read from the database once per
    ``SETTINGS_CACHE_TTL`` per site: kept in the plugin's cache (``CACHE``, shared by every process when it
    is Redis or memcached) and, for the rest of the request, on the routed ``site`` instance itself (the
    views hand the flow that instance). Saving or deleting a ``PaywallSettings`` forgets both
    (:func:`forget_settings`): at once in this process and in the shared cache; a process-local cache
    (LocMemCache) under several processes sees the change within the TTL.
    """
    if request is not None:
        site = Site.find_for_request(request)
    if site is None:
        return PaywallSettings()
    remembered = getattr(site, _SETTINGS_ON_SITE, None)
    if remembered is not None and remembered[0] == _settings_generation[0]:
        return remembered[1]
    cache = caches[paywall_settings.CACHE]
    key = _settings_key(site.pk)
    instance = cache.get(key)
    if not isinstance(instance, PaywallSettings) or instance.site_id != site.pk:
        instance = PaywallSettings.for_site(site)
        cache.set(key, instance, SETTINGS_CACHE_TTL)
    setattr(site, _SETTINGS_ON_SITE, (_settings_generation[0], instance))
    return instance


#: Seconds the site settings are kept in the plugin's cache (a save forgets them at once).
SETTINGS_CACHE_TTL = 300
_SETTINGS_ON_SITE = "_wagtail_klarna_paywall_settings"
#: Bumped on every save or delete of a PaywallSettings: answers remembered before it are not used again.
_settings_generation = [0]


def _settings_key(site_id: Any) -> str:
    return f"wagtail_klarna_paywall:site-settings:{site_id}"


def forget_settings(instance: Any = None, **kwargs: Any) -> None:
    """``post_save`` / ``post_delete`` of PaywallSettings (connected in ``signal_handlers``)."""
    _settings_generation[0] += 1
    site_id = getattr(instance, "site_id", None)
    if site_id is not None:
        caches[paywall_settings.CACHE].delete(_settings_key(site_id))


def account_sync_flags(settings_obj: PaywallSettings) -> AccountSyncFlags:
    return AccountSyncFlags(
        raise_on_ssn_already_taken_error=settings_obj.raise_on_ssn_already_taken_error,
        raise_on_ssn_already_set_error=settings_obj.raise_on_ssn_already_set_error,
        raise_on_account_update_error=settings_obj.raise_on_account_update_error,
        raise_on_delivery_address_error=settings_obj.raise_on_delivery_address_error,
    )


def clean_traffic_source(value: Any) -> str:
    """A utm_source value fit to send to Payway, or ''."""
    if not isinstance(value, str):
        return ""
    value = value.strip()
    return value if _UTM_RE.match(value) else ""


class _SafeFormat(dict):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def merchant_reference(pattern: str, *, page_id: Any, offer_code: str, attempt: Any) -> str:
    """``PaywallSettings.merchant_reference_pattern`` filled in; falls back to the default pattern."""
    values = _SafeFormat(page_id=page_id or "", offer_code=offer_code, attempt=attempt)
    try:
        result = (pattern or "").format_map(values)
    except (KeyError, ValueError, IndexError, AttributeError):
        result = ""
    if not result:
        result = f"{page_id or ''}-{offer_code}"
    return result[:_MAX_REFERENCE]


def confirmation_page_for(offer: Offer, purchase_page: Page, settings_obj: PaywallSettings) -> Page | None:
    """The paywall's confirmation page, else the purchase page's, else the site default (live only)."""
    candidates = [
        offer.confirmation_page_id,
        getattr(purchase_page, "confirmation_page_id", None),
        settings_obj.default_confirmation_page_id,
    ]
    for page_id in candidates:
        if page_id:
            page = Page.objects.live().filter(pk=page_id).first()
            if page is not None:
                # Its URL is all the flow reads of it: the specific class without a second query.
                return page.specific_deferred
    return None


def confirmation_url(attempt: PurchaseAttempt) -> str:
    """Absolute confirmation URL of ``attempt``: the site's canonical root URL (``Site.root_url``, never
    the request's Host header) + the confirmation page's path + ``?ref=<attempt reference>``."""
    page = attempt.confirmation_page
    url = page.get_full_url() if page is not None else None
    if not url:
        raise ConfigurationError("The confirmation page has no URL")
    return f"{url}?{urlencode({'ref': str(attempt.reference)})}"


def confirmation_path(attempt: PurchaseAttempt, request: Any = None) -> str:
    """The confirmation page URL for redirecting the reader on this site (relative when possible)."""
    page = attempt.confirmation_page
    url = page.get_url(request) if page is not None else None
    if not url:
        return ""
    return f"{url}?{urlencode({'ref': str(attempt.reference)})}"


def is_session_reusable(attempt: PurchaseAttempt, now: dt.datetime | None = None) -> bool:
    """Same attempt (reader and offer), no purchase made, at least the margin left.

    docs/payway-contract.md#session-reuse.
    """
    now = now or timezone.now()
    return (
        attempt.state == AttemptState.SESSION_READY
        and bool(attempt.payway_session_id)
        and bool(attempt.klarna_client_token)
        and attempt.session_expires_at is not None
        and attempt.session_expires_at - now >= dt.timedelta(seconds=paywall_settings.SESSION_REUSE_MARGIN)
    )


# -- signals ----------------------------------------------------------------------------------------


def can_reuse_session(attempt: PurchaseAttempt, reader: Reader, offer: Offer, now: dt.datetime) -> bool:
    """Whether a buy of ``offer`` by ``reader`` keeps ``attempt``'s Payway session: the same offer as
    configured now, the same flow (logged in or not), and enough of the session left."""
    fields = offer_fields(offer)
    for name in OWN_OFFER_FIELDS:
        del fields[name]
    if any(getattr(attempt, name) != value for name, value in fields.items()):
        return False
    if attempt.existing_customer != payway_client_module.uses_identity(
        trial=offer.is_trial, identity_token=reader.identity_token
    ):
        return False
    return is_session_reusable(attempt, now)


def send_signal(signal: Any, attempt: PurchaseAttempt) -> None:
    for receiver, result in signal.send_robust(sender=PurchaseAttempt, attempt=attempt):
        if isinstance(result, Exception):
            logger.error(
                "purchase signal receiver %r failed for attempt %s",
                receiver,
                attempt.reference,
                exc_info=(type(result), result, result.__traceback__),
            )


# -- Klarna payment method category -------------------------------------------------------------------

_CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]{0,49}$")


def session_category_identifiers(session_categories: Any) -> list[str]:
    """The identifiers of a session's ``payment_method_categories``, in Payway's order.

    Takes the parsed categories (objects with ``identifier``), their stored form (``{"identifier": ...}``)
    or plain identifiers; anything that is not a plain identifier is skipped.
    """
    identifiers: list[str] = []
    for category in session_categories or ():
        if isinstance(category, dict):
            category = category.get("identifier")
        elif not isinstance(category, str):
            category = getattr(category, "identifier", None)
        if isinstance(category, str) and _CATEGORY_RE.match(category) and category not in identifiers:
            identifiers.append(category)
    return identifiers


def choose_payment_method_category(offer_or_attempt: Any, session_categories: Any, site_default: str) -> str:
    """The one Klarna payment method category to load for this purchase, or ``""`` when none fits.

    Only a category that Payway's session lists is ever loaded (Klarna rejects any other): for a trial
    ``direct_debit``, else ``pay_now`` (Klarna allows only direct debit for a 0-amount purchase, and
    groups it under "pay now"); for any other offer the editor's choice, else the session's first.
    A session that lists no categories at all gets the site's default. ``""`` means the checkout shows
    the widget's fallback instead of Klarna, and no authorization can start.

    Takes an :class:`~wagtail_klarna_paywall.blocks.Offer` (when the session is created) or the attempt
    (when its checkout is rendered): both carry ``is_trial`` and ``payment_method_category``.
    """
    listed = session_category_identifiers(session_categories)
    trial = bool(getattr(offer_or_attempt, "is_trial", False))
    if not listed:
        # Nothing to choose from: the site's default, unless it is one Klarna refuses for a trial.
        if trial and site_default not in TRIAL_PAYMENT_METHOD_CATEGORIES:
            return TRIAL_PAYMENT_METHOD_CATEGORIES[-1]
        return site_default or ""
    if trial:
        return next((category for category in TRIAL_PAYMENT_METHOD_CATEGORIES if category in listed), "")
    chosen = getattr(offer_or_attempt, "payment_method_category", "") or ""
    return chosen if chosen in listed else listed[0]


#: Copied from the offer at buy time, but not part of what Payway was asked for (what the purchase opens
#: here, and how the offer was presented): a change of them alone keeps the attempt's Payway session, and
#: a reused session takes their current values.
OWN_OFFER_FIELDS = ("access_codes", "offer_label", "selling_points")


def offer_fields(offer: Offer) -> dict[str, Any]:
    return {
        "product_code": offer.product_code,
        "product_kind": offer.product_kind,
        "product_name": (offer.product_name or offer.label)[:255],
        "offer_label": offer.label[:255],
        "selling_points": [str(point) for point in offer.selling_points],
        "period_type": offer.period_type,
        "period_id": offer.period_id,
        "is_trial": offer.is_trial,
        "price": offer.price,
        "price_period": offer.price_period[:50],
        "access_codes": grant_codes(offer),
    }


def grant_codes(offer: Offer) -> list[str]:
    """The codes a purchase of ``offer`` opens in this browser (``grants.py``): the products it grants,
    and the codes that open the article it was bought from (an editor's override may name others), else
    the offered code. Copied onto the attempt, so what the buyer may read afterwards does not change when
    an editor edits the block later."""
    codes = [code for code in dict.fromkeys((*offer.grants, *offer.access_product_codes)) if code]
    return codes or ([offer.product_code] if offer.product_code else [])


def offer_key(offer_page: Page, offer: Offer) -> str:
    """Where the offer sits (page and block): the open attempt, and its Payway session, are per offer."""
    return f"{offer_page.pk}:{offer.ref}"[:200]


_MAX_PRODUCT_KEY = 255


def product_key(title_code: str, product_kind: str, product_code: str) -> str:
    """What is bought, whatever page or block offers it: ``"<title code>:<kind>:<code>"``.

    The money rules (one order per reader and product) key on this, never on where the offer sits: the
    article paywall's "Digital" and the purchase page's "Digital" are one product. Over-long keys keep a
    readable head and a hash of the whole.
    """
    key = f"{title_code or ''}:{product_kind or ''}:{product_code or ''}"
    if len(key) > _MAX_PRODUCT_KEY:
        key = key[:180] + "#" + hashlib.sha256(key.encode()).hexdigest()
    return key


def offer_product_key(offer: Offer, site: Site | None) -> str:
    """The product key of ``offer`` sold on ``site`` (title: the site's ``PaywallSettings.title_code``)."""
    return product_key(site_settings(site).title_code, offer.product_kind, offer.product_code)


def attempt_product_key(attempt: PurchaseAttempt) -> str:
    return attempt.product_key or product_key(
        site_settings(attempt.site).title_code, attempt.product_kind, attempt.product_code
    )


def previous_order(
    reader: Reader, offer: Offer, now: dt.datetime, site: Site | None = None
) -> PurchaseAttempt | None:
    """The reader's order (placing, placed, confirmed or unknown) of the product ``offer`` sells, from
    within the rebuy window: made in this browser or, for a logged-in reader, by their Payway account
    anywhere. The database guard in :func:`place_order` is what enforces the rule; this check lets a
    second buy show the existing purchase before any Payway session is made."""
    who = Q(reader_key=reader.key)
    if reader.account_key:
        who |= Q(account_key=reader.account_key)
    return (
        PurchaseAttempt.objects.filter(
            who,
            Q(product_key=offer_product_key(offer, site))
            | Q(product_key="", product_code=offer.product_code),
            state__in=ORDERED_STATES,
            placing_at__gte=now - REBUY_GUARD,
        )
        .order_by("-placing_at")
        .first()
    )


def record_error(attempt: PurchaseAttempt, exc: BaseException, kind: str = EventKind.ERROR) -> None:
    """An ERROR event with what operators need (endpoint, status, Payway code), never upstream text."""
    record_event(
        attempt,
        kind,
        endpoint=str(getattr(exc, "endpoint", "") or "")[:200],
        http_status=getattr(exc, "status", None),
        error_code=str(getattr(exc, "error_code", "error"))[:50],
        payway_code=str(getattr(exc, "code", "") or "")[:100],
        detail=type(exc).__name__,
    )
