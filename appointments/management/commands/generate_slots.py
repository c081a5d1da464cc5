"""Generate (or regenerate) slots for every active schedule, or one, N weeks ahead."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from appointments import scheduling
from appointments.models import Schedule


class Command(BaseCommand):
    help = "Generate slots from the weekly templates, keeping every booked slot as it is."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--weeks", type=int, default=None, help="weeks ahead")
        parser.add_argument("--schedule", default=None, help="external ID of one schedule")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        schedules = Schedule.objects.filter(is_active=True)
        if options["schedule"]:
            schedules = schedules.filter(external_id=options["schedule"])
            if not schedules.exists():
                raise CommandError("No active schedule with that ID.")
        for schedule in schedules:
            result = scheduling.slots_generate(schedule=schedule, weeks=options["weeks"])
            self.stdout.write(
                f"{schedule.external_id}: {result.created} created, {result.resized} resized, "
                f"{result.withdrawn} withdrawn, {result.kept_booked} booked kept"
            )
