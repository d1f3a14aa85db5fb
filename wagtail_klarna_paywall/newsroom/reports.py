"""What the admin shows about operations besides the purchase log: the funnel report, the dashboard
panels (funnel and recent errors) and the test-mode ribbon.

All of it is behind the ``view_purchase_log`` permission, like the log itself. The chart is inline SVG
rendered on the server, so the admin loads no chart library. The report and the dashboard panel fold the
cached paywall-view counters into the daily table first (``paywall_views.fold_recent``), so they show the
views up to the moment they are opened; the report downloads as CSV or XLSX (``?export=csv|xlsx``).
"""

from __future__ import annotations

import logging

from django import forms
from django.core.exceptions import PermissionDenied
from django.templatetags.static import static
from django.utils.functional import lazy
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.generic import TemplateView
from wagtail.admin.ui.components import Component
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin
from wagtail.admin.views.mixins import SpreadsheetExportMixin
from wagtail.admin.widgets import AdminDateInput

from ..conf import paywall_settings
from . import funnel, paywall_views
from .purchase_log import PERMISSION

logger = logging.getLogger(__name__)

#: How many events the error panel lists.
ERROR_PANEL_SIZE = 20


def can_view(user) -> bool:
    return bool(user and user.is_active and user.has_perm(PERMISSION))


def fold_views() -> None:
    """Fold the cached paywall views before a report reads the table; a cache failure only means the
    report shows the views as of the last fold."""
    try:
        paywall_views.fold_recent()
    except Exception:
        logger.warning("Could not fold the cached paywall views", exc_info=True)


def _last_days_text(days: int) -> str:
    return gettext("Last %(days)s days") % {"days": days}


# The choices are built when the module loads: format lazily, or they would stay in that moment's language.
_last_days = lazy(_last_days_text, str)


class PeriodForm(forms.Form):
    """Last 7/30/90 days, or a date range (both days included)."""

    period = forms.TypedChoiceField(
        label=_("Period"),
        choices=[(str(d), _last_days(d)) for d in funnel.PERIOD_CHOICES] + [("range", _("Date range"))],
        required=False,
        initial="30",
    )
    start = forms.DateField(label=_("From"), required=False, widget=AdminDateInput)
    end = forms.DateField(label=_("To"), required=False, widget=AdminDateInput)

    def clean(self):
        data = super().clean()
        if data.get("start") or data.get("end"):
            # Dates given mean a range, whatever the period menu still says (editors fill the dates and
            # press Show; the menu kept its default and the dates were silently ignored).
            data["period"] = "range"
        if data.get("period") == "range":
            if not data.get("start") or not data.get("end"):
                raise forms.ValidationError(_("Give both dates of the range."))
            if data["start"] > data["end"]:
                raise forms.ValidationError(_("The range ends before it starts."))
        return data

    def get_period(self) -> funnel.Period:
        data = self.cleaned_data if self.is_valid() else {}
        choice = data.get("period") or "30"
        if choice == "range":
            return funnel.Period.from_dates(data["start"], data["end"])
        return funnel.Period.last_days(int(choice))


# -- SVG chart ----------------------------------------------------------------------------------------

CHART_WIDTH = 640
BAR_HEIGHT = 28
BAR_GAP = 10
LABEL_WIDTH = 150
VALUE_WIDTH = 120


def chart_bars(row: funnel.FunnelRow) -> dict:
    """Geometry of a horizontal bar chart of ``row``'s stages (widths relative to the largest count)."""
    stages = row.stages
    largest = max((s["count"] for s in stages), default=0) or 1
    bar_space = CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH
    bars = []
    for i, stage in enumerate(stages):
        y = i * (BAR_HEIGHT + BAR_GAP)
        width = round(bar_space * stage["count"] / largest, 1)
        bars.append(
            {
                **stage,
                # The share shown beside each bar: of the views when there are any, else of the buy clicks.
                "rate": stage["view_rate"] if row.views else stage["overall_rate"],
                "y": y,
                "text_y": y + BAR_HEIGHT / 2,
                "width": width,
                "value_x": LABEL_WIDTH + width + 6,
            }
        )
    return {
        "bars": bars,
        "width": CHART_WIDTH,
        "height": len(stages) * (BAR_HEIGHT + BAR_GAP),
        "label_width": LABEL_WIDTH,
        "bar_height": BAR_HEIGHT,
    }


# -- report page ----------------------------------------------------------------------------------------


class PermissionRequiredMixin:
    def dispatch(self, request, *args, **kwargs):
        if not can_view(request.user):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)


#: Columns of the funnel's spreadsheet: the group, then each stage's count, then the two conversions.
EXPORT_COLUMNS = (
    ["group", "key", "label"]
    + [stage.key for stage in funnel.FUNNEL_STAGES]
    + ["view_conversion", "conversion", "start", "end"]
)


class FunnelReportView(
    PermissionRequiredMixin, SpreadsheetExportMixin, WagtailAdminTemplateMixin, TemplateView
):
    template_name = "wagtail_klarna_paywall/admin/funnel_report.html"
    page_title = _("Purchase funnel")
    header_icon = "doc-full"
    list_export = EXPORT_COLUMNS
    export_filename = "klarna-purchase-funnel"
    # The download links sit beside the period form, where the period they export is chosen.
    show_export_buttons = False

    @property
    def export_headings(self):
        return {
            "group": _("Group"),
            "key": _("Key"),
            "label": _("Name"),
            **{stage.key: stage.label for stage in funnel.FUNNEL_STAGES},
            "view_conversion": _("Conversion from views"),
            "conversion": _("Conversion from buy clicks"),
            "start": _("From"),
            "end": _("To"),
        }

    def get_breadcrumbs_items(self):
        return [*self.breadcrumbs_items, {"url": "", "label": self.get_page_title()}]

    def get(self, request, *args, **kwargs):
        if self.is_export:
            period = PeriodForm(request.GET or None).get_period()
            return self.as_spreadsheet(self.export_rows(period), request.GET["export"])
        return super().get(request, *args, **kwargs)

    def export_rows(self, period: funnel.Period) -> list[dict]:
        fold_views()
        groups = [
            (gettext("All offers"), [funnel.funnel_total(period)]),
            (gettext("Offer"), funnel.funnel_by_offer(period)),
            (gettext("Article"), funnel.funnel_by_page(period)),
        ]
        return [
            {
                "group": group,
                "key": row.key,
                "label": row.label,
                **{stage.key: row.counts.get(stage.key, 0) for stage in funnel.FUNNEL_STAGES},
                "view_conversion": _rounded(row.view_conversion),
                "conversion": _rounded(row.conversion),
                "start": period.start,
                "end": period.end,
            }
            for group, rows in groups
            for row in rows
        ]

    def to_row_dict(self, item):
        return {column: item.get(column, "") for column in self.list_export}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = PeriodForm(self.request.GET or None)
        period = form.get_period()
        fold_views()
        total = funnel.funnel_total(period)
        context.update(
            {
                "form": form,
                "period": period,
                "total": total,
                "chart": chart_bars(total),
                "by_offer": funnel.funnel_by_offer(period),
                "by_page": funnel.funnel_by_page(period),
                "stages": funnel.FUNNEL_STAGES,
                "failures": funnel.top_failure_reasons(period),
                "errors": funnel.recent_errors(ERROR_PANEL_SIZE),
                "csv_export_url": self.csv_export_url,
                "xlsx_export_url": self.xlsx_export_url,
            }
        )
        return context


def _rounded(rate: float | None) -> float | str:
    """A rate as a fraction with four decimals (a spreadsheet formats it as a percentage), or ""."""
    return "" if rate is None else round(rate, 4)


# -- dashboard panels ---------------------------------------------------------------------------------


class FunnelPanel(Component):
    """The last 30 days' funnel on the admin dashboard."""

    name = "klarna_paywall_funnel"
    template_name = "wagtail_klarna_paywall/admin/funnel_panel.html"
    order = 160

    def get_context_data(self, parent_context):
        period = funnel.Period.last_days(30)
        fold_views()
        total = funnel.funnel_total(period)
        return {
            "total": total,
            "chart": chart_bars(total),
            "failures": funnel.top_failure_reasons(period, limit=5),
        }


class ErrorPanel(Component):
    """The last Payway/Klarna errors and security events, each linked to its attempt."""

    name = "klarna_paywall_errors"
    template_name = "wagtail_klarna_paywall/admin/error_panel.html"
    order = 170

    def __init__(self, limit: int = ERROR_PANEL_SIZE) -> None:
        self.limit = limit

    def get_context_data(self, parent_context):
        return {"errors": funnel.recent_errors(self.limit)}


def add_dashboard_panels(request, panels: list) -> None:
    """``construct_homepage_panels``: the funnel and the error panel, for users who may see the log."""
    if can_view(request.user):
        panels.append(FunnelPanel())
        panels.append(ErrorPanel())


# -- test-mode ribbon ---------------------------------------------------------------------------------


def test_mode_ribbon_html() -> str:
    """A strip at the top of every admin page while the site talks to a non-production Payway.

    Global admin HTML lands at the end of ``<body>``; a fixed badge there covered Wagtail's own header
    controls (the page's status and history buttons, the listing's filter button). Wagtail's teleport
    controller moves the strip to the start of the main column instead, in the flow, so it pushes the
    header down rather than covering it. Without JavaScript it stays at the end of the page.
    """
    if paywall_settings.is_production:
        return ""
    return format_html(
        '<template data-controller="w-teleport" data-w-teleport-target-value="#main" '
        'data-w-teleport-mode-value="afterbegin">'
        '<div class="wkp-test-mode-ribbon" role="status" title="{}">{}</div></template>',
        paywall_settings.API_URL,
        _("Payway test mode"),
    )


def test_mode_ribbon_css() -> str:
    if paywall_settings.is_production:
        return ""

    return format_html('<link rel="stylesheet" href="{}">', static("wagtail_klarna_paywall/admin.css"))
