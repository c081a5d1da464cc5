"""Input serializers parse; output serializers render. No business rules here."""

from __future__ import annotations

from rest_framework import serializers

from .models import (
    Booking,
    ExceptionKind,
    HolidayOverride,
    Schedule,
    Slot,
    VisitType,
    Weekday,
    WeeklyTemplate,
)
from .states import BookingStatus

# --- input ---


class ScheduleCreateSerializer(serializers.Serializer):
    organisation = serializers.UUIDField()
    name = serializers.CharField(max_length=200)
    department = serializers.CharField(max_length=100, required=False, default="")
    approval_required = serializers.BooleanField(required=False, default=False)
    observes_holidays = serializers.BooleanField(required=False, default=True)
    adjusted_workday_as = serializers.ChoiceField(
        choices=Weekday.choices, required=False, default=0
    )


class TemplateInputSerializer(serializers.Serializer):
    weekday = serializers.ChoiceField(choices=Weekday.choices)
    start = serializers.TimeField()
    end = serializers.TimeField()
    slot_minutes = serializers.IntegerField(min_value=5, max_value=480)
    capacity = serializers.IntegerField(min_value=1, max_value=500, default=1)
    visit_type = serializers.ChoiceField(choices=VisitType.choices)
    is_active = serializers.BooleanField(required=False, default=True)


class ExceptionInputSerializer(serializers.Serializer):
    organisation = serializers.UUIDField()
    schedule = serializers.UUIDField(required=False, allow_null=True)
    kind = serializers.ChoiceField(choices=ExceptionKind.choices)
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    reason = serializers.CharField(max_length=200, required=False, default="")


class HolidayInputSerializer(serializers.Serializer):
    date = serializers.DateField()
    is_workday = serializers.BooleanField()
    name = serializers.CharField(max_length=100, required=False, default="")
    works_as_weekday = serializers.ChoiceField(
        choices=Weekday.choices, required=False, allow_null=True, default=None
    )


class HolidayQuerySerializer(serializers.Serializer):
    date_from = serializers.DateField()
    date_to = serializers.DateField()


class SlotQuerySerializer(serializers.Serializer):
    organisation = serializers.UUIDField(required=False)
    schedule = serializers.UUIDField(required=False)
    visit_type = serializers.ChoiceField(choices=VisitType.choices, required=False)
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    available = serializers.BooleanField(required=False, default=True)


class BookingCreateSerializer(serializers.Serializer):
    patient = serializers.UUIDField()
    slot = serializers.UUIDField()
    note = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class RecurringCreateSerializer(BookingCreateSerializer):
    interval_weeks = serializers.IntegerField(min_value=1, max_value=52)
    until = serializers.DateField()


class BookingQuerySerializer(serializers.Serializer):
    patient = serializers.UUIDField(required=False)
    day = serializers.DateField(required=False)
    status = serializers.ChoiceField(choices=BookingStatus.choices, required=False)


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class RescheduleSerializer(serializers.Serializer):
    slot = serializers.UUIDField()


class StatusChangeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[
            BookingStatus.CONFIRMED,
            BookingStatus.REJECTED,
            BookingStatus.CHECKED_IN,
            BookingStatus.NO_SHOW,
            BookingStatus.COMPLETED,
        ]
    )
    reason = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class WaitlistJoinSerializer(serializers.Serializer):
    patient = serializers.UUIDField()
    schedule = serializers.UUIDField()
    visit_type = serializers.ChoiceField(choices=VisitType.choices)
    earliest = serializers.DateField()
    latest = serializers.DateField()


class DueQuerySerializer(serializers.Serializer):
    days_ahead = serializers.IntegerField(min_value=0, max_value=90, required=False, default=7)


# --- output ---


class TemplateSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id", read_only=True)

    class Meta:
        model = WeeklyTemplate
        fields = [
            "id",
            "weekday",
            "start",
            "end",
            "slot_minutes",
            "capacity",
            "visit_type",
            "is_active",
        ]


class ScheduleSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id", read_only=True)
    organisation = serializers.UUIDField(source="organisation.external_id", read_only=True)
    organisation_name = serializers.CharField(source="organisation.name", read_only=True)
    templates = TemplateSerializer(many=True, read_only=True)

    class Meta:
        model = Schedule
        fields = [
            "id",
            "organisation",
            "organisation_name",
            "department",
            "name",
            "approval_required",
            "observes_holidays",
            "adjusted_workday_as",
            "is_active",
            "templates",
        ]


class SlotSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id", read_only=True)
    schedule = serializers.UUIDField(source="schedule.external_id", read_only=True)
    organisation = serializers.UUIDField(source="schedule.organisation.external_id")
    organisation_name = serializers.CharField(source="schedule.organisation.name")
    free = serializers.SerializerMethodField()

    class Meta:
        model = Slot
        fields = [
            "id",
            "schedule",
            "organisation",
            "organisation_name",
            "starts_at",
            "ends_at",
            "visit_type",
            "capacity",
            "free",
            "status",
        ]

    def get_free(self, slot: Slot) -> int:
        return max(0, slot.capacity - slot.booked)


class BookingSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id", read_only=True)
    patient = serializers.UUIDField(source="patient.external_id")
    patient_name = serializers.CharField(source="patient.name")
    slot = serializers.UUIDField(source="slot.external_id")
    ends_at = serializers.DateTimeField(source="slot.ends_at")
    schedule = serializers.UUIDField(source="slot.schedule.external_id")
    organisation = serializers.UUIDField(source="organisation.external_id")
    organisation_name = serializers.CharField(source="organisation.name")
    rescheduled_from = serializers.SerializerMethodField()

    class Meta:
        model = Booking
        fields = [
            "id",
            "patient",
            "patient_name",
            "slot",
            "schedule",
            "organisation",
            "organisation_name",
            "visit_type",
            "starts_at",
            "ends_at",
            "day",
            "status",
            "channel",
            "note",
            "cancel_reason",
            "rescheduled_from",
            "created_at",
        ]

    def get_rescheduled_from(self, booking: Booking) -> str | None:
        return str(booking.rescheduled_from.external_id) if booking.rescheduled_from_id else None


class HolidaySerializer(serializers.ModelSerializer):
    class Meta:
        model = HolidayOverride
        fields = ["date", "is_workday", "name", "works_as_weekday"]


class DayKindSerializer(serializers.Serializer):
    date = serializers.DateField(source="day")
    statutory_holiday = serializers.BooleanField()
    adjusted_workday = serializers.BooleanField()
    name = serializers.CharField()
    works_as = serializers.IntegerField(allow_null=True)


class WaitlistEntrySerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    patient = serializers.UUIDField(source="patient.external_id")
    schedule = serializers.UUIDField(source="schedule.external_id")
    visit_type = serializers.CharField()
    earliest = serializers.DateField()
    latest = serializers.DateField()
    status = serializers.CharField()
    hold_expires_at = serializers.DateTimeField(allow_null=True)


class SeriesSerializer(serializers.Serializer):
    series = serializers.UUIDField()
    bookings = BookingSerializer(many=True)
    skipped = serializers.ListField(child=serializers.DictField())


class DueItemSerializer(serializers.Serializer):
    patient = serializers.UUIDField(source="patient.external_id")
    patient_name = serializers.CharField(source="patient.name")
    mobile = serializers.CharField(source="patient.mobile")
    chronic_conditions = serializers.ListField(source="patient.chronic_conditions")
    last_visit = serializers.DateField(allow_null=True)
    due_on = serializers.DateField()
    overdue = serializers.BooleanField()
    missed_recently = serializers.BooleanField()
