"""Typed client for Payway's Klarna Payments, catalogue, token and /me APIs.

INTERFACE SKELETON: signatures and contracts are fixed; bodies are being implemented.
"""

from __future__ import annotations

import datetime as dt

import requests

from .types import (
    AccessToken,
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


class PaywayClient:
    """Speaks Payway over one pooled ``requests.Session``.

    Constructed with explicit base URL, credentials and timeouts; it never reads Django settings.
    Every call uses ``timeout=(connect_timeout, read_timeout)``. A POST is never re-sent after it may
    have reached Payway; only connect failures and a 401 on a *system* token are retried, once.
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
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- tokens (POST /api/authorization/access_token, form-encoded) -------------------------------

    def system_token(self) -> AccessToken:
        """A ``grant_type=none`` token with SYSTEM_SCOPES, cached until shortly before ``expires_in``."""
        raise NotImplementedError

    def exchange_ticket(self, ticket: str) -> AccessToken:
        """``grant_type=ticket``: swap an SSO2 authorization ticket for an identity token."""
        raise NotImplementedError

    def refresh_identity_token(self, refresh_token: str) -> AccessToken:
        """``grant_type=refresh_token``."""
        raise NotImplementedError

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
        """v1 ``create_session`` with ``identity_token``, else v2 with the system token."""
        raise NotImplementedError

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
        ``trial``) with the system token and ``customer``. Never retried after it may have reached Payway."""
        raise NotImplementedError

    def payment_periods(self, code: str) -> list[PaymentPeriod]:
        """GET v2 ``klarna_payments/payment_periods?code=``."""
        raise NotImplementedError

    # -- catalogue ---------------------------------------------------------------------------------

    def titles(self) -> list[Title]:
        raise NotImplementedError

    def search_packages(
        self, title_code: str, *, page_number: int = 1, page_size: int = 25, include_inactive: bool = False
    ) -> ProductPage:
        raise NotImplementedError

    def search_campaigns(
        self, title_code: str, *, page_number: int = 1, page_size: int = 25, include_inactive: bool = False
    ) -> ProductPage:
        raise NotImplementedError

    # -- identity ----------------------------------------------------------------------------------

    def active_products(self, identity_token: str) -> ActiveProducts:
        """GET v1 ``me/active_products`` with the reader's identity token."""
        raise NotImplementedError
