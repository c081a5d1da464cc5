from django.urls import path

from . import api

urlpatterns = [
    path("auth/token/", api.TokenView.as_view(), name="auth-token"),
    path("auth/logout/", api.LogoutView.as_view(), name="auth-logout"),
    path("me/", api.MeView.as_view(), name="me"),
    path("organisations/", api.OrganisationListView.as_view(), name="organisation-list"),
    path(
        "organisations/<uuid:organisation_id>/",
        api.OrganisationDetailView.as_view(),
        name="organisation-detail",
    ),
    path("patients/", api.PatientListView.as_view(), name="patient-list"),
    path("patients/probable-matches/", api.PatientMatchView.as_view(), name="patient-matches"),
    path("patients/<str:patient_id>/", api.PatientDetailView.as_view(), name="patient-detail"),
    path("patients/<str:patient_id>/consents/", api.ConsentListView.as_view(), name="consent-list"),
    path(
        "patients/<str:patient_id>/consents/<str:consent_id>/revoke/",
        api.ConsentRevokeView.as_view(),
        name="consent-revoke",
    ),
    path("break-glass/", api.BreakGlassView.as_view(), name="break-glass"),
    path("audit/", api.AuditListView.as_view(), name="audit-list"),
]
