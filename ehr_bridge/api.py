"""The HL7 message log API: search, read (raw and parsed), replay. Administrators only."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from registry.api import ORG_HEADER, StaffView

from . import mllp, outbound, parse, selectors, services
from .serializers import (
    InboundMessageDetailSerializer,
    InboundMessageSerializer,
    InboundQuerySerializer,
    LabResultQuerySerializer,
    LabResultSerializer,
    OutboundMessageDetailSerializer,
    OutboundMessageSerializer,
    OutboundQuerySerializer,
)


def _query(serializer_class: type, data: Any) -> selectors.MessageQuery:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    v = serializer.validated_data
    return selectors.MessageQuery(
        control_id=v.get("control_id"),
        patient=v.get("patient"),
        message_type=v.get("type"),
        partner=v.get("partner"),
        status=v.get("status"),
        since=v.get("since"),
        until=v.get("until"),
    )


class InboundListView(StaffView):
    @extend_schema(
        parameters=[InboundQuerySerializer, ORG_HEADER],
        responses=InboundMessageSerializer(many=True),
        summary="Search inbound HL7 messages (administrators)",
    )
    def get(self, request: Request) -> Response:
        rows = selectors.inbound_message_search(
            principal=self.principal, query=_query(InboundQuerySerializer, request.query_params)
        )
        return self.paginate(rows, InboundMessageSerializer)


class InboundDetailView(StaffView):
    @extend_schema(
        parameters=[ORG_HEADER],
        responses=InboundMessageDetailSerializer,
        summary="One inbound HL7 message: as received, parsed, acknowledgements, history",
    )
    def get(self, request: Request, message_id: str) -> Response:
        principal = self.principal
        row = selectors.inbound_message_get(principal=principal, message_id=message_id)
        try:
            segments = parse.describe(row.text)
        except mllp.MessageRejected:
            segments = []
        return Response(InboundMessageDetailSerializer(row, context={"segments": segments}).data)


class InboundReplayView(StaffView):
    @extend_schema(
        request=None,
        parameters=[ORG_HEADER],
        responses=InboundMessageSerializer,
        summary="Queue a parked, failed or unsupported inbound message again",
    )
    def post(self, request: Request, message_id: str) -> Response:
        principal = self.principal
        row = selectors.inbound_message_get(
            principal=principal,
            message_id=message_id,
            action="hl7.message.replay",
            record_access=False,
        )
        services.inbound_replay(message_id=row.id, actor=principal.actor, user=principal.user)
        row.refresh_from_db()
        return Response(InboundMessageSerializer(row).data, status=202)


class OutboundListView(StaffView):
    @extend_schema(
        parameters=[OutboundQuerySerializer, ORG_HEADER],
        responses=OutboundMessageSerializer(many=True),
        summary="Search outbound HL7 messages (administrators)",
    )
    def get(self, request: Request) -> Response:
        rows = selectors.outbound_message_search(
            principal=self.principal, query=_query(OutboundQuerySerializer, request.query_params)
        )
        return self.paginate(rows, OutboundMessageSerializer)


class OutboundDetailView(StaffView):
    @extend_schema(parameters=[ORG_HEADER], responses=OutboundMessageDetailSerializer)
    def get(self, request: Request, message_id: str) -> Response:
        row = selectors.outbound_message_get(principal=self.principal, message_id=message_id)
        return Response(OutboundMessageDetailSerializer(row).data)


class OutboundReplayView(StaffView):
    @extend_schema(
        request=None,
        parameters=[ORG_HEADER],
        responses=OutboundMessageSerializer,
        summary="Queue a dead outbound message again",
    )
    def post(self, request: Request, message_id: str) -> Response:
        principal = self.principal
        row = selectors.outbound_message_get(
            principal=principal,
            message_id=message_id,
            action="hl7.outbound.replay",
            record_access=False,
        )
        row = outbound.outbound_replay(message_id=row.id, actor=principal.actor)
        return Response(OutboundMessageSerializer(row).data, status=202)


class LabResultListView(StaffView):
    @extend_schema(
        parameters=[LabResultQuerySerializer, ORG_HEADER],
        responses=LabResultSerializer(many=True),
        summary="A patient's lab results received from hospital systems (ORU^R01)",
    )
    def get(self, request: Request, patient_id: str) -> Response:
        query = LabResultQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = selectors.lab_result_list(
            principal=self.principal,
            patient_id=patient_id,
            history=query.validated_data["history"],
        )
        return self.paginate(rows.select_related("partner"), LabResultSerializer)
