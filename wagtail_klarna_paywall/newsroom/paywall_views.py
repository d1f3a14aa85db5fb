"""Paywall views: counted from the browser into the shared cache, folded into :class:`PaywallViewDay`.

Rendering a paywall writes nothing and calls nothing (its HTML is even cached, see ``render_cache``), so
a view cannot be counted there. Instead the paywall's static script (``paywall.js``) sends one
``navigator.sendBeacon`` per page load to :func:`record_view` (``<prefix>/paywall-view/``). That counts
CDN-cached pages too, and crawlers that run no JavaScript are never counted. The beacon:

- carries the page id, the paywall block's id, the product codes shown and the reader state
  (``anonymous`` or ``reader``); the endpoint accepts them only for a live page whose stored stream holds
  that paywall with those offers (looked up once per page and cached, not per beacon);
- needs no cookie and touches no session: the endpoint is ``csrf_exempt`` (a forged beacon can only add
  a view, which the per-reader dedupe and the rate limit already bound) and answers ``no-store``;
- is ignored for known bots (:data:`BOT_PATTERN`) and rate-limited per IP (``RATE_LIMITS``
  ``paywall_view_ip``).

**Once per reader, page and day, with nothing personal stored.** The reader is recognised by a keyed hash
of (IP, User-Agent, page) under a random salt made once per day (:func:`_epoch`), held only in the cache
until the day ends. Nothing is stored in the reader's browser (no cookie, no localStorage: that would need
the reader's consent, and the page would stop being cacheable), the raw IP is never a cache key or a
value, and once the day's salt expires the hashes cannot be tied to anyone, not even with ``SECRET_KEY``
(the approach of cookieless analytics such as Plausible). The cost: readers behind one address with the
same browser count once.

**Counters.** One cache counter per (day, page, paywall, offer set, reader state), under the day's salt
(the *epoch*). Caches cannot list their keys, so each new counter takes a numbered slot
(``cache.incr`` hands out the numbers atomically) that names it. :func:`fold` (the
``klarna_paywall_fold_views`` command, and the funnel report lazily) reads the slots and counters and
writes **absolute** values with one row per counter, so running it twice never double counts. A lost
cache (or a single evicted counter) starts a new epoch or a lower count; the fold keeps what it had
already folded (``base_views``), so at most the unfolded views are lost.

With Django's local-memory cache each process counts on its own and a fold only sees its own process:
use a shared cache (Redis, memcached) as ``CACHE`` in production.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django.db import IntegrityError, transaction
from django.db.models.signals import post_delete, post_save
from django.http import HttpResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.crypto import salted_hmac
from django.views.decorators.csrf import csrf_exempt

from ..conf import paywall_settings

if TYPE_CHECKING:
    from django.http import HttpRequest

logger = logging.getLogger(__name__)

#: Reader states a paywall is shown in (subscribers see no paywall).
STATES = ("anonymous", "reader")
#: Days a day's counters stay in the cache after it ends: the nightly fold has this long to run.
RETENTION_DAYS = 2
#: Seconds a page's paywalls (what the endpoint accepts) are cached; saves and deletes drop it at once.
PAGE_TTL = 300
MAX_OFFERS = 20
_PREFIX = "wkp:pv"
_HMAC_SALT = "wagtail_klarna_paywall.newsroom.paywall_views"
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: User agents that are not readers: crawlers, link previews, monitors, HTTP libraries, headless browsers.
BOT_PATTERN = re.compile(
    r"bot|crawl|spider|slurp|archiver|facebookexternalhit|embedly|preview|monitor|pingdom|lighthouse|"
    r"headless|phantomjs|python-|curl/|wget|httpclient|okhttp|java/|go-http|axios|node-fetch|scrapy",
    re.IGNORECASE,
)


def _cache() -> Any:
    return caches[paywall_settings.CACHE]


def is_bot(user_agent: str) -> bool:
    """True for an empty User-Agent or one of the known automated clients."""
    return not user_agent.strip() or bool(BOT_PATTERN.search(user_agent))


def offer_set_digest(codes: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(codes).encode()).hexdigest()


def _day_ttl(day: dt.date, extra_days: int = RETENTION_DAYS) -> int:
    """Seconds from now to the end of ``day`` (local time) plus ``extra_days``."""
    tz = timezone.get_current_timezone()
    end = dt.datetime.combine(day + dt.timedelta(days=1 + extra_days), dt.time.min, tzinfo=tz)
    return max(60, int((end - timezone.now()).total_seconds()))


def _epoch(cache: Any, day: dt.date, *, create: bool) -> str | None:
    """The day's random salt, which also names its counters (a lost salt starts a new epoch)."""
    key = f"{_PREFIX}:{day.isoformat()}:epoch"
    epoch = cache.get(key)
    if epoch is None and create:
        cache.add(key, secrets.token_hex(16), _day_ttl(day))
        epoch = cache.get(key)
    return epoch


# -- what the endpoint accepts -------------------------------------------------------------------------


def _page_key(page_id: int) -> str:
    return f"{_PREFIX}:page:{page_id}"


def _raw_items(raw_value: dict[str, Any], name: str) -> list[Any]:
    items = raw_value.get(name) or []
    return [
        item["value"] if isinstance(item, dict) and item.get("type") == "item" and "value" in item else item
        for item in items
    ]


def _read_paywalls(page_id: int) -> dict[str, list[str]]:
    """``{paywall block id: [product codes]}`` of a live page's top-level paywalls, from stored data."""
    from wagtail.fields import StreamField
    from wagtail.models import Page

    from ..blocks import PaywallBlock

    page = Page.objects.live().filter(pk=page_id).specific().first()
    if page is None:
        return {}
    paywalls: dict[str, list[str]] = {}
    for model_field in page._meta.get_fields():
        if not isinstance(model_field, StreamField):
            continue
        stream = getattr(page, model_field.name)
        child_blocks = stream.stream_block.child_blocks
        for raw in stream.raw_data:
            if raw.get("id") and isinstance(child_blocks.get(raw.get("type")), PaywallBlock):
                offers = _raw_items(raw.get("value") or {}, "offers")
                paywalls[raw["id"]] = [
                    offer["product_code"]
                    for offer in offers
                    if isinstance(offer, dict) and isinstance(offer.get("product_code"), str)
                ]
    return paywalls


def page_paywalls(page_id: int) -> dict[str, list[str]]:
    """The page's paywalls as :func:`_read_paywalls` finds them, cached (unknown pages too, as ``{}``)."""
    cache = _cache()
    key = _page_key(page_id)
    paywalls = cache.get(key)
    if paywalls is None:
        paywalls = _read_paywalls(page_id)
        cache.set(key, paywalls, PAGE_TTL)
    return paywalls


def _forget_page(sender: Any, instance: Any = None, **kwargs: Any) -> None:
    from wagtail.models import Page

    if isinstance(instance, Page) and instance.pk:
        _cache().delete(_page_key(instance.pk))


def _forget_paywall_html(sender: Any, instance: Any = None, **kwargs: Any) -> None:
    # The analytics switch is part of the cached paywall markup (data-wkp-analytics).
    from ..reading import render_cache

    render_cache.invalidate()


def connect() -> None:
    """Keep the accepted pages fresh, and the cached paywalls in step with the analytics setting."""
    from ..models import PaywallSettings

    post_save.connect(_forget_page, dispatch_uid="wagtail_klarna_paywall.newsroom.paywall_views.save")
    post_delete.connect(_forget_page, dispatch_uid="wagtail_klarna_paywall.newsroom.paywall_views.delete")
    post_save.connect(
        _forget_paywall_html,
        sender=PaywallSettings,
        dispatch_uid="wagtail_klarna_paywall.newsroom.paywall_views.settings",
    )


# -- counting ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """One paywall shown: what a counter is keyed on (besides the day)."""

    page_id: int
    paywall_id: str
    offer_codes: tuple[str, ...]
    state: str

    def descriptor(self) -> str:
        return json.dumps([self.page_id, self.paywall_id, list(self.offer_codes), self.state])

    @classmethod
    def from_descriptor(cls, text: str) -> View:
        page_id, paywall_id, codes, state = json.loads(text)
        return cls(int(page_id), str(paywall_id), tuple(codes), str(state))


def _counter_key(day: dt.date, epoch: str, view: View) -> str:
    digest = hashlib.sha256(view.descriptor().encode()).hexdigest()[:32]
    return f"{_PREFIX}:{day.isoformat()}:{epoch}:c:{digest}"


def _slots_key(day: dt.date, epoch: str) -> str:
    return f"{_PREFIX}:{day.isoformat()}:{epoch}:n"


def _slot_key(day: dt.date, epoch: str, number: int) -> str:
    return f"{_PREFIX}:{day.isoformat()}:{epoch}:s:{number}"


def _incr(cache: Any, key: str, ttl: int) -> int:
    cache.add(key, 0, ttl)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, ttl)
        return 1


def count_view(view: View, *, ip: str, user_agent: str, day: dt.date | None = None) -> bool:
    """Count ``view`` unless this reader was already counted on this page today. True when counted.

    Cache operations only: no database query.
    """
    cache = _cache()
    day = day or timezone.localdate()
    epoch = _epoch(cache, day, create=True)
    if epoch is None:  # a cache that keeps nothing (DummyCache): nothing can be counted
        return False
    reader = salted_hmac(_HMAC_SALT, f"{epoch}\n{ip}\n{user_agent}\n{view.page_id}", algorithm="sha256")
    reader_key = f"{_PREFIX}:{day.isoformat()}:{epoch}:r:{reader.hexdigest()[:32]}"
    # Only needed until the day ends: after that the reader's hash is gone from the cache too.
    if not cache.add(reader_key, 1, _day_ttl(day, extra_days=0)):
        return False
    ttl = _day_ttl(day)
    key = _counter_key(day, epoch, view)
    if cache.add(key, 0, ttl):
        number = _incr(cache, _slots_key(day, epoch), ttl)
        cache.set(_slot_key(day, epoch, number), view.descriptor(), ttl)
    _incr(cache, key, ttl)
    return True


# -- the endpoint ---------------------------------------------------------------------------------------


def _parse(data: Any) -> View | None:
    page, paywall = data.get("page", ""), data.get("paywall", "")
    state = data.get("state", "")
    offers_text = data.get("offers", "")
    # ASCII digits only: str.isdigit() also accepts "²" and "٣", which int() refuses or misreads.
    if not (isinstance(page, str) and page.isascii() and page.isdigit() and len(page) <= 12):
        return None
    if not _ID_PATTERN.match(paywall or "") or state not in STATES or len(offers_text) > 4000:
        return None
    codes = tuple(sorted({code.strip() for code in offers_text.split(",") if code.strip()}))
    if len(codes) > MAX_OFFERS:
        return None
    return View(int(page), paywall, codes, state)


def _accepted(view: View) -> bool:
    """The page is live and holds this paywall, and every offer named is one of the paywall's."""
    if view.page_id <= 0:
        return False
    configured = page_paywalls(view.page_id).get(view.paywall_id)
    if configured is None:
        return False
    return set(view.offer_codes) <= set(configured)


@csrf_exempt
def record_view(request: HttpRequest) -> HttpResponse:
    """``POST`` page, paywall, offers, state (form-encoded, as ``sendBeacon`` sends it): count one view.

    204 when counted or already counted today, 202 when ignored (a bot), 400 for a malformed beacon,
    404 for a page or paywall that does not exist, 405 for another method, 429 when rate-limited.
    Never reads or creates a session, never sets a cookie.
    """
    from ..purchase import ratelimit
    from ..purchase.readers import browser_ip

    status = 204
    if request.method != "POST":
        status = 405
    else:
        user_agent = request.META.get("HTTP_USER_AGENT", "")[:512]
        view = _parse(request.POST)
        ip = browser_ip(request)
        if is_bot(user_agent):
            status = 202
        elif view is None:
            status = 400
        elif not ratelimit.hit(ratelimit.PAYWALL_VIEW_IP, ip).allowed:
            status = 429
        elif not _accepted(view):
            status = 404
        else:
            count_view(view, ip=ip, user_agent=user_agent)
    response = HttpResponse(status=status)
    if status == 405:
        response["Allow"] = "POST"
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store"
    return response


# -- folding into the aggregate table -------------------------------------------------------------------


@dataclass(frozen=True)
class FoldResult:
    day: dt.date
    counters: int
    written: int


def cached_days(today: dt.date | None = None) -> list[dt.date]:
    """The days whose counters may still be in the cache, oldest first."""
    today = today or timezone.localdate()
    return [today - dt.timedelta(days=n) for n in range(RETENTION_DAYS, -1, -1)]


def _counters(cache: Any, day: dt.date, epoch: str) -> dict[View, int]:
    slots = int(cache.get(_slots_key(day, epoch)) or 0)
    if not slots:
        return {}
    descriptors = cache.get_many([_slot_key(day, epoch, n) for n in range(1, slots + 1)])
    views = {View.from_descriptor(text) for text in descriptors.values()}
    keys = {view: _counter_key(day, epoch, view) for view in views}
    values = cache.get_many(list(keys.values()))
    return {view: int(values[key]) for view, key in keys.items() if values.get(key) is not None}


def fold(day: dt.date | None = None) -> FoldResult:
    """Write the day's cached counters into :class:`PaywallViewDay` as absolute values. Idempotent."""
    from wagtail.models import Page

    from ..models import PaywallViewDay

    day = day or timezone.localdate()
    cache = _cache()
    epoch = _epoch(cache, day, create=False)
    if epoch is None:
        return FoldResult(day, 0, 0)
    counters = _counters(cache, day, epoch)
    if not counters:
        return FoldResult(day, 0, 0)
    existing = set(Page.objects.filter(pk__in={v.page_id for v in counters}).values_list("pk", flat=True))
    rows = {
        (row.page_id, row.paywall_id, row.offer_set, row.reader_state): row
        for row in PaywallViewDay.objects.filter(day=day, page_id__in=existing)
    }
    written = 0
    for view, count in sorted(counters.items(), key=lambda item: item[0].descriptor()):
        if view.page_id not in existing:
            continue  # a page deleted since: its views go with it
        digest = offer_set_digest(view.offer_codes)
        row = rows.get((view.page_id, view.paywall_id, digest, view.state))
        if row is not None and row.cache_epoch == epoch and row.cache_count == count:
            continue  # unchanged since the last fold
        written += _write(day, view, digest, epoch, count)
    return FoldResult(day, len(counters), written)


def _write(day: dt.date, view: View, digest: str, epoch: str, count: int) -> int:
    """Set one row from its counter, under a row lock; a concurrent fold computes the same values."""
    from ..models import PaywallViewDay

    lookup = {
        "day": day,
        "page_id": view.page_id,
        "paywall_id": view.paywall_id,
        "offer_set": digest,
        "reader_state": view.state,
    }
    for _attempt in range(2):
        try:
            with transaction.atomic():
                row = PaywallViewDay.objects.select_for_update().filter(**lookup).first()
                if row is None:
                    PaywallViewDay.objects.create(
                        **lookup,
                        offer_codes=list(view.offer_codes),
                        views=count,
                        base_views=0,
                        cache_epoch=epoch,
                        cache_count=count,
                    )
                    return 1
                if row.cache_epoch == epoch and row.cache_count == count:
                    return 0
                if row.cache_epoch != epoch or count < row.cache_count:
                    # The cache lost this counter since the last fold: keep what was folded, count anew.
                    row.base_views = row.views
                row.views = row.base_views + count
                row.cache_epoch, row.cache_count = epoch, count
                row.save(update_fields=["views", "base_views", "cache_epoch", "cache_count", "updated_at"])
                return 1
        except IntegrityError:
            continue  # another fold created the row first: update it
    return 0


def fold_recent(today: dt.date | None = None) -> list[FoldResult]:
    """Fold every day whose counters may still be cached (the funnel report calls this)."""
    return [fold(day) for day in cached_days(today)]


# -- what the paywall's markup carries for its script ---------------------------------------------------


def tracking(request: HttpRequest | None) -> dict[str, Any]:
    """The beacon URL ("" when the site has not included the plugin's URLs) and the analytics switch.

    Used while the paywall is rendered, which only happens when its cached HTML is missing: the settings
    read here costs nothing on a warm page. Previews are never counted nor reported.
    """
    from django.urls import NoReverseMatch, reverse

    from . import analytics

    if request is None or getattr(request, "is_preview", False):
        return {}
    try:
        view_url = reverse("wagtail_klarna_paywall:paywall_view")
    except NoReverseMatch:
        view_url = ""
    return {
        "view_url": view_url,
        "analytics": analytics.enabled(request),
        "currency": analytics.CURRENCY,
    }
