"""Input serializers parse; output serializers render. No rules live here."""

from __future__ import annotations

from rest_framework import serializers

from .models import (
    AuditEvent,
    Consent,
    ConsentKind,
    ConsentMethod,
    IdentifierKind,
    Organisation,
    Patient,
    Sex,
)

# --- input -----------------------------------------------------------------------------------


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False)
    otp = serializers.CharField(max_length=12, required=False, allow_blank=True)


class IdentifierInputSerializer(serializers.Serializer):
    authority = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(choices=IdentifierKind.choices)
    value = serializers.CharField(max_length=64)


class PatientCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    name_pinyin = serializers.CharField(max_length=200, required=False, allow_blank=True)
    sex = serializers.ChoiceField(choices=Sex.choices, required=False)
    birth_date = serializers.DateField(required=False)
    id_number = serializers.CharField(max_length=18, required=False, allow_blank=True)
    mobile = serializers.CharField(max_length=20, required=False, allow_blank=True)
    address = serializers.CharField(max_length=255, required=False, allow_blank=True)
    address_division_code = serializers.CharField(max_length=6, required=False, allow_blank=True)
    home_organisation = serializers.UUIDField(required=False)
    chronic_conditions = serializers.ListField(
        child=serializers.CharField(max_length=16), required=False, max_length=50
    )
    identifiers = IdentifierInputSerializer(many=True, required=False)


class PatientUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    name_pinyin = serializers.CharField(max_length=200, required=False, allow_blank=True)
    sex = serializers.ChoiceField(choices=Sex.choices, required=False)
    birth_date = serializers.DateField(required=False)
    id_number = serializers.CharField(max_length=18, required=False, allow_blank=True)
    mobile = serializers.CharField(max_length=20, required=False, allow_blank=True)
    address = serializers.CharField(max_length=255, required=False, allow_blank=True)
    address_division_code = serializers.CharField(max_length=6, required=False, allow_blank=True)
    chronic_conditions = serializers.ListField(
        child=serializers.CharField(max_length=16), required=False, max_length=50
    )
    identifiers = IdentifierInputSerializer(many=True, required=False)


class PatientSearchSerializer(serializers.Serializer):
    id_number = serializers.CharField(max_length=18, required=False)
    name = serializers.CharField(max_length=100, required=False)
    mobile = serializers.CharField(max_length=20, required=False)
    identifier = serializers.CharField(max_length=64, required=False)
    chronic_condition = serializers.CharField(max_length=16, required=False)


class ProbableMatchQuerySerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    birth_date = serializers.DateField(required=False)
    mobile = serializers.CharField(max_length=20, required=False)


class ConsentCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ConsentKind.choices)
    method = serializers.ChoiceField(choices=ConsentMethod.choices)
    organisation = serializers.UUIDField(required=False)
    note = serializers.CharField(max_length=500, required=False, allow_blank=True)
    granted_at = serializers.DateTimeField(required=False)


class ConsentRevokeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class BreakGlassSerializer(serializers.Serializer):
    patient = serializers.UUIDField(required=False)
    id_number = serializers.CharField(max_length=18, required=False)
    reason = serializers.CharField(max_length=500)

    def validate(self, attrs: dict) -> dict:
        if not attrs.get("patient") and not attrs.get("id_number"):
            raise serializers.ValidationError("Give the patient's ID or resident ID number.")
        return attrs


class AuditQuerySerializer(serializers.Serializer):
    patient = serializers.UUIDField(required=False)
    action = serializers.CharField(max_length=64, required=False)
    outcome = serializers.CharField(max_length=16, required=False)
    actor = serializers.CharField(max_length=150, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


# --- output ----------------------------------------------------------------------------------


class OrganisationRefSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    name = serializers.CharField()
    kind = serializers.CharField()


class OrganisationSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id")
    parent = serializers.SerializerMethodField()
    dicom_ae_titles = serializers.SerializerMethodField()
    hl7_facilities = serializers.SerializerMethodField()

    class Meta:
        model = Organisation
        fields = [
            "id",
            "name",
            "kind",
            "parent",
            "division_code",
            "services",
            "dicom_ae_titles",
            "hl7_facilities",
        ]

    def get_parent(self, obj: Organisation) -> str | None:
        return str(obj.parent.external_id) if obj.parent_id else None

    def get_dicom_ae_titles(self, obj: Organisation) -> list[str]:
        return [ae.ae_title for ae in obj.dicom_aes.all()]

    def get_hl7_facilities(self, obj: Organisation) -> list[str]:
        return [f.code for f in obj.hl7_facilities.all()]


class IdentifierSerializer(serializers.Serializer):
    authority = serializers.CharField()
    kind = serializers.CharField()
    value = serializers.CharField()


class PatientSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id")
    home_organisation = OrganisationRefSerializer()
    identifiers = IdentifierSerializer(many=True)

    class Meta:
        model = Patient
        fields = [
            "id",
            "name",
            "name_pinyin",
            "sex",
            "birth_date",
            "id_number",
            "mobile",
            "address",
            "address_division_code",
            "home_organisation",
            "chronic_conditions",
            "identifiers",
            "created_at",
            "updated_at",
        ]


class ProbableMatchSerializer(serializers.Serializer):
    patient = PatientSerializer()
    score = serializers.IntegerField()
    reasons = serializers.ListField(child=serializers.CharField())


class ConsentSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id")
    patient = serializers.UUIDField(source="patient.external_id")
    organisation = serializers.SerializerMethodField()
    recorded_by = serializers.CharField(source="recorded_by.username")
    revoked_by = serializers.SerializerMethodField()
    active = serializers.SerializerMethodField()

    class Meta:
        model = Consent
        fields = [
            "id",
            "patient",
            "kind",
            "method",
            "organisation",
            "note",
            "granted_at",
            "recorded_by",
            "revoked_at",
            "revoked_by",
            "revoke_reason",
            "active",
        ]

    def get_organisation(self, obj: Consent) -> str | None:
        return str(obj.organisation.external_id) if obj.organisation_id else None

    def get_revoked_by(self, obj: Consent) -> str | None:
        return obj.revoked_by.username if obj.revoked_by_id else None

    def get_active(self, obj: Consent) -> bool:
        return obj.revoked_at is None


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "occurred_at",
            "actor_username",
            "actor_role",
            "action",
            "object_type",
            "object_id",
            "patient_id",
            "client_address",
            "request_id",
            "outcome",
            "detail",
        ]


class MembershipSerializer(serializers.Serializer):
    organisation = OrganisationRefSerializer()
    role = serializers.CharField()


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    display_name = serializers.CharField()
    licence_number = serializers.CharField()
    professional_title = serializers.CharField()
    specialties = serializers.ListField(child=serializers.CharField())
    acting_organisation = OrganisationRefSerializer()
    acting_role = serializers.CharField()
    memberships = MembershipSerializer(many=True)
    second_factor_required = serializers.BooleanField()
