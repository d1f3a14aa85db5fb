"""The plugin's models: per-site settings, purchase attempts and their timeline, login records, the
page types, and daily paywall-view counts. One module per concern; Django finds them all here.
"""

from .attempts import (
    ALLOWED_TRANSITIONS,
    MILESTONES,
    OPEN_STATES,
    AttemptState,
    EventKind,
    ProductClaim,
    PurchaseAttempt,
    PurchaseEvent,
    record_event,
)
from .logins import (
    LOGIN_FAILURE_MAX_ROWS,
    LOGIN_FAILURE_RETENTION,
    LoginFailure,
    SSOLandingClaim,
    record_login_failure,
)
from .pages import (
    KlarnaPurchasePage,
    PurchaseConfirmationPage,
)
from .paywall_views import (
    PaywallViewDay,
)
from .site_settings import (
    PaywallSettings,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "LOGIN_FAILURE_MAX_ROWS",
    "LOGIN_FAILURE_RETENTION",
    "MILESTONES",
    "OPEN_STATES",
    "AttemptState",
    "EventKind",
    "KlarnaPurchasePage",
    "LoginFailure",
    "PaywallSettings",
    "PaywallViewDay",
    "ProductClaim",
    "PurchaseAttempt",
    "PurchaseConfirmationPage",
    "PurchaseEvent",
    "SSOLandingClaim",
    "record_event",
    "record_login_failure",
]
