"""Build the demo newspaper from code: site, home page, a news section with articles behind paywalls,
the purchase and confirmation pages, the paywall settings and an admin user.

Idempotent: run it as often as you like. Pages that already exist are left as they are (editors' changes
survive) unless ``--refresh`` is given, which rewrites their content. Block ids are stable, so offer
references stored on purchase attempts stay valid across runs.

Offers come from the embedded fake Payway's catalogue, or, when ``PAYWAY_CLIENT_ID`` is set, from that
Payway's live catalogue (titles, package and campaign search, payment periods).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone, translation
from wagtail.models import Page, Site

from demo.models import ArticleIndexPage, ArticlePage, HomePage
from wagtail_klarna_paywall.models import KlarnaPurchasePage, PaywallSettings, PurchaseConfirmationPage
from wagtail_klarna_paywall.periods import period_code, period_label

#: The fake Payway's free-trial period (``wagtail_klarna_paywall.fake.catalogue.TRIAL_PERIOD_ID``).
#: Each fake offer's ``included_product_codes`` are the products its package or campaign contains in the
#: fake catalogue (``grants``), as the offer chooser stores them: what opens the demo articles.
FAKE_TRIAL_PERIOD_ID = "5f0d1c2b3a4e5f6a7b8c9d0e"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin"
NAMESPACE = uuid.UUID("6f1c1f0e-3b0a-4f7e-9c47-5a1d2c3b4e5f")

FAKE_OFFERS: dict[str, dict[str, Any]] = {
    "digital": {
        "product_code": "demo_digital",
        "product_kind": "package",
        "product_name": "Digital",
        "included_product_codes": "digital",
        "period_type": "recurring",
        "price": "139",
        "price_period": "month",
        "label": "Digital – 139 kr/mån",
        "selling_points": [
            "Alla artiklar på sajten och i appen",
            "E-tidningen varje morgon",
            "Ingen bindningstid",
        ],
    },
    "weekend": {
        "product_code": "demo_digital_weekend",
        "product_kind": "package",
        "product_name": "Digital + helg",
        "included_product_codes": "digital, paper_weekend",
        "period_type": "recurring",
        "price": "249",
        "price_period": "month",
        "label": "Digital + helg – 249 kr/mån",
        "selling_points": ["Allt digitalt", "Papperstidningen i brevlådan lördag och söndag"],
    },
    "campaign": {
        "product_code": "demo_campaign_3m99",
        "product_kind": "campaign",
        "product_name": "3 månader för 99 kr",
        "included_product_codes": "digital",
        "period_type": "recurring",
        "price": "99",
        "price_period": "month",
        "label": "Kampanj: 99 kr/mån i tre månader",
        "selling_points": ["Allt digitalt i tre månader", "Sedan ordinarie pris, säg upp när du vill"],
    },
    "trial": {
        "product_code": "demo_trial_14d",
        "product_kind": "campaign",
        "product_name": "Prova gratis i 14 dagar",
        "included_product_codes": "digital",
        "period_type": "recurring",
        "is_trial": True,
        "period_id": FAKE_TRIAL_PERIOD_ID,
        "price": "0",
        "price_period": "14 day",
        "label": "Prova gratis i 14 dagar",
        "selling_points": ["Läs allt gratis i två veckor", "Sedan Digital för 139 kr/mån"],
        "payment_method_category": "direct_debit",
    },
}

ARTICLES: list[dict[str, Any]] = [
    {
        "slug": "ny-cykelbana-langs-an",
        "title": "Ny cykelbana längs ån invigs i maj",
        "author": "Karin Lindqvist",
        "days_ago": 0,
        "intro": "Efter tre års bygge får Ekby en sammanhängande cykelbana från centrum till badplatsen.",
        "offers": ["campaign", "digital"],
        "free": [
            (
                "paragraph",
                "<p>Den fyra kilometer långa sträckan följer ån från Stortorget till Norrviken. "
                "Banan är belyst hela vägen och har egna körfält för gående.</p>",
            ),
            (
                "paragraph",
                "<p>– Det här är den största satsningen på cykel som kommunen har gjort, säger "
                "kommunalrådet Anders Holm.</p>",
            ),
        ],
        "paid": [
            ("heading", "Kostade mer än beräknat"),
            (
                "paragraph",
                "<p>Bygget blev nära 20 miljoner kronor dyrare än budgeten. Förklaringen är "
                "framför allt att marken vid gamla bruket visade sig vara förorenad.</p>",
            ),
            (
                "quote",
                "Vi hade kunnat välja en billigare sträckning, men då hade barnen fått cykla längs "
                "landsvägen.",
            ),
            (
                "paragraph",
                "<p>Invigningen sker den 12 maj med cykelkortege och korvgrillning vid badplatsen.</p>",
            ),
        ],
    },
    {
        "slug": "ekby-if-till-allsvenskan",
        "title": "Ekby IF klart för allsvenskan efter dramatisk kvalfinal",
        "author": "Johan Berg",
        "days_ago": 1,
        "intro": "Ett mål i den sista minuten tog Ekby IF till allsvenskan för första gången sedan 1987.",
        "offers": ["trial", "digital"],
        "free": [
            (
                "paragraph",
                "<p>Läktarna på Åvallen var fullsatta när Sara Nilsson nickade in 2–1 på övertid.</p>",
            ),
        ],
        "paid": [
            ("heading", "Tränaren: Vi trodde aldrig att vi skulle förlora"),
            (
                "paragraph",
                "<p>Huvudtränaren Peter Ek var rörd efter matchen. Han berättar om säsongen, "
                "om skadorna i våras och om vad som krävs för att klubben ska stanna i högsta serien.</p>",
            ),
            (
                "paragraph",
                "<p>Klubben räknar med att publiksnittet fördubblas nästa år och planerar att "
                "bygga ut den norra läktaren.</p>",
            ),
        ],
    },
    {
        "slug": "400-nya-bostader-vid-hamnen",
        "title": "Kommunen vill bygga 400 nya bostäder vid hamnen",
        "author": "Lina Sjöberg",
        "days_ago": 2,
        "intro": "Den gamla industrihamnen ska bli bostadsområde. Men grannarna oroar sig för trafiken.",
        "offers": ["weekend", "digital"],
        "free": [
            (
                "paragraph",
                "<p>Planen omfattar både hyresrätter och bostadsrätter, en förskola och en ny "
                "park vid vattnet. Samrådet börjar i nästa vecka.</p>",
            ),
        ],
        "paid": [
            ("heading", "Så påverkas trafiken"),
            (
                "paragraph",
                "<p>Enligt kommunens egen utredning ökar trafiken på Hamngatan med nästan 3 000 "
                "fordon per dygn. Ekby Tidning har gått igenom underlaget.</p>",
            ),
            ("paragraph", "<p>Byggstart är planerad till hösten 2028 om detaljplanen vinner laga kraft.</p>"),
        ],
    },
    {
        "slug": "helgens-vader",
        "title": "Sol och svag vind – så blir vädret i helgen",
        "author": "Nyhetsdesken",
        "days_ago": 3,
        "intro": "Högtrycket ligger kvar över Ekby. Fri läsning för alla.",
        "offers": [],
        "free": [
            (
                "paragraph",
                "<p>Lördagen blir solig med upp till 18 grader. På söndagen drar lite moln in "
                "från väster, men regnet dröjer till måndag.</p>",
            ),
        ],
        "paid": [],
    },
]


#: Every OfferBlock field, so stored values are complete whatever Wagtail fills in for missing ones.
OFFER_DEFAULTS: dict[str, Any] = {
    "product_name": "",
    "period_type": "recurring",
    "is_trial": False,
    "period_id": "",
    "price": None,
    "price_period": "",
    "included_product_codes": "",
    "selling_points": [],
    "payment_method_category": "",
}


def _complete(offer: dict[str, Any]) -> dict[str, Any]:
    return {**OFFER_DEFAULTS, **offer}


def _id(*parts: object) -> str:
    """A stable block id, so re-running the command keeps offer references valid."""
    return str(uuid.uuid5(NAMESPACE, "/".join(str(p) for p in parts)))


class Command(BaseCommand):
    help = "Build (or complete) the sandbox's demo site: pages, paywalls, offers, settings and an admin user."

    def add_arguments(self, parser):
        parser.add_argument(
            "--refresh", action="store_true", help="Rewrite the content of demo pages that already exist."
        )

    @transaction.atomic
    def handle(self, *args, refresh: bool = False, **options):
        self.refresh = refresh
        self.title_code = settings.PAYWAY_TITLE_CODE
        real = getattr(settings, "USE_REAL_PAYWAY", False)
        offers = self._live_offers() if real else FAKE_OFFERS
        # An override only: left unset, the products the offers contain open the articles.
        access_codes = [
            code.strip()
            for code in os.environ.get("PAYWAY_ACCESS_PRODUCT_CODES", "").split(",")
            if code.strip()
        ]

        home = self._home()
        site = self._site(home)
        section = self._page(
            home, ArticleIndexPage, "nyheter", title="Nyheter", intro="Senaste nytt från Ekby."
        )
        confirmation = self._page(
            home,
            PurchaseConfirmationPage,
            "tack",
            title="Tack för ditt köp",
            # Shown only to the browser that made the purchase (never on the neutral page).
            body="<p>Tack! Din prenumeration är klar och du kan läsa vidare direkt. På dina andra enheter "
            "loggar du in med e-postadressen du angav. Ett kvitto kommer med e-post från Klarna.</p>",
        )
        purchase = self._page(
            home,
            KlarnaPurchasePage,
            "kop",
            title="Köp prenumeration",
            intro="<p>Välj hur du vill läsa Ekby Tidning. Du betalar tryggt med Klarna och kan säga upp när "
            "du vill.</p>",
            checkout_text="<p>Prenumerationen förnyas automatiskt varje period tills du säger upp den.</p>",
            customer_form_intro="<p>Vi skapar ett konto åt dig med din e-postadress.</p>",
            offers=[
                {"type": "offer", "value": _complete(offers[key]), "id": _id("kop", key)}
                for key in ("digital", "campaign", "trial", "weekend")
                if key in offers
            ],
            confirmation_page=confirmation,
        )
        for number, article in enumerate(ARTICLES):
            self._article(section, article, offers, purchase, confirmation, access_codes, number)

        paywall_settings = PaywallSettings.for_site(site)
        paywall_settings.title_code = self.title_code or paywall_settings.title_code or "demo"
        paywall_settings.default_confirmation_page = (
            paywall_settings.default_confirmation_page or confirmation
        )
        paywall_settings.test_mode = True if not real else paywall_settings.test_mode
        # The demo shows its GA4 events: open the browser console and look at window.dataLayer. Without a
        # tag manager on the page they go nowhere.
        paywall_settings.analytics_events = True
        # Readers see this line on every purchase error page; the demo's newspaper is Swedish.
        paywall_settings.customer_service = (
            paywall_settings.customer_service or "Kundservice: kundservice@ekbytidning.se, 010-123 45 67"
        )
        paywall_settings.save()

        self._admin()
        source = f"Payway at {settings.WAGTAIL_KLARNA_PAYWALL['API_URL']}" if real else "the fake Payway"
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo content ready at {site.root_url}/ ({ArticlePage.objects.count()} articles, "
                f"offers from {source}). "
                f"Admin: {site.root_url}/admin/ as {ADMIN_USERNAME} / {ADMIN_PASSWORD}."
            )
        )

    # -- pages ---------------------------------------------------------------------------------------------

    def _home(self) -> HomePage:
        home = HomePage.objects.first()
        if home:
            return home
        root = Page.get_first_root_node()
        # Wagtail's own placeholder ("Welcome to your new Wagtail site!") is in the way of our home page.
        for child in root.get_children():
            if child.specific_class is Page and child.slug == "home" and not child.get_children().exists():
                child.delete()
        home = root.add_child(
            instance=HomePage(
                title="Ekby Tidning",
                slug="home",
                intro="Lokala nyheter från Ekby med omnejd. (En demosajt: inget här är på riktigt.)",
            )
        )
        home.save_revision().publish()
        return home

    def _site(self, home: HomePage) -> Site:
        site = Site.objects.filter(is_default_site=True).first() or Site(is_default_site=True)
        site.root_page = home
        site.hostname = "localhost"
        site.port = settings.PORT
        site.site_name = settings.WAGTAIL_SITE_NAME
        site.save()
        return site

    def _page(self, parent: Page, model: type[Page], slug: str, **fields: Any) -> Page:
        page = model.objects.child_of(parent).filter(slug=slug).first()
        if page and not self.refresh:
            return page
        stream_fields = {name for name in ("body", "offers") if isinstance(fields.get(name), list)}
        created = page is None
        if created:
            page = model(slug=slug)
        for name, value in fields.items():
            if name in stream_fields:
                value = model._meta.get_field(name).stream_block.to_python(value)
            setattr(page, name, value)
        if created:
            parent.add_child(instance=page)
        page.save_revision().publish()
        return page

    def _article(self, section, article, offers, purchase, confirmation, access_codes, number) -> None:
        slug = article["slug"]
        body: list[dict[str, Any]] = [
            {"type": kind, "value": value, "id": _id(slug, "free", i)}
            for i, (kind, value) in enumerate(article["free"])
        ]
        chosen = [key for key in article["offers"] if key in offers]
        if chosen:
            body.append(
                {
                    "type": "paywall",
                    "id": _id(slug, "paywall"),
                    "value": {
                        "heading": "Fortsätt läsa – bli prenumerant",
                        "teaser": "<p>Resten av artikeln är för prenumeranter. Välj ett erbjudande "
                        "och betala med Klarna: det tar under en minut.</p>",
                        "offers": [
                            {"type": "item", "value": _complete(offers[key]), "id": _id(slug, "offer", key)}
                            for key in chosen
                        ],
                        "purchase_page": purchase.pk,
                        "confirmation_page": confirmation.pk,
                        "login_text": "",
                        "access_product_codes": [
                            {"type": "item", "value": code, "id": _id(slug, "access", code)}
                            for code in access_codes
                        ],
                    },
                }
            )
            body += [
                {"type": kind, "value": value, "id": _id(slug, "paid", i)}
                for i, (kind, value) in enumerate(article["paid"])
            ]
        self._page(
            section,
            ArticlePage,
            slug,
            title=article["title"],
            author=article["author"],
            intro=article["intro"],
            date=timezone.localdate() - dt.timedelta(days=article["days_ago"]),
            body=body,
        )

    def _admin(self) -> None:
        user_model = get_user_model()
        admin = user_model.objects.filter(username=ADMIN_USERNAME).first()
        if admin is None:
            admin = user_model.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)
        if not (admin.first_name and admin.last_name):
            # Wagtail's account settings require both names: without them the editor's first save fails.
            admin.first_name, admin.last_name = admin.first_name or "Anna", admin.last_name or "Redaktör"
            admin.save(update_fields=["first_name", "last_name"])

    # -- offers from a real Payway -------------------------------------------------------------------------

    def _live_offers(self) -> dict[str, dict[str, Any]]:
        """Offers from the live catalogue: two packages, a campaign and a free trial where they exist."""
        from wagtail_klarna_paywall.exceptions import PaywallError
        from wagtail_klarna_paywall.payway import get_client

        client = get_client()
        try:
            title_code = settings.PAYWAY_TITLE_CODE
            if not title_code:
                titles = client.titles()
                if not titles:
                    raise CommandError("Payway lists no titles; set PAYWAY_TITLE_CODE.")
                title_code = titles[0].code
                self.stdout.write(
                    f"Using Payway title {title_code!r} (set PAYWAY_TITLE_CODE to choose another)."
                )
            self.title_code = title_code
            packages = [p for p in client.search_packages(title_code).items if not p.expired]
            campaigns = [c for c in client.search_campaigns(title_code).items if not c.expired]
            offers: dict[str, dict[str, Any]] = {}
            package_keys = iter(("digital", "weekend"))
            for product in packages:
                periods = [p for p in client.payment_periods(product.product_code) if p.enabled]
                if not periods:
                    continue
                key = next(package_keys, None)
                if key is None:
                    break
                period = next((p for p in periods if p.type == "recurring"), periods[0])
                offers[key] = _offer(product, period)
            for product in campaigns:
                if {"campaign", "trial"} <= offers.keys():
                    break
                periods = [p for p in client.payment_periods(product.product_code) if p.enabled]
                if not periods:
                    continue
                trial = next((p for p in periods if p.price is not None and p.price == 0), None)
                if trial and "trial" not in offers:
                    offers["trial"] = _offer(product, trial, is_trial=True)
                elif not trial and "campaign" not in offers:
                    offers["campaign"] = _offer(product, periods[0])
        except PaywallError as err:
            raise CommandError(f"Could not read Payway's catalogue: {err.__class__.__name__}: {err}") from err
        if not offers:
            raise CommandError(f"Payway title {title_code!r} has no package or campaign payable with Klarna.")
        # Articles name the demo's keys; stand in the first offer found for any that Payway lacks.
        fallback = next(iter(offers.values()))
        for key in FAKE_OFFERS:
            offers.setdefault(key, fallback)
        return offers


def _period_text(iteration_type: str, length: int) -> str:
    """The period in Swedish, for the demo's own offer labels (editor's text on a Swedish site)."""
    with translation.override("sv"):
        return period_label(period_code(iteration_type, length))


def _offer(product, period, *, is_trial: bool = False) -> dict[str, Any]:
    price = period.price if period.price is not None else Decimal(0)
    per = _period_text(period.iteration_type, period.iteration_length)
    offer = {
        "product_code": product.product_code,
        "product_kind": product.kind,
        "product_name": product.name,
        "period_type": "recurring" if product.kind == "campaign" else period.type,
        "price": str(price),
        # Stored as data; each reader reads it in their language.
        "price_period": period_code(period.iteration_type, period.iteration_length),
        "label": product.name if is_trial else f"{product.name} – {price:g} kr/{per}",
        "selling_points": [product.description] if product.description else [],
        # What the catalogue says the package or campaign contains (empty: its own code stands in).
        "included_product_codes": ", ".join(product.included_product_codes),
    }
    if is_trial:
        offer.update(is_trial=True, period_id=period.id, payment_method_category="direct_debit")
    return offer
