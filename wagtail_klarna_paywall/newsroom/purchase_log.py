"""The purchase log in the Wagtail admin: a read-only listing of purchase attempts with their timeline.

Read-only by construction: only the index, results and inspect URLs exist, and the permission policy
grants nothing but "view" (the custom ``view_purchase_log`` permission), so Wagtail never offers add,
edit or delete. Tokens and personal data are left out of every column, export and detail field.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import django_filters
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db.models import CharField, Q
from django.db.models.functions import Cast
from django.urls import path
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from wagtail.admin.filters import DateRangePickerWidget, WagtailFilterSet
from wagtail.admin.ui.tables import Column, DateColumn
from wagtail.admin.views import generic
from wagtail.admin.views.mixins import Echo
from wagtail.admin.viewsets.model import ModelViewSet
from wagtail.coreutils import multigetattr
from wagtail.models import Page, Site
from wagtail.permission_policies import ModelPermissionPolicy

from .. import messages
from ..blocks import PAYMENT_METHOD_CATEGORY_CHOICES
from ..models import MILESTONES, AttemptState, PurchaseAttempt, PurchaseEvent

PERMISSION_CODENAME = "view_purchase_log"
PERMISSION = f"wagtail_klarna_paywall.{PERMISSION_CODENAME}"

#: Editors read times in the site's zone (``TIME_ZONE``), to the second, as the timeline is read.
TIME_FORMAT = "Y-m-d H:i:s T"

#: Words for the coded values an attempt stores (the model keeps codes; editors read these).
VALUE_LABELS: dict[str, dict[str, Any]] = {
    "product_kind": {"package": _("Package"), "campaign": _("Campaign")},
    "period_type": {"recurring": _("Recurring"), "limited": _("Limited")},
    "payment_method_category": {
        **{code: label for code, label in PAYMENT_METHOD_CATEGORY_CHOICES if code},
        "direct_debit": _("Direct debit"),
    },
}

#: Codes that only the purchase log shows (security events and the like), with what they mean for editors.
#: Every other code is described by its reader message's title (``messages.MESSAGES``).
EVENT_CODE_LABELS: dict[str, Any] = {
    "foreign_reference": _("Confirmation opened by another browser"),
    "redirect_rejected": _(
        "Payway's redirect was not a Klarna address: the reader was sent to the confirmation"
    ),
    "configuration": _("Configuration error"),
    "authentication_expired": _("Payway refused the access token"),
}


def error_code_label(code: str) -> str:
    """An error code as editors read it: what it means, with the code itself for searching and support."""
    if not code:
        return ""
    label = EVENT_CODE_LABELS.get(code)
    if label is None and code in messages.MESSAGES:
        label = messages.MESSAGES[code].title
    return f"{label} ({code})" if label else code


def local_time(value: dt.datetime | None) -> str:
    return formats.date_format(timezone.localtime(value), TIME_FORMAT) if value else ""


def display_value(field_name: str, value: Any) -> Any:
    """A stored value in words: local times, yes/no, choice labels, error meanings, a dash for nothing."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, dt.datetime):
        return local_time(value)
    if isinstance(value, Decimal):
        return formats.number_format(value, decimal_pos=2, use_l10n=True)
    if field_name in VALUE_LABELS:
        return VALUE_LABELS[field_name].get(value, value)
    if field_name == "error_code":
        return error_code_label(value)
    return value


class PurchaseLogPermissionPolicy(ModelPermissionPolicy):
    """'view' is the custom ``view_purchase_log`` permission; every other action is refused to everyone,
    superusers included, so no admin view can offer to change an attempt.

    Only public policy methods are overridden: Wagtail 7.4 and 8.0 name their private helpers differently.
    """

    def user_has_permission(self, user, action: str) -> bool:
        return action == "view" and user.is_active and user.has_perm(PERMISSION)

    def user_has_any_permission(self, user, actions) -> bool:
        return "view" in actions and self.user_has_permission(user, "view")

    def users_with_any_permission(self, actions):
        if "view" not in actions:
            return get_user_model().objects.none()
        return self._get_users_with_any_permission_codenames({PERMISSION_CODENAME})


purchase_log_permission_policy = PurchaseLogPermissionPolicy(PurchaseAttempt)


def _distinct_choices(field_name: str):
    def choices():
        values = (
            PurchaseAttempt.objects.exclude(**{field_name: ""})
            .order_by(field_name)
            .values_list(field_name, flat=True)
            .distinct()
        )
        return [(v, v) for v in values]

    return choices


class PurchaseAttemptFilterSet(WagtailFilterSet):
    state = django_filters.ChoiceFilter(label=_("State"), choices=AttemptState.choices)
    product_code = django_filters.ChoiceFilter(label=_("Offer"), choices=_distinct_choices("product_code"))
    page = django_filters.ModelChoiceFilter(
        label=_("Article"),
        queryset=lambda request: Page.objects.filter(
            pk__in=PurchaseAttempt.objects.exclude(page=None).values("page_id")
        ).order_by("title"),
    )
    site = django_filters.ModelChoiceFilter(label=_("Site"), queryset=Site.objects.all())
    created_at = django_filters.DateFromToRangeFilter(label=_("Created"), widget=DateRangePickerWidget)
    error_code = django_filters.ChoiceFilter(label=_("Error code"), choices=_distinct_choices("error_code"))

    class Meta:
        model = PurchaseAttempt
        fields = ["state", "product_code", "page", "site", "created_at", "error_code"]


class ErrorCodeColumn(Column):
    def get_value(self, instance):
        return error_code_label(instance.error_code)


class OfferColumn(Column):
    """What was bought, by name, with its Payway code underneath (editors think in names, support in
    codes)."""

    def get_value(self, instance):
        name = instance.product_name or instance.product_code
        if name == instance.product_code:
            return name
        return format_html("{}<br><small><code>{}</code></small>", name, instance.product_code)


class PurchaseLogIndexView(generic.IndexView):
    # Exports: times in the site's zone with their offset (CSV) or zone-named headings (XLSX, whose cells
    # cannot hold a zone), yes/no in words. Wagtail's default writes UTC without saying so.
    custom_value_preprocess = {
        **generic.IndexView.custom_value_preprocess,
        dt.datetime: {
            "csv": lambda value: timezone.localtime(value).isoformat(sep=" ", timespec="seconds"),
            "xlsx": lambda value: timezone.make_naive(timezone.localtime(value)),
        },
        bool: {"csv": lambda value: str(_("Yes") if value else _("No")), "xlsx": lambda value: value},
    }

    def get_heading(self, queryset, field):
        heading = super().get_heading(queryset, field)
        if field.endswith("_at"):
            return f"{heading} ({timezone.get_current_timezone_name()})"
        return heading

    def stream_csv(self, queryset):
        """CSV that Excel opens in any language: a UTF-8 byte-order mark (without it Excel reads å, ä and ö
        as Latin-1) and, for Swedish editors, semicolons (Excel's list separator where the decimal mark is a
        comma)."""
        yield "\ufeff"
        if (get_language() or "").split("-")[0] == "sv":
            writer = csv.DictWriter(Echo(), fieldnames=self.list_export, delimiter=";")
            yield writer.writerow({field: self.get_heading(queryset, field) for field in self.list_export})
            for item in queryset:
                yield self.write_csv_row(writer, self.to_row_dict(item))
            return
        yield from super().stream_csv(queryset)

    def get_base_queryset(self):
        return PurchaseAttempt.objects.select_related("page", "site").defer("klarna_client_token")

    def to_row_dict(self, item):
        # A deleted article or site leaves ``page``/``site`` empty; export a blank cell, not an error.
        row = {}
        for field in self.list_export:
            try:
                row[field] = multigetattr(item, field)
            except AttributeError:
                row[field] = ""
            if row[field] is None:
                row[field] = ""
        return row

    def search_queryset(self, queryset):
        """Match an attempt reference (full, with or without dashes, or its start) or a Payway order id."""
        if not self.is_searching:
            return queryset
        query = self.search_query.strip()
        condition = Q(order_id__icontains=query)
        with contextlib.suppress(ValueError):
            condition |= Q(reference=uuid.UUID(query))
        prefix = query.lower()
        if prefix and len(prefix) < 36 and all(c in "0123456789abcdef-" for c in prefix):
            # A reference prefix, as support staff read it out (the first group of the UUID). The text form
            # differs per database (dashed on PostgreSQL, 32 hex digits on SQLite), so both are tried.
            queryset = queryset.annotate(reference_text=Cast("reference", output_field=CharField()))
            condition |= Q(reference_text__startswith=prefix) | Q(
                reference_text__startswith=prefix.replace("-", "")
            )
        return queryset.filter(condition)


class PurchaseLogInspectView(generic.InspectView):
    """An attempt's fields and its timeline (each event with time, state, Payway status and code)."""

    template_name = "wagtail_klarna_paywall/admin/purchase_attempt_inspect.html"

    def get_page_title(self):
        return _("Purchase attempt")

    def get_field_display_value(self, field_name, field):
        return display_value(field_name, super().get_field_display_value(field_name, field))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        events = list(self.object.events.order_by("created_at", "pk"))
        for event in events:
            event.kind_label = event.get_kind_display()
            event.error_label = error_code_label(event.error_code)
        # The milestones are the attempt's own times (models.MILESTONES), shown among its events.
        for state, field_name in MILESTONES:
            reached = getattr(self.object, field_name)
            if reached is not None:
                milestone = PurchaseEvent(attempt=self.object, kind=state, state=state, created_at=reached)
                milestone.kind_label = AttemptState(state).label
                milestone.error_label = ""
                events.append(milestone)
        # A stable sort: at the same instant, the events come before the milestone.
        context["events"] = sorted(events, key=lambda event: event.created_at)
        context["time_format"] = TIME_FORMAT
        return context


#: Shown on the detail view. Left out on purpose: ``klarna_client_token`` (a token), ``redirect_uri``
#: (Klarna's hosted URL may carry one), ``user`` and ``reader_key`` (identify a reader), and
#: ``payment_method_categories`` (noise).
INSPECT_FIELDS = [
    "reference",
    "state",
    "product_code",
    "product_name",
    "offer_label",
    "product_kind",
    "period_type",
    "period_id",
    "is_trial",
    "price",
    "price_period",
    "payment_method_category",
    "page",
    "site",
    "purchase_page",
    "existing_customer",
    "payway_session_id",
    "merchant_reference",
    "traffic_source",
    "order_id",
    "error_code",
    "payway_status",
    "payway_code",
    "payway_field",
    "test_mode",
    "created_at",
    "session_created_at",
    "session_expires_at",
    "placing_at",
    "placed_at",
    "confirmed_at",
    "finished_at",
]

#: Columns of the CSV/XLSX export: the same rule as :data:`INSPECT_FIELDS`.
EXPORT_FIELDS = [
    "reference",
    "state",
    "product_code",
    "product_name",
    "is_trial",
    "page_id",
    "page.title",
    "site.hostname",
    "existing_customer",
    "order_id",
    "error_code",
    "payway_status",
    "payway_code",
    "payway_field",
    "test_mode",
    "created_at",
    "placed_at",
    "confirmed_at",
    "finished_at",
]


class PurchaseLogViewSet(ModelViewSet):
    model = PurchaseAttempt
    icon = "list-ul"
    menu_label = _("Purchase log")
    menu_order = 900
    add_to_admin_menu = False  # added under Reports by ``wagtail_hooks``
    url_prefix = "klarna-paywall/purchases"
    name = "klarna_paywall_purchases"
    index_view_class = PurchaseLogIndexView
    inspect_view_class = PurchaseLogInspectView
    inspect_view_enabled = True
    inspect_view_fields = INSPECT_FIELDS
    copy_view_enabled = False
    filterset_class = PurchaseAttemptFilterSet
    search_fields = ["order_id"]  # the index view searches references too (see PurchaseLogIndexView)
    list_per_page = 50
    list_display = [
        # The first group of the UUID is what support reads out (the reader's page shows it); the whole
        # reference wrapped to six lines and left room for four rows a screen.
        "short_reference",
        Column("state", label=_("State"), accessor="get_state_display", sort_key="state"),
        OfferColumn("product_code", label=_("Offer"), sort_key="product_code"),
        Column("page", label=_("Article")),
        DateColumn("created_at", label=_("Created"), sort_key="created_at"),
        ErrorCodeColumn("error_code", label=_("Error code"), sort_key="error_code"),
        Column("order_id", label=_("Payway order id")),
    ]
    list_export = EXPORT_FIELDS
    export_headings = {
        "page_id": _("Article id"),
        "page.title": _("Article"),
        "site.hostname": _("Site"),
    }
    export_filename = "klarna-purchase-log"

    def get_permissions_to_register(self):

        return Permission.objects.filter(
            content_type=ContentType.objects.get_for_model(PurchaseAttempt), codename=PERMISSION_CODENAME
        )

    def get_urlpatterns(self):
        # Read-only: no add, edit, delete, copy, history or usage views exist at all.
        return [
            path("", self.index_view, name="index"),
            path("results/", self.index_results_view, name="index_results"),
            path("inspect/<int:pk>/", self.inspect_view, name="inspect"),
        ]

    def get_common_view_kwargs(self, **kwargs):
        kwargs = super().get_common_view_kwargs(**kwargs)
        for name in (
            "add_url_name",
            "edit_url_name",
            "delete_url_name",
            "history_url_name",
            "usage_url_name",
        ):
            kwargs.pop(name, None)
        return kwargs
