"""Bookings made in Huizhen go to the hospital's scheduling system: SIU^S12 (new), S14
(rescheduled) and S15 (cancelled), to every partner that takes them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from appointments.models import Booking
from registry.events import Event, subscribe

from . import builders
from .models import InboundAppointment
from .outbound import enqueue_outbound, partners_for_event, patient_data


def send_booking(payload: dict[str, Any], trigger: str) -> int:
    """Queue SIU^<trigger> for the booking in ``payload`` (an appointments event); returns
    how many messages were queued."""
    event_type = f"SIU^{trigger}"
    partners = partners_for_event(event_type)
    if not partners:
        return 0
    booking = (
        Booking.objects.select_related("patient", "organisation", "slot__schedule")
        .filter(external_id=payload["booking"])
        .first()
    )
    if booking is None:
        return 0
    # A booking a partner made (SIU in) is not sent back to that partner: no echo loops.
    booked_by = set(
        InboundAppointment.objects.filter(booking=booking).values_list("partner_id", flat=True)
    )
    partners = [p for p in partners if p.pk not in booked_by]
    if not partners:
        return 0
    schedule = booking.slot.schedule
    appointment = builders.AppointmentData(
        appointment_id=str(booking.external_id),
        start=datetime.fromisoformat(payload["starts_at"]),
        end=datetime.fromisoformat(payload["ends_at"]),
        service_code=booking.visit_type,
        service_name=booking.get_visit_type_display(),
        location_code=str(booking.organisation.external_id),
        location_name=booking.organisation.name,
        resource_id=str(schedule.external_id),
        resource_name=str(schedule),
        reason=payload.get("reason", ""),
    )
    patient = patient_data(booking.patient)
    queued = 0
    with transaction.atomic():
        for partner in partners:
            envelope = builders.Envelope(
                receiving_application=partner.sending_application,
                receiving_facility=partner.sending_facility,
                control_id=uuid.uuid4().hex[:20],
                version=partner.outbound_version,
                charset=partner.outbound_charset,
            )
            text = builders.build_siu(trigger, envelope, patient, appointment, now=timezone.now())
            if enqueue_outbound(partner, event_type, builders.patient_key(patient), text):
                queued += 1
    return queued


@subscribe("appointments.booking.created", name="ehr_bridge.siu_booked")
def on_booked(event: Event) -> None:
    send_booking(event.payload, "S12")


@subscribe("appointments.booking.rescheduled", name="ehr_bridge.siu_rescheduled")
def on_rescheduled(event: Event) -> None:
    send_booking(event.payload, "S14")


@subscribe("appointments.booking.cancelled", name="ehr_bridge.siu_cancelled")
def on_cancelled(event: Event) -> None:
    send_booking(event.payload, "S15")
