"""Appointment (a booking of a slot) and the FHIR Appointment a partner posts to book one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _
from fhir.resources.R4B.appointment import Appointment

from appointments.models import Booking, VisitType

from .. import systems
from .common import last_updated
from .patient import MappingError

# booking status -> Appointment.status
STATUS_OF_BOOKING = {
    "requested": "pending",
    "confirmed": "booked",
    "checked_in": "checked-in",
    "completed": "fulfilled",
    "cancelled": "cancelled",
    "rejected": "cancelled",
    "no_show": "noshow",
}
PARTICIPANT_STATUS = {"requested": "needs-action", "rejected": "declined"}


def visit_type_concept(code: str) -> dict[str, Any]:
    label = str(VisitType(code).label) if code in VisitType.values else code
    return {
        "coding": [{"system": systems.VISIT_TYPE, "code": code, "display": label}],
        "text": label,
    }


def appointment_to_fhir(booking: Booking) -> Appointment:
    """Needs ``patient``, ``organisation`` and ``slot__schedule__clinician__staff`` selected."""
    participants: list[dict[str, Any]] = [
        {
            "actor": {"reference": f"Patient/{booking.patient.external_id}"},
            "required": "required",
            "status": PARTICIPANT_STATUS.get(booking.status, "accepted"),
        }
    ]
    clinician = booking.slot.schedule.clinician
    staff = getattr(clinician, "staff", None) if clinician is not None else None
    if staff is not None:
        participants.append(
            {
                "actor": {
                    "reference": f"Practitioner/{staff.external_id}",
                    "display": staff.display_name,
                },
                "required": "required",
                "status": "accepted",
            }
        )
    body: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": str(booking.external_id),
        **last_updated(booking.updated_at),
        "status": STATUS_OF_BOOKING.get(booking.status, "booked"),
        "serviceType": [visit_type_concept(booking.visit_type)],
        "appointmentType": visit_type_concept(booking.visit_type),
        "description": f"{booking.organisation.name} {booking.slot.schedule.name}",
        "start": booking.starts_at.isoformat(),
        "end": booking.slot.ends_at.isoformat(),
        "created": booking.created_at.isoformat(),
        "slot": [{"reference": f"Slot/{booking.slot.external_id}"}],
        "participant": participants,
    }
    if booking.note:
        body["comment"] = booking.note
    if booking.cancel_reason and booking.status in ("cancelled", "rejected"):
        body["cancelationReason"] = {"text": booking.cancel_reason}
    return Appointment.model_validate(body)


@dataclass(frozen=True)
class AppointmentInput:
    slot_id: str
    patient_id: str
    note: str


def _reference_id(reference: str | None, kind: str) -> str | None:
    if not reference:
        return None
    head, _sep, tail = reference.rstrip("/").rpartition("/")
    if head.rsplit("/", 1)[-1] != kind or not tail:
        return None
    return tail


def appointment_input_from_fhir(resource: Appointment) -> AppointmentInput:
    """The slot (exactly one ``Slot/<id>``) and the patient participant
    (``Patient/<id>``) to book. Raises MappingError naming each problem."""
    issues: list[tuple[str, str]] = []
    slots = [_reference_id(s.reference, "Slot") for s in resource.slot or []]
    if len(slots) != 1 or slots[0] is None:
        issues.append(
            (_("Name exactly one slot to book: slot[0].reference Slot/<id>."), "Appointment.slot")
        )
    patients = [
        _reference_id(p.actor.reference if p.actor else None, "Patient")
        for p in resource.participant or []
    ]
    patients = [p for p in patients if p]
    if len(patients) != 1:
        issues.append(
            (
                _(
                    "Name exactly one patient participant: participant.actor.reference "
                    "Patient/<id>."
                ),
                "Appointment.participant",
            )
        )
    if resource.status not in ("proposed", "pending", "booked"):
        issues.append(
            (
                _("A new appointment must have status proposed, pending or booked."),
                "Appointment.status",
            )
        )
    if issues:
        raise MappingError(issues)
    return AppointmentInput(
        slot_id=slots[0] or "", patient_id=patients[0], note=(resource.comment or "").strip()
    )
