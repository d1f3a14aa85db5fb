"""What the SSO2 login leaves behind: each landing's single use, and refused logins for the editors'
error panel."""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class SSOLandingClaim(models.Model):
    """An SSO2 landing token already used: one row per token, shared by every worker process.

    The key is a SHA-256 of the token's signed part (never the token, which may carry a ticket); the
    primary key makes a second insert fail, which is how a replay is recognised. Rows are pruned once
    ``expires_at`` has passed, when the token itself is refused anyway.
    """

    digest = models.CharField(max_length=64, primary_key=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("used SSO2 landing token")

    def __str__(self) -> str:
        return f"{self.digest[:12]}… until {self.expires_at:%Y-%m-%d %H:%M:%S}"


class LoginFailure(models.Model):
    """A refused SSO2 login, for the editors' error panel (logins have no purchase attempt).

    Holds when, where and why only: no token, session id, account or IP. Recorded only for logins this
    browser really started, so a stream of forged landing URLs writes nothing; pruned after
    :data:`LOGIN_FAILURE_RETENTION`.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    endpoint = models.CharField(max_length=50)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=50)
    detail = models.CharField(max_length=100, blank=True)

    #: Lets the error panel list these beside purchase events (which link to their attempt).
    kind = "login_failed"
    attempt_id = None
    payway_code = ""
    is_login_failure = True

    class Meta:
        verbose_name = _("refused login")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.error_code} {self.created_at:%Y-%m-%d %H:%M:%S}"

    def get_kind_display(self) -> str:
        return str(_("Login refused"))


#: How long refused logins stay in the error panel's table, and how many rows it keeps at most (a script
#: that starts logins and lands garbage cannot grow it without bound).
LOGIN_FAILURE_RETENTION = dt.timedelta(days=90)
LOGIN_FAILURE_MAX_ROWS = 1000


def record_login_failure(endpoint: str, error_code: str, *, http_status: int, detail: str = "") -> None:
    """Keep a refused login for the error panel; drop rows past the retention or the row limit."""
    now = timezone.now()
    row = LoginFailure.objects.create(
        created_at=now,
        endpoint=endpoint[:50],
        http_status=http_status,
        error_code=error_code[:50],
        detail=detail[:100],
    )
    LoginFailure.objects.filter(
        models.Q(created_at__lt=now - LOGIN_FAILURE_RETENTION)
        | models.Q(pk__lte=row.pk - LOGIN_FAILURE_MAX_ROWS)
    ).delete()
