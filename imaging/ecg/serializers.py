"""Input and output shapes of the ECG API."""

from __future__ import annotations

from rest_framework import serializers

from . import measure, render
from .models import EcgSourceFormat


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    patient = serializers.UUIDField()
    format = serializers.ChoiceField(choices=EcgSourceFormat.choices, required=False)


class ListQuerySerializer(serializers.Serializer):
    patient = serializers.UUIDField(required=False)
    study = serializers.CharField(required=False, max_length=64)


class RenderQuerySerializer(serializers.Serializer):
    layout = serializers.ChoiceField(choices=render.LAYOUTS, default="3x4")
    speed = serializers.ChoiceField(choices=render.SPEEDS, default=25)
    gain = serializers.ChoiceField(choices=render.GAINS, default=10)
    dpi = serializers.IntegerField(min_value=50, max_value=600, default=200)


class ConfirmSerializer(serializers.Serializer):
    values = serializers.DictField(child=serializers.FloatField(allow_null=True))
    flags = serializers.ListField(child=serializers.CharField(max_length=64), default=list)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    def validate_values(self, value: dict) -> dict:
        unknown = set(value) - set(measure.MEASUREMENT_FIELDS)
        if unknown:
            raise serializers.ValidationError(f"unknown measurements: {', '.join(sorted(unknown))}")
        return value


class RecordSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    study_instance_uid = serializers.CharField(source="study.study_instance_uid")
    series_instance_uid = serializers.CharField(source="instance.series.series_instance_uid")
    sop_instance_uid = serializers.CharField()
    patient = serializers.UUIDField(source="patient.external_id", allow_null=True, default=None)
    patient_name = serializers.CharField(source="patient.name", allow_null=True, default=None)
    source_format = serializers.CharField()
    sample_rate = serializers.FloatField()
    duration = serializers.FloatField()
    leads = serializers.ListField(child=serializers.CharField())
    acquired_at = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField()
    suggested = serializers.DictField()
    flags = serializers.ListField(child=serializers.CharField())
    emergency = serializers.BooleanField()
    confirmed = serializers.DictField(allow_null=True)
    confirmed_flags = serializers.ListField(child=serializers.CharField(), allow_null=True)
    confirmed_by = serializers.CharField(
        source="confirmed_by.username", allow_null=True, default=None
    )
    confirmed_at = serializers.DateTimeField(allow_null=True)
    warnings = serializers.ListField(child=serializers.CharField())
    error = serializers.CharField()


class PriorSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="record.external_id")
    acquired_at = serializers.DateTimeField(source="record.acquired_at", allow_null=True)
    status = serializers.CharField(source="record.status")
    values = serializers.DictField()
    deltas = serializers.DictField()
