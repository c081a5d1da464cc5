from django.urls import path

from . import api

urlpatterns = [
    path("studies/", api.StudyListView.as_view(), name="imaging-study-list"),
    path("studies/<str:study_uid>/", api.StudyDetailView.as_view(), name="imaging-study"),
    path(
        "studies/<str:study_uid>/reconcile/",
        api.StudyReconcileView.as_view(),
        name="imaging-study-reconcile",
    ),
    path(
        "studies/<str:study_uid>/deidentified.zip",
        api.StudyExportView.as_view(),
        name="imaging-study-export",
    ),
]
