"""Input serializers parse; output serializers render. No rules live here."""

from __future__ import annotations

from rest_framework import serializers

from registry.models import ProfessionalTitle, Service
from registry.serializers import OrganisationRefSerializer

from .models import (
    AttachmentKind,
    ConsultRequest,
    ConsultType,
    CriticalValueAlert,
    RecommendationKind,
    Referral,
    ReferralState,
    Report,
    Urgency,
)

# --- input -----------------------------------------------------------------------------------


class ConsultWriteSerializer(serializers.Serializer):
    consult_type = serializers.ChoiceField(choices=ConsultType.choices, required=False)
    urgency = serializers.ChoiceField(choices=Urgency.choices, required=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=4000)
    proposed_time = serializers.DateTimeField(required=False, allow_null=True)
    record_summary = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    wanted_specialty = serializers.ChoiceField(
        choices=Service.choices, required=False, allow_blank=True
    )
    minimum_title = serializers.ChoiceField(
        choices=ProfessionalTitle.choices, required=False, allow_blank=True
    )
    clinical_question = serializers.CharField(required=False, allow_blank=True, max_length=4000)
    vital_signs = serializers.DictField(required=False)
    consent = serializers.UUIDField(required=False, allow_null=True)


class ConsultCreateSerializer(ConsultWriteSerializer):
    patient = serializers.UUIDField()
    consult_type = serializers.ChoiceField(choices=ConsultType.choices)


class ConsultUpdateSerializer(ConsultWriteSerializer):
    version = serializers.IntegerField(required=False, min_value=1)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, allow_blank=True, required=False, default="")


class ReasonRequiredSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class ReassignSerializer(serializers.Serializer):
    assignee = serializers.UUIDField(allow_null=True, help_text="Staff ID; null: back to queue")


class ReportWriteSerializer(serializers.Serializer):
    findings = serializers.CharField(allow_blank=True, required=False, default="")
    impression = serializers.CharField(allow_blank=True, required=False, default="")
    recommendations = serializers.CharField(allow_blank=True, required=False, default="")
    structured = serializers.JSONField(
        required=False,
        default=dict,
        help_text="Sections of the consult type: ECG rhythm, rate, axis, pr_ms, qrs_ms, qt_ms, "
        "qtc_ms, st_t, conclusion; imaging examination, comparison; pathology gross, "
        "microscopic, diagnosis",
    )
    icd10_codes = serializers.ListField(
        child=serializers.CharField(max_length=16), required=False, default=list, max_length=10
    )
    recommendation_kind = serializers.ChoiceField(
        choices=RecommendationKind.choices, required=False, allow_blank=True, default=""
    )
    follow_up_days = serializers.IntegerField(required=False, allow_null=True, default=None)


class SignSerializer(serializers.Serializer):
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class StudyAttachSerializer(serializers.Serializer):
    study_instance_uid = serializers.CharField(max_length=64)


class UploadStartSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=[c for c in AttachmentKind.choices if c[0] != AttachmentKind.STUDY]
    )
    filename = serializers.CharField(max_length=200)
    size = serializers.IntegerField(min_value=1)


class CriticalRaiseSerializer(serializers.Serializer):
    finding_code = serializers.CharField(max_length=64)
    note = serializers.CharField(max_length=500, allow_blank=True, required=False, default="")


class OutcomeSerializer(serializers.Serializer):
    outcome = serializers.CharField(max_length=2000)


class WorklistQuerySerializer(serializers.Serializer):
    which = serializers.ChoiceField(choices=["mine", "unassigned"], default="mine")


class ConsultListQuerySerializer(serializers.Serializer):
    state = serializers.CharField(required=False)
    clinic = serializers.BooleanField(required=False, default=False)


class StatisticsQuerySerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


# --- output ----------------------------------------------------------------------------------


class OrgRefSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    name = serializers.CharField()


class PersonRefSerializer(serializers.Serializer):
    username = serializers.CharField(source="get_username")
    display_name = serializers.SerializerMethodField()

    def get_display_name(self, user) -> str:  # type: ignore[no-untyped-def]
        staff = getattr(user, "staff", None)
        return staff.display_name if staff else user.get_username()


class PatientRefSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    name = serializers.CharField()
    sex = serializers.CharField()
    birth_date = serializers.DateField()


class ConsultSummarySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id")
    patient = PatientRefSerializer()
    requesting_organisation = OrgRefSerializer()
    centre = OrgRefSerializer(allow_null=True)
    requester = PersonRefSerializer()
    assignee = PersonRefSerializer(allow_null=True)

    class Meta:
        model = ConsultRequest
        fields = [
            "id",
            "consult_type",
            "urgency",
            "state",
            "patient",
            "requesting_organisation",
            "requester",
            "centre",
            "queue",
            "assignee",
            "accept_by",
            "report_by",
            "submitted_at",
            "created_at",
            "version",
        ]


class AttachmentSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    kind = serializers.CharField()
    study_instance_uid = serializers.CharField()
    study_resolved = serializers.SerializerMethodField()
    filename = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    received_bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    status = serializers.CharField()

    def get_study_resolved(self, obj) -> bool:  # type: ignore[no-untyped-def]
        return obj.study_id is not None


class TransitionSerializer(serializers.Serializer):
    from_state = serializers.CharField()
    to_state = serializers.CharField()
    action = serializers.CharField()
    actor = serializers.CharField(source="actor_label")
    at = serializers.DateTimeField()
    reason = serializers.CharField()


class ReportSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id")
    previous = serializers.UUIDField(source="previous.external_id", allow_null=True)
    author = PersonRefSerializer()
    signed_by = PersonRefSerializer(allow_null=True)
    pdf = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = [
            "id",
            "version",
            "previous",
            "status",
            "findings",
            "impression",
            "recommendations",
            "structured",
            "icd10_codes",
            "recommendation_kind",
            "follow_up_days",
            "amendment_reason",
            "author",
            "signed_by",
            "signed_at",
            "content_hash",
            "pdf",
        ]

    def get_pdf(self, obj: Report) -> str | None:
        if obj.status != "signed":
            return None
        return f"/api/v1/consult/consults/{obj.consult.external_id}/reports/{obj.version}.pdf"


class ReferralListQuerySerializer(serializers.Serializer):
    side = serializers.ChoiceField(choices=["incoming", "outgoing"], required=False)
    state = serializers.ChoiceField(choices=ReferralState.choices, required=False)


class HandBackSerializer(serializers.Serializer):
    care_plan = serializers.CharField(max_length=8000)
    back_to = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="Organisation: the referring clinic (default) or the township centre above it",
    )


class ReferralSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id")
    consult = serializers.UUIDField(source="consult.external_id")
    report_version = serializers.IntegerField(source="report.version")
    patient = serializers.SerializerMethodField()
    from_organisation = OrganisationRefSerializer()
    to_organisation = OrganisationRefSerializer()
    back_to_organisation = OrganisationRefSerializer(allow_null=True)
    requested_by = PersonRefSerializer()
    accepted_by = PersonRefSerializer(allow_null=True)
    handed_back_by = PersonRefSerializer(allow_null=True)

    class Meta:
        model = Referral
        fields = [
            "id",
            "consult",
            "report_version",
            "patient",
            "from_organisation",
            "to_organisation",
            "reason",
            "state",
            "requested_by",
            "created_at",
            "accepted_by",
            "accepted_at",
            "handed_back_by",
            "handed_back_at",
            "back_to_organisation",
            "care_plan",
        ]

    def get_patient(self, obj: Referral) -> dict[str, str]:
        return {"id": str(obj.patient.external_id), "name": obj.patient.name}


class CriticalValueSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id")
    consult = serializers.UUIDField(source="consult.external_id")
    patient = PatientRefSerializer(source="consult.patient")
    raised_by = PersonRefSerializer()
    acknowledged_by = PersonRefSerializer(allow_null=True)
    minutes_to_acknowledge = serializers.SerializerMethodField()
    finding = serializers.SerializerMethodField()

    class Meta:
        model = CriticalValueAlert
        fields = [
            "id",
            "consult",
            "patient",
            "finding_code",
            "finding",
            "note",
            "status",
            "raised_by",
            "raised_at",
            "acknowledge_by",
            "acknowledged_at",
            "acknowledged_by",
            "minutes_to_acknowledge",
            "escalation_level",
            "outcome",
            "outcome_recorded_at",
        ]

    def get_minutes_to_acknowledge(self, obj) -> float | None:  # type: ignore[no-untyped-def]
        if obj.acknowledged_at is None:
            return None
        return round((obj.acknowledged_at - obj.raised_at).total_seconds() / 60, 1)

    def get_finding(self, obj) -> str:  # type: ignore[no-untyped-def]
        from .critical import finding_label

        return finding_label(obj.finding_code)


class ConsultDetailSerializer(ConsultSummarySerializer):
    attachments = AttachmentSerializer(many=True, source="_attachments")
    transitions = TransitionSerializer(many=True, source="_transitions")
    reports = ReportSerializer(many=True, source="_reports")
    critical_values = CriticalValueSerializer(many=True, source="_critical_values")
    allowed_transitions = serializers.ListField(child=serializers.CharField(), source="_allowed")
    critical_findings = serializers.ListField(
        child=serializers.CharField(), source="_critical_findings"
    )

    class Meta(ConsultSummarySerializer.Meta):
        fields = [
            *ConsultSummarySerializer.Meta.fields,
            "reason",
            "proposed_time",
            "record_summary",
            "wanted_specialty",
            "minimum_title",
            "clinical_question",
            "vital_signs",
            "decline_reason",
            "return_reason",
            "cancel_reason",
            "accepted_at",
            "started_at",
            "reported_at",
            "signed_at",
            "delivered_at",
            "closed_at",
            "attachments",
            "transitions",
            "reports",
            "critical_values",
            "allowed_transitions",
            "critical_findings",
        ]


class UploadStateSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    status = serializers.CharField()
    size = serializers.IntegerField()
    received_bytes = serializers.IntegerField()
    content_type = serializers.CharField()
    sha256 = serializers.CharField()


class TurnaroundSerializer(serializers.Serializer):
    centre = serializers.CharField()
    specialty = serializers.CharField()
    reader = serializers.CharField()
    consults = serializers.IntegerField()
    reported = serializers.IntegerField()
    median_minutes = serializers.FloatField(allow_null=True)
    accept_met = serializers.IntegerField()
    accept_missed = serializers.IntegerField()
    report_met = serializers.IntegerField()
    report_missed = serializers.IntegerField()


class ClinicRateSerializer(serializers.Serializer):
    clinic = serializers.CharField()
    submitted = serializers.IntegerField()
    returned = serializers.IntegerField()
    declined = serializers.IntegerField()
    returned_rate = serializers.FloatField()


class DeclineReasonSerializer(serializers.Serializer):
    reason = serializers.CharField()
    count = serializers.IntegerField()


class StatisticsSerializer(serializers.Serializer):
    turnaround = TurnaroundSerializer(many=True)
    decline_reasons = DeclineReasonSerializer(many=True)
    clinics = ClinicRateSerializer(many=True)
