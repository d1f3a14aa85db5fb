"""``manage.py klarna_paywall_check``: is this site ready to sell? One PASS/WARN/FAIL line per item.

Checks the settings (the package's Django system checks), the token endpoint, the catalogue of each
site's title, the Klarna payment periods of every offer on a live page, the clock against Payway's, and the
Klarna redirect allow-list. Exits non-zero when anything FAILs, so it can gate a deploy. Prints no secret:
errors are shown as their class, HTTP status and Payway code.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core import checks as django_checks
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from wagtail.models import Page, Site

from ...blocks import OfferBlock, iter_paywalls, iter_stream_fields
from ...conf import paywall_settings
from ...exceptions import PaywayAPIError, PaywayError
from ...models import PaywallSettings
from ...payway import get_client

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"

#: Clock skew beyond which token expiry and SSO2 JWT validation start to misbehave.
SKEW_WARN = dt.timedelta(seconds=30)
SKEW_FAIL = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Result:
    status: str
    item: str
    message: str


def _describe(err: PaywayError) -> str:
    """An error as an operator needs it, with nothing secret (never the request, never upstream text)."""
    if isinstance(err, PaywayAPIError):
        code = f" {err.code}" if err.code else ""
        return f"{type(err).__name__} (HTTP {err.status}{code}) at {err.endpoint}"
    return f"{type(err).__name__} at {err.endpoint or urlsplit(paywall_settings.API_URL).netloc}"


def check_environment() -> list[Result]:
    host = paywall_settings.API_URL
    if paywall_settings.is_production:
        return [Result(PASS, "environment", f"production Payway ({host})")]
    return [Result(WARN, "environment", f"test mode: not the production Payway ({host})")]


def check_settings() -> list[Result]:
    """The package's Django system checks (``checks.py``): errors FAIL, warnings WARN."""
    results = [
        Result(
            FAIL if message.level >= django_checks.ERROR else WARN, "settings", f"{message.id}: {message.msg}"
        )
        for message in django_checks.run_checks()
        if (message.id or "").startswith("wagtail_klarna_paywall.")
    ]
    return results or [Result(PASS, "settings", "system checks pass")]


def check_token(client) -> list[Result]:
    try:
        token = client.system_token()
    except PaywayError as err:
        return [Result(FAIL, "token endpoint", f"no system token: {_describe(err)}")]
    minutes = int((token.expires_at - timezone.now()).total_seconds() // 60)
    return [Result(PASS, "token endpoint", f"system token obtained (valid {minutes} min)")]


def check_catalogue(client) -> list[Result]:

    results = []
    try:
        titles = {title.code for title in client.titles()}
    except PaywayError as err:
        return [Result(FAIL, "catalogue", f"titles could not be read: {_describe(err)}")]
    sites = list(Site.objects.order_by("hostname", "port"))
    if not sites:
        return [Result(WARN, "catalogue", "no Wagtail site configured")]
    for site in sites:
        title_code = PaywallSettings.for_site(site).title_code
        item = f"catalogue {site.hostname}"
        if not title_code:
            results.append(Result(WARN, item, "no Payway title code in the site's Klarna paywall settings"))
            continue
        if title_code not in titles:
            results.append(Result(FAIL, item, f"title {title_code!r} is not among Payway's titles"))
            continue
        try:
            packages = client.search_packages(title_code)
        except PaywayError as err:
            results.append(Result(FAIL, item, f"package search failed: {_describe(err)}"))
            continue
        more = "+" if packages.more_results_available else ""
        results.append(Result(PASS, item, f"title {title_code!r}: {len(packages.items)}{more} packages"))
    return results


def _live_offers():
    """{product code: [(page, offer value)]} for every offer on a live page (paywalls and purchase pages)."""

    offers = defaultdict(list)
    for page in Page.objects.live().specific().iterator():
        for _block_id, paywall in iter_paywalls(page):
            for value in paywall["offers"]:
                offers[value.get("product_code") or ""].append((page, value))
        for stream in iter_stream_fields(page):
            for child in stream:
                if isinstance(child.block, OfferBlock):
                    offers[child.value.get("product_code") or ""].append((page, child.value))
    offers.pop("", None)
    return offers


def check_payment_periods(client) -> list[Result]:
    offers = _live_offers()
    if not offers:
        return [Result(WARN, "payment periods", "no offer on any live page")]
    results = []
    for code in sorted(offers):
        item = f"payment periods {code}"
        try:
            periods = client.payment_periods(code)
        except PaywayError as err:
            results.append(Result(FAIL, item, f"could not be read: {_describe(err)}"))
            continue
        enabled = {period.id: period for period in periods if period.enabled}
        if not enabled:
            results.append(Result(FAIL, item, "no enabled Klarna payment period"))
            continue
        problems, doubts = [], []
        for page, value in offers[code]:
            period_id = value.get("period_id") or ""
            where = f"page {page.pk} {page.title!r}"
            if value.get("is_trial") and not period_id:
                problems.append(f"trial on {where} names no payment period")
            elif period_id and period_id not in enabled:
                problems.append(f"{where} uses period {period_id}, which is not an enabled Klarna period")
            elif (
                period_id
                and value.get("product_kind", "package") == "package"
                and enabled[period_id].type != (value.get("period_type") or "recurring")
            ):
                # Campaign periods are always reported as recurring, so only packages are compared.
                doubts.append(
                    f"{where} asks for a {value.get('period_type')} period but {period_id} is "
                    f"{enabled[period_id].type}"
                )
        if problems:
            results.append(Result(FAIL, item, "; ".join(problems + doubts)))
        elif doubts:
            results.append(Result(WARN, item, "; ".join(doubts)))
        else:
            pages = len({page.pk for page, _value in offers[code]})
            results.append(
                Result(PASS, item, f"{len(enabled)} enabled period(s), used on {pages} live page(s)")
            )
    return results


def check_clock(client) -> list[Result]:
    try:
        server = client.server_date()
    except PaywayError as err:
        return [Result(FAIL, "clock", f"Payway unreachable: {_describe(err)}")]
    if server is None:
        return [Result(WARN, "clock", "Payway sent no readable Date header; skew not checked")]
    skew = timezone.now() - server
    seconds = round(skew.total_seconds())
    text = f"local clock is {abs(seconds)} s {'ahead of' if seconds >= 0 else 'behind'} Payway"
    if abs(skew) > SKEW_FAIL:
        return [Result(FAIL, "clock", text)]
    if abs(skew) > SKEW_WARN:
        return [Result(WARN, "clock", text)]
    return [Result(PASS, "clock", text)]


def check_allow_list() -> list[Result]:
    """Readers are sent after place_order only to https URLs on these hosts.

    docs/payway-contract.md#klarna-redirect-allow-list.
    """
    hosts = list(paywall_settings.KLARNA_REDIRECT_HOSTS or [])
    item = "redirect allow-list"
    if not hosts:
        return [Result(FAIL, item, "KLARNA_REDIRECT_HOSTS is empty: no Klarna redirect can pass")]
    bad = [h for h in hosts if not isinstance(h, str) or not h or any(c in h for c in ":/@ ")]
    if bad:
        return [Result(FAIL, item, f"not bare host names (no scheme, port or path): {bad!r}")]
    odd = [h for h in hosts if not (h == "klarna.com" or h.endswith(".klarna.com"))]
    if odd:
        return [Result(WARN, item, f"hosts outside klarna.com: {', '.join(odd)}")]
    return [Result(PASS, item, f"https redirects to {', '.join(hosts)} and their subdomains")]


class Command(BaseCommand):
    help = "Check the Klarna paywall's configuration and its connection to Payway (PASS/WARN/FAIL per item)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--offline", action="store_true", help="Skip the checks that call Payway (token, catalogue, ...)."
        )

    def handle(self, *args, offline=False, **options):

        results = check_environment() + check_settings() + check_allow_list()
        if not offline:
            client = get_client()
            token = check_token(client)
            results += token
            if token[0].status == PASS:
                results += check_catalogue(client) + check_payment_periods(client)
            else:
                results.append(Result(FAIL, "catalogue and payment periods", "skipped: no system token"))
            results += check_clock(client)
        style = {PASS: self.style.SUCCESS, WARN: self.style.WARNING, FAIL: self.style.ERROR}
        for result in results:
            self.stdout.write(style[result.status](f"{result.status}  {result.item}: {result.message}"))
        failed = sum(result.status == FAIL for result in results)
        if failed:
            raise CommandError(f"{failed} check(s) failed")
        self.stdout.write(
            "All checks passed." if not any(r.status == WARN for r in results) else "No failures."
        )
