"""REST API of the archive for clinicians: the new-studies and reconciliation lists,
linking a study to a patient, and de-identified export. Images themselves go through
DICOMweb (``/dicomweb/``)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from registry.api import ORG_HEADER, StaffView, _valid

from . import access, selectors, services
from .serializers import (
    ExportQuerySerializer,
    ReconcileSerializer,
    StudyListQuerySerializer,
    StudySerializer,
)


class StudyListView(StaffView):
    @extend_schema(
        parameters=[StudyListQuerySerializer, ORG_HEADER],
        responses=StudySerializer(many=True),
        summary="Studies you may see, newest first (unmatched=true: waiting for a patient)",
    )
    def get(self, request: Request) -> Response:
        query = _valid(StudyListQuerySerializer, request.query_params)
        studies = selectors.study_list(
            self.principal,
            unmatched=query.get("unmatched", False),
            since=query.get("since"),
            patient_id=query.get("patient"),
        )
        return self.paginate(studies, StudySerializer)


class StudyDetailView(StaffView):
    @extend_schema(responses=StudySerializer, parameters=[ORG_HEADER])
    def get(self, request: Request, study_uid: str) -> Response:
        study = access.access_study(self.principal, study_uid)
        return Response(StudySerializer(study).data)


class StudyReconcileView(StaffView):
    @extend_schema(
        request=ReconcileSerializer,
        responses=StudySerializer,
        parameters=[ORG_HEADER],
        summary="Link a study that arrived unmatched to a registry patient",
    )
    def post(self, request: Request, study_uid: str) -> Response:
        data = _valid(ReconcileSerializer, request.data)
        study = access.access_study(self.principal, study_uid)
        study = services.study_reconcile(
            principal=self.principal, study=study, patient_id=data["patient"]
        )
        return Response(StudySerializer(study).data)


class _Sink:
    """A write-only stream for zipfile that hands out what was written so far."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def _zip(files: Iterator[tuple[str, bytes]]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(name, data)
            yield sink.take()
    yield sink.take()


class StudyExportView(StaffView):
    @extend_schema(
        parameters=[ExportQuerySerializer, ORG_HEADER],
        responses={(200, "application/zip"): bytes},
        summary="Download the study de-identified (PS3.15 Annex E basic profile) as a zip",
    )
    def get(self, request: Request, study_uid: str) -> Any:
        query = _valid(ExportQuerySerializer, request.query_params)
        study = access.access_study(self.principal, study_uid)
        files = services.export_deidentified(
            principal=self.principal, study=study, date_shift_days=query.get("date_shift_days")
        )
        first = next(files, None)  # audit and validation happen before streaming starts

        def chained() -> Iterator[tuple[str, bytes]]:
            if first is not None:
                yield first
                yield from files

        response = StreamingHttpResponse(_zip(chained()), content_type="application/zip")
        response["Content-Disposition"] = 'attachment; filename="study-deidentified.zip"'
        return response
