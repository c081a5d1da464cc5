"""Check the audit trail's hash chain; exit non-zero and name the rows when it is broken."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from registry.audit import verify_chain


class Command(BaseCommand):
    help = "Verify that no audit row was altered, removed or inserted out of order."

    def handle(self, *args: Any, **options: Any) -> None:
        checked, breaks = verify_chain()
        if breaks:
            for item in breaks:
                self.stderr.write(f"audit row {item.row_id}: {item.reason}")
            raise CommandError(
                f"Audit trail broken: {len(breaks)} problem(s) in {checked} rows checked."
            )
        self.stdout.write(self.style.SUCCESS(f"Audit trail intact: {checked} rows checked."))
