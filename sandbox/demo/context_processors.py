"""Template context for the demo site's layout."""

from django.conf import settings


def sandbox(request):
    # A link to the fake Payway's control page, where a visitor arms failures (500, 403, slow replies...).
    return {"fake_payway": not settings.USE_REAL_PAYWAY}
