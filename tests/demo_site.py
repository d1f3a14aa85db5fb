"""The sandbox's demo site seen from outside, and the fake Payway's control API as a client calls it.

Shared by the browser flows (``tests/browser``, the sandbox under runserver) and the production profile
(``tests/multiprocess``, gunicorn workers with the fake Payway in its own process). Nothing here imports
Django or its settings: both run the site in other processes and observe it over HTTP.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any, ClassVar

#: The demo articles (sandbox/demo/management/commands/build_demo_content.py) and their paywall offers.
ARTICLE_CAMPAIGN_DIGITAL = "/nyheter/ny-cykelbana-langs-an/"  # offers: campaign, digital
ARTICLE_TRIAL_DIGITAL = "/nyheter/ekby-if-till-allsvenskan/"  # offers: trial, digital
PAID_TEXT = {
    ARTICLE_CAMPAIGN_DIGITAL: "Bygget blev nära 20 miljoner kronor dyrare",
    ARTICLE_TRIAL_DIGITAL: "Huvudtränaren Peter Ek var rörd",
}
FREE_TEXT = {
    ARTICLE_CAMPAIGN_DIGITAL: "Den fyra kilometer långa sträckan",
    ARTICLE_TRIAL_DIGITAL: "Läktarna på Åvallen var fullsatta",
}
PURCHASE_PAGE = "/kop/"
#: What the reader sees of each demo offer (its label), by Payway product code.
OFFER_LABELS = {
    "demo_digital": "Digital – 139 kr/mån",
    "demo_campaign_3m99": "Kampanj: 99 kr/mån i tre månader",
    "demo_trial_14d": "Prova gratis i 14 dagar",
}
#: Payway's product name, which the checkout and confirmation summaries show under the offer's label (the
#: product from the attempt, the label and selling points from the offer).
PRODUCT_NAMES = {
    "demo_digital": "Digital",
    "demo_campaign_3m99": "3 månader för 99 kr",
    "demo_trial_14d": "Prova gratis i 14 dagar",
}
CHECKOUT_PATH = re.compile(r"/kop/checkout/(?P<ref>[0-9a-f-]{36})/")


class FakeControls:
    """The fake Payway's JSON control API at ``self.fake_url``: its snapshot, resets, slow or failing
    answers and the SSO2 claim shape. Mixed into the handles of the running sandbox and profile."""

    fake_url: str
    #: Seconds to wait for the control API (the profile's fake shares two cores with gunicorn workers).
    control_timeout: ClassVar[float] = 10

    def control(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET (or POST ``body`` to) the fake Payway's JSON control API; its snapshot."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.fake_url}/_control/",
            data=data,
            method="POST" if body is not None else "GET",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.control_timeout) as response:
            return json.loads(response.read())

    def reset_fake(self) -> None:
        self.control({"reset": True})

    def slow(self, endpoint: str, count: int, delay: float) -> None:
        """The fake's next ``count`` calls of ``endpoint`` answer normally after ``delay`` seconds."""
        self.control({"fail_next": [{"endpoint": endpoint, "status": None, "delay": delay}] * count})

    def sso_claims(self, variant: str | None) -> str:
        """Make the fake SSO2 sign its answers with the ``variant`` aud/iss shape (None: the configured
        one), in the running server; the variant now in force."""
        request = urllib.request.Request(
            f"{self.fake_url}/sso/_control",
            data=json.dumps({"claims": variant}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.control_timeout) as response:
            return json.loads(response.read())["claims"]

    def calls(self) -> dict[str, int]:
        """Requests per Payway endpoint, whatever their answer."""
        return self.control()["calls"]

    def payway(self) -> dict[str, int]:
        """What reached Payway: sessions it created, place_order / place_trial_order requests, orders.

        Sessions are counted, not create_session requests: a reset makes the fake forget the site's cached
        system token, so the first create_session after it is refused (401, nothing created) and retried
        once with a new token, as the client must. That retry is the client's business, not the flow's.
        """
        snapshot = self.control()
        return {
            "sessions": len(snapshot["sessions"]),
            "place_order": snapshot["calls"]["place_order"],
            "place_trial_order": snapshot["calls"]["place_trial_order"],
            "orders": len(snapshot["orders"]),
        }
