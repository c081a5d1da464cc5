"""Booking writes: book, cancel, reschedule, confirm or reject, check in, mark a no-show,
and recurring series.

Capacity is the database's job: a seat is claimed by one conditional UPDATE
(``booked = booked + 1 WHERE booked < capacity``) that PostgreSQL re-checks under the row
lock, backed by the CHECK ``booked <= capacity``; a patient's second active booking of a type
on one day breaks a partial unique index. Patient gates run outside the transaction so that
an audited denial stays in the trail. Book, cancel and reschedule publish domain events.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import audit, events
from registry.access import CLINICAL_ROLES, Principal, access_patient
from registry.errors import Conflict, Forbidden, NotFound, ValidationFailed
from registry.identity import mask_mobile
from registry.models import AuditOutcome, Patient

from . import waitlist
from .access import FRONT_DESK_ROLES, access_booking
from .models import (
    Booking,
    BookingChannel,
    BookingEvent,
    RecurringSeries,
    Slot,
    SlotStatus,
)
from .states import ACTIVE_STATUSES, RELEASES_SEAT, BookingStatus, can_transition

EVENT_BOOKED = "appointments.booking.created"
EVENT_CANCELLED = "appointments.booking.cancelled"
EVENT_RESCHEDULED = "appointments.booking.rescheduled"
EVENT_STATUS = "appointments.booking.status_changed"


class SlotTaken(Conflict):
    default_code = "slot_taken"


@dataclass(frozen=True)
class BookingActor:
    """Who books: a staff principal, or a patient signed in to the portal."""

    audit_actor: audit.Actor
    channel: str
    principal: Principal | None = None

    @property
    def is_patient(self) -> bool:
        return self.channel == BookingChannel.PORTAL

    @property
    def user(self) -> Any | None:
        return self.principal.user if self.principal else None

    @classmethod
    def staff(cls, principal: Principal) -> BookingActor:
        return cls(principal.actor, BookingChannel.STAFF, principal)

    @classmethod
    def patient(cls, patient: Patient) -> BookingActor:
        return cls(portal_actor(patient.mobile), BookingChannel.PORTAL)


def portal_actor(mobile: str) -> audit.Actor:
    return audit.Actor(user_id=None, username=f"patient:{mask_mobile(mobile)}", role="patient")


def _hours(name: str, default: float) -> timedelta:
    return timedelta(hours=float(getattr(settings, name, default)))


def cancel_window() -> timedelta:
    return _hours("HUIZHEN_BOOKING_CANCEL_HOURS", 2)


def reschedule_window() -> timedelta:
    return _hours("HUIZHEN_BOOKING_RESCHEDULE_HOURS", 4)


# --- seats ---------------------------------------------------------------------------------------


def claim_seat(slot: Slot) -> None:
    """Take one seat of ``slot`` or raise SlotTaken; the WHERE is re-checked under the lock."""
    claimed = Slot.objects.filter(
        pk=slot.pk,
        status=SlotStatus.OPEN,
        booked__lt=F("capacity"),
        starts_at__gt=timezone.now(),
    ).update(booked=F("booked") + 1)
    if claimed != 1:
        raise SlotTaken(_("This slot has just been taken. Please choose another time."))


def release_seat(slot_pk: int) -> None:
    Slot.objects.filter(pk=slot_pk, booked__gt=0).update(booked=F("booked") - 1)


def _slot(slot_id: uuid.UUID | str) -> Slot:
    try:
        key = uuid.UUID(str(slot_id))
    except ValueError:
        raise NotFound(_("No such slot.")) from None
    slot = Slot.objects.select_related("schedule__organisation").filter(external_id=key).first()
    if slot is None or not slot.schedule.is_active:
        raise NotFound(_("No such slot."))
    return slot


# --- history, audit, events ---------------------------------------------------------------------


def _log(booking: Booking, kind: str, actor: BookingActor, old: str = "", **detail: Any) -> None:
    detail = {k: str(v) for k, v in detail.items()}
    BookingEvent.objects.create(
        booking=booking,
        kind=kind,
        from_status=old,
        to_status=booking.status,
        actor=actor.audit_actor.username,
        detail=detail,
    )
    audit.record(
        actor=actor.audit_actor,
        action=f"booking.{kind}",
        object_type="booking",
        object_id=str(booking.external_id),
        patient_id=booking.patient.external_id,
        subject_organisation_id=booking.patient.home_organisation_id,
        detail={"status": booking.status, **detail},
    )


def event_payload(booking: Booking) -> dict[str, Any]:
    return {
        "booking": str(booking.external_id),
        "patient": str(booking.patient.external_id),
        "slot": str(booking.slot.external_id),
        "schedule": str(booking.slot.schedule.external_id),
        "organisation": str(booking.organisation.external_id),
        "visit_type": booking.visit_type,
        "starts_at": booking.starts_at.isoformat(),
        "ends_at": booking.slot.ends_at.isoformat(),
        "status": booking.status,
        "channel": booking.channel,
    }


# --- booking --------------------------------------------------------------------------------------


def booking_create_for_patient(
    *, principal: Principal, patient_id: uuid.UUID | str, slot_id: uuid.UUID | str, note: str = ""
) -> Booking:
    """A clinician books on a patient's behalf; the patient must be visible to them."""
    _require_clinical(principal, "booking.create")
    patient = access_patient(principal, patient_id, action="booking.create")
    return booking_create(
        actor=BookingActor.staff(principal), patient=patient, slot_id=slot_id, note=note
    )


@transaction.atomic
def booking_create(
    *,
    actor: BookingActor,
    patient: Patient,
    slot_id: uuid.UUID | str,
    note: str = "",
    series: RecurringSeries | None = None,
    seat_held: Slot | None = None,
) -> Booking:
    """Book one seat. Precondition: ``patient`` passed its gate (staff) or is the signed-in
    patient (portal). ``seat_held`` is a slot whose seat a waitlist hold already took.

    Raises SlotTaken (409), Conflict ``already_booked`` (409), NotFound, ValidationFailed.
    """
    slot = seat_held or _slot(slot_id)
    if len(note) > 500:
        raise ValidationFailed(_("The note is too long."), fields={"note": "500"})
    if seat_held is None:
        claim_seat(slot)
    status = (
        BookingStatus.REQUESTED
        if actor.is_patient and slot.schedule.approval_required
        else BookingStatus.CONFIRMED
    )
    try:
        with transaction.atomic():
            booking = Booking.objects.create(
                slot=slot,
                patient=patient,
                organisation=slot.schedule.organisation,
                visit_type=slot.visit_type,
                starts_at=slot.starts_at,
                day=timezone.localdate(slot.starts_at),
                status=status,
                channel=actor.channel,
                series=series,
                note=note,
                created_by=actor.user,
            )
    except IntegrityError:
        raise Conflict(
            _("This patient already has a booking of this kind on that day."),
            code="already_booked",
        ) from None
    _log(booking, "create", actor, slot=slot.external_id)
    events.publish(EVENT_BOOKED, event_payload(booking))
    return booking


def _require_clinical(principal: Principal, action: str) -> None:
    if principal.role not in CLINICAL_ROLES:
        audit.record(actor=principal.actor, action=action, outcome=AuditOutcome.DENIED)
        raise Forbidden(_("Your role may not book for patients."), code="role")


@dataclass
class SeriesResult:
    series: RecurringSeries
    bookings: list[Booking] = field(default_factory=list)
    skipped: list[tuple[date, str]] = field(default_factory=list)


def booking_create_recurring(
    *,
    actor: BookingActor,
    patient: Patient,
    slot_id: uuid.UUID | str,
    interval_weeks: int,
    until: date,
    note: str = "",
) -> SeriesResult:
    """Book the slot and the slot at the same time every ``interval_weeks`` until ``until``.

    The first booking must succeed; a later occurrence whose slot is missing, full or clashes
    is skipped and reported, not fatal. Later slots must already be generated.
    """
    first = _slot(slot_id)
    max_until = timezone.localdate() + timedelta(days=366)
    if not 1 <= interval_weeks <= 52:
        raise ValidationFailed(_("Every 1 to 52 weeks."), fields={"interval_weeks": ""})
    if until < timezone.localdate(first.starts_at) or until > max_until:
        raise ValidationFailed(
            _("The end date must fall between the first visit and a year from today."),
            fields={"until": until.isoformat()},
        )
    with transaction.atomic():
        series = RecurringSeries.objects.create(
            patient=patient,
            schedule=first.schedule,
            interval_weeks=interval_weeks,
            until=until,
            created_by=actor.user,
        )
        result = SeriesResult(series)
        result.bookings.append(
            booking_create(actor=actor, patient=patient, slot_id=slot_id, note=note, series=series)
        )
        step = timedelta(weeks=interval_weeks)
        when = first.starts_at + step
        while timezone.localdate(when) <= until:
            slot = Slot.objects.filter(
                schedule=first.schedule, visit_type=first.visit_type, starts_at=when
            ).first()
            if slot is None:
                result.skipped.append((timezone.localdate(when), "no_slot"))
            else:
                try:
                    with transaction.atomic():
                        result.bookings.append(
                            booking_create(
                                actor=actor,
                                patient=patient,
                                slot_id=slot.external_id,
                                note=note,
                                series=series,
                            )
                        )
                except Conflict as exc:
                    result.skipped.append((timezone.localdate(when), exc.code))
            when += step
    return result


# --- changes --------------------------------------------------------------------------------------


def _transition(booking: Booking, target: str) -> str:
    old = booking.status
    if not can_transition(old, target):
        raise Conflict(
            _("A booking that is %(status)s cannot become %(target)s.")
            % {"status": booking.get_status_display(), "target": BookingStatus(target).label},
            code="invalid_transition",
        )
    booking.status = target
    booking.save(update_fields=["status", "cancel_reason", "updated_at"])
    if old in ACTIVE_STATUSES and target in RELEASES_SEAT:
        release_seat(booking.slot_id)
        waitlist.offer_freed_seat(slot_pk=booking.slot_id)
    return old


def _lock(booking: Booking) -> Booking:
    return (
        Booking.objects.select_for_update(of=("self",))
        .select_related("patient", "slot__schedule", "organisation")
        .get(pk=booking.pk)
    )


def _check_window(actor: BookingActor, booking: Booking, window: timedelta, what: str) -> None:
    now = timezone.now()
    if booking.starts_at <= now:
        raise Conflict(_("This visit has already started."), code="too_late")
    if actor.is_patient and booking.starts_at - now < window:
        hours = window.total_seconds() / 3600
        raise Conflict(
            _("Online %(what)s closes %(hours)g hours before the visit. Please call the clinic.")
            % {"what": what, "hours": hours},
            code="window_closed",
        )


@transaction.atomic
def booking_cancel(*, actor: BookingActor, booking: Booking, reason: str = "") -> Booking:
    """Cancel, give the seat back and offer it to the waitlist. Precondition: gate passed."""
    booking = _lock(booking)
    _check_window(actor, booking, cancel_window(), _("cancellation"))
    booking.cancel_reason = reason[:500]
    old = _transition(booking, BookingStatus.CANCELLED)
    _log(booking, "cancel", actor, old)
    events.publish(EVENT_CANCELLED, {**event_payload(booking), "reason": "cancelled"})
    return booking


@transaction.atomic
def booking_reschedule(
    *, actor: BookingActor, booking: Booking, slot_id: uuid.UUID | str
) -> Booking:
    """Move a booking to another slot: the old one is cancelled and a new one made, in one
    transaction; if the new slot is taken nothing changes."""
    booking = _lock(booking)
    _check_window(actor, booking, reschedule_window(), _("rescheduling"))
    slot = _slot(slot_id)
    if slot.pk == booking.slot_id:
        raise ValidationFailed(_("That is the same slot."), fields={"slot": str(slot_id)})
    if slot.visit_type != booking.visit_type:
        raise ValidationFailed(
            _("Choose a slot of the same visit type."), fields={"slot": str(slot_id)}
        )
    booking.cancel_reason = "rescheduled"
    old = _transition(booking, BookingStatus.CANCELLED)
    _log(booking, "cancel", actor, old, reason="rescheduled")
    new = booking_create(
        actor=actor,
        patient=booking.patient,
        slot_id=slot.external_id,
        note=booking.note,
        series=booking.series,
    )
    new.rescheduled_from = booking
    new.save(update_fields=["rescheduled_from"])
    _log(new, "reschedule", actor, "", previous=booking.external_id)
    events.publish(
        EVENT_RESCHEDULED, {**event_payload(new), "previous_booking": str(booking.external_id)}
    )
    return new


def staff_booking(principal: Principal, booking_id: uuid.UUID | str, *, action: str) -> Booking:
    """Gate (outside any transaction): a clinician or admin who may see the booking."""
    if principal.role not in FRONT_DESK_ROLES:
        audit.record(actor=principal.actor, action=action, outcome=AuditOutcome.DENIED)
        raise Forbidden(_("Your role may not do this."), code="role")
    return access_booking(principal, booking_id, action=action)


def _require_front_desk_of(principal: Principal, booking: Booking, action: str) -> None:
    """Confirming, checking in and marking a no-show belong to the organisation of the visit."""
    path = booking.organisation.path
    if not any(path.startswith(o.path) for o in principal.organisations_with(FRONT_DESK_ROLES)):
        audit.record(
            actor=principal.actor,
            action=action,
            outcome=AuditOutcome.DENIED,
            object_type="booking",
            object_id=str(booking.external_id),
            patient_id=booking.patient.external_id,
        )
        raise Forbidden(_("Only the clinic of the visit may do this."), code="not_visit_clinic")


@transaction.atomic
def booking_set_status(
    *, principal: Principal, booking: Booking, target: str, reason: str = ""
) -> Booking:
    """Confirm or reject a request, check in, mark a no-show or complete a visit."""
    action = f"booking.{target}"
    booking = _lock(booking)
    now = timezone.now()
    if target not in {
        BookingStatus.CONFIRMED,
        BookingStatus.REJECTED,
        BookingStatus.CHECKED_IN,
        BookingStatus.NO_SHOW,
        BookingStatus.COMPLETED,
    }:
        raise ValidationFailed(_("Unknown status."), fields={"status": target})
    _require_front_desk_of(principal, booking, action)
    if target == BookingStatus.CHECKED_IN and timezone.localdate(booking.starts_at) != (
        timezone.localdate(now)
    ):
        raise Conflict(_("Check in on the day of the visit."), code="not_today")
    if target == BookingStatus.NO_SHOW and booking.starts_at > now:
        raise Conflict(_("A visit can be marked missed only after it starts."), code="too_early")
    if target == BookingStatus.REJECTED:
        booking.cancel_reason = reason[:500]
    old = _transition(booking, target)
    actor = BookingActor.staff(principal)
    _log(booking, target, actor, old)
    events.publish(EVENT_STATUS, {**event_payload(booking), "previous_status": old})
    return booking


# --- audited reads ---


def audit_read(actor: audit.Actor, booking: Booking, *, action: str = "booking.read") -> None:
    audit.record(
        actor=actor,
        action=action,
        object_type="booking",
        object_id=str(booking.external_id),
        patient_id=booking.patient.external_id,
        subject_organisation_id=booking.patient.home_organisation_id,
    )


def audit_due_list(actor: audit.Actor, items: list[Any]) -> None:
    audit.record(
        actor=actor,
        action="appointments.due_list",
        object_type="due_list",
        detail={"patients": [str(i.patient.external_id) for i in items][:500]},
    )
