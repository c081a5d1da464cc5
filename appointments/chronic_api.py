"""REST API of chronic care: enrolments, follow-ups, programme rules, readings and their
charts, referrals, and family-doctor contract coverage. Thin: parse, call, render."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from registry.api import ORG_HEADER, StaffView, _valid

from . import contracts, programmes, readings
from .chronic_serializers import (
    CoverageSerializer,
    EnrolInputSerializer,
    EnrolmentSerializer,
    FollowUpInputSerializer,
    FollowUpSerializer,
    ProgrammeRulesSerializer,
    ProgrammeSerializer,
    ReadingInputSerializer,
    ReadingQuerySerializer,
    ReadingSerializer,
)


class EnrolmentCreateView(StaffView):
    @extend_schema(
        request=EnrolInputSerializer,
        responses={201: EnrolmentSerializer},
        parameters=[ORG_HEADER],
        summary="Enrol a patient in a chronic-disease programme",
    )
    def post(self, request: Request) -> Response:
        data = _valid(EnrolInputSerializer, request.data)
        enrolment = programmes.enrolment_create(
            principal=self.principal, patient_id=data["patient"], code=data["programme"]
        )
        return Response(EnrolmentSerializer(enrolment).data, status=status.HTTP_201_CREATED)


class FollowUpCreateView(StaffView):
    @extend_schema(
        request=FollowUpInputSerializer,
        responses={201: FollowUpSerializer},
        parameters=[ORG_HEADER],
        summary="Record a follow-up: classify control, set the next due date, refer if needed",
    )
    def post(self, request: Request, enrolment_id: str) -> Response:
        data = _valid(FollowUpInputSerializer, request.data)
        followup = programmes.followup_record(
            principal=self.principal,
            enrolment_id=enrolment_id,
            data=programmes.FollowUpInput(**data),
        )
        return Response(FollowUpSerializer(followup).data, status=status.HTTP_201_CREATED)


class ProgrammeRulesView(StaffView):
    @extend_schema(
        request=ProgrammeRulesSerializer,
        responses={200: ProgrammeSerializer},
        parameters=[ORG_HEADER],
        summary="Set a programme's thresholds and intervals for the acting organisation",
    )
    def patch(self, request: Request, code: str) -> Response:
        data = _valid(ProgrammeRulesSerializer, request.data)
        principal = self.principal
        programme = programmes.programme_set_rules(
            principal=principal, code=code, organisation=principal.organisation, **data
        )
        return Response(ProgrammeSerializer(programme).data)


class PatientReadingsView(StaffView):
    @extend_schema(
        parameters=[ReadingQuerySerializer, ORG_HEADER],
        responses=ReadingSerializer(many=True),
        summary="A patient's readings",
    )
    def get(self, request: Request, patient_id: str) -> Response:
        query = _valid(ReadingQuerySerializer, request.query_params)
        _patient, rows = readings.readings_for_staff(
            principal=self.principal,
            patient_id=patient_id,
            kind=query.get("kind"),
            days=query["days"],
        )
        return Response(ReadingSerializer(rows, many=True).data)

    @extend_schema(
        request=ReadingInputSerializer,
        responses={201: ReadingSerializer},
        parameters=[ORG_HEADER],
        summary="Record a reading taken at a visit",
    )
    def post(self, request: Request, patient_id: str) -> Response:
        data = _valid(ReadingInputSerializer, request.data)
        reading = readings.reading_record_by_staff(
            principal=self.principal, patient_id=patient_id, data=readings.ReadingInput(**data)
        )
        return Response(ReadingSerializer(reading).data, status=status.HTTP_201_CREATED)


class PatientChartView(StaffView):
    @extend_schema(
        parameters=[ORG_HEADER],
        responses={(200, "image/svg+xml"): OpenApiResponse(description="SVG trend charts")},
        summary="Trend charts of a patient's readings (server-rendered SVG)",
    )
    def get(self, request: Request, patient_id: str) -> HttpResponse:
        patient, _rows = readings.readings_for_staff(
            principal=self.principal, patient_id=patient_id, kind=None
        )
        charts = readings.trend_charts(patient=patient)
        body = "".join(
            f'<g transform="translate(0,{i * 270})">{svg}</g>' for i, (_k, svg) in enumerate(charts)
        )
        height = max(len(charts), 1) * 270
        svg = (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 600 {height}" '
            f'width="600" height="{height}">{body}</svg>'
        )
        return HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")


class ReferralDoneView(StaffView):
    @extend_schema(
        request=None,
        responses={204: None},
        parameters=[ORG_HEADER],
        summary="Confirm that the centre saw a referred patient",
    )
    def post(self, request: Request, referral_id: str) -> Response:
        programmes.referral_mark_done_by_staff(principal=self.principal, referral_id=referral_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CoverageView(StaffView):
    @extend_schema(
        parameters=[ORG_HEADER],
        responses=CoverageSerializer(many=True),
        summary="Family-doctor contract coverage of key groups per organisation",
    )
    def get(self, request: Request) -> Response:
        rows = contracts.coverage(principal=self.principal)
        return Response(CoverageSerializer(rows, many=True).data)


class CoverageCsvView(StaffView):
    @extend_schema(
        parameters=[ORG_HEADER],
        responses={(200, "text/csv"): OpenApiResponse(description="Coverage as CSV")},
        summary="Family-doctor contract coverage as CSV",
    )
    def get(self, request: Request) -> HttpResponse:
        rows = contracts.coverage(principal=self.principal)
        response = HttpResponse(
            contracts.coverage_csv(rows), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = 'attachment; filename="contract-coverage.csv"'
        return response
