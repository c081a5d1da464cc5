"""External PACS API: a consult's prior studies at the hospital PACS, pulling one, and the
status of pulls. Whoever may read the consult may use it; everyone else gets 404."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from registry.api import ORG_HEADER, StaffView

from . import pacs


class PriorStudySerializer(serializers.Serializer):
    study_instance_uid = serializers.CharField()
    study_date = serializers.CharField()
    study_time = serializers.CharField()
    description = serializers.CharField()
    accession_number = serializers.CharField()
    modalities = serializers.ListField(child=serializers.CharField())
    number_of_instances = serializers.IntegerField(allow_null=True)
    in_archive = serializers.BooleanField()


class PullInputSerializer(serializers.Serializer):
    study_uid = serializers.CharField(max_length=64)


class PullSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="external_id")
    study_uid = serializers.CharField(source="study_instance_uid")
    status = serializers.CharField()
    stored = serializers.IntegerField()
    failed = serializers.IntegerField()
    error = serializers.CharField()
    study = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_study(self, obj: object) -> str | None:
        study = getattr(obj, "study", None)
        return str(study.external_id) if study is not None else None


class PriorListView(StaffView):
    @extend_schema(
        parameters=[ORG_HEADER],
        responses=PriorStudySerializer(many=True),
        summary="The consult patient's prior studies at the hospital PACS (C-FIND)",
    )
    def get(self, request: Request, consult_id: str) -> Response:
        priors = pacs.priors_find(principal=self.principal, consult_id=consult_id)
        return Response(PriorStudySerializer(priors, many=True).data)


class PullListView(StaffView):
    @extend_schema(
        parameters=[ORG_HEADER],
        responses=PullSerializer(many=True),
        summary="Pulls of prior studies for a consult",
    )
    def get(self, request: Request, consult_id: str) -> Response:
        rows = pacs.pulls_of(principal=self.principal, consult_id=consult_id)
        return Response(PullSerializer(rows, many=True).data)

    @extend_schema(
        request=PullInputSerializer,
        parameters=[ORG_HEADER],
        responses={202: PullSerializer},
        summary="Pull a prior study from the hospital PACS into Huizhen",
    )
    def post(self, request: Request, consult_id: str) -> Response:
        data = PullInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pull = pacs.priors_pull(
            principal=self.principal,
            consult_id=consult_id,
            study_uid=data.validated_data["study_uid"],
        )
        pull.refresh_from_db()
        return Response(PullSerializer(pull).data, status=202)


class PullDetailView(StaffView):
    @extend_schema(
        parameters=[ORG_HEADER], responses=PullSerializer, summary="One pull and its status"
    )
    def get(self, request: Request, consult_id: str, pull_id: str) -> Response:
        pull = pacs.pull_status(principal=self.principal, consult_id=consult_id, pull_id=pull_id)
        return Response(PullSerializer(pull).data)
