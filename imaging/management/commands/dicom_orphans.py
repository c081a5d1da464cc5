"""Find (and with --repair, remove) stored files without index rows and rows without files."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from imaging import services


class Command(BaseCommand):
    help = "Check that every stored DICOM file has its index row and every row its file."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--repair", action="store_true", help="remove what is orphaned")
        parser.add_argument(
            "--min-age-minutes",
            type=int,
            default=10,
            help="ignore files younger than this (a write may be in flight)",
        )

    def handle(self, *args: Any, repair: bool, min_age_minutes: int, **options: Any) -> None:
        orphans = services.find_orphans(min_age=timedelta(minutes=min_age_minutes))
        for key in orphans.files_without_rows:
            self.stdout.write(f"file without index row: {key}")
        for pk in orphans.rows_without_files:
            self.stdout.write(f"index row without file: instance {pk}")
        total = len(orphans.files_without_rows) + len(orphans.rows_without_files)
        if not total:
            self.stdout.write(self.style.SUCCESS("Archive consistent: no orphans."))
            return
        if repair:
            services.repair_orphans(orphans)
            self.stdout.write(self.style.SUCCESS(f"Repaired {total} orphan(s)."))
            return
        raise CommandError(f"{total} orphan(s) found; run with --repair to remove them.")
