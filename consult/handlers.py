"""Subscribers to domain events of other apps."""

from __future__ import annotations

from registry.events import Event, subscribe

from . import services


@subscribe("imaging.study_arrived", name="consult.link_arrived_study")
def link_arrived_study(event: Event) -> None:
    """A study referenced by a consult before it arrived is linked (and shared) now."""
    services.study_arrived(study_external_id=event.payload["study"])


@subscribe("ecg.emergency_pattern", name="consult.raise_priority_on_ecg_emergency")
def raise_priority_on_ecg_emergency(event: Event) -> None:
    """A machine-flagged emergency ECG pattern makes the consults that carry it emergencies;
    the specialist still confirms or corrects the finding."""
    services.consult_raise_priority(
        study_external_id=event.payload["study"],
        reason="ecg_emergency_pattern",
        detail={"patterns": list(event.payload.get("patterns", []))},
    )
