"""The waitlist: a seat that frees up is offered to the longest-waiting patient whose window
covers it, by SMS, and held for them (counted in ``Slot.booked``) for
``HUIZHEN_WAITLIST_HOLD_MINUTES``. An expired hold goes to the next patient."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from registry import audit
from registry.errors import Conflict, NotFound, ValidationFailed
from registry.models import Patient
from registry.notifications import notify

from . import services
from .models import Schedule, Slot, SlotStatus, VisitType, WaitlistEntry, WaitlistStatus

SYSTEM = audit.Actor.system("appointments.waitlist")


def hold_minutes() -> int:
    return int(getattr(settings, "HUIZHEN_WAITLIST_HOLD_MINUTES", 30))


def waitlist_join(
    *,
    actor: services.BookingActor,
    patient: Patient,
    schedule_id: uuid.UUID | str,
    visit_type: str,
    earliest: date,
    latest: date,
) -> WaitlistEntry:
    """Precondition: ``patient`` passed its gate or is the signed-in patient."""
    try:
        schedule = Schedule.objects.get(external_id=uuid.UUID(str(schedule_id)), is_active=True)
    except (ValueError, Schedule.DoesNotExist):
        raise NotFound(_("No such schedule.")) from None
    if visit_type not in VisitType.values:
        raise ValidationFailed(_("Unknown visit type."), fields={"visit_type": visit_type})
    if latest < earliest or latest < timezone.localdate():
        raise ValidationFailed(_("The dates do not make a window."), fields={"latest": ""})
    try:
        with transaction.atomic():
            entry = WaitlistEntry.objects.create(
                patient=patient,
                schedule=schedule,
                visit_type=visit_type,
                earliest=earliest,
                latest=latest,
                created_by=actor.user,
            )
            _audit(actor.audit_actor, entry, "waitlist.join")
    except IntegrityError:
        raise Conflict(
            _("This patient is already on the waitlist for this schedule."), code="already_waiting"
        ) from None
    return entry


def _audit(actor: audit.Actor, entry: WaitlistEntry, action: str) -> None:
    audit.record(
        actor=actor,
        action=action,
        object_type="waitlist_entry",
        object_id=str(entry.external_id),
        patient_id=entry.patient.external_id,
        subject_organisation_id=entry.patient.home_organisation_id,
        detail={"status": entry.status},
    )


def offer_freed_seat(*, slot_pk: int) -> WaitlistEntry | None:
    """Offer a free seat of the slot to the next waiting patient (in the caller's
    transaction); returns the entry offered, or None."""
    with transaction.atomic():
        slot = Slot.objects.select_related("schedule__organisation").get(pk=slot_pk)
        now = timezone.now()
        if slot.status != SlotStatus.OPEN or slot.starts_at <= now or slot.booked >= slot.capacity:
            return None
        day = timezone.localdate(slot.starts_at)
        entry = (
            WaitlistEntry.objects.select_for_update(skip_locked=True)
            .select_related("patient")
            .filter(
                schedule_id=slot.schedule_id,
                visit_type=slot.visit_type,
                status=WaitlistStatus.WAITING,
                earliest__lte=day,
                latest__gte=day,
            )
            .order_by("created_at", "id")
            .first()
        )
        if entry is None:
            return None
        held = Slot.objects.filter(
            pk=slot.pk, status=SlotStatus.OPEN, booked__lt=F("capacity")
        ).update(booked=F("booked") + 1)
        if not held:
            return None
        expires = now + timedelta(minutes=hold_minutes())
        entry.status = WaitlistStatus.OFFERED
        entry.offered_slot = slot
        entry.hold_expires_at = expires
        entry.save(update_fields=["status", "offered_slot", "hold_expires_at", "updated_at"])
        _audit(SYSTEM, entry, "waitlist.offer")
        local = timezone.localtime(slot.starts_at)
        notify(
            patient=entry.patient,
            category="appointments.waitlist_offer",
            title=_("A visit time is free"),
            body=_(
                "%(clinic)s has a free place on %(when)s. It is held for you until %(until)s; "
                "sign in to the patient portal to book it."
            )
            % {
                "clinic": slot.schedule.organisation.name,
                "when": formats.date_format(local, "SHORT_DATETIME_FORMAT"),
                "until": formats.time_format(timezone.localtime(expires), "H:i"),
            },
            data={"waitlist_entry": str(entry.external_id), "slot": str(slot.external_id)},
            channels=("sms",),
        )
        return entry


@transaction.atomic
def waitlist_accept(*, actor: services.BookingActor, entry: WaitlistEntry):
    """Book the held seat. Precondition: the entry belongs to a patient the actor may act for."""
    entry = (
        WaitlistEntry.objects.select_for_update(of=("self",))
        .select_related("patient", "offered_slot__schedule__organisation")
        .get(pk=entry.pk)
    )
    if entry.status != WaitlistStatus.OFFERED or entry.hold_expires_at <= timezone.now():
        raise Conflict(_("This offer has expired or was already used."), code="offer_expired")
    booking = services.booking_create(
        actor=actor, patient=entry.patient, slot_id="", seat_held=entry.offered_slot
    )
    entry.status = WaitlistStatus.BOOKED
    entry.booking = booking
    entry.save(update_fields=["status", "booking", "updated_at"])
    _audit(actor.audit_actor, entry, "waitlist.accept")
    return booking


def holds_expire(*, now=None) -> int:
    """Release every expired hold and offer the seat to the next patient. Each entry in its
    own transaction, rows claimed with SKIP LOCKED so parallel runs do not collide."""
    now = now or timezone.now()
    expired = 0
    ids = list(
        WaitlistEntry.objects.filter(
            status=WaitlistStatus.OFFERED, hold_expires_at__lte=now
        ).values_list("pk", flat=True)[:500]
    )
    for pk in ids:
        with transaction.atomic():
            entry = (
                WaitlistEntry.objects.select_for_update(skip_locked=True)
                .select_related("patient")
                .filter(pk=pk, status=WaitlistStatus.OFFERED, hold_expires_at__lte=now)
                .first()
            )
            if entry is None:
                continue
            slot_pk = entry.offered_slot_id
            entry.status = WaitlistStatus.EXPIRED
            entry.save(update_fields=["status", "updated_at"])
            _audit(SYSTEM, entry, "waitlist.expire")
            if slot_pk:
                services.release_seat(slot_pk)
                offer_freed_seat(slot_pk=slot_pk)
            expired += 1
    return expired
