"""Input and output shapes of the HL7 message log API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .models import InboundMessage, InboundStatus, LabResult, OutboundMessage, OutboundStatus


class MessageQuerySerializer(serializers.Serializer):
    control_id = serializers.CharField(max_length=199, required=False)
    patient = serializers.CharField(
        max_length=255, required=False, help_text="Patient ID, or an identifier value (MRN)."
    )
    type = serializers.CharField(max_length=16, required=False, help_text='"ADT" or "ADT^A04"')
    partner = serializers.UUIDField(required=False)
    status = serializers.CharField(max_length=20, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class InboundQuerySerializer(MessageQuerySerializer):
    status = serializers.ChoiceField(choices=InboundStatus.choices, required=False)


class OutboundQuerySerializer(MessageQuerySerializer):
    status = serializers.ChoiceField(choices=OutboundStatus.choices, required=False)


class PartnerRefSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    name = serializers.CharField()


def _decode(value: bytes | memoryview | None, codec: str) -> str | None:
    if value is None:
        return None
    return bytes(value).decode(codec or "ascii", errors="replace")


class InboundMessageSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id")
    partner = PartnerRefSerializer(allow_null=True)
    patient = serializers.SerializerMethodField()

    class Meta:
        model = InboundMessage
        fields = [
            "id",
            "control_id",
            "message_type",
            "trigger_event",
            "version",
            "partner",
            "sending_application",
            "sending_facility",
            "charset",
            "size",
            "received_at",
            "status",
            "ack_code",
            "attempts",
            "error",
            "processed_at",
            "patient",
        ]

    def get_patient(self, obj: InboundMessage) -> str | None:
        return str(obj.patient.external_id) if obj.patient_id else None


class InboundEventSerializer(serializers.Serializer):
    kind = serializers.CharField()
    at = serializers.DateTimeField()
    detail = serializers.CharField()


class InboundMessageDetailSerializer(InboundMessageSerializer):
    raw = serializers.CharField(source="text", help_text="The message as received, decoded.")
    segments = serializers.SerializerMethodField()
    ack = serializers.SerializerMethodField()
    application_ack = serializers.SerializerMethodField()
    events = InboundEventSerializer(many=True)

    class Meta(InboundMessageSerializer.Meta):
        fields = [
            *InboundMessageSerializer.Meta.fields,
            "codec",
            "peer",
            "raw",
            "segments",
            "ack",
            "application_ack",
            "events",
        ]

    def get_segments(self, obj: InboundMessage) -> list[dict[str, Any]]:
        return self.context["segments"]

    def get_ack(self, obj: InboundMessage) -> str | None:
        return _decode(obj.ack, obj.codec)

    def get_application_ack(self, obj: InboundMessage) -> str | None:
        return _decode(obj.application_ack, obj.codec)


class OutboundMessageSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id")
    partner = PartnerRefSerializer()

    class Meta:
        model = OutboundMessage
        fields = [
            "id",
            "partner",
            "event_type",
            "patient_key",
            "control_id",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "ack_code",
            "created_at",
            "sent_at",
            "acked_at",
        ]


class OutboundMessageDetailSerializer(OutboundMessageSerializer):
    payload = serializers.SerializerMethodField()
    ack = serializers.SerializerMethodField()

    class Meta(OutboundMessageSerializer.Meta):
        fields = [*OutboundMessageSerializer.Meta.fields, "codec", "payload", "ack"]

    def get_payload(self, obj: OutboundMessage) -> str:
        return bytes(obj.payload).decode(obj.codec, errors="replace")

    def get_ack(self, obj: OutboundMessage) -> str | None:
        return _decode(obj.ack, "latin-1")


class LabResultQuerySerializer(serializers.Serializer):
    history = serializers.BooleanField(
        required=False, default=False, help_text="Include results replaced by a correction."
    )


class LabResultSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id", read_only=True)
    partner = serializers.CharField(source="partner.name", read_only=True)
    replaces = serializers.SerializerMethodField()

    class Meta:
        model = LabResult
        fields = [
            "id",
            "partner",
            "placer_order_number",
            "filler_order_number",
            "order_code",
            "order_text",
            "code",
            "coding_system",
            "text",
            "sub_id",
            "value_type",
            "value",
            "units",
            "reference_range",
            "abnormal_flag",
            "status",
            "observed_at",
            "is_current",
            "replaces",
            "created_at",
        ]

    def get_replaces(self, row: LabResult) -> str | None:
        return str(row.replaces.external_id) if row.replaces_id else None
