"""In-memory state of the fake Payway, shared by every thread of the process.

Module-level on purpose: a test and the live server it starts run in one process, so a test can arm a
failure, read call counters and inspect orders directly. Everything is guarded by one lock; nothing here
sleeps while holding it, so concurrent requests really run concurrently (the concurrency tests rely on it).

Time comes from :func:`django.utils.timezone.now`, so freezegun moves token and session expiry.
Nothing here logs: tokens, tickets and customer data never reach a log line.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import secrets
import threading
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from .catalogue import PRODUCTS_SHAPES
from .variants import Variants, checked_variants, configured_variants

#: Endpoint names used by call counters and :func:`fail_next` (one name covers every API version).
ENDPOINTS = (
    "access_token",
    "create_session",
    "place_order",
    "place_trial_order",
    "payment_periods",
    "titles",
    "find_title",
    "package_search",
    "campaign_search",
    "active_products",
    "me",
)

#: Every scope the fake's API client may ask for; a token without ``scope`` gets all of them.
ALL_SCOPES = frozenset(
    {
        "/external/klarna_payments/r",
        "/external/klarna_payments/w",
        "/external/product/r",
        "/external/title/r",
        "/external/me/r",
        "/external/me/w",
        "/external/account/r",
        "/external/account/w",
    }
)

TOKEN_LIFETIME = 3600
SESSION_LIFETIME = dt.timedelta(hours=48)
#: The "slow" scenario sleeps this long by default: longer than the client's default read timeout (15 s).
DEFAULT_SLOW_DELAY = 20.0
#: No configured delay sleeps longer than this, so a typo cannot hang a test run or a sandbox worker.
MAX_DELAY = 60.0

DEMO_PASSWORD = "demo"
SUBSCRIBER_ACCOUNT_ID = "5e1f0000000000000000a001"
READER_ACCOUNT_ID = "5e1f0000000000000000a002"

SESSION_OPEN = "open"
SESSION_COMPLETED = "completed"  # a purchase succeeded: Payway closes the session
SESSION_TERMINATED = "terminated"  # payment method failed: Payway terminated the subscription


@dataclass
class Account:
    id: str
    email: str
    first_name: str = ""
    last_name: str = ""
    password: str = field(default=DEMO_PASSWORD, repr=False)
    products: set[str] = field(default_factory=set)
    customer_number: str = ""


@dataclass
class AccessToken:
    value: str = field(repr=False)
    account_id: str | None
    scopes: frozenset[str]
    expires_at: dt.datetime

    @property
    def has_identity(self) -> bool:
        return self.account_id is not None

    def expired(self) -> bool:
        return timezone.now() >= self.expires_at


@dataclass
class Session:
    id: str
    version: int
    code: str
    product_kind: str
    period_id: str
    period_type: str
    trial: bool
    confirmation_url: str
    categories: tuple[str, ...]
    client_token: str = field(repr=False)
    account_id: str | None = None
    start_date: dt.date | None = None
    disable_account_info_overwrite: bool = False
    created_at: dt.datetime = field(default_factory=timezone.now)
    status: str = SESSION_OPEN
    order_id: str = ""

    @property
    def expires_at(self) -> dt.datetime:
        return self.created_at + SESSION_LIFETIME

    def expired(self) -> bool:
        return timezone.now() >= self.expires_at


@dataclass
class Order:
    id: str
    session_id: str
    account_id: str
    code: str
    period_id: str
    trial: bool
    version: int
    merchant_reference: str = ""
    traffic_source: str = ""
    created_at: dt.datetime = field(default_factory=timezone.now)


@dataclass(frozen=True)
class Failure:
    """A failure armed for the next call of ``endpoint``.

    ``status`` None means "only slow": sleep ``delay`` seconds, then answer normally. ``garbage`` answers
    200 with a body that is not JSON. ``execute`` performs the request first and then replaces its reply,
    which is how a lost reply to a placed order looks from the client's side.
    """

    endpoint: str
    status: int | None = 500
    code: str = ""
    field: str = ""
    message: str = ""
    delay: float = 0.0
    garbage: bool = False
    execute: bool = False
    retry_after: int | None = None


_DEFAULT_CODES = {
    400: "invalid_parameter",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    429: "too_many_requests",
}


def default_error_code(endpoint: str, status: int) -> str:
    if status == 403 and endpoint in ("place_order", "place_trial_order"):
        return "payment_method_failed"
    if status >= 500:
        return "internal_server_error"
    return _DEFAULT_CODES.get(status, "error")


class _Store:
    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {
            SUBSCRIBER_ACCOUNT_ID: Account(
                SUBSCRIBER_ACCOUNT_ID,
                "subscriber@example.com",
                "Sara",
                "Prenumerant",
                products={"digital"},
                customer_number="100001",
            ),
            READER_ACCOUNT_ID: Account(
                READER_ACCOUNT_ID, "reader@example.com", "Rolf", "Läsare", customer_number="100002"
            ),
        }
        self.tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.tickets: dict[str, str] = {}
        self.sessions: dict[str, Session] = {}
        self.orders: dict[str, Order] = {}
        self.used_authorization_tokens: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.failures: dict[str, deque[Failure]] = {}
        self.slow_delay: float = _configured_slow_delay()
        self.variants: Variants = configured_variants()
        #: What create_session lists as ``payment_method_categories``; None: the fake's defaults.
        self.session_categories: dict[str, tuple[str, ...] | None] = {"regular": None, "trial": None}
        #: How package and campaign search items list their products (``catalogue.PRODUCTS_SHAPES``).
        self.products_shape: str = "products"


def _configured_slow_delay() -> float:
    options = getattr(settings, "WAGTAIL_KLARNA_PAYWALL_FAKE", {}) or {}
    return min(float(options.get("SLOW_DELAY", DEFAULT_SLOW_DELAY)), MAX_DELAY)


_lock = threading.RLock()
_store: _Store | None = None
_wake = threading.Event()


def _s() -> _Store:
    global _store
    if _store is None:
        _store = _Store()
    return _store


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Hold the state lock across a check-then-act (the views use it; never sleep inside)."""
    with _lock:
        yield


def reset() -> None:
    """Forget everything (sessions, orders, tokens, counters, armed failures, new accounts).

    Requests sleeping in a slow reply wake up at once, so a test's live server shuts down quickly.
    """
    global _store, _wake
    with _lock:
        _store = _Store()
        _wake.set()
        _wake = threading.Event()


def sleep(seconds: float) -> None:
    """Sleep up to ``seconds`` (capped at :data:`MAX_DELAY`); :func:`reset` cuts it short."""
    if seconds > 0:
        with _lock:
            wake = _wake
        wake.wait(min(seconds, MAX_DELAY))


# -- call counters and armed failures ---------------------------------------------------------------


def record_call(endpoint: str) -> None:
    with _lock:
        _s().calls[endpoint] += 1


def calls(endpoint: str | None = None) -> int | dict[str, int]:
    """How many requests ``endpoint`` received (every version, every outcome); all counters without it."""
    with _lock:
        if endpoint is None:
            return {name: _s().calls.get(name, 0) for name in ENDPOINTS}
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")
        return _s().calls.get(endpoint, 0)


def fail_next(
    endpoint: str,
    *,
    status: int | None = 500,
    code: str = "",
    field: str = "",
    message: str = "",
    delay: float = 0.0,
    garbage: bool = False,
    execute: bool = False,
    retry_after: int | None = None,
) -> Failure:
    """Arm a failure for the next call of ``endpoint``. Several armed failures are used in order.

    ``retry_after`` adds a ``Retry-After`` header (seconds), as a rate-limiting 429 would carry.
    """
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")
    if status is not None and not (garbage or 400 <= status <= 599):
        raise ValueError("status must be an HTTP error status (400-599), or None for a slow reply")
    if delay < 0:
        raise ValueError("delay must not be negative")
    failure = Failure(
        endpoint=endpoint,
        status=200 if garbage else status,
        code=code or ("" if status is None or garbage else default_error_code(endpoint, status)),
        field=field,
        message=message,
        delay=min(float(delay), MAX_DELAY),
        garbage=garbage,
        execute=execute,
        retry_after=retry_after,
    )
    with _lock:
        _s().failures.setdefault(endpoint, deque()).append(failure)
    return failure


def pop_failure(endpoint: str) -> Failure | None:
    with _lock:
        queue = _s().failures.get(endpoint)
        return queue.popleft() if queue else None


def armed_failures() -> list[Failure]:
    with _lock:
        return [failure for queue in _s().failures.values() for failure in queue]


def set_slow_delay(seconds: float) -> None:
    """How long the ``slow`` authorization scenario sleeps (capped at :data:`MAX_DELAY`)."""
    if seconds < 0:
        raise ValueError("delay must not be negative")
    with _lock:
        _s().slow_delay = min(float(seconds), MAX_DELAY)


def slow_delay() -> float:
    with _lock:
        return _s().slow_delay


def variants() -> Variants:
    with _lock:
        return _s().variants


def set_variants(**values: object) -> Variants:
    """Flip variant switches until the next :func:`reset` (see :data:`.variants.VARIANTS`)."""
    with _lock:
        _s().variants = checked_variants(values, _s().variants)
        return _s().variants


#: Category identifiers create_session may list (Klarna's groups, and the older direct_debit).
KNOWN_CATEGORIES = ("pay_now", "pay_later", "pay_over_time", "klarna", "direct_debit")


def set_session_categories(
    *, regular: tuple[str, ...] | list[str] | None = None, trial: tuple[str, ...] | list[str] | None = None
) -> None:
    """Make create_session list these categories for regular and/or trial sessions (None: the default,
    an empty list: none at all, as a Payway that does not pass Klarna's list through)."""
    for value in (regular, trial):
        if value is not None and (
            isinstance(value, str) or any(category not in KNOWN_CATEGORIES for category in value)
        ):
            raise ValueError("categories must be a list of: " + ", ".join(KNOWN_CATEGORIES))
    with _lock:
        if regular is not None:
            _s().session_categories["regular"] = tuple(regular)
        if trial is not None:
            _s().session_categories["trial"] = tuple(trial)


def session_categories(*, trial: bool) -> tuple[str, ...] | None:
    with _lock:
        return _s().session_categories["trial" if trial else "regular"]


def set_products_shape(shape: str) -> None:
    """How package and campaign search items list their products (``catalogue.PRODUCTS_SHAPES``)."""
    if shape not in PRODUCTS_SHAPES:
        raise ValueError("products_shape must be one of: " + ", ".join(PRODUCTS_SHAPES))
    with _lock:
        _s().products_shape = shape


def products_shape() -> str:
    with _lock:
        return _s().products_shape


# -- accounts, tickets and tokens -------------------------------------------------------------------


def authenticate(email: str, password: str) -> Account | None:
    """The account with this e-mail and password (demo accounts use :data:`DEMO_PASSWORD`)."""
    with _lock:
        account = _account_by_email(email)
        if account and secrets.compare_digest(account.password.encode(), password.encode()):
            return copy.deepcopy(account)
        return None


def _account_by_email(email: str) -> Account | None:
    wanted = email.strip().lower()
    return next((a for a in _s().accounts.values() if a.email.lower() == wanted), None)


def find_account(email: str) -> Account | None:
    """A copy of the account with this e-mail (case-insensitive), if any."""
    with _lock:
        account = _account_by_email(email)
        return copy.deepcopy(account) if account else None


def get_account(account_id: str) -> Account | None:
    with _lock:
        account = _s().accounts.get(account_id)
        return copy.deepcopy(account) if account else None


def accounts() -> list[Account]:
    with _lock:
        return copy.deepcopy(list(_s().accounts.values()))


def account_for_customer(email: str, first_name: str, last_name: str) -> Account:
    """The account a v2 (new-customer) purchase lands on: an existing one with that e-mail, else a new one.

    New accounts get the demo password, so a sandbox buyer can log in afterwards.
    """
    with _lock:
        account = _account_by_email(email)
        if account is None:
            account = Account(_object_id(), email.strip(), first_name, last_name)
            _s().accounts[account.id] = account
        return account


def grant(account_id: str, product_codes: tuple[str, ...] | list[str]) -> None:
    with _lock:
        _s().accounts[account_id].products.update(product_codes)


def issue_ticket(account_id: str) -> str:
    """An SSO2-style authorization ticket for ``account_id``; the token endpoint swaps it once
    (``grant_type=ticket``) for an identity token."""
    with _lock:
        if account_id not in _s().accounts:
            raise ValueError("unknown account")
        ticket = secrets.token_urlsafe(24)
        _s().tickets[ticket] = account_id
        return ticket


def redeem_ticket(ticket: str) -> str | None:
    with _lock:
        return _s().tickets.pop(ticket, None)


def issue_access_token(
    account_id: str | None = None, *, scopes: frozenset[str] | None = None, lifetime: int = TOKEN_LIFETIME
) -> AccessToken:
    """A bearer token (with identity when ``account_id`` is given). Tests may call this directly."""
    token = AccessToken(
        value=secrets.token_urlsafe(32),
        account_id=account_id,
        scopes=ALL_SCOPES if scopes is None else frozenset(scopes),
        expires_at=timezone.now() + dt.timedelta(seconds=lifetime),
    )
    with _lock:
        _s().tokens[token.value] = token
    return token


def issue_refresh_token(account_id: str) -> str:
    with _lock:
        value = secrets.token_urlsafe(32)
        _s().refresh_tokens[value] = account_id
        return value


def redeem_refresh_token(value: str) -> str | None:
    """Refresh tokens rotate: each one is good for a single refresh."""
    with _lock:
        return _s().refresh_tokens.pop(value, None)


def find_access_token(value: str) -> AccessToken | None:
    with _lock:
        return _s().tokens.get(value)


def revoke_access_token(value: str) -> None:
    with _lock:
        _s().tokens.pop(value, None)


def expire_access_tokens() -> None:
    """Make every issued bearer token expired (the next call gets 401)."""
    with _lock:
        for token in _s().tokens.values():
            token.expires_at = timezone.now() - dt.timedelta(seconds=1)


# -- sessions, orders and authorization tokens ------------------------------------------------------


def _object_id() -> str:
    return secrets.token_hex(12)


def new_session_id() -> str:
    return str(uuid.uuid4())


def new_order_id() -> str:
    return _object_id()


def add_session(session: Session) -> None:
    with _lock:
        _s().sessions[session.id] = session


def get_session(session_id: str) -> Session | None:
    """The live object (callers hold :func:`locked` while they change it)."""
    with _lock:
        return _s().sessions.get(session_id)


def sessions() -> list[Session]:
    with _lock:
        return [dataclasses.replace(s) for s in _s().sessions.values()]


def add_order(order: Order) -> None:
    with _lock:
        _s().orders[order.id] = order


def orders() -> list[Order]:
    with _lock:
        return [dataclasses.replace(o) for o in _s().orders.values()]


def consume_authorization_token(token: str) -> bool:
    """Mark a Klarna authorization token used; False when it was used before (tokens are single-use)."""
    with _lock:
        if token in _s().used_authorization_tokens:
            return False
        _s().used_authorization_tokens.add(token)
        return True
