"""Pathology REST API: slide uploads and their conversion, slide descriptors and tiles for a
deep-zoom viewer, the slides and photos of a study, and annotations."""

from __future__ import annotations

import threading
from typing import Any

from django.http import HttpResponse, HttpResponseNotModified
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from knox.models import AuthToken
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from imaging.access import record_study_view
from imaging.dicomweb.http import DicomWebThrottle, _AnyAccept
from registry.api import ORG_HEADER, StaffView, _valid
from registry.errors import NotFound

from . import selectors, services, tiles
from .selectors import Slide
from .serializers import (
    AnnotationCreateSerializer,
    AnnotationQuerySerializer,
    AnnotationSerializer,
    AnnotationUpdateSerializer,
    ConversionSerializer,
    SlideSerializer,
    SlideUploadSerializer,
    StudySlidesSerializer,
)

TILE_MAX_AGE = 3600


def session_key(request: Request) -> str:
    auth = request.auth
    if isinstance(auth, AuthToken):
        return f"token:{auth.token_key}"
    session = getattr(request._request, "session", None)
    key = session.session_key if session is not None else None
    return f"session:{key}" if key else f"user:{request.user.pk}"


_viewed: set[tuple[int, str, int]] = set()
_viewed_lock = threading.Lock()


def _viewed_once(view: StaffView, slide: Slide) -> None:
    """Audit the view of a slide's study once per session (a tile is not a new view); a
    process remembers what it already recorded so that tiles cost no write."""
    key = (slide.study.pk, session_key(view.request), view.principal.user.pk)
    with _viewed_lock:
        if key in _viewed:
            return
    record_study_view(view.principal, slide.study, key[1])
    with _viewed_lock:
        if len(_viewed) > 100_000:
            _viewed.clear()
        _viewed.add(key)


def slide_payload(slide: Slide) -> dict[str, Any]:
    study_uid = slide.study.study_instance_uid
    series_uid = slide.series.series_instance_uid
    base = f"/api/v1/pathology/slides/{study_uid}/{series_uid}"
    return {
        "study": study_uid,
        "series": series_uid,
        "description": slide.series.series_description,
        "width": slide.width,
        "height": slide.height,
        "mpp": slide.mpp,
        "objective_power": slide.objective_power,
        "levels": [
            {
                "level": level.number,
                "width": level.info.width,
                "height": level.info.height,
                "tile_width": level.info.tile_width,
                "tile_height": level.info.tile_height,
                "tiles_across": level.info.tiles_across,
                "tiles_down": level.info.tiles_down,
                "downsample": slide.width / level.info.width,
                "sop_instance_uid": level.info.sop_instance_uid,
                "transfer_syntax": level.info.transfer_syntax,
            }
            for level in slide.levels
        ],
        "tile_url": base + "/tiles/{level}/{col}_{row}.jpg",
        "frame_url": (
            f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{{instance}}"
            "/frames/{frame}"
        ),
        "annotations_url": base + "/annotations/",
    }


class SlideUploadView(StaffView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": SlideUploadSerializer},
        responses={202: ConversionSerializer},
        parameters=[ORG_HEADER],
        summary="Upload an Aperio SVS or tiled TIFF slide; it is converted to DICOM WSI",
    )
    def post(self, request: Request) -> Response:
        data = _valid(SlideUploadSerializer, request.data)
        conversion = services.slide_upload(
            principal=self.principal,
            patient_id=data["patient"],
            upload=data["file"],
            specimen_description=data.get("specimen_description", ""),
        )
        conversion.refresh_from_db()
        return Response(ConversionSerializer(conversion).data, status=status.HTTP_202_ACCEPTED)


class ConversionView(StaffView):
    @extend_schema(responses=ConversionSerializer, parameters=[ORG_HEADER])
    def get(self, request: Request, conversion_id: str) -> Response:
        conversion = selectors.conversion_get(self.principal, conversion_id)
        return Response(ConversionSerializer(conversion).data)


class StudySlidesView(StaffView):
    @extend_schema(
        responses=StudySlidesSerializer,
        parameters=[ORG_HEADER],
        summary="The slides of a study and the photos of the study and of the patient",
    )
    def get(self, request: Request, study_uid: str) -> Response:
        study, slides, photos = selectors.study_slides(self.principal, study_uid)
        record_study_view(self.principal, study, session_key(request))
        return Response(
            StudySlidesSerializer(
                {
                    "study": study.study_instance_uid,
                    "slides": [slide_payload(s) for s in slides],
                    "photos": photos,
                }
            ).data
        )


class SlideView(StaffView):
    @extend_schema(responses=SlideSerializer, parameters=[ORG_HEADER])
    def get(self, request: Request, study_uid: str, series_uid: str) -> Response:
        slide = selectors.slide_get(self.principal, study_uid, series_uid)
        _viewed_once(self, slide)
        return Response(slide_payload(slide))


class TileView(StaffView):
    """One tile as JPEG: the stored frame when it is JPEG, sent without decoding."""

    content_negotiation_class = _AnyAccept
    throttle_classes = [DicomWebThrottle]

    @extend_schema(
        responses={(200, "image/jpeg"): OpenApiResponse(description="The tile")},
        parameters=[ORG_HEADER],
        summary="A deep-zoom tile: level 0 is full resolution; col and row count tiles",
    )
    def get(
        self, request: Request, study_uid: str, series_uid: str, level: int, col: int, row: int
    ) -> HttpResponse:
        slide = selectors.slide_get(self.principal, study_uid, series_uid)
        if level >= len(slide.levels):
            raise NotFound(_("The slide has no level %(n)d.") % {"n": level})
        stored = slide.levels[level]
        info = stored.info
        if col >= info.tiles_across or row >= info.tiles_down:
            raise NotFound(_("No tile at column %(c)d, row %(r)d.") % {"c": col, "r": row})
        _viewed_once(self, slide)
        frame = row * info.tiles_across + col
        etag = f'"{stored.instance.sha256[:20]}-{frame}"'
        if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            response: HttpResponse = HttpResponseNotModified()
        else:
            try:
                data = tiles.read_tile(stored.instance, frame)
            except tiles.TileNotFound:
                raise NotFound(_("This tile cannot be read from the stored slide.")) from None
            response = HttpResponse(data, content_type="image/jpeg")
        response["ETag"] = etag
        response["Cache-Control"] = f"private, max-age={TILE_MAX_AGE}"
        return response


class AnnotationListView(StaffView):
    @extend_schema(
        parameters=[AnnotationQuerySerializer, ORG_HEADER],
        responses=AnnotationSerializer(many=True),
    )
    def get(self, request: Request, study_uid: str, series_uid: str) -> Response:
        query = _valid(AnnotationQuerySerializer, request.query_params)
        slide = selectors.slide_get(self.principal, study_uid, series_uid)
        rows = selectors.annotation_list(slide, consult_id=query.get("consult"))
        return Response(AnnotationSerializer(rows, many=True, context={"user": request.user}).data)

    @extend_schema(
        request=AnnotationCreateSerializer,
        responses={201: AnnotationSerializer},
        parameters=[ORG_HEADER],
    )
    def post(self, request: Request, study_uid: str, series_uid: str) -> Response:
        data = _valid(AnnotationCreateSerializer, request.data)
        slide = selectors.slide_get(self.principal, study_uid, series_uid)
        annotation = services.annotation_create(
            principal=self.principal,
            slide=slide,
            shape=data["shape"],
            points=data["points"],
            text=data.get("text", ""),
            consult_id=data.get("consult"),
        )
        return Response(
            AnnotationSerializer(annotation, context={"user": request.user}).data,
            status=status.HTTP_201_CREATED,
        )


class AnnotationDetailView(StaffView):
    def _slide(self, annotation: Any) -> Slide:
        return selectors.slide_get(
            self.principal,
            annotation.study.study_instance_uid,
            annotation.series.series_instance_uid,
        )

    @extend_schema(
        request=AnnotationUpdateSerializer, responses=AnnotationSerializer, parameters=[ORG_HEADER]
    )
    def patch(self, request: Request, annotation_id: str) -> Response:
        data = _valid(AnnotationUpdateSerializer, request.data)
        annotation = selectors.annotation_get(self.principal, annotation_id)
        annotation = services.annotation_update(
            principal=self.principal,
            annotation=annotation,
            slide=self._slide(annotation),
            points=data.get("points"),
            text=data.get("text"),
        )
        return Response(AnnotationSerializer(annotation, context={"user": request.user}).data)

    @extend_schema(responses={204: None}, parameters=[ORG_HEADER])
    def delete(self, request: Request, annotation_id: str) -> Response:
        annotation = selectors.annotation_get(self.principal, annotation_id)
        services.annotation_delete(principal=self.principal, annotation=annotation)
        return Response(status=status.HTTP_204_NO_CONTENT)
