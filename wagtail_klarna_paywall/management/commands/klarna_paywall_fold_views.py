"""``manage.py klarna_paywall_fold_views``: write the cached paywall-view counters into the daily table.

Idempotent (it writes absolute values), so run it as often as you like; run it at least once a day, a
little after midnight, so yesterday's last views are kept: counters stay in the cache for
``RETENTION_DAYS`` days after their day. The funnel report also folds, lazily, whenever it is opened.
"""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from ...newsroom.paywall_views import RETENTION_DAYS, cached_days, fold


class Command(BaseCommand):
    help = (
        "Fold the paywall-view counters from the shared cache into the daily aggregate table "
        f"(today and the {RETENTION_DAYS} days before). Safe to run repeatedly."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--day", help="Fold only this day (YYYY-MM-DD) instead of every day still in the cache."
        )

    def handle(self, *args, day=None, **options):
        if day:
            try:
                days = [dt.date.fromisoformat(day)]
            except ValueError as err:
                raise CommandError(f"--day must be a date as YYYY-MM-DD, not {day!r}") from err
        else:
            days = cached_days()
        for one_day in days:
            result = fold(one_day)
            self.stdout.write(f"{result.day}: {result.counters} counters, {result.written} rows written")
        self.stdout.write(self.style.SUCCESS("Paywall views folded."))
