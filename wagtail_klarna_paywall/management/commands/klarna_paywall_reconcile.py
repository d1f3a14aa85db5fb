"""``manage.py klarna_paywall_reconcile``: settle abandoned and interrupted purchase attempts.

Safe to run from cron repeatedly (every few minutes is fine):
see :mod:`wagtail_klarna_paywall.newsroom.reconcile`.
"""

import datetime as dt

from django.core.management.base import BaseCommand

from ...newsroom.reconcile import PLACING_TIMEOUT, reconcile


class Command(BaseCommand):
    help = (
        "Expire abandoned purchase attempts, mark attempts stuck while placing the order as 'outcome "
        "unknown', and list the unknown ones for support. Never re-sends an order."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--placing-minutes",
            type=int,
            default=int(PLACING_TIMEOUT.total_seconds() // 60),
            help="Minutes after which an attempt still placing its order counts as interrupted (default 10).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Show what would change; change nothing.")

    def handle(self, *args, placing_minutes, dry_run, **options):
        result = reconcile(placing_timeout=dt.timedelta(minutes=placing_minutes), dry_run=dry_run)
        verb = "would move" if dry_run else "moved"
        for change in result.changes:
            self.stdout.write(
                f"{change.reference} {change.product_code}: {verb} {change.old_state} -> "
                f"{change.new_state} ({change.reason})"
            )
        for attempt in result.follow_up:
            who = "existing customer" if attempt.existing_customer else "new customer"
            self.stdout.write(
                f"FOLLOW UP {attempt.reference} {attempt.product_code} ({who}), created "
                f"{attempt.created_at:%Y-%m-%d %H:%M} UTC, order id {attempt.order_id or '-'}: "
                "check the purchase in Payway"
            )
        summary = (
            f"{'Dry run: ' if dry_run else ''}{len(result.expired)} expired, "
            f"{len(result.unknown)} marked unknown, {len(result.follow_up)} to follow up."
        )
        self.stdout.write(
            self.style.SUCCESS(summary) if not result.follow_up else self.style.WARNING(summary)
        )
