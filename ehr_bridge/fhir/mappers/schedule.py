"""Schedule (a clinic's or clinician's bookable calendar) and Slot (one bookable time)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from fhir.resources.R4B.schedule import Schedule as FhirSchedule
from fhir.resources.R4B.slot import Slot as FhirSlot

from appointments.models import Schedule, Slot, SlotStatus

from .appointment import visit_type_concept
from .common import last_updated


def schedule_to_fhir(schedule: Schedule) -> FhirSchedule:
    """Needs ``organisation`` and ``clinician__staff`` selected and ``templates``
    prefetched. The organisation's clinic is a contained Location (an Organization may not
    be a Schedule actor), managed by the Organization."""
    clinic = f"{schedule.organisation.name} {schedule.department}".strip()
    actors: list[dict[str, Any]] = [{"reference": "#clinic", "display": clinic}]
    staff = getattr(schedule.clinician, "staff", None) if schedule.clinician_id else None
    if staff is not None:
        actors.append(
            {"reference": f"Practitioner/{staff.external_id}", "display": staff.display_name}
        )
    visit_types = sorted({t.visit_type for t in schedule.templates.all() if t.is_active})
    body: dict[str, Any] = {
        "resourceType": "Schedule",
        "id": str(schedule.external_id),
        **last_updated(schedule.updated_at),
        "contained": [
            {
                "resourceType": "Location",
                "id": "clinic",
                "name": clinic,
                "managingOrganization": {
                    "reference": f"Organization/{schedule.organisation.external_id}",
                    "display": schedule.organisation.name,
                },
            }
        ],
        "active": bool(schedule.is_active),
        "actor": actors,
        "comment": schedule.name,
    }
    if visit_types:
        body["serviceType"] = [visit_type_concept(code) for code in visit_types]
    return FhirSchedule.model_validate(body)


def slot_status(slot: Slot) -> str:
    if slot.status != SlotStatus.OPEN or not slot.schedule.is_active:
        return "busy-unavailable"
    return "free" if slot.booked < slot.capacity else "busy"


def slot_to_fhir(slot: Slot) -> FhirSlot:
    """Needs ``schedule`` selected."""
    free = max(slot.capacity - slot.booked, 0)
    body: dict[str, Any] = {
        "resourceType": "Slot",
        "id": str(slot.external_id),
        **last_updated(slot.updated_at),
        "schedule": {"reference": f"Schedule/{slot.schedule.external_id}"},
        "status": slot_status(slot),
        "start": slot.starts_at.isoformat(),
        "end": slot.ends_at.isoformat(),
        "serviceType": [visit_type_concept(slot.visit_type)],
        "overbooked": slot.booked > slot.capacity,
        "comment": _("%(free)s of %(capacity)s places free")
        % {"free": free, "capacity": slot.capacity},
    }
    return FhirSlot.model_validate(body)
