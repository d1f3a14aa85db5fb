"""Typed client for Payway's Klarna Payments, catalogue, token and /me APIs.

Everything that crosses the wire is decided here: paths, headers, timeouts, which token a call uses, which
retries are safe. Responses are read by :mod:`.parsing`; how a failed exchange becomes one of
:mod:`wagtail_klarna_paywall.exceptions` is :mod:`.errors`, shared with the SSO2 client.

Nothing secret or personal is logged or put into an exception message: log lines carry the method, the
path (without query string), the status, the duration and Payway's error ``code``, nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..exceptions import (
    AuthenticationExpired,
    MalformedResponse,
    PaywayAPIError,
    PaywayError,
)
from . import errors, parsing
from .tokens import SystemTokenCache
from .types import (
    IDENTITY_SCOPES,
    PAYMENT_METHOD_FAILED_CODES,
    PRODUCT_CAMPAIGN,
    PRODUCT_PACKAGE,
    SYSTEM_SCOPES,
    AccessToken,
    Account,
    AccountSyncFlags,
    ActiveProducts,
    BrowserInfo,
    CustomerInfo,
    KlarnaSession,
    PaymentPeriod,
    PlacedOrder,
    ProductPage,
    Title,
)

logger = logging.getLogger("wagtail_klarna_paywall.payway")

T = TypeVar("T")

TOKEN_PATH = "/api/authorization/access_token"
CREATE_SESSION_IDENTITY_PATH = "/external/api/v1/klarna_payments/create_session"
CREATE_SESSION_NEW_CUSTOMER_PATH = "/external/api/v2/klarna_payments/create_session"
PLACE_ORDER_IDENTITY_PATH = "/external/api/v1/klarna_payments/place_order"
PLACE_ORDER_NEW_CUSTOMER_PATH = "/external/api/v2/klarna_payments/place_order"
PLACE_TRIAL_ORDER_PATH = "/external/api/v2/klarna_payments/place_trial_order"
PAYMENT_PERIODS_PATH = "/external/api/v2/klarna_payments/payment_periods"
TITLES_PATH = "/external/api/v1/titles/"
PACKAGE_SEARCH_PATH = "/external/api/v2/products/package/search"
CAMPAIGN_SEARCH_PATH = "/external/api/v3/products/campaign/search"
ACTIVE_PRODUCTS_PATH = "/external/api/v1/me/active_products"
CURRENT_ACCOUNT_PATH = "/external/api/v3/me"

#: Where a trial order of a reader WITH an identity token goes. Only v2 ``place_trial_order`` (system
#: token, ``customer_info``) is documented; a v1 ``place_trial_order`` is listed in Payway's navigation but
#: unverified (docs/payway-contract.md#place_order-and-place_trial_order). So every trial goes through
#: v2 and needs ``customer``. Once Adeprimo confirms the v1 endpoint, set this to
#: ``"/external/api/v1/klarna_payments/place_trial_order"`` and trials of logged-in readers are sent there
#: with their identity token instead.
IDENTITY_TRIAL_ORDER_PATH: str | None = None

#: Connections kept per Payway host (urllib3 opens extra ones beyond this under load, then drops them).
POOL_MAXSIZE = 50

# Paths where a 403 with no code, or with a code of PAYMENT_METHOD_FAILED_CODES, means "payment method
# failed" rather than a missing permission (IDENTITY_TRIAL_ORDER_PATH, when set, is one too: see
# _is_order_path). See docs/payway-contract.md, "Errors".
_ORDER_PATHS = frozenset({PLACE_ORDER_IDENTITY_PATH, PLACE_ORDER_NEW_CUSTOMER_PATH, PLACE_TRIAL_ORDER_PATH})


def _is_order_path(path: str) -> bool:
    return path in _ORDER_PATHS or (
        IDENTITY_TRIAL_ORDER_PATH is not None and path == IDENTITY_TRIAL_ORDER_PATH
    )


def uses_identity(*, trial: bool, identity_token: str | None) -> bool:
    """Whether a purchase goes through v1 with the reader's identity token (else v2, system token).

    THE rule (docs/payway-contract.md#which-flow-v1-or-v2): :meth:`PaywayClient.place_order` sends by it,
    and the purchase flow creates the session by it. Trials go through v2 while Payway's v1
    ``place_trial_order`` is unverified: see :data:`IDENTITY_TRIAL_ORDER_PATH`.
    """
    return bool(identity_token) and (not trial or IDENTITY_TRIAL_ORDER_PATH is not None)


def _is_payment_method_failed(path: str, code: str) -> bool:
    """Whether a 403 at ``path`` with Payway's error ``code`` means Klarna refused the reader."""
    return _is_order_path(path) and (not code or code.lower() in PAYMENT_METHOD_FAILED_CODES)


class _Reply(NamedTuple):
    status: int
    data: Any


def _retry_policy() -> Retry:
    """Retry a failed *connect* once (nothing was sent) and nothing else.

    docs/payway-contract.md#never-re-send.

    ``read=False`` makes urllib3 re-raise read errors at once, so a request that may have reached Payway is
    never re-sent, whatever its method; no status is retried either.
    """
    return Retry(
        total=1,
        connect=1,
        read=False,
        status=0,
        other=0,
        redirect=0,
        # Only consulted for read/status retries, which are off; POST is never listed
        # (docs/reliability.md S16).
        # (An empty set would mean "every method" to urllib3 2.)
        allowed_methods=frozenset({"GET"}),
        status_forcelist=(),
        raise_on_status=False,
        raise_on_redirect=False,
    )


class PaywayClient:
    """Speaks Payway over one pooled ``requests.Session``.

    Constructed with explicit base URL, credentials and timeouts; it never reads Django settings.
    Every call uses ``timeout=(connect_timeout, read_timeout)``. A POST is never re-sent after it may
    have reached Payway; only connect failures and a 401 on a *system* token are retried, once.

    ``session`` lets a caller supply its own ``requests.Session``; it is then used as it is (the caller
    owns its adapters and closes it). Thread-safe: one client serves every request of a process.
    """

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        connect_timeout: float = 3.05,
        read_timeout: float = 15.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.timeout: tuple[float, float] = (connect_timeout, read_timeout)
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # Explicit, like the rest of the client: no proxy, netrc or CA bundle from the environment,
            # which requests would otherwise look up on every call. A site behind a proxy, or with its own
            # CA bundle, passes a session configured for that (``session=``).
            session.trust_env = False
            # One pool per process serves every web worker thread: sized so that concurrent readers reuse
            # connections instead of opening and discarding extras beyond urllib3's default of 10 (L03).
            adapter = HTTPAdapter(max_retries=_retry_policy(), pool_maxsize=POOL_MAXSIZE)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self._session = session
        self._system_tokens = SystemTokenCache(self._fetch_system_token)

    def __repr__(self) -> str:
        return f"<PaywayClient {self.base_url} client_id={self.client_id!r}>"

    def close(self) -> None:
        """Drop the cached system token and close the connection pool (if this client created it)."""
        self._system_tokens.clear()
        if self._owns_session:
            self._session.close()

    # -- tokens (POST /api/authorization/access_token, form-encoded) -------------------------------

    def system_token(self) -> AccessToken:
        """A ``grant_type=none`` token with SYSTEM_SCOPES, cached until shortly before ``expires_in``.

        Endpoint: ``POST /api/authorization/access_token``. Cached in this object only (thread-safe),
        never in a shared cache. Raises :class:`PaywayError` subclasses: ``PaywayConnectError``,
        ``PaywayTimeout``, ``ValidationError``/``AuthenticationExpired`` (bad client credentials),
        ``ServerError``, ``MalformedResponse``.
        """
        return self._system_tokens.get()

    def exchange_ticket(self, ticket: str) -> AccessToken:
        """``grant_type=ticket``: swap an SSO2 authorization ticket for an identity token.

        Endpoint: ``POST /api/authorization/access_token`` with IDENTITY_SCOPES. Not cached: the caller
        keeps the token in the reader's server-side session. Raises ``ValidationError`` or
        ``AuthenticationExpired`` for a refused ticket, and the transport/server errors of
        :meth:`system_token`.
        """
        return self._request_token(
            {"grant_type": "ticket", "scope": " ".join(IDENTITY_SCOPES), "ticket": ticket}
        )

    def refresh_identity_token(self, refresh_token: str) -> AccessToken:
        """``grant_type=refresh_token``: renew an identity token.

        Endpoint: ``POST /api/authorization/access_token``. Raises ``ValidationError`` or
        ``AuthenticationExpired`` when the refresh token is refused (the reader must log in again), and the
        transport/server errors of :meth:`system_token`.
        """
        return self._request_token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def _fetch_system_token(self) -> AccessToken:
        return self._request_token({"grant_type": "none", "scope": " ".join(SYSTEM_SCOPES)})

    def _request_token(self, fields: dict[str, str]) -> AccessToken:
        form = {"client_id": self.client_id, "client_secret": self._client_secret, **fields}
        reply = self._send("POST", TOKEN_PATH, data=form)
        return self._parse(TOKEN_PATH, reply, parsing.parse_access_token)

    # -- Klarna Payments ---------------------------------------------------------------------------

    def create_session(
        self,
        *,
        code: str,
        confirmation_url: str,
        period_type: str | None = None,
        period_id: str | None = None,
        start_date: dt.date | None = None,
        disable_account_info_overwrite: bool | None = None,
        identity_token: str | None = None,
    ) -> KlarnaSession:
        """v1 ``create_session`` with ``identity_token``, else v2 with the system token.

        Endpoints: ``POST /external/api/v1/klarna_payments/create_session`` (existing customer, identity
        token) or ``POST /external/api/v2/klarna_payments/create_session`` (new customer, system token).
        Only the given optional parameters are sent. A trial needs ``period_id`` and, as trial orders go
        through v2 (see :data:`IDENTITY_TRIAL_ORDER_PATH`), a session created without ``identity_token``.

        Raises ``ValidationError`` (400, e.g. a bad ``code`` or past ``start_date``),
        ``AuthenticationExpired`` (401 on the identity token; a system token is renewed and the call
        retried once first), ``PermissionDenied`` (403), ``NotFound``, ``ServerError``, ``RateLimited``,
        ``PaywayConnectError``, ``PaywayTimeout``, ``MalformedResponse`` (no client token or session id).
        """
        body: dict[str, Any] = {"code": code, "confirmation_url": confirmation_url}
        if period_type is not None:
            body["period_type"] = period_type
        if period_id is not None:
            body["period_id"] = period_id
        if start_date is not None:
            body["start_date"] = start_date.isoformat()
        if disable_account_info_overwrite is not None:
            body["disable_account_info_overwrite"] = disable_account_info_overwrite
        if identity_token:
            path = CREATE_SESSION_IDENTITY_PATH
            reply = self._identity_call("POST", path, identity_token, json_body=body)
        else:
            path = CREATE_SESSION_NEW_CUSTOMER_PATH
            reply = self._system_call("POST", path, json_body=body)
        return self._parse(path, reply, parsing.parse_klarna_session)

    def place_order(
        self,
        *,
        klarna_payments_session_id: str,
        klarna_authorization_token: str,
        browser: BrowserInfo,
        flags: AccountSyncFlags,
        traffic_source: str = "",
        merchant_reference: str = "",
        customer: CustomerInfo | None = None,
        identity_token: str | None = None,
        trial: bool = False,
    ) -> PlacedOrder:
        """v1 ``place_order`` with ``identity_token``; else v2 ``place_order`` (``place_trial_order`` when
        ``trial``) with the system token and ``customer``. Never retried after it may have reached Payway.

        Endpoints: ``POST /external/api/v1/klarna_payments/place_order`` (identity token, no
        ``customer_info``), ``POST /external/api/v2/klarna_payments/place_order`` and
        ``POST /external/api/v2/klarna_payments/place_trial_order`` (system token, ``customer_info``).
        Trial orders ALWAYS use v2 ``place_trial_order`` with the system token and require ``customer``,
        even when ``identity_token`` is given, because a v1 trial endpoint is undocumented; the choice
        lives in :data:`IDENTITY_TRIAL_ORDER_PATH`. The four ``raise_on_*`` flags are always sent; empty
        browser fields, ``traffic_source`` and ``merchant_reference`` are omitted.

        Raises ``ValueError`` (before any HTTP) when a v2 call lacks ``customer``;
        ``PaymentMethodFailed`` (403 with no code or the documented one: terminal); ``PermissionDenied``
        (any other 403: a missing scope, identity or permission); ``AccountSyncError`` (400 from a
        ``raise_on_*`` flag); ``ValidationError`` (other 400); ``AuthenticationExpired`` (401 on the
        identity token, or twice on the system token); ``NotFound``; ``RateLimited``;
        ``PaywayConnectError`` (nothing sent, safe to retry); and, when the outcome is unknown and the
        order must be reconciled rather than re-sent: ``PaywayTimeout`` (incl. ``PaywayConnectionLost``),
        ``ServerError``, ``MalformedResponse``.
        """
        use_identity = uses_identity(trial=trial, identity_token=identity_token)
        if use_identity:
            path = IDENTITY_TRIAL_ORDER_PATH if trial else PLACE_ORDER_IDENTITY_PATH
        else:
            path = PLACE_TRIAL_ORDER_PATH if trial else PLACE_ORDER_NEW_CUSTOMER_PATH
            if customer is None:
                raise ValueError(f"customer is required for {path}")
        assert path is not None

        body: dict[str, Any] = {
            "klarna_authorization_token": klarna_authorization_token,
            "klarna_payments_session_id": klarna_payments_session_id,
        }
        optional = {
            "browser_ip": browser.ip,
            "browser_language": browser.language,
            "browser_user_agent": browser.user_agent,
            "traffic_source": traffic_source,
            "merchant_reference": merchant_reference,
        }
        body.update({name: value for name, value in optional.items() if value})
        body.update(
            raise_on_ssn_already_taken_error=flags.raise_on_ssn_already_taken_error,
            raise_on_ssn_already_set_error=flags.raise_on_ssn_already_set_error,
            raise_on_account_update_error=flags.raise_on_account_update_error,
            raise_on_delivery_address_error=flags.raise_on_delivery_address_error,
        )
        if use_identity:
            reply = self._identity_call("POST", path, identity_token or "", json_body=body)
        else:
            assert customer is not None
            body["customer_info"] = {
                "email": customer.email,
                "first_name": customer.first_name,
                "last_name": customer.last_name,
            }
            reply = self._system_call("POST", path, json_body=body)
        return self._parse(path, reply, parsing.parse_placed_order)

    def payment_periods(self, code: str) -> list[PaymentPeriod]:
        """GET v2 ``klarna_payments/payment_periods?code=``.

        Endpoint: ``GET /external/api/v2/klarna_payments/payment_periods`` (system token). Returns every
        period, disabled ones included (callers filter on ``enabled``). Raises ``ValidationError``,
        ``NotFound``, ``PermissionDenied``, ``AuthenticationExpired``, ``ServerError``, ``RateLimited``,
        ``PaywayConnectError``, ``PaywayTimeout``, ``MalformedResponse``.
        """
        reply = self._system_call("GET", PAYMENT_PERIODS_PATH, params={"code": code})
        return self._parse(PAYMENT_PERIODS_PATH, reply, parsing.parse_payment_periods)

    # -- catalogue ---------------------------------------------------------------------------------

    def titles(self) -> list[Title]:
        """The organisation's titles (their codes scope product searches).

        Endpoint: ``GET /external/api/v1/titles/`` (system token). Raises the errors listed on
        :meth:`payment_periods`.
        """
        reply = self._system_call("GET", TITLES_PATH)
        return self._parse(TITLES_PATH, reply, parsing.parse_titles)

    def search_packages(
        self, title_code: str, *, page_number: int = 1, page_size: int = 25, include_inactive: bool = False
    ) -> ProductPage:
        """One page of a title's packages.

        Endpoint: ``GET /external/api/v2/products/package/search`` (system token). Page until
        ``more_results_available`` is false. Raises the errors listed on :meth:`payment_periods`.
        """
        return self._search(
            PACKAGE_SEARCH_PATH, PRODUCT_PACKAGE, title_code, page_number, page_size, include_inactive
        )

    def search_campaigns(
        self, title_code: str, *, page_number: int = 1, page_size: int = 25, include_inactive: bool = False
    ) -> ProductPage:
        """One page of a title's campaigns.

        Endpoint: ``GET /external/api/v3/products/campaign/search`` (system token). Page until
        ``more_results_available`` is false. Raises the errors listed on :meth:`payment_periods`.
        """
        return self._search(
            CAMPAIGN_SEARCH_PATH, PRODUCT_CAMPAIGN, title_code, page_number, page_size, include_inactive
        )

    def _search(
        self, path: str, kind: str, title_code: str, page_number: int, page_size: int, include_inactive: bool
    ) -> ProductPage:
        params: dict[str, str | int] = {
            "title_code": title_code,
            "page_number": page_number,
            "page_size": page_size,
        }
        if include_inactive:
            params["include_inactive"] = "true"
        reply = self._system_call("GET", path, params=params)

        def parse(data: Any) -> ProductPage:
            return parsing.parse_product_page(data, kind=kind, page_number=page_number, page_size=page_size)

        return self._parse(path, reply, parse)

    # -- identity ----------------------------------------------------------------------------------

    def active_products(self, identity_token: str) -> ActiveProducts:
        """GET v1 ``me/active_products`` with the reader's identity token.

        Endpoint: ``GET /external/api/v1/me/active_products``. Raises ``AuthenticationExpired`` (401: the
        reader must log in again), ``NotFound`` (no account tied to the token), ``PermissionDenied``,
        ``ServerError``, ``RateLimited``, ``PaywayConnectError``, ``PaywayTimeout``, ``MalformedResponse``.
        """
        reply = self._identity_call("GET", ACTIVE_PRODUCTS_PATH, identity_token)
        return self._parse(ACTIVE_PRODUCTS_PATH, reply, parsing.parse_active_products)

    def current_account(self, identity_token: str) -> Account:
        """The Payway account behind the reader's identity token: id, e-mail, first and last name.

        Endpoint: ``GET /external/api/v3/me`` (scope ``/external/me/w``), with the client's connect and read
        timeouts like every call. Raises ``AuthenticationExpired`` (401: the reader must log in again),
        ``NotFound`` (no account tied to the token), ``PermissionDenied``, ``ServerError``,
        ``RateLimited``, ``PaywayConnectError``, ``PaywayTimeout``, ``MalformedResponse`` (no account id).
        The answer holds personal data: callers must not log or store it as is.
        """
        reply = self._identity_call("GET", CURRENT_ACCOUNT_PATH, identity_token)
        return self._parse(CURRENT_ACCOUNT_PATH, reply, parsing.parse_account)

    # -- health ------------------------------------------------------------------------------------

    def server_date(self) -> dt.datetime | None:
        """Payway's clock: the ``Date`` header of an unauthenticated ``HEAD /`` on the API host.

        For the health check's clock-skew test (token expiry and SSO2 JWTs depend on agreeing clocks).
        Sends no token and executes nothing; any status will do. None when the header is missing or
        unreadable. Raises ``PaywayConnectError``, ``PaywayTimeout`` or ``PaywayConnectionLost``.
        """
        from email.utils import parsedate_to_datetime

        started = time.monotonic()
        try:
            response = self._session.request(
                "HEAD", self.base_url + "/", timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as err:
            raise self._transport_error("HEAD", "/", started, err) from err
        try:
            date = parsedate_to_datetime(response.headers.get("Date", ""))
        except (TypeError, ValueError):
            return None
        return date if date.tzinfo else date.replace(tzinfo=dt.timezone.utc)

    # -- transport ---------------------------------------------------------------------------------

    def _system_call(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> _Reply:
        """A call with the cached system token; a 401 renews the token and retries once.

        Payway rejects a 401 before executing anything, so the retry cannot duplicate a POST
        (docs/payway-contract.md#never-re-send).
        """
        token = self.system_token()
        try:
            return self._send(method, path, bearer=token.access_token, json_body=json_body, params=params)
        except AuthenticationExpired:
            logger.info("payway %s %s: system token refused, renewing it and retrying once", method, path)
            self._system_tokens.invalidate(token)
            token = self.system_token()
            try:
                return self._send(method, path, bearer=token.access_token, json_body=json_body, params=params)
            except AuthenticationExpired:
                self._system_tokens.invalidate(token)
                raise

    def _identity_call(
        self,
        method: str,
        path: str,
        identity_token: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> _Reply:
        """A call with a reader's identity token. A 401 is raised as ``AuthenticationExpired``: only the
        caller can renew the token (refresh token or the SSO2 login)."""
        return self._send(method, path, bearer=identity_token, json_body=json_body, params=params)

    def _send(
        self,
        method: str,
        path: str,
        *,
        bearer: str | None = None,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> _Reply:
        """One HTTP exchange: the status and decoded JSON of a 2xx (``None`` for an empty body), or raises."""
        headers = {"Accept": "application/json"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
            # Payway answers 400 invalid_content_type_error without it, on GETs too
            # (docs/payway-contract.md#requests).
            headers["Content-Type"] = "application/json"
        body: bytes | None = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
        started = time.monotonic()
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                params=params,
                data=body if body is not None else data,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as err:
            raise self._transport_error(method, path, started, err) from err
        duration_ms = (time.monotonic() - started) * 1000

        if 200 <= response.status_code < 300:
            self._log(logging.INFO, method, path, response.status_code, duration_ms)
            if not response.content.strip():
                return _Reply(response.status_code, None)
            try:
                return _Reply(response.status_code, response.json())
            except ValueError as err:
                raise MalformedResponse(
                    f"Payway answered HTTP {response.status_code} with a body that is not JSON",
                    endpoint=path,
                    status=response.status_code,
                ) from err

        error = self._api_error(path, response)
        self._log(logging.WARNING, method, path, response.status_code, duration_ms, error.code)
        raise error

    def _transport_error(
        self, method: str, path: str, started: float, err: requests.RequestException
    ) -> PaywayError:
        duration_ms = (time.monotonic() - started) * 1000
        self._log(logging.WARNING, method, path, None, duration_ms, type(err).__name__)
        return errors.transport_error(err, path)

    def _api_error(self, path: str, response: requests.Response) -> PaywayAPIError:
        """Map an error status to the exception hierarchy; the body may be anything, or nothing."""
        try:
            body = parsing.parse_error_body(response.json())
        except ValueError:
            body = parsing.ErrorBody()
        refusal = response.status_code == 403 and _is_payment_method_failed(path, body.code)
        return errors.api_error(response, body, path, payment_refusal=refusal)

    @staticmethod
    def _parse(path: str, reply: _Reply, parse: Callable[[Any], T]) -> T:
        try:
            return parse(reply.data)
        except MalformedResponse as err:
            err.endpoint = path
            err.status = reply.status
            raise

    @staticmethod
    def _log(
        level: int, method: str, path: str, status: int | None, duration_ms: float, code: str = ""
    ) -> None:
        logger.log(
            level,
            "payway %s %s -> %s in %.0f ms%s",
            method,
            path,
            status if status is not None else "no response",
            duration_ms,
            f" ({code})" if code else "",
            extra={
                "payway_method": method,
                "payway_path": path,
                "payway_status": status,
                "payway_code": code,
            },
        )
