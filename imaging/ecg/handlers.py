"""Subscriber: every ECG waveform stored in the archive is measured."""

from __future__ import annotations

from registry.events import Event, subscribe


@subscribe("imaging.waveform_stored", name="imaging.ecg.measure_waveform")
def measure_stored_waveform(event: Event) -> None:
    """Idempotent: one record per SOP Instance UID. A record that already exists (made by
    an upload, which measures at once, or by an earlier delivery) is left as it is."""
    from ..models import Instance
    from .models import EcgRecord
    from .services import ecg_record_from_instance

    instance = (
        Instance.objects.select_related("series__study")
        .filter(pk=event.payload["instance"])
        .first()
    )
    if instance is None or EcgRecord.objects.filter(instance=instance).exists():
        return
    ecg_record_from_instance(instance=instance)
