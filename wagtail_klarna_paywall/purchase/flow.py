"""The purchase flow as plain functions over models and the Payway client (no HTTP objects, no templates).

The steps (``docs/payway-contract.md``):

1. :func:`start_purchase`: the reader pressed "buy". Find or create the reader's open attempt for the
   offer (single flight: a unique constraint plus a row lock), and reuse its Payway session while it has
   at least ``SESSION_REUSE_MARGIN`` left, or create one (v1 with the reader's identity, else v2).
2. :func:`place_order`: the reader authorized in Klarna's widget. The attempt is moved from
   ``session_ready`` to ``placing`` by a conditional UPDATE committed BEFORE Payway is called, so whatever
   the number of submits, tabs or workers, exactly one request calls Payway. Its outcome is committed
   before the reader gets an answer; every later request gets that stored outcome (:func:`stored_outcome`).
   The same step claims the product (:func:`product_key`: title, kind, code) for every identity of the
   buyer (browser reader, Payway account, typed e-mail): while another attempt of theirs holds it, this
   one ends FAILED "already_bought" and nothing is sent (one order per reader and product).
3. :func:`confirm`: the reader is back on the confirmation page; ``placed`` becomes ``confirmed`` once.

Rules held here: a POST that may have reached Payway is never re-sent (its outcome is "unknown" and
is settled, not retried); nothing secret or personal is stored or logged (no access or authorization
tokens, no personnummer, no customer names or e-mail).

``place_order`` needs autocommit: do not run it inside ``transaction.atomic`` (nor with
``ATOMIC_REQUESTS``), or the ``placing`` mark would not be committed before the call.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings as django_settings
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from .. import signals
from ..conf import paywall_settings
from ..exceptions import (
    AccountSyncError,
    AuthenticationExpired,
    ConfigurationError,
    MalformedResponse,
    NotFound,
    PaymentMethodFailed,
    PaywallError,
    PaywayAPIError,
    PaywayConnectError,
    PaywayTimeout,
    PermissionDenied,
    RateLimited,
    ServerError,
    ValidationError,
)
from ..messages import ALREADY_BOUGHT, DECLINED_IN_WIDGET, NO_PAYMENT_METHOD, SESSION_EXPIRED, UNKNOWN_OUTCOME
from ..models import (
    OPEN_STATES,
    AttemptState,
    EventKind,
    PaywallSettings,
    ProductClaim,
    PurchaseAttempt,
    record_event,
)
from ..offers import TRIAL_PAYMENT_METHOD_CATEGORIES
from ..payway import client as payway_client_module
from ..payway import get_client
from ..payway.types import AccountSyncFlags, BrowserInfo, CustomerInfo
from . import accounts

if TYPE_CHECKING:
    from wagtail.models import Page, Site

    from ..offers import Offer
    from ..payway.client import PaywayClient

logger = logging.getLogger("wagtail_klarna_paywall.purchase.flow")

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
#: The reader message for "Payway could not be used just now, nothing happened" (PaywayConnectError's code).
UNAVAILABLE = "unavailable"
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


def user_reader_key(user_pk: Any) -> str:
    return f"user:{user_pk}"


def anonymous_reader_key(session_key: str) -> str:
    # Hashed so the purchase log never holds a value that would let someone hijack the session.
    return "anon:" + hashlib.sha256(session_key.encode()).hexdigest()


def find_attempt(reference: Any, reader: Reader | None) -> PurchaseAttempt | None:
    """The reader's attempt with this reference; None for a malformed, unknown or foreign reference."""
    if reader is None:
        return None
    ref = parse_reference(reference)
    if ref is None:
        return None
    # The reader's own attempts: made in this browser, or by their Payway account on any device.
    who = Q(reader_key=reader.key)
    if reader.account_key:
        who |= Q(account_key=reader.account_key)
    return PurchaseAttempt.objects.filter(who, reference=ref).first()


def same_reader(one: PurchaseAttempt, other: PurchaseAttempt) -> bool:
    """Whether the reader of ``one`` may see ``other``: the same browser reader or the same account."""
    return one.reader_key == other.reader_key or bool(
        one.account_key and one.account_key == other.account_key
    )


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


def site_settings(site: Site | None) -> PaywallSettings:
    """The site's paywall settings, or the model defaults when there is no site."""
    if site is None:
        return PaywallSettings()
    return PaywallSettings.for_site(site)


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
    from wagtail.models import Page

    candidates = [
        offer.confirmation_page_id,
        getattr(purchase_page, "confirmation_page_id", None),
        settings_obj.default_confirmation_page_id,
    ]
    for page_id in candidates:
        if page_id:
            page = Page.objects.live().filter(pk=page_id).first()
            if page is not None:
                return page.specific
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


def uses_identity(offer_is_trial: bool, identity_token: str | None) -> bool:
    """Whether this purchase goes through v1 with the reader's identity.

    docs/payway-contract.md#which-flow-v1-or-v2.

    Trials go through v2 while Payway's v1 ``place_trial_order`` is unverified; that decision lives in
    :data:`wagtail_klarna_paywall.payway.client.IDENTITY_TRIAL_ORDER_PATH`.
    """
    if not identity_token:
        return False
    return not offer_is_trial or payway_client_module.IDENTITY_TRIAL_ORDER_PATH is not None


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
    fields = _offer_fields(offer)
    # What the purchase opens is ours, not Payway's: a change of it alone keeps the session.
    fields.pop("access_codes")
    if any(getattr(attempt, name) != value for name, value in fields.items()):
        return False
    if attempt.existing_customer != uses_identity(offer.is_trial, reader.identity_token):
        return False
    return is_session_reusable(attempt, now)


def _send(signal: Any, attempt: PurchaseAttempt) -> None:
    for receiver, result in signal.send_robust(sender=PurchaseAttempt, attempt=attempt):
        if isinstance(result, Exception):
            logger.error(
                "purchase signal receiver %r failed for attempt %s",
                receiver,
                attempt.reference,
                exc_info=(type(result), result, result.__traceback__),
            )


# -- step 1: buy ------------------------------------------------------------------------------------


class BuyStatus:
    READY = "ready"  # the attempt has a usable session: show the widget
    EXISTING = "existing"  # the reader already bought (or is buying) this product: show that attempt
    FAILED = "failed"  # no session; ``error_code`` says why (the attempt, if any, may be retried)
    LOGIN = "login"  # the reader's identity token was refused: log in again


@dataclass
class BuyResult:
    status: str
    attempt: PurchaseAttempt | None = None
    error_code: str = ""


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

    Takes an :class:`~.offers.Offer` (when the session is created) or the attempt (when its checkout is
    rendered): both carry ``is_trial`` and ``payment_method_category``.
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


def _offer_fields(offer: Offer) -> dict[str, Any]:
    return {
        "product_code": offer.product_code,
        "product_kind": offer.product_kind,
        "product_name": (offer.product_name or offer.label)[:255],
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


def _get_or_create_open_attempt(defaults: dict[str, Any], reader: Reader, key: str) -> PurchaseAttempt:
    # The partial unique constraint wkp_one_open_attempt_per_reader_offer makes this single-flight:
    # a concurrent create loses with IntegrityError, and the retry finds the winner's row.
    for _ in range(3):
        try:
            with transaction.atomic():
                attempt, _created = PurchaseAttempt.objects.get_or_create(
                    reader_key=reader.key, offer_key=key, state__in=OPEN_STATES, defaults=defaults
                )
            return attempt
        except IntegrityError:
            continue
    raise IntegrityError("Could not get or create the open purchase attempt")


def start_purchase(
    *,
    reader: Reader,
    offer: Offer,
    offer_page: Page,
    purchase_page: Page,
    site: Site | None,
    traffic_source: str = "",
    now: dt.datetime | None = None,
    client: PaywayClient | None = None,
) -> BuyResult:
    """The reader pressed "buy" on ``offer`` (configured on ``offer_page``, bought on ``purchase_page``).

    Returns READY with an attempt holding a usable Payway session (reused or new), EXISTING with the
    reader's recent order of this product, LOGIN when Payway refused the reader's identity token, or FAILED
    with an ``error_code`` (nothing was bought). Never raises for Payway failures.
    """
    now = now or timezone.now()
    settings_obj = site_settings(site)

    for _ in range(3):
        previous = previous_order(reader, offer, now, site)
        if previous is not None:
            return BuyResult(BuyStatus.EXISTING, previous)

        confirmation_page = confirmation_page_for(offer, purchase_page, settings_obj)
        if confirmation_page is None:
            logger.error("No live confirmation page for offer %s on page %s", offer.ref, offer_page.pk)
            return BuyResult(BuyStatus.FAILED, None, "configuration")

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
            **_offer_fields(offer),
        }
        attempt = _get_or_create_open_attempt(defaults, reader, offer_key(offer_page, offer))
        result = _prepare_session(
            attempt, reader, offer, confirmation_page, settings_obj, traffic_source, now, client
        )
        if result is not None:
            return result
        # The attempt left the open states between our read and our lock (another tab placed it): look again.
    return BuyResult(BuyStatus.FAILED, None, "error")


def _prepare_session(
    attempt: PurchaseAttempt,
    reader: Reader,
    offer: Offer,
    confirmation_page: Page,
    settings_obj: PaywallSettings,
    traffic_source: str,
    now: dt.datetime,
    client: PaywayClient | None,
) -> BuyResult | None:
    """Under the attempt's row lock: reuse its session or create one. None if the attempt left the open
    states meanwhile."""
    error: PaywallError | None = None
    started = False
    with transaction.atomic():
        attempt = PurchaseAttempt.objects.select_for_update().get(pk=attempt.pk)
        if attempt.state not in OPEN_STATES:
            return None
        with_identity = uses_identity(offer.is_trial, reader.identity_token)
        record_event(attempt, EventKind.BUY)
        if can_reuse_session(attempt, reader, offer, now):
            changed = {"traffic_source": traffic_source[:100]} if traffic_source else {}
            changed["access_codes"] = grant_codes(offer)
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
        for name, value in _offer_fields(offer).items():
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
            _record_error(attempt, exc)
            terminal = isinstance(exc, (ValidationError, NotFound, PermissionDenied, ConfigurationError))
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
            attempt.error_code = ""
            attempt.save()
            record_event(attempt, EventKind.SESSION_CREATED, endpoint=_session_endpoint(with_identity))
            if not attempt.payment_method_category:
                # The checkout will show the fallback, not Klarna: say why where editors look (the
                # purchase log's error filter and the attempt's timeline).
                attempt.error_code = NO_PAYMENT_METHOD
                attempt.save(update_fields=["error_code", "updated_at"])
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
            return BuyResult(BuyStatus.LOGIN, attempt, "authentication_expired")
        if attempt.state == AttemptState.FAILED:
            _send(signals.purchase_failed, attempt)
        code = UNAVAILABLE if isinstance(error, AuthenticationExpired) else error.error_code
        return BuyResult(BuyStatus.FAILED, attempt, code)
    if started:
        _send(signals.purchase_started, attempt)
    logger.info("Payway session created for attempt %s", attempt.reference)
    return BuyResult(BuyStatus.READY, attempt)


def _session_endpoint(with_identity: bool) -> str:
    if with_identity:
        return payway_client_module.CREATE_SESSION_IDENTITY_PATH
    return payway_client_module.CREATE_SESSION_NEW_CUSTOMER_PATH


def _record_error(attempt: PurchaseAttempt, exc: BaseException, kind: str = EventKind.ERROR) -> None:
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


def is_allowed_klarna_redirect(url: Any, hosts: Any = None, *, debug: bool | None = None) -> bool:
    """An absolute ``https`` URL, no user info, no port, no odd characters, whose host is one of
    ``KLARNA_REDIRECT_HOSTS`` or a subdomain of one. Anything else is refused
    (docs/payway-contract.md#klarna-redirect-allow-list; docs/reliability.md B10, B11).

    Under ``DEBUG`` only (the sandbox, whose fake Klarna hop is served by runserver), ``http`` and an
    explicit port are accepted too; the host must still be on the list.
    """
    if debug is None:
        debug = bool(django_settings.DEBUG)
    if not isinstance(url, str) or not url or len(url) > 2000:
        return False
    if not url.isascii() or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return False
    if "\\" in url:
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    schemes = ("https", "http") if debug else ("https",)
    if parts.scheme not in schemes or not url.startswith(f"{parts.scheme}://"):
        return False
    host = parts.hostname or ""
    expected_netloc = f"{host}:{port}" if (debug and port is not None) else host
    # The netloc must be exactly a lower-case host name: no user info, no port, no upper case, no
    # trailing-dot tricks.
    if "@" in parts.netloc or parts.netloc != expected_netloc:
        return False
    if not host or not re.fullmatch(r"[a-z0-9.-]+", host) or host.endswith("."):
        return False
    if hosts is None:
        hosts = paywall_settings.KLARNA_REDIRECT_HOSTS
    for allowed in hosts:
        allowed = str(allowed).lower().strip(".")
        if allowed and (host == allowed or host.endswith("." + allowed)):
            return True
    return False


def expire_stale_placing(attempt: PurchaseAttempt, now: dt.datetime | None = None) -> PurchaseAttempt:
    """A ``placing`` attempt past its lease lost its worker: mark it ``unknown`` (never re-placed)."""
    now = now or timezone.now()
    if attempt.state != AttemptState.PLACING or attempt.placing_at is None:
        return attempt
    if now - attempt.placing_at < PLACING_LEASE:
        return attempt
    rows = PurchaseAttempt.objects.filter(
        pk=attempt.pk, state=AttemptState.PLACING, placing_at__lte=now - PLACING_LEASE
    ).update(state=AttemptState.UNKNOWN, error_code=UNKNOWN_OUTCOME, finished_at=now, updated_at=now)
    attempt.refresh_from_db()
    if rows:
        record_event(attempt, EventKind.ERROR, error_code=UNKNOWN_OUTCOME, detail="placing lease expired")
        logger.error("Attempt %s was left placing past its lease: outcome unknown", attempt.reference)
        _send(signals.purchase_failed, attempt)
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


def _request_wide_transaction() -> bool:
    """Whether the database wraps each request in a transaction (``ATOMIC_REQUESTS``)."""
    return bool(connections[router.db_for_write(PurchaseAttempt)].settings_dict.get("ATOMIC_REQUESTS"))


def _finish(attempt: PurchaseAttempt, from_states: tuple[str, ...], **fields: Any) -> bool:
    """Conditional, monotonic state change; returns whether this call made it. Updates ``attempt``."""
    fields.setdefault("updated_at", timezone.now())
    rows = PurchaseAttempt.objects.filter(pk=attempt.pk, state__in=from_states).update(**fields)
    attempt.refresh_from_db()
    return bool(rows)


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
        return PlaceResult(Outcome.LOGIN, attempt, "login_required")
    if not attempt.existing_customer and customer is None:
        return PlaceResult(Outcome.RETRY, attempt, "invalid_customer")
    if _request_wide_transaction():
        # The PLACING mark below would stay uncommitted during the call (check E010): refuse rather than
        # risk a rolled-back mark and a second order. Nothing has been sent; the attempt stays as it was.
        logger.error("Refusing to place attempt %s: ATOMIC_REQUESTS is on (check E010)", attempt.reference)
        return PlaceResult(Outcome.RETRY, attempt, "configuration")

    keys = _reader_identities(attempt, reader, identity_token, customer)
    if keys is None:
        # A logged-in purchase whose Payway account cannot be named: the guard could not see this
        # reader's other devices, so nothing is sent. The attempt stays ready.
        record_event(attempt, EventKind.ERROR, error_code=UNAVAILABLE, detail="Payway account unknown")
        return PlaceResult(Outcome.RETRY, attempt, UNAVAILABLE)

    # The exactly-once gate: only the request whose UPDATE changes the row calls Payway, and only while
    # no other attempt of the same reader holds the product (:func:`_claim_and_mark_placing`). Its
    # transaction commits the PLACING mark and the claim before the call (I2).
    rows, holder = _claim_and_mark_placing(attempt, keys, attempt_product_key(attempt), now)
    attempt.refresh_from_db()
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
        _send(signals.purchase_failed, attempt)
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

    record_event(attempt, EventKind.AUTHORIZED)
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


def _reader_identities(
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


def _claim_and_mark_placing(
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
    the database; this step locks the rows (``SELECT ... FOR UPDATE``, in sorted key order so two buyers
    sharing a key cannot deadlock), refuses while another attempt holding one of them is placing, placed,
    confirmed or unknown before ``held_until``, and otherwise makes the conditional UPDATE to PLACING and
    takes the rows, all in the same transaction. Concurrent submits, tabs, devices and worker processes
    queue on the row locks; the first one commits its claim, and every later one sees it.
    """
    with transaction.atomic():
        claims = [_locked_claim(key, product) for key in keys]
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
            refused = PurchaseAttempt.objects.filter(pk=attempt.pk, state=AttemptState.SESSION_READY).update(
                state=AttemptState.FAILED,
                error_code=ALREADY_BOUGHT,
                duplicate_of=holder,
                finished_at=now,
                updated_at=now,
            )
            return 0, (holder if refused else None)
        rows = (
            PurchaseAttempt.objects.filter(
                pk=attempt.pk, state=AttemptState.SESSION_READY, session_expires_at__gt=now
            )
            .exclude(payway_session_id="")
            .update(
                state=AttemptState.PLACING,
                placing_at=now,
                error_code="",
                product_key=product,
                updated_at=now,
            )
        )
        if rows:
            ProductClaim.objects.filter(pk__in=[claim.pk for claim in claims]).update(
                attempt=attempt, held_until=now + REBUY_GUARD, updated_at=now
            )
        return rows, None


def _locked_claim(reader_key: str, product: str) -> ProductClaim:
    """The claim row of (``reader_key``, ``product``), locked until the transaction ends; created when
    missing. Two requests creating it at once: the unique constraint makes the second wait for the
    first's commit and fail, and it then locks the committed row."""
    for _ in range(3):
        claim = (
            ProductClaim.objects.select_for_update()
            .filter(reader_key=reader_key, product_key=product)
            .first()
        )
        if claim is not None:
            return claim
        try:
            with transaction.atomic():
                return ProductClaim.objects.create(reader_key=reader_key, product_key=product)
        except IntegrityError:
            continue
    raise IntegrityError("Could not lock the product claim")


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
        record_event(attempt, EventKind.PLACED)
        logger.info("Order placed for attempt %s", attempt.reference)
        if rejected:
            record_event(
                attempt,
                EventKind.SECURITY,
                error_code="redirect_rejected",
                detail=f"redirect not allowed: {_describe_url(redirect)}"[:255],
            )
            logger.warning(
                "Attempt %s: Payway's redirect is not on the Klarna allow-list; sent the reader to the "
                "confirmation page instead",
                attempt.reference,
            )
        _send(signals.purchase_completed, attempt)
    result = stored_outcome(attempt, request)
    result.called_payway = True
    return result


def _describe_url(url: str) -> str:
    """Scheme and host of an untrusted URL for the purchase log (never its path or query)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}"
    except ValueError:
        return "?"


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
    _record_error(attempt, exc)
    code = str(getattr(exc, "error_code", "error"))
    common = {
        "payway_status": getattr(exc, "status", None),
        "payway_code": str(getattr(exc, "code", "") or "")[:100],
        "payway_field": str(getattr(exc, "field", "") or "")[:100],
    }

    if isinstance(exc, (PaywayConnectError, ConfigurationError, AuthenticationExpired)):
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
            code = UNAVAILABLE
        return PlaceResult(Outcome.RETRY, attempt, code, called_payway=True)

    if isinstance(exc, PaymentMethodFailed):
        state, outcome = AttemptState.DECLINED, Outcome.DECLINED
    elif isinstance(exc, PermissionDenied):
        # A 403 with a scope, identity or permission code: our configuration, not Klarna's refusal, so
        # never DECLINED. Whether Payway rejects such a 403 before executing anything is not documented
        # (docs/payway-contract.md, "Errors"), so we decide conservatively: the attempt is not put back to
        # session_ready (its single-use authorization is never re-sent), it ends FAILED with the error
        # recorded for the editors' error panel, and the reader is told payments cannot be taken just now.
        # A later try is a new attempt with a new session and a new authorization.
        logger.error(
            "place_order refused for attempt %s: configuration error (HTTP 403 %s)",
            attempt.reference,
            getattr(exc, "code", "") or "without a code",
        )
        state, outcome = AttemptState.FAILED, Outcome.FAILED
    elif isinstance(exc, (AccountSyncError, ValidationError, NotFound)) or (
        isinstance(exc, PaywayAPIError)
        and not isinstance(exc, (ServerError, RateLimited))
        and exc.status < 500
    ):
        state, outcome = AttemptState.FAILED, Outcome.FAILED
    else:
        # PaywayTimeout (incl. a lost connection), ServerError, MalformedResponse, RateLimited, or a bug:
        # the order may exist. Never re-sent; settled by reconciliation
        # (docs/payway-contract.md#never-re-send).
        if not isinstance(exc, (PaywayTimeout, ServerError, MalformedResponse, RateLimited)):
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
        _send(signals.purchase_failed, attempt)
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
        _send(signals.purchase_failed, attempt)
    return stored_outcome(attempt)


# -- step 3: confirmation ---------------------------------------------------------------------------


def confirm(attempt: PurchaseAttempt, now: dt.datetime | None = None) -> bool:
    """Mark a placed attempt confirmed; True only for the one request that did it (C06)."""
    now = now or timezone.now()
    if attempt.state != AttemptState.PLACED:
        return False
    if _finish(attempt, (AttemptState.PLACED,), state=AttemptState.CONFIRMED, confirmed_at=now):
        record_event(attempt, EventKind.CONFIRMED)
        return True
    return False


def record_foreign_reference(reference: Any) -> None:
    """Someone opened the confirmation page with another reader's reference (B08): a security event."""
    ref = parse_reference(reference)
    if ref is None:
        return
    attempt = PurchaseAttempt.objects.filter(reference=ref).first()
    if attempt is not None:
        record_event(
            attempt,
            EventKind.SECURITY,
            error_code="foreign_reference",
            detail="confirmation opened by another reader",
        )
        logger.warning("Confirmation page opened for attempt %s by another reader", attempt.reference)
