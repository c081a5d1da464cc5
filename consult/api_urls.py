from django.urls import path

from . import api

C = "consults/<str:consult_id>/"
L = "live/<str:session_id>/"
R = "referrals/<str:referral_id>/"

urlpatterns = [
    path("consults/", api.ConsultListView.as_view(), name="consult-list"),
    path("worklist/", api.WorklistView.as_view(), name="consult-worklist"),
    path("critical-values/", api.CriticalListView.as_view(), name="consult-critical-list"),
    path(
        "critical-values/<str:alert_id>/acknowledge/",
        api.CriticalAcknowledgeView.as_view(),
        name="consult-critical-ack",
    ),
    path(
        "critical-values/<str:alert_id>/outcome/",
        api.CriticalOutcomeView.as_view(),
        name="consult-critical-outcome",
    ),
    path("statistics/", api.StatisticsView.as_view(), name="consult-statistics"),
    path("referrals/", api.ReferralListView.as_view(), name="referral-list"),
    path(R, api.ReferralDetailView.as_view(), name="referral-detail"),
    path(R + "accept/", api.ReferralAcceptView.as_view(), name="referral-accept"),
    path(R + "hand-back/", api.ReferralHandBackView.as_view(), name="referral-hand-back"),
    path("statistics.csv", api.StatisticsCsvView.as_view(), name="consult-statistics-csv"),
    path("precall/offer/", api.precall_offer_view, name="consult-precall-offer"),
    path("live/join/<str:token>/code/", api.PatientLinkCodeView.as_view(), name="live-join-code"),
    path(
        "live/join/<str:token>/confirm/",
        api.PatientLinkConfirmView.as_view(),
        name="live-join-confirm",
    ),
    path(L, api.LiveSessionView.as_view(), name="live-session"),
    path(L + "end/", api.LiveSessionEndView.as_view(), name="live-session-end"),
    path(L + "participants/", api.LiveInviteView.as_view(), name="live-invite"),
    path(
        L + "participants/<str:participant_id>/",
        api.LiveRemoveView.as_view(),
        name="live-remove",
    ),
    path(L + "patient-invite/", api.LivePatientInviteView.as_view(), name="live-invite-patient"),
    path(C, api.ConsultDetailView.as_view(), name="consult-detail"),
    path(C + "live/", api.LiveSessionOpenView.as_view(), name="live-session-open"),
    path(C + "messages/", api.ConsultMessagesView.as_view(), name="consult-messages"),
    path(C + "submit/", api.SubmitView.as_view(), name="consult-submit"),
    path(C + "resubmit/", api.ResubmitView.as_view(), name="consult-resubmit"),
    path(C + "accept/", api.AcceptView.as_view(), name="consult-accept"),
    path(C + "decline/", api.DeclineView.as_view(), name="consult-decline"),
    path(C + "return/", api.ReturnView.as_view(), name="consult-return"),
    path(C + "start/", api.StartView.as_view(), name="consult-start"),
    path(C + "report/", api.ReportView.as_view(), name="consult-report"),
    path(C + "sign/", api.SignView.as_view(), name="consult-sign"),
    path(C + "amend/", api.AmendView.as_view(), name="consult-amend"),
    path(C + "reports/<int:version>.pdf", api.ReportPdfView.as_view(), name="consult-report-pdf"),
    path(C + "deliver/", api.DeliverView.as_view(), name="consult-deliver"),
    path(C + "close/", api.CloseView.as_view(), name="consult-close"),
    path(C + "cancel/", api.CancelView.as_view(), name="consult-cancel"),
    path(C + "reassign/", api.ReassignView.as_view(), name="consult-reassign"),
    path(C + "critical-values/", api.CriticalRaiseView.as_view(), name="consult-critical-raise"),
    path(C + "attachments/study/", api.StudyAttachView.as_view(), name="consult-attach-study"),
    path(C + "attachments/uploads/", api.UploadStartView.as_view(), name="consult-upload-start"),
    path(
        C + "attachments/<str:attachment_id>/upload/",
        api.UploadChunkView.as_view(),
        name="consult-upload-chunk",
    ),
    path(
        C + "attachments/<str:attachment_id>/file/",
        api.AttachmentFileView.as_view(),
        name="consult-attachment-file",
    ),
]

# --- recording of live sessions (issue "Consults", item 9b) --------------------------------------
from . import recording_api  # noqa: E402

urlpatterns += [
    path(L + "recording/", recording_api.RecordingStateView.as_view(), name="live-recording"),
    path(
        L + "recording/stop/",
        recording_api.RecordingStopView.as_view(),
        name="live-recording-stop",
    ),
    path(
        L + "recording/consent/",
        recording_api.RecordingConsentView.as_view(),
        name="live-recording-consent",
    ),
    path(L + "recording/offer/", recording_api.recording_offer_view, name="live-recording-offer"),
    path(
        C + "recordings/",
        recording_api.ConsultRecordingsView.as_view(),
        name="consult-recordings",
    ),
    path(
        C + "recordings/<str:recording_id>/file/",
        recording_api.RecordingFileView.as_view(),
        name="consult-recording-file",
    ),
]
