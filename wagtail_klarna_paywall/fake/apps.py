from django.apps import AppConfig
from django.core import checks


class FakePaywayConfig(AppConfig):
    """The embedded fake Payway API and fake Klarna hop, for the sandbox and tests only."""

    name = "wagtail_klarna_paywall.fake"
    label = "wagtail_klarna_paywall_fake"
    verbose_name = "Fake Payway (sandbox and tests)"

    def ready(self) -> None:
        checks.register(check_not_deployed, checks.Tags.security, deploy=True)


def check_not_deployed(app_configs=None, **kwargs):
    """``check --deploy``: the fake takes any purchase and has an unauthenticated control API."""
    return [
        checks.Warning(
            "The fake Payway (wagtail_klarna_paywall.fake) is installed.",
            hint="It is for the sandbox and tests only: remove it and its URLs from a production site.",
            id="wagtail_klarna_paywall_fake.W001",
        )
    ]
