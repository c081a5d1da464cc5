"""Input and output shapes of the pathology API."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from .models import AnnotationShape, SlideAnnotation, SlideConversion


class SlideUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text=_("An Aperio SVS or a tiled pyramidal TIFF."))
    patient = serializers.UUIDField(help_text=_("The registry patient the slide belongs to."))
    specimen_description = serializers.CharField(
        required=False, allow_blank=True, max_length=64, default=""
    )


class ConversionSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id")
    patient = serializers.UUIDField(source="patient.external_id")
    study = serializers.SerializerMethodField()
    series = serializers.SerializerMethodField()
    viewer_url = serializers.SerializerMethodField()

    class Meta:
        model = SlideConversion
        fields = [
            "id",
            "status",
            "progress",
            "error",
            "file_name",
            "file_format",
            "upload_size",
            "patient",
            "study",
            "series",
            "levels",
            "viewer_url",
            "created_at",
            "finished_at",
        ]

    def _done(self, obj: SlideConversion) -> bool:
        return obj.status == "done" and obj.study_id is not None

    def get_study(self, obj: SlideConversion) -> str | None:
        return obj.study_instance_uid if self._done(obj) else None

    def get_series(self, obj: SlideConversion) -> str | None:
        return obj.series_instance_uid if self._done(obj) else None

    def get_viewer_url(self, obj: SlideConversion) -> str | None:
        if not self._done(obj):
            return None
        return f"/pathology/viewer/{obj.study_instance_uid}/?series={obj.series_instance_uid}"


class AnnotationQuerySerializer(serializers.Serializer):
    consult = serializers.UUIDField(required=False)


class AnnotationCreateSerializer(serializers.Serializer):
    shape = serializers.ChoiceField(choices=AnnotationShape.choices)
    points = serializers.JSONField(help_text=_("[[x, y], ...] in full-resolution slide pixels."))
    text = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)
    consult = serializers.UUIDField(required=False, allow_null=True, default=None)


class AnnotationUpdateSerializer(serializers.Serializer):
    points = serializers.JSONField(required=False)
    text = serializers.CharField(required=False, allow_blank=True, max_length=4000)


class AnnotationSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="external_id")
    consult = serializers.UUIDField(source="consult_id", allow_null=True)
    author = serializers.SerializerMethodField()
    mine = serializers.SerializerMethodField()

    class Meta:
        model = SlideAnnotation
        fields = ["id", "shape", "points", "text", "consult", "author", "mine", "created_at"]

    def get_author(self, obj: SlideAnnotation) -> str:
        user = obj.created_by
        if user is None:
            return ""
        staff = getattr(user, "staff", None)
        return (
            (getattr(staff, "display_name", "") or user.get_username())
            if staff
            else (user.get_username())
        )

    def get_mine(self, obj: SlideAnnotation) -> bool:
        user: Any = self.context.get("user")
        return user is not None and obj.created_by_id == user.pk


class LevelSerializer(serializers.Serializer):
    level = serializers.IntegerField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    tile_width = serializers.IntegerField()
    tile_height = serializers.IntegerField()
    tiles_across = serializers.IntegerField()
    tiles_down = serializers.IntegerField()
    downsample = serializers.FloatField()
    sop_instance_uid = serializers.CharField()
    transfer_syntax = serializers.CharField()


class SlideSerializer(serializers.Serializer):
    study = serializers.CharField()
    series = serializers.CharField()
    description = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    mpp = serializers.FloatField(allow_null=True, help_text=_("Micrometres per pixel."))
    objective_power = serializers.FloatField(allow_null=True)
    levels = LevelSerializer(many=True)
    tile_url = serializers.CharField(help_text=_("With {level}, {col} and {row} to fill in."))
    frame_url = serializers.CharField(help_text=_("WADO-RS frames, {instance} and {frame}."))
    annotations_url = serializers.CharField()


class PhotoSerializer(serializers.Serializer):
    study = serializers.CharField(source="study_uid")
    series = serializers.CharField(source="series_uid")
    instance = serializers.CharField(source="sop_instance_uid")
    modality = serializers.CharField()
    description = serializers.CharField()
    same_study = serializers.BooleanField()
    rendered_url = serializers.SerializerMethodField()

    def get_rendered_url(self, obj: Any) -> str:
        return (
            f"/dicomweb/studies/{obj.study_uid}/series/{obj.series_uid}"
            f"/instances/{obj.sop_instance_uid}/rendered"
        )


class StudySlidesSerializer(serializers.Serializer):
    study = serializers.CharField()
    slides = SlideSerializer(many=True)
    photos = PhotoSerializer(many=True)
