"""ECG records: one per ECG waveform object in the archive, with the machine's suggested
measurements and the specialist's confirmed ones. The waveform itself is the DICOM object."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from registry.models import Organisation, Patient

__all__ = ["EcgReading", "EcgRecord", "EcgSourceFormat", "EcgStatus"]


class EcgSourceFormat(models.TextChoices):
    DICOM = "dicom", _("DICOM waveform")
    SCP = "scp", _("SCP-ECG")
    AECG = "aecg", _("HL7 aECG")
    CSV = "csv", _("CSV")
    JSON = "json", _("JSON")


class EcgStatus(models.TextChoices):
    SUGGESTED = "suggested", _("Measured by machine, awaiting confirmation")
    CONFIRMED = "confirmed", _("Confirmed by a specialist")
    UNMEASURABLE = "unmeasurable", _("Could not be measured by machine")


class EcgRecord(models.Model):
    id = models.BigAutoField(primary_key=True)
    external_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # One record per SOP instance: ingest and reprocessing upsert on this key.
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    instance = models.OneToOneField(
        "imaging.Instance", on_delete=models.CASCADE, related_name="ecg_record"
    )
    study = models.ForeignKey("imaging.Study", on_delete=models.CASCADE, related_name="ecg_records")
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    source_format = models.CharField(
        max_length=8, choices=EcgSourceFormat.choices, default=EcgSourceFormat.DICOM
    )
    sample_rate = models.FloatField()
    duration = models.FloatField()
    leads = models.JSONField(default=list)
    acquired_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=EcgStatus.choices)
    # Machine suggestions (measure.Measurements.as_dict()); never a diagnosis.
    suggested = models.JSONField(default=dict)
    flags = models.JSONField(default=list)
    emergency = models.BooleanField(default=False)
    emergency_published_at = models.DateTimeField(null=True, blank=True)
    # The latest confirmation (its history is EcgReading).
    confirmed = models.JSONField(null=True, blank=True)
    confirmed_flags = models.JSONField(null=True, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    warnings = models.JSONField(default=list)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["patient", "acquired_at"])]

    def __str__(self) -> str:
        return self.sop_instance_uid


class EcgReading(models.Model):
    """One confirmation or correction by a specialist (append-only)."""

    id = models.BigAutoField(primary_key=True)
    external_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    record = models.ForeignKey(EcgRecord, on_delete=models.CASCADE, related_name="readings")
    values = models.JSONField()
    flags = models.JSONField(default=list)
    note = models.TextField(blank=True)
    corrected = models.BooleanField(default=False)
    read_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.record_id}@{self.created_at:%Y-%m-%d %H:%M}"
