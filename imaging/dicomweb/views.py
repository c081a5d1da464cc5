"""DICOMweb views: parse, go through the access gate, call one search/retrieve function,
answer. Each retrieval of a study's content is audited once per study per session."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils.translation import gettext as _
from rest_framework.request import Request

from imaging.access import (
    access_instance,
    access_series,
    access_study,
    instances_of,
    record_study_view,
)
from imaging.models import Instance, Study
from registry.errors import NotFound

from . import qido, rendered, stow, wado
from .http import BadRequest, DicomWebView, NotAcceptable, accepts_json, dicom_json


class _Viewing(DicomWebView):
    """A view that hands out a study's content and audits it once per session."""

    def viewed(self, study: Study) -> None:
        record_study_view(self.principal, study, self.session_key())


def _search(view: DicomWebView, request: Request, level: str, fixed: list) -> HttpResponse:
    accepts_json(request)
    search = qido.parse_search(request.query_params, level, fixed)
    run = {
        "study": qido.search_studies,
        "series": qido.search_series,
        "instance": qido.search_instances,
    }[level]
    results, more = run(request, view.principal, search)
    warnings = list(search.warnings)
    if more:
        warnings.append("There are more results: ask again with offset and limit.")
    return dicom_json(results, warnings=warnings)


# --- /studies ---------------------------------------------------------------------------------


class StudiesView(DicomWebView):
    def get(self, request: Request) -> HttpResponse:
        return _search(self, request, "study", [])

    def post(self, request: Request) -> HttpResponse:
        return stow.store(request, self.principal, None)


class StudyView(_Viewing):
    def get(self, request: Request, study: str) -> HttpResponse:
        found = access_study(self.principal, study)
        response = wado.retrieve(request, instances_of(found))
        self.viewed(found)
        return response

    def post(self, request: Request, study: str) -> HttpResponse:
        return stow.store(request, self.principal, study)


class StudySeriesSearchView(DicomWebView):
    def get(self, request: Request, study: str) -> HttpResponse:
        return _search(self, request, "series", qido.fixed_study(study))


class StudyInstancesSearchView(DicomWebView):
    def get(self, request: Request, study: str) -> HttpResponse:
        return _search(self, request, "instance", qido.fixed_study(study))


class SeriesSearchView(DicomWebView):
    def get(self, request: Request) -> HttpResponse:
        return _search(self, request, "series", [])


class InstancesSearchView(DicomWebView):
    def get(self, request: Request) -> HttpResponse:
        return _search(self, request, "instance", [])


class SeriesInstancesSearchView(DicomWebView):
    def get(self, request: Request, study: str, series: str) -> HttpResponse:
        return _search(self, request, "instance", qido.fixed_series(study, series))


class SeriesView(_Viewing):
    def get(self, request: Request, study: str, series: str) -> HttpResponse:
        found = access_series(self.principal, study, series)
        response = wado.retrieve(request, instances_of(found.study, found))
        self.viewed(found.study)
        return response


class InstanceView(_Viewing):
    def get(self, request: Request, study: str, series: str, instance: str) -> HttpResponse:
        found = access_instance(self.principal, study, series, instance)
        response = wado.retrieve(request, [found], single_allowed=True)
        self.viewed(found.series.study)
        return response


# --- metadata and bulk data ---------------------------------------------------------------------


def _metadata(request: Request, instances: list[Instance]) -> HttpResponse:
    accepts_json(request)
    return dicom_json([wado.metadata_json(request, i) for i in instances])


class StudyMetadataView(_Viewing):
    def get(self, request: Request, study: str) -> HttpResponse:
        found = access_study(self.principal, study)
        response = _metadata(request, instances_of(found))
        self.viewed(found)
        return response


class SeriesMetadataView(_Viewing):
    def get(self, request: Request, study: str, series: str) -> HttpResponse:
        found = access_series(self.principal, study, series)
        response = _metadata(request, instances_of(found.study, found))
        self.viewed(found.study)
        return response


class InstanceMetadataView(_Viewing):
    def get(self, request: Request, study: str, series: str, instance: str) -> HttpResponse:
        found = access_instance(self.principal, study, series, instance)
        response = _metadata(request, [found])
        self.viewed(found.series.study)
        return response


class BulkdataView(_Viewing):
    def get(
        self, request: Request, study: str, series: str, instance: str, path: str
    ) -> HttpResponse:
        found = access_instance(self.principal, study, series, instance)
        response = wado.bulkdata(request, found, path)
        self.viewed(found.series.study)
        return response


# --- frames, rendered and thumbnails ------------------------------------------------------


class FramesView(_Viewing):
    def get(
        self, request: Request, study: str, series: str, instance: str, frames: str
    ) -> HttpResponse:
        found = access_instance(self.principal, study, series, instance)
        response = wado.frames(request, found, frames)
        self.viewed(found.series.study)
        return response


class InstanceRenderedView(_Viewing):
    thumbnail = False

    def get(self, request: Request, study: str, series: str, instance: str) -> HttpResponse:
        found = access_instance(self.principal, study, series, instance)
        options = rendered.render_options(request, request.query_params, thumbnail=self.thumbnail)
        response = rendered.rendered(request, found, options)
        self.viewed(found.series.study)
        return response


class InstanceThumbnailView(InstanceRenderedView):
    thumbnail = True


class FrameRenderedView(_Viewing):
    thumbnail = False

    def get(
        self, request: Request, study: str, series: str, instance: str, frames: str
    ) -> HttpResponse:
        found = access_instance(self.principal, study, series, instance)
        number = rendered.single_frame(frames)
        options = rendered.render_options(request, request.query_params, thumbnail=self.thumbnail)
        response = rendered.rendered(request, found, options, number)
        self.viewed(found.series.study)
        return response


class FrameThumbnailView(FrameRenderedView):
    thumbnail = True


def _thumbnail(view: _Viewing, request: Request, study: Study, instances: list) -> HttpResponse:
    chosen = rendered.middle_image(instances)
    if chosen is None:
        raise NotFound(_("There is no image to make a thumbnail of."))
    options = rendered.render_options(request, request.query_params, thumbnail=True)
    response = rendered.rendered(request, chosen, options)
    view.viewed(study)
    return response


class StudyThumbnailView(_Viewing):
    def get(self, request: Request, study: str) -> HttpResponse:
        found = access_study(self.principal, study)
        return _thumbnail(self, request, found, instances_of(found))


class SeriesThumbnailView(_Viewing):
    def get(self, request: Request, study: str, series: str) -> HttpResponse:
        found = access_series(self.principal, study, series)
        return _thumbnail(self, request, found.study, instances_of(found.study, found))


# --- WADO-URI ---------------------------------------------------------------------------------


class WadoUriView(_Viewing):
    """``/wado?requestType=WADO&studyUID=…&seriesUID=…&objectUID=…&contentType=…``."""

    def get(self, request: Request) -> HttpResponse:
        params = request.query_params
        if params.get("requestType") != "WADO":
            raise BadRequest(_("requestType must be WADO."))
        uids = [params.get(k, "") for k in ("studyUID", "seriesUID", "objectUID")]
        if not all(uids):
            raise BadRequest(_("studyUID, seriesUID and objectUID are all required."))
        found = access_instance(self.principal, *uids)
        wanted = [t.strip() for t in params.get("contentType", "").split(",") if t.strip()]
        if not wanted:
            wanted = ["image/jpeg" if found.rows else "application/dicom"]
        kind = next(
            (t for t in wanted if t in ("application/dicom", "image/jpeg", "image/png")), None
        )
        if kind is None:
            raise NotAcceptable(_("contentType is application/dicom, image/jpeg or image/png."))
        if kind == "application/dicom":
            response = wado.single_object(request, found, params.get("transferSyntax"))
        else:
            options, frame = rendered.wado_uri_options(params, media_type=kind)
            response = rendered.rendered(request, found, options, frame)
        self.viewed(found.series.study)
        return response
