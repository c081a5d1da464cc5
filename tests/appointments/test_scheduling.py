"""Slot generation: weekly templates, statutory holidays and 调休, exceptions, regeneration."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from django.utils import timezone

from appointments import holidays, scheduling, services
from appointments.models import (
    HolidayOverride,
    ScheduleException,
    Slot,
    SlotStatus,
    WeeklyTemplate,
)
from tests.appointments.conftest import local


def _days(slots):
    return sorted({timezone.localdate(s.starts_at) for s in slots})


def test_packaged_calendar_knows_2026_national_day_and_its_adjusted_days():
    # National Day 2026: 1-7 October off; Sunday 20 September and Saturday 10 October worked.
    assert holidays.packaged_day_kind(date(2026, 10, 1)).statutory_holiday
    assert holidays.packaged_day_kind(date(2026, 10, 7)).statutory_holiday
    saturday = holidays.packaged_day_kind(date(2026, 10, 10))
    assert saturday.adjusted_workday and not saturday.statutory_holiday
    assert holidays.packaged_day_kind(date(2026, 9, 20)).adjusted_workday
    ordinary_saturday = holidays.packaged_day_kind(date(2026, 10, 17))
    assert not ordinary_saturday.statutory_holiday and not ordinary_saturday.adjusted_workday


def test_year_outside_the_package_is_an_ordinary_week():
    kind = holidays.packaged_day_kind(date(2031, 1, 1))
    assert not kind.statutory_holiday and not kind.adjusted_workday


@pytest.mark.django_db
def test_national_day_week_is_closed_and_the_adjusted_saturday_opens(schedule):
    # Given weekday-morning sessions (4 slots a day) and Saturday templates for none
    # When the slots for 28 September - 12 October 2026 are worked out
    wanted = scheduling.wanted_slots(schedule, date(2026, 9, 28), date(2026, 10, 12))
    days = _days(wanted)
    # Then no slot falls in the holiday, and Saturday 10 October runs Monday's sessions
    assert not [d for d in days if date(2026, 10, 1) <= d <= date(2026, 10, 7)]
    assert date(2026, 10, 10) in days
    assert date(2026, 10, 11) not in days  # an ordinary Sunday
    assert days == [
        date(2026, 9, 28),
        date(2026, 9, 29),
        date(2026, 9, 30),
        date(2026, 10, 8),
        date(2026, 10, 9),
        date(2026, 10, 10),
        date(2026, 10, 12),
    ]
    assert len([w for w in wanted if timezone.localdate(w.starts_at) == date(2026, 10, 10)]) == 4


@pytest.mark.django_db
def test_a_schedule_that_ignores_the_calendar_keeps_its_weekdays(schedule):
    schedule.observes_holidays = False
    schedule.save()
    days = _days(scheduling.wanted_slots(schedule, date(2026, 10, 1), date(2026, 10, 11)))
    assert date(2026, 10, 1) in days and date(2026, 10, 10) not in days


@pytest.mark.django_db
def test_override_wins_over_the_package(schedule):
    # A local holiday on Thursday 8 October, and Sunday 11 October worked as a Friday
    HolidayOverride.objects.create(date=date(2026, 10, 8), is_workday=False, name="local")
    HolidayOverride.objects.create(date=date(2026, 10, 11), is_workday=True, works_as_weekday=4)
    # And an override that reopens a packaged holiday as an ordinary working day
    HolidayOverride.objects.create(date=date(2026, 10, 2), is_workday=True)
    days = _days(scheduling.wanted_slots(schedule, date(2026, 10, 1), date(2026, 10, 12)))
    assert date(2026, 10, 8) not in days
    assert date(2026, 10, 11) in days
    assert date(2026, 10, 2) in days
    assert date(2026, 10, 1) not in days


@pytest.mark.django_db
def test_leave_and_organisation_closure_remove_slots(schedule, community):
    day = date(2026, 10, 12)  # a Monday
    ScheduleException.objects.create(
        organisation=community.township,
        schedule=schedule,
        kind="leave",
        starts_at=local(day, 8, 0),
        ends_at=local(day, 8, 30),
    )
    ScheduleException.objects.create(
        organisation=community.township,
        schedule=None,
        kind="closure",
        starts_at=local(day + timedelta(days=1), 0),
        ends_at=local(day + timedelta(days=2), 0),
    )
    wanted = scheduling.wanted_slots(schedule, day, day + timedelta(days=1))
    assert [timezone.localtime(w.starts_at).time() for w in wanted] == [time(8, 30), time(8, 45)]


@pytest.mark.django_db
def test_generation_is_idempotent_and_never_creates_past_slots(schedule):
    first = scheduling.slots_generate(schedule=schedule, weeks=2)
    count = Slot.objects.filter(schedule=schedule).count()
    assert first.created == count > 0
    again = scheduling.slots_generate(schedule=schedule, weeks=2)
    assert again.created == 0 and again.withdrawn == 0
    assert Slot.objects.filter(schedule=schedule).count() == count
    assert not Slot.objects.filter(starts_at__lte=timezone.now()).exists()


@pytest.mark.django_db
def test_regeneration_after_a_template_change_leaves_bookings_intact(schedule, patient):
    # Given generated slots and a booked one
    scheduling.slots_generate(schedule=schedule, weeks=3)
    slot = Slot.objects.filter(schedule=schedule, starts_at__gt=timezone.now()).order_by(
        "starts_at"
    )[0]
    weekday = timezone.localtime(slot.starts_at).weekday()
    booking = services.booking_create(
        actor=services.BookingActor.patient(patient), patient=patient, slot_id=slot.external_id
    )
    free_same_day = list(
        Slot.objects.filter(
            schedule=schedule, booked=0, starts_at__date=slot.starts_at.date()
        ).values_list("pk", flat=True)
    )
    # When that weekday's session moves to the afternoon with 30-minute slots of 2 places
    template = WeeklyTemplate.objects.get(schedule=schedule, weekday=weekday)
    template.start, template.end, template.slot_minutes, template.capacity = (
        time(14, 0),
        time(15, 0),
        30,
        2,
    )
    template.save()
    result = scheduling.slots_generate(schedule=schedule, weeks=3)
    # Then the booked slot and its booking are untouched
    slot.refresh_from_db()
    booking.refresh_from_db()
    assert (slot.status, slot.booked, slot.capacity, slot.starts_at) == (
        SlotStatus.OPEN,
        1,
        1,
        booking.starts_at,
    )
    assert booking.status == "confirmed" and booking.slot_id == slot.pk
    assert result.kept_booked == 1
    # And the unbooked morning slots of that weekday are gone, afternoon slots exist
    assert not Slot.objects.filter(pk__in=free_same_day, status=SlotStatus.OPEN).exists()
    afternoon = Slot.objects.filter(
        schedule=schedule, starts_at=local(timezone.localdate(slot.starts_at), 14, 0)
    ).get()
    assert afternoon.capacity == 2


@pytest.mark.django_db
def test_capacity_shrink_never_goes_below_booked(schedule, community, patient_factory):
    scheduling.slots_generate(schedule=schedule, weeks=2)
    template = WeeklyTemplate.objects.filter(schedule=schedule).first()
    template.capacity = 3
    template.save()
    scheduling.slots_generate(schedule=schedule, weeks=2)
    slot = Slot.objects.filter(template=template, starts_at__gt=timezone.now()).first()
    for _ in range(2):
        p = patient_factory(home_organisation=community.village_a)
        services.booking_create(
            actor=services.BookingActor.patient(p), patient=p, slot_id=slot.external_id
        )
    template.capacity = 1
    template.save()
    scheduling.slots_generate(schedule=schedule, weeks=2)
    slot.refresh_from_db()
    assert (slot.capacity, slot.booked) == (2, 2)


@pytest.mark.django_db
def test_generate_slots_command(schedule, capsys):
    from django.core.management import call_command

    call_command("generate_slots", "--weeks", "1")
    assert Slot.objects.filter(schedule=schedule).exists()
    assert "created" in capsys.readouterr().out
