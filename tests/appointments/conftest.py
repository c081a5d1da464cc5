from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from appointments.models import Schedule, Slot, WeeklyTemplate


def local(day, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.get_default_timezone())


def future_day(days: int = 3):
    return timezone.localdate() + timedelta(days=days)


def make_slot(
    schedule: Schedule,
    starts_at: datetime,
    *,
    capacity: int = 1,
    minutes: int = 15,
    visit_type: str = "chronic_followup",
) -> Slot:
    return Slot.objects.create(
        schedule=schedule,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=minutes),
        visit_type=visit_type,
        capacity=capacity,
    )


@pytest.fixture
def schedule(community) -> Schedule:
    """The township centre's chronic-disease clinic: weekday mornings, 15-minute slots."""
    schedule = Schedule.objects.create(
        organisation=community.township, name="慢病门诊", department="全科"
    )
    for weekday in range(5):
        WeeklyTemplate.objects.create(
            schedule=schedule,
            weekday=weekday,
            start=time(8, 0),
            end=time(9, 0),
            slot_minutes=15,
            capacity=1,
            visit_type="chronic_followup",
        )
    return schedule


@pytest.fixture
def patient(community, patient_factory):
    return patient_factory(home_organisation=community.village_a, chronic_conditions=["I10"])
