from django.urls import path

from . import api, pacs_api

urlpatterns = [
    path("messages/", api.InboundListView.as_view(), name="hl7-message-list"),
    path("messages/<str:message_id>/", api.InboundDetailView.as_view(), name="hl7-message"),
    path(
        "messages/<str:message_id>/replay/",
        api.InboundReplayView.as_view(),
        name="hl7-message-replay",
    ),
    path("outbound/", api.OutboundListView.as_view(), name="hl7-outbound-list"),
    path("outbound/<str:message_id>/", api.OutboundDetailView.as_view(), name="hl7-outbound"),
    path(
        "outbound/<str:message_id>/replay/",
        api.OutboundReplayView.as_view(),
        name="hl7-outbound-replay",
    ),
    path(
        "patients/<str:patient_id>/lab-results/",
        api.LabResultListView.as_view(),
        name="hl7-lab-result-list",
    ),
    path(
        "pacs/consults/<str:consult_id>/priors/",
        pacs_api.PriorListView.as_view(),
        name="pacs-prior-list",
    ),
    path(
        "pacs/consults/<str:consult_id>/pulls/",
        pacs_api.PullListView.as_view(),
        name="pacs-pull-list",
    ),
    path(
        "pacs/consults/<str:consult_id>/pulls/<str:pull_id>/",
        pacs_api.PullDetailView.as_view(),
        name="pacs-pull",
    ),
]
