"""Pathology data: conversions of uploaded vendor slides into DICOM WSI, and the annotations
specialists draw on a slide. The slides themselves are studies in the DICOM archive."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from registry.models import Organisation, Patient

__all__ = ["AnnotationShape", "ConversionStatus", "SlideAnnotation", "SlideConversion"]


class ConversionStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Converting")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class SlideConversion(models.Model):
    """One uploaded vendor slide (SVS, tiled TIFF) and its conversion into DICOM WSI.

    The upload is kept in storage under ``upload_key`` until the conversion ends; the
    resulting study and series are set when it is done."""

    id = models.BigAutoField(primary_key=True)
    external_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    file_name = models.CharField(max_length=255, blank=True)
    file_format = models.CharField(max_length=32, blank=True)
    upload_key = models.CharField(max_length=255, blank=True)
    upload_size = models.PositiveBigIntegerField(default=0)
    # Attributes the DICOM objects are written with.
    study_instance_uid = models.CharField(max_length=64)
    series_instance_uid = models.CharField(max_length=64, unique=True)
    specimen_description = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=ConversionStatus.choices, default=ConversionStatus.QUEUED
    )
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    levels = models.JSONField(default=list, blank=True)
    study = models.ForeignKey(
        "imaging.Study", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(progress__lte=100), name="slide_conversion_progress_percent"
            )
        ]
        indexes = [models.Index(fields=["organisation", "created_at"])]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.status})"


class AnnotationShape(models.TextChoices):
    POINT = "point", _("Point")
    RECTANGLE = "rectangle", _("Rectangle")
    POLYGON = "polygon", _("Polygon")


class SlideAnnotation(models.Model):
    """A mark on a slide in full-resolution pixel coordinates of its total pixel matrix,
    with a text; optionally made within a consult (named by the consult's external ID)."""

    id = models.BigAutoField(primary_key=True)
    external_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    study = models.ForeignKey("imaging.Study", on_delete=models.CASCADE, related_name="+")
    series = models.ForeignKey("imaging.Series", on_delete=models.CASCADE, related_name="+")
    consult_id = models.UUIDField(null=True, blank=True, db_index=True)
    shape = models.CharField(max_length=16, choices=AnnotationShape.choices)
    # [[x, y], ...]: one point, two opposite corners, or three or more polygon vertices.
    points = models.JSONField()
    text = models.TextField(blank=True)
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["study", "series", "created_at"])]

    def __str__(self) -> str:
        return f"{self.shape} {self.external_id}"
