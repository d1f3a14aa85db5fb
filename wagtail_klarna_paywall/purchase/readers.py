"""Who is asking, and from where: what the purchase flow's views read from a request.

The reader (a user, or an anonymous browser keyed by its Django session, which only the buy POST
creates), their Payway identity token and account, the browser's address, language and user agent as
Payway is sent them, the traffic source, and the site the request was routed through, whose instances
the flow reuses instead of looking them up again.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.http import HttpRequest
from wagtail.models import Page, Site

from ..exceptions import PaywallError
from ..login.identity import client_ip, get_identity_provider
from ..models import PurchaseAttempt
from ..payway.types import BrowserInfo
from . import accounts, attempts

# Logged on the views' channel: this is part of their request layer.
logger = logging.getLogger("wagtail_klarna_paywall.purchase.views")

#: Set in the Django session on the buy POST so an anonymous reader gets a session (and a reader key).
READER_SESSION_FLAG = "wagtail_klarna_paywall_reader"

_LANGUAGE_TAG_RE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")


def reader_identity_token(request: HttpRequest) -> str | None:
    """The reader's Payway identity token, or None (not logged in, or no identity provider installed)."""
    provider = get_identity_provider()
    if provider is None:
        return None
    try:
        return provider.get_identity_token(request) or None
    except PaywallError as exc:
        logger.warning("The identity provider failed: %s", type(exc).__name__)
        return None


def reader_for(request: HttpRequest, *, start: bool = False) -> attempts.Reader | None:
    """Who is asking. Anonymous readers are keyed by their Django session, which only the buy POST
    creates (``start=True``): viewing a page never creates a session (docs/reliability.md L01)."""
    token = reader_identity_token(request)
    # A logged-in reader is their Payway account on every device (cached per reader, see accounts.py).
    account = accounts.account_key(request, token) if token else None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return attempts.Reader(attempts.user_reader_key(user.pk), user.pk, token, account)
    session = getattr(request, "session", None)
    if session is None:
        return None
    session_key = session.session_key
    created = False
    if not session_key:
        if not start:
            return None
        session[READER_SESSION_FLAG] = True
        session.save()
        session_key, created = session.session_key, True
    return attempts.Reader(attempts.anonymous_reader_key(session_key), None, token, account, new=created)


def made_in_this_browser(request: HttpRequest, attempt: PurchaseAttempt) -> bool:
    """Whether ``attempt`` is an anonymous reader's, made under the session whose cookie this request
    carries, decided from the cookie alone: the Django session is not loaded (a checkout page then costs
    no session read).

    Unlike :func:`reader_for`, this also admits a cookie whose session has ended (logged out, its key
    rotated at a login, expired): the browser was given a new cookie then, so only someone who kept a
    copy of the old one still sends it. Hence it is used for the checkout page alone, which shows the
    offer and Klarna's client token for the attempt's Payway session, nothing personal; placing the order,
    declining it and the confirmation page (which adds a grant) look the reader up."""
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
    return bool(session_key) and attempt.reader_key == attempts.anonymous_reader_key(session_key)


def browser_language(request: HttpRequest) -> str:
    """The first language tag of Accept-Language (e.g. ``sv-SE``), or ''."""
    first = request.META.get("HTTP_ACCEPT_LANGUAGE", "").split(",")[0].split(";")[0].strip()
    return first if len(first) <= 35 and _LANGUAGE_TAG_RE.match(first) else ""


def browser_info(request: HttpRequest) -> BrowserInfo:
    user_agent = request.META.get("HTTP_USER_AGENT", "")
    user_agent = "".join(ch for ch in user_agent if ch.isprintable())[:512]
    return BrowserInfo(ip=client_ip(request), language=browser_language(request), user_agent=user_agent)


def _utm_from_url(url: str) -> str:
    try:
        query = urlsplit(url).query
    except ValueError:
        return ""
    values = parse_qs(query).get("utm_source") or [""]
    return attempts.clean_traffic_source(values[0])


def traffic_source(request: HttpRequest) -> str:
    """utm_source from the form, else from the referring page's URL (the article the reader came from)."""
    posted = (
        request.POST.get("utm_source", "") if request.method == "POST" else request.GET.get("utm_source", "")
    )
    return attempts.clean_traffic_source(posted) or _utm_from_url(request.META.get("HTTP_REFERER", ""))


# -- the routed site -------------------------------------------------------------------------------


def site_of(request: HttpRequest, page: Page) -> Site | None:
    """The site ``page`` is sold on: the one Wagtail routed this request through (found once per request
    and kept on it, its root page already loaded) when the page is in its tree, else the page's own."""
    site = Site.find_for_request(request)
    if site is not None and page.path.startswith(site.root_page.path):
        return site
    return page.get_site()


def adopt(request: HttpRequest, page: Page, attempt: PurchaseAttempt) -> PurchaseAttempt:
    """Hand ``attempt`` the site and page this request already holds, where they are the ones it names,
    so reading them costs no query (the routed page is the purchase page, or on the confirmation page
    that page)."""
    site = Site.find_for_request(request)
    if site is not None and attempt.site_id == site.pk:
        attempt.site = site
    for name in ("page", "purchase_page", "confirmation_page"):
        if getattr(attempt, f"{name}_id") == page.pk:
            setattr(attempt, name, page)
    return attempt
