from django.urls import path

from . import api

urlpatterns = [
    path("records/", api.RecordListView.as_view(), name="ecg-records"),
    path("records/<str:record_id>/", api.RecordDetailView.as_view(), name="ecg-record"),
    path("records/<str:record_id>/waveform/", api.WaveformView.as_view(), name="ecg-waveform"),
    path(
        "records/<str:record_id>/render.svg",
        api.RenderView.as_view(),
        {"kind": "svg"},
        name="ecg-render-svg",
    ),
    path(
        "records/<str:record_id>/render.png",
        api.RenderView.as_view(),
        {"kind": "png"},
        name="ecg-render-png",
    ),
    path("records/<str:record_id>/confirm/", api.ConfirmView.as_view(), name="ecg-confirm"),
    path("records/<str:record_id>/priors/", api.PriorsView.as_view(), name="ecg-priors"),
    path("studies/<str:study_uid>/process/", api.StudyProcessView.as_view(), name="ecg-process"),
]
