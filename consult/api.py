"""REST API of consults: parse, call one service or selector, render."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from registry.api import ORG_HEADER, StaffView, _valid
from registry.errors import ValidationFailed

from . import critical, live, offers, precall, referrals, selectors, services, uploads
from .access import consults_visible_to
from .report_pdf import render_report_pdf
from .serializers import (
    AttachmentSerializer,
    ConsultCreateSerializer,
    ConsultDetailSerializer,
    ConsultListQuerySerializer,
    ConsultSummarySerializer,
    ConsultUpdateSerializer,
    CriticalRaiseSerializer,
    CriticalValueSerializer,
    HandBackSerializer,
    OutcomeSerializer,
    ReasonRequiredSerializer,
    ReasonSerializer,
    ReassignSerializer,
    ReferralListQuerySerializer,
    ReferralSerializer,
    ReportSerializer,
    ReportWriteSerializer,
    SignSerializer,
    StatisticsQuerySerializer,
    StatisticsSerializer,
    StudyAttachSerializer,
    UploadStartSerializer,
    UploadStateSerializer,
    WorklistQuerySerializer,
)
from .turn import ice_servers_for


def _input(data: dict[str, Any]) -> services.ConsultInput:
    return services.ConsultInput(
        consult_type=data.get("consult_type"),
        urgency=data.get("urgency"),
        reason=data.get("reason"),
        proposed_time=data.get("proposed_time"),
        record_summary=data.get("record_summary"),
        wanted_specialty=data.get("wanted_specialty"),
        minimum_title=data.get("minimum_title"),
        clinical_question=data.get("clinical_question"),
        vital_signs=data.get("vital_signs"),
        consent_id=data.get("consent"),
    )


def _detail(view: StaffView, consult_id: Any) -> Response:
    detail = selectors.consult_detail(principal=view.principal, consult_id=consult_id)
    consult = detail.consult
    consult._attachments = detail.attachments
    consult._transitions = detail.transitions
    consult._reports = detail.reports
    consult._critical_values = detail.critical_values
    consult._allowed = detail.allowed
    consult._critical_findings = detail.critical_findings
    return Response(ConsultDetailSerializer(consult).data)


class ConsultListView(StaffView):
    @extend_schema(
        parameters=[ConsultListQuerySerializer, ORG_HEADER],
        responses=ConsultSummarySerializer(many=True),
        summary="My consult requests (clinic=true: every request of my organisation's tree)",
    )
    def get(self, request: Request) -> Response:
        query = _valid(ConsultListQuerySerializer, request.query_params)
        consults = selectors.consult_list_requested(
            principal=self.principal, state=query.get("state"), clinic=query["clinic"]
        )
        return self.paginate(consults, ConsultSummarySerializer)

    @extend_schema(
        request=ConsultCreateSerializer,
        responses={201: ConsultDetailSerializer},
        parameters=[ORG_HEADER],
        summary="Create a draft consult request",
    )
    def post(self, request: Request) -> Response:
        data = _valid(ConsultCreateSerializer, request.data)
        consult = services.consult_create(
            principal=self.principal, patient_id=data["patient"], data=_input(data)
        )
        response = _detail(self, consult.external_id)
        response.status_code = status.HTTP_201_CREATED
        return response


class ConsultDetailView(StaffView):
    @extend_schema(responses=ConsultDetailSerializer, parameters=[ORG_HEADER])
    def get(self, request: Request, consult_id: str) -> Response:
        return _detail(self, consult_id)

    @extend_schema(
        request=ConsultUpdateSerializer,
        responses=ConsultDetailSerializer,
        parameters=[ORG_HEADER],
        summary="Edit a draft or returned request (send the version you saw)",
    )
    def patch(self, request: Request, consult_id: str) -> Response:
        data = _valid(ConsultUpdateSerializer, request.data)
        services.consult_update(
            principal=self.principal,
            consult_id=consult_id,
            data=_input(data),
            version=data.get("version"),
        )
        return _detail(self, consult_id)


class WorklistView(StaffView):
    @extend_schema(
        parameters=[WorklistQuerySerializer, ORG_HEADER],
        responses=ConsultSummarySerializer(many=True),
        summary="Specialist worklist: mine, or unassigned at my centre; urgent and due first",
    )
    def get(self, request: Request) -> Response:
        query = _valid(WorklistQuerySerializer, request.query_params)
        return self.paginate(
            selectors.worklist(principal=self.principal, which=query["which"]),
            ConsultSummarySerializer,
        )


def _action_view(service: Any, serializer: type | None, summary: str, **fixed: Any) -> type:
    """A POST endpoint for one transition service; answers with the consult's detail."""

    class ActionView(StaffView):
        @extend_schema(
            request=serializer,
            responses={200: ConsultDetailSerializer},
            parameters=[ORG_HEADER],
            summary=summary,
        )
        def post(self, request: Request, consult_id: str) -> Response:
            kwargs = dict(fixed)
            if serializer is not None:
                kwargs.update(_valid(serializer, request.data))
            consult = service(principal=self.principal, consult_id=consult_id, **kwargs)
            if not consults_visible_to(self.principal).filter(pk=consult.pk).exists():
                # Re-routed away from the actor's centre: only the outcome is theirs to see.
                return Response({"id": str(consult.external_id), "state": consult.state})
            return _detail(self, consult_id)

    ActionView.__name__ = f"{service.__name__.title().replace('_', '')}View"
    ActionView.__qualname__ = ActionView.__name__
    return ActionView


SubmitView = _action_view(services.consult_submit, None, "Submit a draft: route it to a centre")
ResubmitView = _action_view(
    services.consult_submit, None, "Resubmit a returned or declined request"
)
AcceptView = _action_view(services.consult_accept, None, "Accept (qualified centre specialist)")
DeclineView = _action_view(
    services.consult_decline, ReasonRequiredSerializer, "Decline with a reason (re-routes)"
)
ReturnView = _action_view(
    services.consult_return, ReasonRequiredSerializer, "Return for more information"
)
StartView = _action_view(services.consult_start, None, "Start reading")
DeliverView = _action_view(services.consult_deliver, None, "Deliver the signed report")
CloseView = _action_view(services.consult_close, None, "Close")
CancelView = _action_view(services.consult_cancel, ReasonSerializer, "Cancel")


class ReassignView(StaffView):
    @extend_schema(
        request=ReassignSerializer,
        responses=ConsultDetailSerializer,
        parameters=[ORG_HEADER],
        summary="Coordinator: give the consult to a specialist (or back to the queue)",
    )
    def post(self, request: Request, consult_id: str) -> Response:
        data = _valid(ReassignSerializer, request.data)
        services.consult_reassign(
            principal=self.principal, consult_id=consult_id, assignee_id=data.get("assignee")
        )
        return _detail(self, consult_id)


class PdfRenderer(BaseRenderer):
    """Lets a client ask for ``Accept: application/pdf``; the view answers with the bytes
    itself, and an error body is still JSON."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None

    def render(self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None):  # type: ignore[no-untyped-def]
        if isinstance(data, bytes):
            return data
        return json.dumps(data, ensure_ascii=False).encode()


class ReportPdfView(StaffView):
    renderer_classes = [JSONRenderer, PdfRenderer]

    @extend_schema(
        responses={(200, "application/pdf"): OpenApiTypes.BINARY},
        parameters=[ORG_HEADER],
        summary="A signed report version as a printable PDF (409 for a draft)",
    )
    def get(self, request: Request, consult_id: str, version: int) -> HttpResponse:
        report = selectors.report_for_print(
            principal=self.principal, consult_id=consult_id, version=version
        )
        body = render_report_pdf(report)
        response = HttpResponse(body, content_type="application/pdf")
        response["Content-Disposition"] = (
            f'inline; filename="consult-{report.consult.external_id}-v{report.version}.pdf"'
        )
        response["Cache-Control"] = "private, no-store"
        return response


class ReportView(StaffView):
    @extend_schema(
        request=ReportWriteSerializer,
        responses=ReportSerializer,
        parameters=[ORG_HEADER],
        summary="Save the draft report (the first save marks the consult reported)",
    )
    def put(self, request: Request, consult_id: str) -> Response:
        data = _valid(ReportWriteSerializer, request.data)
        report = services.consult_report(
            principal=self.principal, consult_id=consult_id, data=services.ReportInput(**data)
        )
        return Response(ReportSerializer(report).data)


class SignView(StaffView):
    @extend_schema(
        request=SignSerializer,
        responses=ReportSerializer,
        parameters=[ORG_HEADER],
        summary="Sign the draft report (re-enter your password)",
    )
    def post(self, request: Request, consult_id: str) -> Response:
        data = _valid(SignSerializer, request.data)
        report = services.consult_sign(
            principal=self.principal, consult_id=consult_id, password=data["password"]
        )
        return Response(ReportSerializer(report).data)


class AmendView(StaffView):
    @extend_schema(
        request=ReasonRequiredSerializer,
        responses={201: ReportSerializer},
        parameters=[ORG_HEADER],
        summary="Open an amendment of the signed report (a new version)",
    )
    def post(self, request: Request, consult_id: str) -> Response:
        data = _valid(ReasonRequiredSerializer, request.data)
        report = services.report_amend(
            principal=self.principal, consult_id=consult_id, reason=data["reason"]
        )
        return Response(ReportSerializer(report).data, status=status.HTTP_201_CREATED)


# --- referrals -----------------------------------------------------------------------------------


class ReferralListView(StaffView):
    @extend_schema(
        parameters=[ReferralListQuerySerializer, ORG_HEADER],
        responses=ReferralSerializer(many=True),
        summary="Referrals I may see (incoming: to my organisation; outgoing: from it)",
    )
    def get(self, request: Request) -> Response:
        query = _valid(ReferralListQuerySerializer, request.query_params)
        rows = referrals.referral_list(
            principal=self.principal, side=query.get("side"), state=query.get("state")
        )
        return self.paginate(rows, ReferralSerializer)


class ReferralDetailView(StaffView):
    @extend_schema(responses=ReferralSerializer, parameters=[ORG_HEADER])
    def get(self, request: Request, referral_id: str) -> Response:
        referral = referrals.referral_detail(principal=self.principal, referral_id=referral_id)
        return Response(ReferralSerializer(referral).data)


class ReferralAcceptView(StaffView):
    @extend_schema(
        request=None,
        responses=ReferralSerializer,
        parameters=[ORG_HEADER],
        summary="The centre accepts the referred patient",
    )
    def post(self, request: Request, referral_id: str) -> Response:
        referral = referrals.referral_accept(principal=self.principal, referral_id=referral_id)
        return Response(ReferralSerializer(referral).data)


class ReferralHandBackView(StaffView):
    @extend_schema(
        request=HandBackSerializer,
        responses=ReferralSerializer,
        parameters=[ORG_HEADER],
        summary="Hand the patient back down with a care plan",
    )
    def post(self, request: Request, referral_id: str) -> Response:
        data = _valid(HandBackSerializer, request.data)
        referral = referrals.referral_hand_back(
            principal=self.principal,
            referral_id=referral_id,
            care_plan=data["care_plan"],
            back_to=data.get("back_to"),
        )
        return Response(ReferralSerializer(referral).data)


# --- attachments ---------------------------------------------------------------------------------


class RawBytesParser(BaseParser):
    media_type = "application/octet-stream"

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Any = None
    ) -> bytes:
        return stream.read() if stream is not None else b""


class StudyAttachView(StaffView):
    @extend_schema(
        request=StudyAttachSerializer,
        responses={201: AttachmentSerializer},
        parameters=[ORG_HEADER],
        summary="Attach an imaging study by Study Instance UID (it may arrive later)",
    )
    def post(self, request: Request, consult_id: str) -> Response:
        data = _valid(StudyAttachSerializer, request.data)
        attachment = uploads.attachment_add_study(
            principal=self.principal,
            consult_id=consult_id,
            study_instance_uid=data["study_instance_uid"],
        )
        return Response(AttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)


class UploadStartView(StaffView):
    @extend_schema(
        request=UploadStartSerializer,
        responses={201: UploadStateSerializer},
        parameters=[ORG_HEADER],
        summary="Announce a file upload (photo, PDF, lab sheet); then PATCH its chunks",
    )
    def post(self, request: Request, consult_id: str) -> Response:
        data = _valid(UploadStartSerializer, request.data)
        attachment = uploads.attachment_upload_start(
            principal=self.principal, consult_id=consult_id, **data
        )
        return Response(UploadStateSerializer(attachment).data, status=status.HTTP_201_CREATED)


_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


class UploadChunkView(StaffView):
    parser_classes = [RawBytesParser, JSONParser]

    @extend_schema(
        responses=UploadStateSerializer,
        parameters=[ORG_HEADER],
        summary="Where to resume an upload (received_bytes)",
    )
    def get(self, request: Request, consult_id: str, attachment_id: str) -> Response:
        attachment = uploads.upload_offset(
            principal=self.principal, consult_id=consult_id, attachment_id=attachment_id
        )
        return Response(UploadStateSerializer(attachment).data)

    @extend_schema(
        request={"application/octet-stream": OpenApiTypes.BINARY},
        responses=UploadStateSerializer,
        parameters=[
            ORG_HEADER,
            OpenApiParameter(
                "Content-Range",
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="bytes START-END/TOTAL of this chunk (END inclusive)",
            ),
        ],
        summary="Send one chunk at the offset the server holds; 409 names where to resume",
    )
    def patch(self, request: Request, consult_id: str, attachment_id: str) -> Response:
        match = _RANGE.match(request.headers.get("Content-Range", "").strip())
        data = request.data if isinstance(request.data, bytes) else b""
        if not match:
            raise ValidationFailed(
                _("Send a Content-Range header: bytes START-END/TOTAL."),
                fields={"Content-Range": _("Required.")},
            )
        start, end, total = (int(g) for g in match.groups())
        if end - start + 1 != len(data):
            raise ValidationFailed(
                _("The Content-Range does not match the chunk's length."),
                fields={"Content-Range": f"{len(data)}"},
            )
        result = uploads.attachment_upload_chunk(
            principal=self.principal,
            consult_id=consult_id,
            attachment_id=attachment_id,
            offset=start,
            total=total,
            data=data,
        )
        return Response(UploadStateSerializer(result.attachment).data)


class AttachmentFileView(StaffView):
    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        parameters=[ORG_HEADER],
        summary="Download an uploaded attachment",
    )
    def get(self, request: Request, consult_id: str, attachment_id: str) -> FileResponse:
        attachment, handle = uploads.attachment_open(
            principal=self.principal, consult_id=consult_id, attachment_id=attachment_id
        )
        return FileResponse(
            handle, content_type=attachment.content_type, filename=attachment.filename
        )


# --- critical values -----------------------------------------------------------------------------


class CriticalRaiseView(StaffView):
    @extend_schema(
        request=CriticalRaiseSerializer,
        responses={201: CriticalValueSerializer},
        parameters=[ORG_HEADER],
        summary="Flag a critical finding: the requesting doctor is alerted by push and SMS",
    )
    def post(self, request: Request, consult_id: str) -> Response:
        data = _valid(CriticalRaiseSerializer, request.data)
        alert = critical.critical_value_raise(
            principal=self.principal, consult_id=consult_id, **data
        )
        return Response(CriticalValueSerializer(alert).data, status=status.HTTP_201_CREATED)


class CriticalListView(StaffView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, required=False, enum=["open", "acknowledged"]),
            ORG_HEADER,
        ],
        responses=CriticalValueSerializer(many=True),
        summary="Critical values: open first, with time to acknowledgement and outcome",
    )
    def get(self, request: Request) -> Response:
        alerts = selectors.critical_value_list(
            principal=self.principal, status=request.query_params.get("status") or None
        )
        return self.paginate(alerts, CriticalValueSerializer)


class CriticalAcknowledgeView(StaffView):
    @extend_schema(request=None, responses=CriticalValueSerializer, parameters=[ORG_HEADER])
    def post(self, request: Request, alert_id: str) -> Response:
        alert = critical.critical_value_acknowledge(principal=self.principal, alert_id=alert_id)
        return Response(CriticalValueSerializer(alert).data)


class CriticalOutcomeView(StaffView):
    @extend_schema(
        request=OutcomeSerializer, responses=CriticalValueSerializer, parameters=[ORG_HEADER]
    )
    def post(self, request: Request, alert_id: str) -> Response:
        data = _valid(OutcomeSerializer, request.data)
        alert = critical.critical_value_record_outcome(
            principal=self.principal, alert_id=alert_id, outcome=data["outcome"]
        )
        return Response(CriticalValueSerializer(alert).data)


# --- statistics ----------------------------------------------------------------------------------


def _statistics(view: StaffView, request: Request) -> selectors.Statistics:
    query = _valid(StatisticsQuerySerializer, request.query_params)
    return selectors.consult_statistics(
        principal=view.principal, since=query.get("since"), until=query.get("until")
    )


class StatisticsView(StaffView):
    @extend_schema(
        parameters=[StatisticsQuerySerializer, ORG_HEADER],
        responses=StatisticsSerializer,
        summary="Reading statistics: turnaround, SLAs, declines, returned rates",
    )
    def get(self, request: Request) -> Response:
        result = _statistics(self, request)
        return Response(
            StatisticsSerializer(
                {
                    "turnaround": result.turnaround,
                    "decline_reasons": [
                        {"reason": r, "count": n} for r, n in result.decline_reasons
                    ],
                    "clinics": result.clinics,
                }
            ).data
        )


class StatisticsCsvView(StaffView):
    @extend_schema(
        parameters=[StatisticsQuerySerializer, ORG_HEADER],
        responses={(200, "text/csv"): OpenApiTypes.STR},
        summary="Reading statistics as CSV",
    )
    def get(self, request: Request) -> HttpResponse:
        result = _statistics(self, request)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            [
                _("centre"),
                _("specialty"),
                _("reader"),
                _("consults"),
                _("reported"),
                _("median minutes to signed report"),
                _("accept SLA met"),
                _("accept SLA missed"),
                _("report SLA met"),
                _("report SLA missed"),
            ]
        )
        for r in result.turnaround:
            writer.writerow(
                [
                    r.centre,
                    r.specialty,
                    r.reader,
                    r.consults,
                    r.reported,
                    "" if r.median_minutes is None else r.median_minutes,
                    r.accept_met,
                    r.accept_missed,
                    r.report_met,
                    r.report_missed,
                ]
            )
        writer.writerow([])
        writer.writerow([_("clinic"), _("submitted"), _("returned"), _("declined"), _("rate")])
        for c in result.clinics:
            writer.writerow([c.clinic, c.submitted, c.returned, c.declined, c.returned_rate])
        writer.writerow([])
        writer.writerow([_("decline reason"), _("count")])
        for reason, count in result.decline_reasons:
            writer.writerow([reason, count])
        response = HttpResponse("\ufeff" + out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="consult-statistics.csv"'
        return response


# --- live sessions, patient links, messages, pre-call test --------------------------------------


class LiveParticipantSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    role = serializers.CharField()
    name = serializers.CharField(source="display_name")


class LiveSessionSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    consult = serializers.UUIDField(source="consult.external_id")
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    fallback_at = serializers.DateTimeField(allow_null=True)
    participants = serializers.SerializerMethodField()
    socket = serializers.SerializerMethodField()
    room_page = serializers.SerializerMethodField()

    def get_participants(self, obj: Any) -> list[dict[str, Any]]:
        return LiveParticipantSerializer(live.participants_active(obj), many=True).data

    def get_socket(self, obj: Any) -> str:
        return f"/ws/consult/{obj.external_id}/"

    def get_room_page(self, obj: Any) -> str:
        return f"/consult/room/{obj.external_id}/"


class LiveInviteSerializer(serializers.Serializer):
    staff = serializers.UUIDField(help_text="The staff member's id (StaffProfile)")


class PatientLinkSerializer(serializers.Serializer):
    participant = LiveParticipantSerializer()
    link = serializers.CharField(help_text="Shown once; also sent to the patient by SMS")


class CodeSerializer(serializers.Serializer):
    code = serializers.RegexField(r"^\d{6}$")


class ParticipantTokenSerializer(serializers.Serializer):
    participant_token = serializers.CharField()
    session = serializers.UUIDField()
    room_page = serializers.CharField()


class MessageSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    kind = serializers.CharField()
    author = serializers.CharField(source="author_label")
    body = serializers.CharField()
    created_at = serializers.DateTimeField()


class MessageWriteSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=4000)


def _session(view: StaffView, session_id: str) -> Response:
    session = live.session_access(principal=view.principal, session_id=session_id)
    return Response(LiveSessionSerializer(session).data)


class LiveSessionOpenView(StaffView):
    @extend_schema(
        request=None,
        responses={201: LiveSessionSerializer},
        parameters=[ORG_HEADER],
        summary="Open the consult's live session (or get the open one)",
    )
    def post(self, request: Request, consult_id: str) -> Response:
        session = live.live_session_open(principal=self.principal, consult_id=consult_id)
        return Response(LiveSessionSerializer(session).data, status=status.HTTP_201_CREATED)


class LiveSessionView(StaffView):
    @extend_schema(responses=LiveSessionSerializer, parameters=[ORG_HEADER])
    def get(self, request: Request, session_id: str) -> Response:
        return _session(self, session_id)


class LiveSessionEndView(StaffView):
    @extend_schema(request=None, responses=LiveSessionSerializer, parameters=[ORG_HEADER])
    def post(self, request: Request, session_id: str) -> Response:
        live.live_session_end(principal=self.principal, session_id=session_id)
        return _session(self, session_id)


class LiveInviteView(StaffView):
    @extend_schema(
        request=LiveInviteSerializer,
        responses={201: LiveParticipantSerializer},
        parameters=[ORG_HEADER],
        summary="Invite another specialist (up to six participants in all)",
    )
    def post(self, request: Request, session_id: str) -> Response:
        data = _valid(LiveInviteSerializer, request.data)
        participant = live.live_participant_invite(
            principal=self.principal, session_id=session_id, staff_id=data["staff"]
        )
        return Response(LiveParticipantSerializer(participant).data, status=201)


class LiveRemoveView(StaffView):
    @extend_schema(request=None, responses={204: None}, parameters=[ORG_HEADER])
    def delete(self, request: Request, session_id: str, participant_id: str) -> Response:
        live.live_participant_remove(
            principal=self.principal, session_id=session_id, participant_id=participant_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class LivePatientInviteView(StaffView):
    @extend_schema(
        request=None,
        responses={201: PatientLinkSerializer},
        parameters=[ORG_HEADER],
        summary="Invite the patient: a one-time link by SMS, confirmed by an SMS code",
    )
    def post(self, request: Request, session_id: str) -> Response:
        link = live.live_patient_invite(principal=self.principal, session_id=session_id)
        body = {
            "participant": LiveParticipantSerializer(link.participant).data,
            "link": f"/consult/join/{link.token}/",
        }
        return Response(body, status=status.HTTP_201_CREATED)


class PatientLinkThrottle(AnonRateThrottle):
    rate = "10/min"


class PatientLinkCodeView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [PatientLinkThrottle]

    @extend_schema(request=None, responses={204: None}, summary="Send the patient an SMS code")
    def post(self, request: Request, token: str) -> Response:
        live.live_patient_link_send_code(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PatientLinkConfirmView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [PatientLinkThrottle]

    @extend_schema(
        request=CodeSerializer,
        responses=ParticipantTokenSerializer,
        summary="Confirm the SMS code; returns the participant token for the room",
    )
    def post(self, request: Request, token: str) -> Response:
        data = _valid(CodeSerializer, request.data)
        value = live.live_patient_link_confirm(token=token, code=data["code"])
        session_id = live.session_of_token(value)
        return Response(
            {
                "participant_token": value,
                "session": session_id,
                "room_page": f"/consult/room/{session_id}/",
            }
        )


class ConsultMessagesView(StaffView):
    @extend_schema(
        responses=MessageSerializer(many=True),
        parameters=[ORG_HEADER],
        summary="Chat and notes kept with the consult (live chat included)",
    )
    def get(self, request: Request, consult_id: str) -> Response:
        rows = live.consult_messages(principal=self.principal, consult_id=consult_id)
        return Response(MessageSerializer(rows, many=True).data)

    @extend_schema(
        request=MessageWriteSerializer,
        responses={201: MessageSerializer},
        parameters=[ORG_HEADER],
        summary="Add a message to the consult (store and forward, outside a live call)",
    )
    def post(self, request: Request, consult_id: str) -> Response:
        data = _valid(MessageWriteSerializer, request.data)
        row = live.consult_message_post(
            principal=self.principal, consult_id=consult_id, body=data["body"]
        )
        return Response(MessageSerializer(row).data, status=status.HTTP_201_CREATED)


# The pre-call offer is a plain async view: the aiortc peer must live on the server's event
# loop after the response, which a DRF (sync) view cannot give it.


@csrf_exempt
async def precall_offer_view(request: HttpRequest) -> JsonResponse:
    """POST {"sdp", "type": "offer"} → {"sdp", "type": "answer"} from an echo peer.

    Staff (session with CSRF token, or a Bearer token) or a patient with a participant token
    (``participant_token`` in the body). 401 otherwise, 503 when too many tests run."""
    from asgiref.sync import sync_to_async

    offer = await offers.read_offer(request)
    if isinstance(offer, JsonResponse):
        return offer
    if offer.participant_token:
        session_id = await sync_to_async(live.session_of_token)(offer.participant_token)
        label = f"patient-{session_id}" if session_id else ""
        if not label:
            return JsonResponse({"detail": _("Sign in first.")}, status=401)
    else:
        label = f"user-{offer.user.pk}"
    try:
        answer = await precall.precall_answer(sdp=offer.sdp, label=label)
    except precall.PrecallBusy:
        return JsonResponse({"detail": _("Too many tests are running; try again.")}, status=503)
    except precall.BadOffer:
        return JsonResponse({"detail": _("This offer could not be answered.")}, status=400)
    return JsonResponse(
        {"sdp": answer.sdp, "type": answer.type, "ice_servers": ice_servers_for(label)}
    )
