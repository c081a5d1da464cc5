"""Load holiday overrides from a CSV file: ``date,is_workday,name[,works_as_weekday]``.

For a year the packaged calendar does not cover yet, type in the State Council's notice
(e.g. ``2027-02-06,1,春节调休,0``) and every schedule regenerates.
"""

from __future__ import annotations

import csv
from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from appointments import scheduling
from appointments.models import HolidayOverride


class Command(BaseCommand):
    help = "Import holiday and adjusted-working-day overrides from CSV."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("path")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        rows = 0
        with open(options["path"], encoding="utf-8") as handle, transaction.atomic():
            for line_no, row in enumerate(csv.reader(handle), start=1):
                if not row or row[0].startswith("#") or row[0] == "date":
                    continue
                try:
                    day = date.fromisoformat(row[0].strip())
                    workday = row[1].strip().lower() in {"1", "true", "yes", "workday"}
                    name = row[2].strip() if len(row) > 2 else ""
                    works_as = int(row[3]) if len(row) > 3 and row[3].strip() else None
                except (IndexError, ValueError) as exc:
                    raise CommandError(f"line {line_no}: {exc}") from exc
                HolidayOverride.objects.update_or_create(
                    date=day,
                    defaults={"is_workday": workday, "name": name, "works_as_weekday": works_as},
                )
                rows += 1
        count = scheduling.slots_generate_every_schedule()
        self.stdout.write(f"{rows} overrides imported; {count} schedules regenerated")
