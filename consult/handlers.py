"""Subscribers to domain events of other apps."""

from __future__ import annotations

from registry.events import Event, subscribe

from . import services


@subscribe("imaging.study_arrived", name="consult.link_arrived_study")
def link_arrived_study(event: Event) -> None:
    """A study referenced by a consult before it arrived is linked (and shared) now."""
    services.study_arrived(study_external_id=event.payload["study"])
