"""REST API of live-session recording: consent state, agree/withdraw, start/stop, the
recorder's offer endpoint, and the consult's recordings (list, download).

The offer endpoint is a plain async view (as the pre-call offer): the aiortc peer must live on
the server's event loop after the response, which a DRF (sync) view cannot give it.
"""

from __future__ import annotations

from django.http import FileResponse, HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from registry.api import ORG_HEADER, StaffView
from registry.errors import DomainError

from . import offers, recorder, recording
from .models import Recording
from .precall import BadOffer
from .turn import ice_servers_for


class RecordingSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    session = serializers.UUIDField(source="session.external_id")
    status = serializers.CharField()
    started_at = serializers.DateTimeField()
    stopped_at = serializers.DateTimeField(allow_null=True)
    stop_reason = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)
    sha256 = serializers.CharField()
    duration = serializers.FloatField(allow_null=True)
    retention_until = serializers.DateTimeField(allow_null=True)
    deleted_at = serializers.DateTimeField(allow_null=True)


class ParticipantConsentSerializer(serializers.Serializer):
    id = serializers.CharField(source="participant_id")
    name = serializers.CharField()
    role = serializers.CharField()
    consented = serializers.BooleanField()
    since = serializers.DateTimeField(allow_null=True)


class MissingSerializer(serializers.Serializer):
    id = serializers.CharField(source="participant_id")
    name = serializers.CharField()
    role = serializers.CharField()


class RecordingStateSerializer(serializers.Serializer):
    session = serializers.CharField(source="session_id")
    patient_consent = serializers.BooleanField()
    participants = ParticipantConsentSerializer(many=True)
    missing = MissingSerializer(many=True)
    recording = RecordingSerializer(source="running", allow_null=True)


def _missing_response(exc: recording.ConsentMissing) -> Response:
    return Response(
        {
            "code": exc.code,
            "detail": exc.message,
            "missing": MissingSerializer(exc.missing, many=True).data,
        },
        status=status.HTTP_409_CONFLICT,
    )


class RecordingStateView(StaffView):
    @extend_schema(
        responses=RecordingStateSerializer,
        parameters=[ORG_HEADER],
        summary="Who consents to recording this session, and the recording running now",
    )
    def get(self, request: Request, session_id: str) -> Response:
        state = recording.recording_state(principal=self.principal, session_id=session_id)
        return Response(RecordingStateSerializer(state).data)

    @extend_schema(
        request=None,
        responses={201: RecordingSerializer},
        parameters=[ORG_HEADER],
        summary="Start recording (every participant must consent; 409 names who has not)",
    )
    def post(self, request: Request, session_id: str) -> Response:
        try:
            row = recording.recording_start(principal=self.principal, session_id=session_id)
        except recording.ConsentMissing as exc:
            return _missing_response(exc)
        row = Recording.objects.select_related("session").get(pk=row.pk)
        return Response(RecordingSerializer(row).data, status=status.HTTP_201_CREATED)


class RecordingStopView(StaffView):
    @extend_schema(
        request=None,
        responses={202: RecordingSerializer},
        parameters=[ORG_HEADER],
        summary="Stop recording; the file is stored within seconds (status stopping → stored)",
    )
    def post(self, request: Request, session_id: str) -> Response:
        row = recording.recording_stop(principal=self.principal, session_id=session_id)
        row = Recording.objects.select_related("session").get(pk=row.pk)
        return Response(RecordingSerializer(row).data, status=status.HTTP_202_ACCEPTED)


class RecordingConsentView(StaffView):
    @extend_schema(
        request=None,
        responses=RecordingStateSerializer,
        parameters=[ORG_HEADER],
        summary="I agree to this session being recorded",
    )
    def post(self, request: Request, session_id: str) -> Response:
        recording.recording_agree(principal=self.principal, session_id=session_id)
        state = recording.recording_state(principal=self.principal, session_id=session_id)
        return Response(RecordingStateSerializer(state).data)

    @extend_schema(
        request=None,
        responses=RecordingStateSerializer,
        parameters=[ORG_HEADER],
        summary="I withdraw my agreement; a running recording stops",
    )
    def delete(self, request: Request, session_id: str) -> Response:
        recording.recording_withdraw(principal=self.principal, session_id=session_id)
        state = recording.recording_state(principal=self.principal, session_id=session_id)
        return Response(RecordingStateSerializer(state).data)


class ConsultRecordingsView(StaffView):
    @extend_schema(
        responses=RecordingSerializer(many=True),
        parameters=[ORG_HEADER],
        summary="Recordings of a consult",
    )
    def get(self, request: Request, consult_id: str) -> Response:
        rows = recording.recordings_of_consult(principal=self.principal, consult_id=consult_id)
        return Response(RecordingSerializer(rows, many=True).data)


class RecordingFileView(StaffView):
    @extend_schema(
        responses={(200, "video/x-matroska"): OpenApiTypes.BINARY},
        parameters=[ORG_HEADER],
        summary="Download a recording (audited)",
    )
    def get(self, request: Request, consult_id: str, recording_id: str) -> FileResponse:
        row, handle = recording.recording_open(
            principal=self.principal, consult_id=consult_id, recording_id=recording_id
        )
        return FileResponse(
            handle, content_type="video/x-matroska", filename=f"recording-{row.external_id}.mkv"
        )


# --- the recorder's offer endpoint (async) -------------------------------------------------------


@csrf_exempt
async def recording_offer_view(request: HttpRequest, session_id: str) -> JsonResponse:
    """POST {"sdp", "type": "offer"[, "participant_token"]} → {"sdp", "type": "answer"}.

    A participant of the session (session cookie with CSRF token, Bearer token, or the
    patient's participant token) sends its media to the running recording's recorder.
    401 not signed in, 404 not a participant, 409 nothing recorded / recorder elsewhere,
    400 bad offer, 413 offer too large, 503 recorder full."""
    offer = await offers.read_offer(request)
    if isinstance(offer, JsonResponse):
        return offer
    user, ptoken = offer.user, offer.participant_token
    label = f"user-{user.pk}" if user is not None else f"patient-{session_id}"
    try:
        answer = await recorder.recorder_answer(
            session_id=session_id,
            sdp=offer.sdp,
            label=label,
            user=user,
            participant_token=ptoken,
        )
    except DomainError as exc:
        return JsonResponse({"code": exc.code, "detail": exc.message}, status=exc.status_code)
    except recorder.RecorderFull:
        return JsonResponse({"detail": _("The recorder is full; try again.")}, status=503)
    except BadOffer:
        return JsonResponse({"detail": _("This offer could not be answered.")}, status=400)
    return JsonResponse(
        {"sdp": answer.sdp, "type": answer.type, "ice_servers": ice_servers_for(label)}
    )
