"""Reads: free slots, a patient's bookings, and each village doctor's due-and-overdue list."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db.models import F, Max, Min, Q, QuerySet
from django.utils import timezone

from registry.access import Principal, patients_visible_to
from registry.models import Organisation, Patient

from . import ics
from .access import bookings_visible_to
from .models import Booking, Schedule, Slot, SlotStatus, VisitType
from .states import ACTIVE_STATUSES, BookingStatus


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_default_timezone())


def slot_search(
    *,
    organisation_id: uuid.UUID | None = None,
    schedule_id: uuid.UUID | None = None,
    visit_type: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    available_only: bool = True,
) -> QuerySet[Slot]:
    """Open future slots (no patient data: visible to every signed-in caller)."""
    now = timezone.now()
    first = date_from or timezone.localdate()
    last = date_to or first + timedelta(days=28)
    qs = Slot.objects.filter(
        status=SlotStatus.OPEN,
        schedule__is_active=True,
        starts_at__gt=now,
        starts_at__gte=_day_start(first),
        starts_at__lt=_day_start(last + timedelta(days=1)),
    ).select_related("schedule__organisation")
    if organisation_id:
        qs = qs.filter(schedule__organisation__external_id=organisation_id)
    if schedule_id:
        qs = qs.filter(schedule__external_id=schedule_id)
    if visit_type:
        qs = qs.filter(visit_type=visit_type)
    if available_only:
        qs = qs.filter(booked__lt=F("capacity"))
    return qs.order_by("starts_at", "id")


def schedules_bookable_online(*, visit_type: str | None = None) -> QuerySet[Schedule]:
    qs = Schedule.objects.filter(is_active=True).select_related("organisation")
    if visit_type:
        qs = qs.filter(templates__visit_type=visit_type, templates__is_active=True).distinct()
    return qs.order_by("organisation__path", "name")


def clinics_with_open_slots(*, visit_type: str | None = None) -> list[Organisation]:
    ids = slot_search(visit_type=visit_type).values("schedule__organisation_id").distinct()
    return list(Organisation.objects.filter(pk__in=ids, is_active=True).order_by("path"))


def booking_list_for_patient(*, patient: Patient, upcoming_only: bool = True) -> QuerySet[Booking]:
    qs = Booking.objects.filter(patient=patient).select_related("slot__schedule", "organisation")
    if upcoming_only:
        qs = qs.filter(status__in=ACTIVE_STATUSES, starts_at__gt=timezone.now())
    return qs.order_by("starts_at")


def booking_list_for_staff(
    *,
    principal: Principal,
    patient_id: uuid.UUID | None = None,
    day: date | None = None,
    status: str | None = None,
) -> QuerySet[Booking]:
    qs = bookings_visible_to(principal).select_related("patient", "slot__schedule", "organisation")
    if patient_id:
        qs = qs.filter(patient__external_id=patient_id)
    if day:
        qs = qs.filter(day=day)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("starts_at", "id")


def followup_interval() -> timedelta:
    return timedelta(days=int(getattr(settings, "HUIZHEN_FOLLOWUP_INTERVAL_DAYS", 90)))


@dataclass(frozen=True)
class DueItem:
    patient: Patient
    last_visit: date | None
    due_on: date
    overdue: bool
    next_booking: datetime | None
    missed_recently: bool


def due_list(*, principal: Principal, on: date | None = None, days_ahead: int = 7) -> list[DueItem]:
    """Chronic patients the principal looks after whose follow-up falls due within
    ``days_ahead`` days or is overdue, and who have no upcoming visit booked.

    A patient enrolled in a programme falls due on the enrolment's next-due date (set by the
    programme's rules at each follow-up); one not enrolled falls due
    ``HUIZHEN_FOLLOWUP_INTERVAL_DAYS`` after the last attended chronic follow-up (or at once
    when there was none). A recent no-show makes a patient overdue.
    """
    from .programmes import next_due_by_patient

    today = on or timezone.localdate()
    interval = followup_interval()
    attended = [BookingStatus.CHECKED_IN, BookingStatus.COMPLETED]
    patients = (
        patients_visible_to(principal)
        .exclude(chronic_conditions=[])
        .annotate(
            last_visit=Max(
                "bookings__starts_at",
                filter=Q(
                    bookings__status__in=attended,
                    bookings__visit_type__in=[VisitType.CHRONIC_FOLLOWUP, VisitType.HOME_VISIT],
                ),
            ),
            next_visit=Min(
                "bookings__starts_at",
                filter=Q(
                    bookings__status__in=list(ACTIVE_STATUSES),
                    bookings__starts_at__gt=timezone.now(),
                ),
            ),
            last_missed=Max(
                "bookings__starts_at", filter=Q(bookings__status=BookingStatus.NO_SHOW)
            ),
        )
        .order_by("name", "id")
    )
    patients = list(patients)
    programme_due = next_due_by_patient([p.pk for p in patients])
    items: list[DueItem] = []
    for patient in patients:
        last = timezone.localdate(patient.last_visit) if patient.last_visit else None
        due_on = programme_due.get(patient.pk) or (last + interval if last else today)
        missed = bool(
            patient.last_missed
            and (patient.last_visit is None or patient.last_missed > patient.last_visit)
        )
        if missed:
            due_on = min(due_on, timezone.localdate(patient.last_missed))
        if patient.next_visit is not None or due_on > today + timedelta(days=days_ahead):
            continue
        items.append(
            DueItem(
                patient=patient,
                last_visit=last,
                due_on=due_on,
                overdue=due_on < today,
                next_booking=None,
                missed_recently=missed,
            )
        )
    items.sort(key=lambda i: (i.due_on, i.patient.name))
    return items


def booking_ics(booking: Booking) -> bytes:
    """The booking as an iCalendar file (cancelled bookings as a cancellation)."""
    clinic = booking.organisation.name
    info = ics.VisitInfo(
        uid=f"{booking.external_id}@huizhen",
        summary=f"{booking.get_visit_type_display()} · {clinic}",
        location=clinic,
        description=booking.slot.schedule.name,
        starts_at=booking.starts_at,
        ends_at=booking.slot.ends_at,
        stamp=booking.updated_at,
        cancelled=booking.status not in ACTIVE_STATUSES,
        sequence=booking.events.count(),
    )
    return ics.render(info)


@dataclass(frozen=True)
class PatientDue:
    due_on: date
    overdue: bool


def followup_due_for_patient(*, patient: Patient) -> PatientDue | None:
    """When the signed-in patient's next chronic follow-up falls due, if they have a chronic
    condition and nothing booked (the same rule as ``due_list``)."""
    if not patient.chronic_conditions:
        return None
    now = timezone.now()
    bookings = Booking.objects.filter(patient=patient)
    if bookings.filter(status__in=list(ACTIVE_STATUSES), starts_at__gt=now).exists():
        return None
    last = (
        bookings.filter(
            status__in=[BookingStatus.CHECKED_IN, BookingStatus.COMPLETED],
            visit_type__in=[VisitType.CHRONIC_FOLLOWUP, VisitType.HOME_VISIT],
        )
        .order_by("-starts_at")
        .values_list("starts_at", flat=True)
        .first()
    )
    from .programmes import next_due_by_patient

    today = timezone.localdate()
    due_on = next_due_by_patient([patient.pk]).get(patient.pk) or (
        timezone.localdate(last) + followup_interval() if last else today
    )
    if due_on > today + timedelta(days=30):
        return None
    return PatientDue(due_on=due_on, overdue=due_on < today)
