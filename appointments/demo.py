"""Demo schedules for ``manage.py seed_demo``: each township health centre runs a chronic
disease clinic on weekday mornings and a teleconsult session on Thursday afternoons, with
slots generated for the weeks ahead. Idempotent."""

from __future__ import annotations

from datetime import time
from typing import Any

from .models import Schedule, WeeklyTemplate
from .scheduling import slots_generate

SESSIONS = (
    # weekday (0 = Monday), start, end, slot minutes, capacity, visit type
    *((day, time(8, 30), time(11, 30), 15, 2, "chronic_followup") for day in range(5)),
    (3, time(14, 0), time(16, 0), 30, 1, "teleconsult"),
)


def seed(organisations: dict[str, Any]) -> None:
    for key, organisation in organisations.items():
        if not key.startswith("township:"):
            continue
        schedule, created = Schedule.objects.get_or_create(
            organisation=organisation,
            name="慢病门诊",
            defaults={"department": "全科"},
        )
        if created:
            WeeklyTemplate.objects.bulk_create(
                WeeklyTemplate(
                    schedule=schedule,
                    weekday=weekday,
                    start=start,
                    end=end,
                    slot_minutes=minutes,
                    capacity=capacity,
                    visit_type=visit_type,
                )
                for weekday, start, end, minutes, capacity, visit_type in SESSIONS
            )
        slots_generate(schedule=schedule, weeks=4)
