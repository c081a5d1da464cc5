"""DICOMweb routes (PS3.18): QIDO-RS, WADO-RS, STOW-RS under /dicomweb/, and WADO-URI."""

from django.urls import URLPattern, path
from rest_framework.views import APIView

from . import views
from .http import cors

STUDY = "studies/<str:study>"
SERIES = STUDY + "/series/<str:series>"
INSTANCE = SERIES + "/instances/<str:instance>"


def route(pattern: str, view: type[APIView], name: str | None = None) -> URLPattern:
    return path(pattern, cors(view.as_view()), name=name)


urlpatterns = [
    route("studies", views.StudiesView, "dicomweb-studies"),
    route(STUDY, views.StudyView, "dicomweb-study"),
    route(STUDY + "/metadata", views.StudyMetadataView),
    route(STUDY + "/thumbnail", views.StudyThumbnailView),
    route(STUDY + "/series", views.StudySeriesSearchView),
    route(STUDY + "/instances", views.StudyInstancesSearchView),
    route(SERIES, views.SeriesView, "dicomweb-series"),
    route(SERIES + "/metadata", views.SeriesMetadataView),
    route(SERIES + "/thumbnail", views.SeriesThumbnailView),
    route(SERIES + "/instances", views.SeriesInstancesSearchView),
    route(INSTANCE, views.InstanceView, "dicomweb-instance"),
    route(INSTANCE + "/metadata", views.InstanceMetadataView),
    route(INSTANCE + "/rendered", views.InstanceRenderedView),
    route(INSTANCE + "/thumbnail", views.InstanceThumbnailView),
    route(INSTANCE + "/frames/<str:frames>", views.FramesView),
    route(INSTANCE + "/frames/<str:frames>/rendered", views.FrameRenderedView),
    route(INSTANCE + "/frames/<str:frames>/thumbnail", views.FrameThumbnailView),
    route(INSTANCE + "/bulkdata/<path:path>", views.BulkdataView),
    route("series", views.SeriesSearchView),
    route("instances", views.InstancesSearchView),
    route("wado", views.WadoUriView, "dicomweb-wado-uri"),
]
