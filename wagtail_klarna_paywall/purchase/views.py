"""The request/response layer of the purchase flow: read and validate the request, call
:mod:`~wagtail_klarna_paywall.purchase.session` and :mod:`~wagtail_klarna_paywall.purchase.orders`, render
or redirect. No flow decisions live here. Who is asking (the reader, their browser, the routed site) is
read by :mod:`.readers`; what every flow page shows besides its own content (the shared context, the
flow's URLs, an attempt's summary) comes from :mod:`.pages`.

The purchase page's routes (``KlarnaPurchasePage``) and the confirmation page call these functions.
Every view is wrapped in :func:`~wagtail_klarna_paywall.purchase.hardening.flow_page` (no caching, no
framing, a strict CSP, HTTPS). Nothing the browser sends chooses what is bought: the offer is looked up
in the saved live page by its reference.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from wagtail.models import Page

from .. import messages
from ..blocks import Offer, find_offer
from ..conf import paywall_settings
from ..exceptions import TRANSIENT_CODES, ErrorCode
from ..login.identity import client_ip, get_identity_provider
from ..models import AttemptState, PurchaseAttempt
from ..newsroom import analytics
from ..payway.types import CustomerInfo
from ..reading import access, grants
from . import accounts, attempts, orders, pages, readers, session
from .hardening import flow_page

logger = logging.getLogger("wagtail_klarna_paywall.purchase.views")

_PAGE_ID_RE = re.compile(r"^[0-9]{1,10}$")
_OFFER_REF_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}(:[A-Za-z0-9_-]{1,80})?$")
# Klarna authorization tokens are UUID-like; the cap keeps junk away from Payway (docs/reliability.md B03).
_AUTH_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")
_SENSITIVE_FIELDS = ("klarna_authorization_token", "email", "first_name", "last_name")

#: The widget must have answered within this many milliseconds, else the fallback is shown (F13).
WIDGET_LOAD_TIMEOUT_MS = 10_000
#: The fallback's retry button is enabled after this many milliseconds.
WIDGET_RETRY_DELAY_MS = 3_000


# -- forms ------------------------------------------------------------------------------------------


class CustomerForm(forms.Form):
    """A new customer's details for Payway's v2 ``customer_info``. Sent to Payway, never stored."""

    # The checkout template writes the inputs from these fields (checkout.html); ``autocomplete`` lets the
    # browser fill in what the reader has typed on other sites.
    email = forms.EmailField(
        label=_("E-mail address"), max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    first_name = forms.CharField(
        label=_("First name"), max_length=100, widget=forms.TextInput(attrs={"autocomplete": "given-name"})
    )
    last_name = forms.CharField(
        label=_("Last name"), max_length=100, widget=forms.TextInput(attrs={"autocomplete": "family-name"})
    )

    #: Not in anyone's name, but in every markup-injection payload (docs/reliability.md B04). Apostrophes and
    #: hyphens stay allowed (O'Brien, Anna-Karin).
    FORBIDDEN_NAME_CHARACTERS = frozenset('<>"\\{}[]`=')

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name in ("first_name", "last_name"):
            value = data.get(name)
            if value and any(not ch.isprintable() or ch in self.FORBIDDEN_NAME_CHARACTERS for ch in value):
                self.add_error(name, _("Please use letters only."))
        return data

    def customer_info(self) -> CustomerInfo:
        return CustomerInfo(
            email=self.cleaned_data["email"],
            first_name=self.cleaned_data["first_name"],
            last_name=self.cleaned_data["last_name"],
        )


# -- rendering helpers ------------------------------------------------------------------------------


def _own_offers(page: Page) -> list[Offer]:
    offers = []
    for child in getattr(page, "offers", None) or []:
        offer = find_offer(page, child.id)
        if offer is not None and offer.product_code:
            offers.append(offer)
    return offers


def _article_offer(request: HttpRequest, page: Page) -> tuple[Page, Offer] | None:
    """``?page=<id>&offer=<ref>`` on the landing page: an article's paywall offer bought on this page."""
    page_id, ref = request.GET.get("page", ""), request.GET.get("offer", "")
    if not (_PAGE_ID_RE.match(page_id) and _OFFER_REF_RE.match(ref)):
        return None
    holder = _live_page(int(page_id))
    offer = find_offer(holder, ref) if holder is not None else None
    if offer is None or not _offer_belongs_here(offer, holder, page):
        return None
    return holder, offer


def _live_page(page_id: int) -> Page | None:
    page = Page.objects.live().filter(pk=page_id).first()
    return page.specific if page is not None else None


def _offer_belongs_here(offer: Offer, holder: Page, purchase_page: Page) -> bool:
    """A paywall's offer is bought on the paywall's purchase page; a purchase page's own offer on itself."""
    if not offer.product_code or (offer.is_trial and not offer.period_id):
        return False
    owner = offer.purchase_page_id if offer.purchase_page_id is not None else holder.pk
    return owner == purchase_page.pk


def _retry_form(attempt: PurchaseAttempt | None) -> dict[str, str] | None:
    """Hidden fields of a "try again" button (a POST to buy, so a new attempt and session when needed)."""
    if attempt is None or ":" not in attempt.offer_key:
        return None
    page_id, ref = attempt.offer_key.split(":", 1)
    return {"page": page_id, "offer": ref}


def _back_url(holder: Page, purchase_page: Page, request: HttpRequest) -> str:
    """Where "back to the article" goes from ``holder``'s offer: the article, or for the purchase page's
    own offers the site's home page."""
    if holder.pk != purchase_page.pk:
        return pages.article_url(holder, request) or "/"
    site = readers.site_of(request, purchase_page)
    return (site.root_page.specific.get_url(request) if site is not None else "") or "/"


def _render_landing(
    request: HttpRequest,
    page: Page,
    *,
    message_code: str = "",
    status: int = 200,
    retry: Any = None,
    back_url: str = "",
    retry_after: int = 0,
) -> HttpResponse:
    article = _article_offer(request, page) if request.method in ("GET", "HEAD") else None
    if article is not None:
        holder, offer = article
        choices = [{"page_id": holder.pk, "offer": offer, "selected": True}]
        # The reader came from this article's paywall: every landing on its behalf leads back there.
        back_url = back_url or _back_url(holder, page, request)
        if access.offer_is_owned(request, offer):
            # Never sell what the reader holds (the paywall hid this offer through the same decision).
            choices, message_code, back_url = (
                [],
                messages.ALREADY_SUBSCRIBED,
                _back_url(holder, page, request),
            )
    else:
        selected = request.GET.get("offer", "")
        offers = _own_offers(page)
        owned = [o for o in offers if access.offer_is_owned(request, o)]
        if owned:
            offers = [o for o in offers if o not in owned]
            if not message_code and (not offers or any(o.ref == selected for o in owned)):
                message_code, back_url = messages.ALREADY_SUBSCRIBED, _back_url(page, page, request)
        if not any(o.ref == selected for o in offers) and offers:
            selected = offers[0].ref
        choices = [{"page_id": page.pk, "offer": o, "selected": o.ref == selected} for o in offers]
    if message_code == messages.TOO_MANY_ATTEMPTS:
        # Paused: listing every offer again would only invite the click that is refused.
        choices = []
    context = pages.context(
        request,
        page,
        offer_choices=choices,
        # An offer chosen on an article's paywall was reported there (select_item); not again here.
        offers_from_article=article is not None,
        buy_url=pages.subpage_url(page, request, "buy"),
        utm_source=readers.traffic_source(request) if request.method in ("GET", "HEAD") else "",
        message=messages.reader_message(message_code) if message_code else None,
        retry=retry,
        back_url=back_url,
        retry_after_minutes=-(-retry_after // 60) if retry_after > 0 else 0,
    )
    return TemplateResponse(request, "wagtail_klarna_paywall/purchase_page.html", context, status=status)


def _render_checkout(
    request: HttpRequest,
    page: Page,
    attempt: PurchaseAttempt,
    *,
    message_code: str = "",
    status: int = 200,
    customer_form: CustomerForm | None = None,
) -> HttpResponse:
    """The checkout page for whatever state ``attempt`` is in."""
    state = attempt.state
    message = messages.reader_message(message_code) if message_code else None
    mode = "outcome"
    extra: dict[str, Any] = {}
    if state == AttemptState.SESSION_READY and attempts.is_session_reusable(attempt):
        mode = "widget"
        settings_obj = attempts.site_settings(attempt.site)
        category = attempts.choose_payment_method_category(
            attempt, attempt.payment_method_categories, settings_obj.default_payment_method_category
        )
        # No category the session lists fits (why is in the attempt's events): the widget's fallback,
        # without loading Klarna, so no authorization can start.
        unavailable = None if category else messages.reader_message(messages.NO_PAYMENT_METHOD)
        extra.update(
            # The ONLY per-session value in the page: Klarna's client token, made for the browser.
            klarna_config={
                "clientToken": attempt.klarna_client_token,
                "paymentMethodCategory": category,
                "container": "#wkp-klarna-container",
                "loadTimeoutMs": WIDGET_LOAD_TIMEOUT_MS,
                "retryDelayMs": WIDGET_RETRY_DELAY_MS,
                "messages": dict(_widget_messages(get_language())),
            },
            payment_unavailable=unavailable,
            klarna_sdk_url=paywall_settings.klarna_sdk_src,
            new_customer=not attempt.existing_customer,
            customer_form=customer_form
            or (_new_customer_form(request, attempt) if not attempt.existing_customer else None),
            declined_url=pages.subpage_url(page, request, "declined", reference=attempt.reference),
            analytics_event=analytics.checkout_event(attempt),
        )
    elif state in (AttemptState.NEW, AttemptState.SESSION_READY):
        # No usable session, and a GET never creates one: the reader starts again with a POST.
        mode = "start_again"
        message = message or messages.reader_message(messages.SESSION_EXPIRED)
    elif state == AttemptState.PLACING:
        mode = "in_progress"
        message = messages.reader_message(messages.IN_PROGRESS)
    elif state in (AttemptState.PLACED, AttemptState.CONFIRMED):
        mode = "already_bought"
        message = messages.reader_message(messages.ALREADY_BOUGHT)
        extra["confirmation_url"] = attempts.confirmation_path(attempt, request)
    elif state == AttemptState.FAILED and attempt.error_code == messages.ALREADY_BOUGHT:
        # Stopped before Payway: the reader's other attempt holds this product. Link to that purchase's
        # confirmation when this reader may open it (same browser or same Payway account); a purchase
        # matched by the typed e-mail alone is another browser's, whose confirmation says nothing here.
        mode = "already_bought"
        winner = attempt.duplicate_of
        if winner is not None and attempts.same_reader(attempt, winner):
            message = messages.reader_message(messages.ALREADY_BOUGHT)
            extra["confirmation_url"] = attempts.confirmation_path(winner, request)
        else:
            message = messages.reader_message(messages.ALREADY_BOUGHT_ELSEWHERE)
        extra["article_url"] = pages.article_url(attempt.page, request)
    else:
        code = {
            AttemptState.UNKNOWN: messages.UNKNOWN_OUTCOME,
            AttemptState.EXPIRED: messages.SESSION_EXPIRED,
        }.get(state, attempt.error_code)
        message = messages.reader_message(code)
    retry = _retry_form(attempt) if mode == "start_again" or (mode == "outcome" and message.retry) else None
    if state == AttemptState.UNKNOWN:
        retry = None  # never invite a second purchase while the first one is being settled
    # The page holding the offer, as stored (article_url finds its own type without another query).
    holder = attempt.page if attempt.page is not None and attempt.page.live else None
    if holder is not None:
        # Every checkout page leads back to where the reader chose the offer: the article, or for the
        # purchase page's own offers that page's list.
        if holder.pk == page.pk:
            extra.pop("article_url", None)
            extra["offers_url"] = pages.page_url(page, request)
        else:
            extra.setdefault("article_url", pages.article_url(holder, request) or "/")
        if state == AttemptState.DECLINED:
            # Klarna said no to this payment, not to the reader: the other offers are where they were
            # chosen (the article's paywall, or this purchase page's own list).
            extra["other_offers_url"] = extra.get("offers_url") or extra["article_url"]
    if mode == "outcome" and attempt.error_code == ErrorCode.SSN_ALREADY_TAKEN:
        # "Log in with that account": a real login that returns to the article.
        next_url = extra.get("article_url") or extra.get("offers_url") or pages.home_url(request, page)
        extra["login_url"] = pages.reader_login_url(request, next_url)
    context = pages.context(
        request,
        page,
        attempt=attempt,
        mode=mode,
        message=message,
        retry=retry,
        buy_url=pages.subpage_url(page, request, "buy"),
        support_reference=str(attempt.reference)[:8],
        summary=pages.attempt_summary(attempt),
        **extra,
    )
    response = TemplateResponse(request, "wagtail_klarna_paywall/checkout.html", context, status=status)
    return response


@functools.lru_cache(maxsize=16)
def _widget_messages(language: str | None) -> dict[str, str]:
    """What purchase.js may tell the reader, in ``language`` (the active one): the same for every reader,
    so translated once per language and process."""
    return {
        "widgetUnavailable": str(messages.reader_message(messages.WIDGET_UNAVAILABLE).body),
        "declined": str(messages.reader_message(messages.DECLINED_IN_WIDGET).body),
        "aborted": str(_("The payment was not completed. You can try again.")),
        "invalidFields": str(_("Please check the details you entered in Klarna.")),
        "noPaymentMethod": str(messages.reader_message(messages.NO_PAYMENT_METHOD).body),
        # Shown while the order is placed (the pay button stays disabled until the answer).
        "placing": str(_("Placing your order… Please wait and do not close this page.")),
    }


def _new_customer_form(request: HttpRequest, attempt: PurchaseAttempt) -> CustomerForm:
    """The new-customer form, prefilled from the reader's Payway account when they bought logged in (the
    attempt names their account): a logged-in reader's trial still goes through v2 with ``customer_info``
    (docs/payway-contract.md, "place_order and place_trial_order"), and they should retype nothing. Only
    then is the session read for their identity token."""
    token = readers.reader_identity_token(request) if attempt.account_key else None
    return CustomerForm(initial=accounts.customer_details(request, token) if token else None)


def _respond(request: HttpRequest, page: Page, result: orders.PlaceResult, **kwargs: Any) -> HttpResponse:
    """Turn a stored or fresh outcome into the reader's answer."""
    attempt, outcome = result.attempt, result.outcome
    if outcome in (orders.Outcome.REDIRECT, orders.Outcome.CONFIRMATION) and result.redirect_url:
        return HttpResponseRedirect(result.redirect_url, status=303)
    if outcome == orders.Outcome.LOGIN:
        return _login_redirect(request, page, attempt)
    if outcome == orders.Outcome.RETRY:
        status = 503 if result.error_code in TRANSIENT_CODES else 400
        return _render_checkout(
            request, page, attempt, message_code=result.error_code, status=status, **kwargs
        )
    return _render_checkout(request, page, attempt, message_code=result.error_code)


def _login_redirect(request: HttpRequest, page: Page, attempt: PurchaseAttempt) -> HttpResponse:
    provider = get_identity_provider()
    if provider is None:
        return _render_checkout(request, page, attempt, message_code=messages.LOGIN_REQUIRED, status=403)
    return HttpResponseRedirect(
        provider.login_url(request, pages.checkout_url(page, request, attempt)), status=303
    )


def _shown_attempt(request: HttpRequest, page: Page, reference: Any) -> PurchaseAttempt:
    """The reader's own attempt for a page that only shows it (the checkout's GET), or 404. An anonymous
    reader's attempt made in this browser is recognised from the session cookie alone; whatever changes
    the attempt or the session looks the reader up (:func:`_own_attempt`)."""
    attempt = attempts.attempt_by_reference(reference)
    if attempt is not None and readers.made_in_this_browser(request, attempt):
        return orders.expire_stale_placing(readers.adopt(request, page, attempt))
    return _own_attempt(request, page, attempt)[1]


def _own_attempt(
    request: HttpRequest, page: Page, attempt: PurchaseAttempt | None
) -> tuple[attempts.Reader, PurchaseAttempt]:
    """The reader, and ``attempt`` if it is their own, or 404: another reader's attempt is
    indistinguishable from none."""
    reader = readers.reader_for(request)
    if reader is None or attempt is None or not attempts.is_readers(attempt, reader):
        raise Http404
    return reader, orders.expire_stale_placing(readers.adopt(request, page, attempt))


# -- views ------------------------------------------------------------------------------------------


@flow_page
def purchase_landing(request: HttpRequest, page: Page) -> HttpResponse:
    """GET: the purchase page with its offers (``?offer=<ref>`` preselects one, ``?page=<id>&offer=<ref>``
    shows an article's paywall offer). Each offer has a plain buy form. Never creates anything."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return _render_landing(request, page)


@flow_page
def buy(request: HttpRequest, page: Page) -> HttpResponse:
    """POST ``page`` (the page holding the offer) and ``offer`` (its reference): start or resume buying."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    page_id, ref = request.POST.get("page", ""), request.POST.get("offer", "")
    if not (_PAGE_ID_RE.match(page_id) and _OFFER_REF_RE.match(ref)):
        return _render_landing(request, page, message_code=messages.BAD_REQUEST, status=400)
    # The purchase page's own offers are on the page Wagtail has just routed to (live, specific).
    holder = page if int(page_id) == page.pk else _live_page(int(page_id))
    offer = find_offer(holder, ref) if holder is not None else None
    if holder is None or offer is None or not _offer_belongs_here(offer, holder, page):
        return _render_landing(request, page, message_code=messages.OFFER_NOT_FOUND, status=400)
    site = readers.site_of(request, page)

    if access.offer_is_owned(request, offer):
        # The reader holds what this offer sells (their account, or what this browser just bought):
        # nothing to buy, no Payway session. Their own recent order of it is shown if there is one.
        known = readers.reader_for(request)
        previous = attempts.previous_order(known, offer, timezone.now(), site) if known else None
        if previous is not None and previous.purchase_page_id:
            return HttpResponseRedirect(
                pages.checkout_url(previous.purchase_page.specific, request, previous), status=303
            )
        logger.info("Buy of offer %s on page %s refused: the reader already holds it", ref, holder.pk)
        return _render_landing(
            request, page, message_code=messages.ALREADY_SUBSCRIBED, back_url=_back_url(holder, page, request)
        )
    reader = readers.reader_for(request, start=True)
    if reader is None:  # no session machinery at all: cannot keep track of the reader
        return _render_landing(
            request,
            page,
            message_code=ErrorCode.CONFIGURATION,
            status=503,
            back_url=_back_url(holder, page, request),
        )
    result = session.start_purchase(
        reader=reader,
        offer=offer,
        offer_page=holder,
        purchase_page=page,
        site=site,
        traffic_source=readers.traffic_source(request),
        ip=client_ip(request),
    )
    if result.status == session.BuyStatus.RATE_LIMITED:
        # S13: a new Payway session was needed and the budget is spent; nothing was written or sent.
        response = _render_landing(
            request,
            page,
            message_code=messages.TOO_MANY_ATTEMPTS,
            status=429,
            back_url=_back_url(holder, page, request),
            retry_after=result.retry_after,
        )
        response["Retry-After"] = str(result.retry_after)
        return response
    if result.status in (session.BuyStatus.READY, session.BuyStatus.EXISTING):
        return HttpResponseRedirect(pages.checkout_url(page, request, result.attempt), status=303)
    if result.status == session.BuyStatus.LOGIN:
        provider = get_identity_provider()
        if provider is not None:
            provider.forget(request)
            landing = f"{pages.page_url(page, request)}?{urlencode({'page': page_id, 'offer': ref})}"
            return HttpResponseRedirect(provider.login_url(request, landing), status=303)
    status = 503 if result.error_code in TRANSIENT_CODES else 200
    retry = {"page": page_id, "offer": ref} if messages.reader_message(result.error_code).retry else None
    return _render_landing(
        request,
        page,
        message_code=result.error_code,
        status=status,
        retry=retry,
        back_url=_back_url(holder, page, request),
    )


@flow_page
@sensitive_post_parameters(*_SENSITIVE_FIELDS)
# The Klarna authorization token and the customer's details sit in locals while the order is placed: an
# error report (HTML report, frame-locals collectors) must not print them (docs/reliability.md S04).
@sensitive_variables("token", "customer_form")
def checkout(request: HttpRequest, page: Page, reference: Any) -> HttpResponse:
    """GET: the Klarna widget (or the attempt's state). POST: place the order, exactly once."""
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponseNotAllowed(["GET", "HEAD", "POST"])
    if request.method != "POST":
        return _render_checkout(request, page, _shown_attempt(request, page, reference))

    reader, attempt = _own_attempt(request, page, attempts.attempt_by_reference(reference))

    if attempt.state != AttemptState.SESSION_READY:
        # A second submit, a second tab, a reload: the stored outcome, never a second call (C02, C04).
        return _respond(request, page, orders.stored_outcome(attempt, request))

    token = request.POST.get("klarna_authorization_token", "")
    customer_form = None
    if not attempt.existing_customer:
        customer_form = CustomerForm(request.POST)
    if not _AUTH_TOKEN_RE.match(token):
        # B01/B03: no call, the attempt stays ready, the widget is shown again.
        orders.record_validation_error(attempt, messages.MISSING_AUTHORIZATION)
        if customer_form is not None:
            customer_form.is_valid()
        return _render_checkout(
            request,
            page,
            attempt,
            message_code=messages.MISSING_AUTHORIZATION,
            status=400,
            customer_form=customer_form,
        )
    if customer_form is not None and not customer_form.is_valid():
        orders.record_validation_error(attempt, messages.INVALID_CUSTOMER)
        return _render_checkout(
            request,
            page,
            attempt,
            message_code=messages.INVALID_CUSTOMER,
            status=400,
            customer_form=customer_form,
        )
    result = orders.place_order(
        attempt,
        reader,
        authorization_token=token,
        browser=readers.browser_info(request),
        customer=customer_form.customer_info() if customer_form is not None else None,
        request=request,
    )
    # The order exists (or may: unknown): this browser reads what it bought from now on (grants.py).
    grants.grant(
        request,
        result.attempt,
        email=customer_form.cleaned_data["email"] if customer_form is not None else "",
    )
    if result.outcome == orders.Outcome.LOGIN and result.error_code == ErrorCode.AUTHENTICATION_EXPIRED:
        provider = get_identity_provider()
        if provider is not None:
            provider.forget(request)
    return _respond(request, page, result, customer_form=customer_form)


@flow_page
def declined(request: HttpRequest, page: Page, reference: Any) -> HttpResponse:
    """POST from purchase.js when Klarna's widget answers ``show_form: false``."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    _reader, attempt = _own_attempt(request, page, attempts.attempt_by_reference(reference))
    result = orders.decline_in_widget(attempt)
    return _render_checkout(request, page, result.attempt, message_code=result.error_code)


@flow_page
def confirmation(request: HttpRequest, page: Page) -> HttpResponse:
    """The confirmation page (``?ref=<attempt reference>``). The summary comes from our database, for the
    reader's own attempt only. Without a reference, or with one this browser did not make, the page says
    nothing about any purchase (nor, for another reader's reference, about that attempt): a neutral text
    with links to the front page and to log in; the editor's thank-you text is for real purchases only."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    ref = request.GET.get("ref", "")
    # What the page shows, the article's route included, in one query.
    attempt = attempts.attempt_to_confirm(ref) if ref else None
    # The reader is looked up (their session loaded), not recognised from the cookie: this page can add
    # a grant, which a cookie whose session has ended must not get.
    if attempt is not None and not attempts.is_readers(attempt, readers.reader_for(request)):
        attempts.record_foreign_reference(attempt)
        attempt = None
    message = None
    article_url = ""
    grant = None
    if attempt is not None:
        attempt = orders.expire_stale_placing(readers.adopt(request, page, attempt))
        if orders.confirm(attempt):
            # The reader now owns the product: forget any cached "no access" answer.
            access.refresh_access(request)
        if attempt.state == AttemptState.PLACING:
            message = messages.reader_message(messages.IN_PROGRESS)
        elif attempt.state not in (AttemptState.PLACED, AttemptState.CONFIRMED):
            code = messages.UNKNOWN_OUTCOME if attempt.state == AttemptState.UNKNOWN else attempt.error_code
            message = messages.reader_message(code or messages.GENERIC)
        article_url = pages.article_url(attempt.page, request)
        # Also here, not only when the order was placed: the reader may come back after an unknown
        # outcome was settled, or the checkout's answer may have been lost. Never extends a grant.
        if grants.grant(request, attempt):
            grant = grants.grant_of(request, attempt)
    purchased = attempt is not None and attempt.state in (AttemptState.PLACED, AttemptState.CONFIRMED)
    home_url = pages.home_url(request, page)
    login_next = article_url or home_url
    context = pages.context(
        request,
        page,
        attempt=attempt,
        summary=pages.attempt_summary(attempt) if attempt is not None else None,
        purchased=purchased,
        neutral=attempt is None,
        analytics_event=analytics.purchase_event(attempt) if purchased else None,
        message=message,
        article_url=article_url,
        home_url=home_url,
        # How a new customer reads on other devices; a logged-in buyer already is.
        grant=grant if purchased and not attempt.existing_customer else None,
        login_url=pages.reader_login_url(request, login_next) if (attempt is None or purchased) else "",
        support_reference=str(attempt.reference)[:8] if attempt is not None else "",
        refresh=attempt is not None and attempt.state == AttemptState.PLACING,
    )
    return TemplateResponse(request, "wagtail_klarna_paywall/confirmation_page.html", context)
