"""Input and output serializers of the chronic-care API (no business rules here)."""

from __future__ import annotations

from rest_framework import serializers

from .chronic_models import ReadingKind


class EnrolInputSerializer(serializers.Serializer):
    patient = serializers.UUIDField()
    programme = serializers.SlugField(max_length=40)


class EnrolmentSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    patient = serializers.UUIDField(source="patient.external_id")
    programme = serializers.CharField(source="programme.code")
    status = serializers.CharField()
    enrolled_on = serializers.DateField()
    next_due = serializers.DateField()
    uncontrolled_in_a_row = serializers.IntegerField()


class FollowUpInputSerializer(serializers.Serializer):
    visited_on = serializers.DateField()
    sbp = serializers.IntegerField(required=False, allow_null=True, min_value=50, max_value=300)
    dbp = serializers.IntegerField(required=False, allow_null=True, min_value=20, max_value=200)
    heart_rate = serializers.IntegerField(
        required=False, allow_null=True, min_value=20, max_value=250
    )
    fasting_glucose = serializers.DecimalField(
        max_digits=4, decimal_places=1, required=False, allow_null=True, min_value=1, max_value=40
    )
    random_glucose = serializers.DecimalField(
        max_digits=4, decimal_places=1, required=False, allow_null=True, min_value=1, max_value=40
    )
    weight = serializers.DecimalField(
        max_digits=5, decimal_places=1, required=False, allow_null=True, min_value=2, max_value=300
    )
    adverse_reaction = serializers.CharField(required=False, allow_blank=True, max_length=500)
    new_complication = serializers.CharField(required=False, allow_blank=True, max_length=500)
    face_to_face = serializers.BooleanField(required=False, default=True)


class FollowUpSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    enrolment = serializers.UUIDField(source="enrolment.external_id")
    visited_on = serializers.DateField()
    control = serializers.CharField()
    urgent = serializers.BooleanField()
    next_due = serializers.DateField()
    decision = serializers.JSONField()


class ProgrammeRulesSerializer(serializers.Serializer):
    """Only the fields sent are changed; the rest are inherited from the rules above."""

    name = serializers.CharField(required=False, max_length=100)
    condition_prefixes = serializers.ListField(
        child=serializers.CharField(max_length=8), required=False
    )
    min_visits_per_year = serializers.IntegerField(required=False, min_value=1, max_value=52)
    routine_interval_days = serializers.IntegerField(required=False, min_value=1, max_value=366)
    uncontrolled_interval_days = serializers.IntegerField(required=False, min_value=1, max_value=90)
    referral_check_days = serializers.IntegerField(required=False, min_value=1, max_value=90)
    uncontrolled_in_a_row_to_refer = serializers.IntegerField(
        required=False, min_value=1, max_value=10
    )
    sbp_controlled_below = serializers.IntegerField(required=False, allow_null=True)
    dbp_controlled_below = serializers.IntegerField(required=False, allow_null=True)
    glucose_controlled_below = serializers.DecimalField(
        max_digits=4, decimal_places=1, required=False, allow_null=True
    )
    urgent_sbp_at_least = serializers.IntegerField(required=False)
    urgent_dbp_at_least = serializers.IntegerField(required=False)
    urgent_glucose_at_least = serializers.DecimalField(
        max_digits=4, decimal_places=1, required=False
    )
    urgent_glucose_at_most = serializers.DecimalField(
        max_digits=4, decimal_places=1, required=False
    )


class ProgrammeSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    code = serializers.CharField()
    kind = serializers.CharField()
    name = serializers.CharField()
    organisation = serializers.UUIDField(source="organisation.external_id", allow_null=True)
    routine_interval_days = serializers.IntegerField()
    uncontrolled_interval_days = serializers.IntegerField()
    referral_check_days = serializers.IntegerField()
    uncontrolled_in_a_row_to_refer = serializers.IntegerField()
    sbp_controlled_below = serializers.IntegerField(allow_null=True)
    dbp_controlled_below = serializers.IntegerField(allow_null=True)
    glucose_controlled_below = serializers.DecimalField(
        max_digits=4, decimal_places=1, allow_null=True
    )


class ReadingInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ReadingKind.choices)
    value = serializers.DecimalField(max_digits=6, decimal_places=1)
    value2 = serializers.DecimalField(
        max_digits=6, decimal_places=1, required=False, allow_null=True
    )
    taken_at = serializers.DateTimeField(required=False)


class ReadingQuerySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ReadingKind.choices, required=False)
    days = serializers.IntegerField(required=False, min_value=1, max_value=3660, default=365)


class ReadingSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    kind = serializers.CharField()
    value = serializers.DecimalField(max_digits=6, decimal_places=1)
    value2 = serializers.DecimalField(max_digits=6, decimal_places=1, allow_null=True)
    taken_at = serializers.DateTimeField()
    source = serializers.CharField()


class CoverageSerializer(serializers.Serializer):
    organisation = serializers.UUIDField(source="organisation.external_id")
    organisation_name = serializers.CharField(source="organisation.name")
    group = serializers.CharField()
    people = serializers.IntegerField()
    contracted = serializers.IntegerField()
    percent = serializers.FloatField()
    target_percent = serializers.IntegerField()
    meets_target = serializers.BooleanField()
