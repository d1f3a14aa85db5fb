from django.apps import AppConfig


class FakePaywayConfig(AppConfig):
    """The embedded fake Payway API and fake Klarna hop, for the sandbox and tests only."""

    name = "wagtail_klarna_paywall.fake"
    label = "wagtail_klarna_paywall_fake"
    verbose_name = "Fake Payway (sandbox and tests)"
