"""Routes of the pathology API under /api/v1/pathology/."""

from django.urls import path

from . import api

SLIDE = "slides/<str:study_uid>/<str:series_uid>/"

urlpatterns = [
    path("slides/uploads/", api.SlideUploadView.as_view(), name="pathology-upload"),
    path(
        "conversions/<str:conversion_id>/",
        api.ConversionView.as_view(),
        name="pathology-conversion",
    ),
    path("studies/<str:study_uid>/", api.StudySlidesView.as_view(), name="pathology-study"),
    path(SLIDE, api.SlideView.as_view(), name="pathology-slide"),
    path(
        SLIDE + "tiles/<int:level>/<int:col>_<int:row>.jpg",
        api.TileView.as_view(),
        name="pathology-tile",
    ),
    path(SLIDE + "annotations/", api.AnnotationListView.as_view(), name="pathology-annotations"),
    path(
        "annotations/<str:annotation_id>/",
        api.AnnotationDetailView.as_view(),
        name="pathology-annotation",
    ),
]
