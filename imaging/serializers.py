"""Output and input shapes of the imaging REST API (DICOMweb has its own, PS3.18)."""

from __future__ import annotations

from rest_framework import serializers

from registry.serializers import OrganisationRefSerializer

from .models import Study


class StudyPatientSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    name = serializers.CharField()


class StudySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id")
    organisation = OrganisationRefSerializer()
    patient = StudyPatientSerializer(allow_null=True)

    class Meta:
        model = Study
        fields = [
            "id",
            "study_instance_uid",
            "patient",
            "organisation",
            "dicom_patient_id",
            "dicom_patient_name",
            "patient_birth_date",
            "patient_sex",
            "study_date",
            "study_time",
            "accession_number",
            "study_description",
            "modalities",
            "number_of_series",
            "number_of_instances",
            "received_at",
        ]


class StudyListQuerySerializer(serializers.Serializer):
    unmatched = serializers.BooleanField(required=False, default=False)
    since = serializers.DateTimeField(required=False)
    patient = serializers.UUIDField(required=False)


class ReconcileSerializer(serializers.Serializer):
    patient = serializers.UUIDField()


class ExportQuerySerializer(serializers.Serializer):
    date_shift_days = serializers.IntegerField(required=False, min_value=-3650, max_value=3650)
