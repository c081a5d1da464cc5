"""REST API of ECGs: upload a cart file, list and read records, the waveform for the viewer,
SVG and PNG renderings, confirm or correct measurements, priors, reprocess a study."""

from __future__ import annotations

from datetime import date

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from knox.models import AuthToken
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from registry.api import ORG_HEADER, StaffView, _valid
from registry.errors import ValidationFailed

from ..access import access_study, record_study_view
from . import render, selectors, services
from .serializers import (
    ConfirmSerializer,
    ListQuerySerializer,
    PriorSerializer,
    RecordSerializer,
    RenderQuerySerializer,
    UploadSerializer,
)


def session_key(request: Request) -> str:
    """What names one viewing session, for the once-per-session audit of a study view."""
    if isinstance(request.auth, AuthToken):
        return f"token:{request.auth.token_key}"
    session = getattr(request._request, "session", None)
    key = session.session_key if session is not None else None
    return f"session:{key}" if key else f"day:{date.today().isoformat()}"


class _RecordView(StaffView):
    def record(self, request: Request, record_id: str):  # noqa: ANN201
        record = selectors.access_ecg_record(self.principal, record_id)
        record_study_view(self.principal, record.study, session_key(request))
        return record


class RecordListView(StaffView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        parameters=[ListQuerySerializer, ORG_HEADER],
        responses=RecordSerializer(many=True),
        summary="ECGs you may see, newest first",
    )
    def get(self, request: Request) -> Response:
        query = _valid(ListQuerySerializer, request.query_params)
        records = selectors.ecg_record_list(
            self.principal, patient_id=query.get("patient"), study_uid=query.get("study")
        ).select_related("instance__series", "confirmed_by")
        return self.paginate(records, RecordSerializer)

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={201: RecordSerializer, 200: RecordSerializer, 422: OpenApiResponse()},
        parameters=[ORG_HEADER],
        summary="Upload an SCP-ECG, HL7 aECG, DICOM, CSV or JSON ECG for a patient",
    )
    def post(self, request: Request) -> Response:
        data = _valid(UploadSerializer, request.data)
        upload = data["file"]
        if upload.size > services.MAX_UPLOAD_BYTES:
            raise ValidationFailed("The file is larger than 50 MB.", fields={"file": "too large"})
        result = services.ecg_upload(
            principal=self.principal,
            patient_id=data["patient"],
            raw=upload.read(),
            filename=upload.name or "",
            file_format=data.get("format"),
        )
        return Response(
            RecordSerializer(result.record).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class RecordDetailView(_RecordView):
    @extend_schema(responses=RecordSerializer, parameters=[ORG_HEADER])
    def get(self, request: Request, record_id: str) -> Response:
        return Response(RecordSerializer(self.record(request, record_id)).data)


class WaveformView(_RecordView):
    @extend_schema(responses=dict, parameters=[ORG_HEADER], summary="Leads in µV for the viewer")
    def get(self, request: Request, record_id: str) -> Response:
        record = self.record(request, record_id)
        signal = services.record_signal(record)
        return Response(
            {
                "sample_rate": signal.sample_rate,
                "units": "uV",
                "leads": {n: [round(float(v), 1) for v in signal.leads[n]] for n in signal.leads},
            }
        )


class RenderView(_RecordView):
    @extend_schema(
        parameters=[RenderQuerySerializer, ORG_HEADER],
        responses={(200, "image/svg+xml"): bytes, (200, "image/png"): bytes},
        summary="The ECG on paper (1 mm grid, 25/50 mm/s, 5/10/20 mm/mV) as SVG or PNG",
    )
    def get(self, request: Request, record_id: str, kind: str) -> HttpResponse:
        options = _valid(RenderQuerySerializer, request.query_params)
        record = self.record(request, record_id)
        signal = services.record_signal(record)
        common = {"kind": options["layout"], "speed": options["speed"], "gain": options["gain"]}
        if kind == "svg":
            body = render.render_svg(signal, **common)
            return HttpResponse(body, content_type="image/svg+xml")
        return HttpResponse(render.render_png(signal, dpi=options["dpi"], **common), "image/png")


class ConfirmView(_RecordView):
    @extend_schema(
        request=ConfirmSerializer,
        responses=RecordSerializer,
        parameters=[ORG_HEADER],
        summary="Confirm or correct the machine's measurements (specialists and doctors)",
    )
    def post(self, request: Request, record_id: str) -> Response:
        data = _valid(ConfirmSerializer, request.data)
        record = selectors.access_ecg_record(self.principal, record_id)
        record = services.ecg_confirm(
            principal=self.principal,
            record=record,
            values=data["values"],
            flags=data.get("flags", []),
            note=data.get("note", ""),
        )
        return Response(RecordSerializer(record).data)


class PriorsView(_RecordView):
    @extend_schema(
        responses=PriorSerializer(many=True),
        parameters=[ORG_HEADER],
        summary="The patient's earlier ECGs with the change of each measurement",
    )
    def get(self, request: Request, record_id: str) -> Response:
        record = self.record(request, record_id)
        priors = selectors.ecg_priors(self.principal, record)
        return Response(PriorSerializer(priors, many=True).data)


class StudyProcessView(StaffView):
    @extend_schema(
        request=None,
        responses=RecordSerializer(many=True),
        parameters=[ORG_HEADER],
        summary="(Re)measure every ECG waveform of a study",
    )
    def post(self, request: Request, study_uid: str) -> Response:
        study = access_study(self.principal, study_uid)
        records = services.ecg_study_process(study=study, actor=self.principal.actor)
        return Response(RecordSerializer(records, many=True).data)
