"""Consult data: requests, attachments, history, reports, critical values, SLAs, rosters."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from registry.models import BaseModel, Consent, Organisation, Patient

from .states import ConsultState


class ConsultType(models.TextChoices):
    ECG_READ = "ecg_read", _("ECG read")
    IMAGING_READ = "imaging_read", _("Imaging read")
    PATHOLOGY_READ = "pathology_read", _("Pathology read")
    LAB_REVIEW = "lab_review", _("Lab review")
    SPECIALIST_VIDEO = "specialist_video", _("Specialist video consult")
    MDT = "mdt", _("Multidisciplinary consult")


class Urgency(models.TextChoices):
    ROUTINE = "routine", _("Routine")
    URGENT = "urgent", _("Urgent")
    EMERGENCY = "emergency", _("Emergency")


# Lower sorts first in a worklist.
URGENCY_RANK = {Urgency.EMERGENCY: 0, Urgency.URGENT: 1, Urgency.ROUTINE: 2}


class ConsultRequest(BaseModel):
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="consults_requested"
    )
    requesting_organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="consults_requested"
    )
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="consults")
    consult_type = models.CharField(_("type"), max_length=32, choices=ConsultType.choices)
    # The fields an invitation must carry under the 2018 remote-medical-service rules.
    reason = models.TextField(_("reason and purpose"), blank=True)
    proposed_time = models.DateTimeField(_("proposed time"), null=True, blank=True)
    record_summary = models.TextField(_("record summary"), blank=True)
    wanted_specialty = models.CharField(_("specialty wanted"), max_length=32, blank=True)
    minimum_title = models.CharField(_("minimum professional title"), max_length=32, blank=True)
    clinical_question = models.TextField(_("clinical question"), blank=True)
    vital_signs = models.JSONField(_("vital signs"), default=dict, blank=True)
    urgency = models.CharField(
        _("urgency"), max_length=16, choices=Urgency.choices, default=Urgency.ROUTINE
    )
    urgency_rank = models.PositiveSmallIntegerField(default=2, editable=False)
    consent = models.ForeignKey(
        Consent, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Routing.
    centre = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="consult_queue"
    )
    queue = models.CharField(_("specialty queue"), max_length=32, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="consults_assigned",
    )
    tried_centres = models.JSONField(default=list, blank=True)  # organisation pks, in order
    state = models.CharField(
        max_length=16, choices=ConsultState.choices, default=ConsultState.DRAFT, db_index=True
    )
    accept_by = models.DateTimeField(null=True, blank=True)
    report_by = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    signed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    declined_at = models.DateTimeField(null=True, blank=True)
    returned_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    decline_reason = models.CharField(max_length=500, blank=True)
    return_reason = models.CharField(max_length=500, blank=True)
    cancel_reason = models.CharField(max_length=500, blank=True)
    # Optimistic locking for edits from the page (a stale form gets 409).
    version = models.PositiveIntegerField(default=1)

    class Meta:
        indexes = [
            models.Index(fields=["centre", "state", "urgency_rank", "accept_by"]),
            models.Index(fields=["assignee", "state"]),
            models.Index(fields=["requesting_organisation", "state"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["draft", "submitted", "returned", "declined", "cancelled"])
                | Q(centre__isnull=False),
                name="consult_routed_has_centre",
            ),
            models.CheckConstraint(
                condition=~Q(state__in=["accepted", "in_progress", "reported", "signed"])
                | Q(assignee__isnull=False),
                name="consult_accepted_has_assignee",
            ),
        ]

    def __str__(self) -> str:
        return str(self.external_id)


class AttachmentKind(models.TextChoices):
    STUDY = "study", _("Imaging study")
    PHOTO = "photo", _("Photo")
    PDF = "pdf", _("PDF document")
    LAB_SHEET = "lab_sheet", _("Lab sheet")


class UploadStatus(models.TextChoices):
    UPLOADING = "uploading", _("Uploading")
    COMPLETE = "complete", _("Complete")


class ConsultAttachment(BaseModel):
    consult = models.ForeignKey(
        ConsultRequest, on_delete=models.CASCADE, related_name="attachments"
    )
    kind = models.CharField(max_length=16, choices=AttachmentKind.choices)
    # A study reference: the UID is enough; the study may arrive later and is linked then.
    study_instance_uid = models.CharField(max_length=64, blank=True, db_index=True)
    study = models.ForeignKey(
        "imaging.Study", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # An uploaded file.
    filename = models.CharField(max_length=200, blank=True)
    content_type = models.CharField(max_length=64, blank=True)  # sniffed, never trusted
    size = models.PositiveBigIntegerField(default=0)  # declared total
    received_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    storage_key = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        max_length=16, choices=UploadStatus.choices, default=UploadStatus.COMPLETE
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="study") | ~Q(study_instance_uid=""),
                name="study_attachment_has_uid",
            ),
            models.CheckConstraint(
                condition=Q(received_bytes__lte=models.F("size")), name="upload_not_past_size"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.external_id}"


class ConsultTransition(models.Model):
    """Append-only history of a consult's states: written by the transition services only."""

    id = models.BigAutoField(primary_key=True)
    consult = models.ForeignKey(
        ConsultRequest, on_delete=models.CASCADE, related_name="transitions"
    )
    from_state = models.CharField(max_length=16, choices=ConsultState.choices)
    to_state = models.CharField(max_length=16, choices=ConsultState.choices)
    action = models.CharField(max_length=32)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True)  # "system:sla" for tasks
    at = models.DateTimeField()
    reason = models.CharField(max_length=500, blank=True)
    centre = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.from_state}→{self.to_state}"

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.pk is not None:
            raise ValueError("consult transitions are append-only")
        super().save(*args, **kwargs)


class ReportStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SIGNED = "signed", _("Signed")


class RecommendationKind(models.TextChoices):
    MANAGE_LOCALLY = "manage_locally", _("Manage locally")
    REFER_UP = "refer_up", _("Refer up to the centre")
    FOLLOW_UP = "follow_up", _("Follow up in N days")
    REPEAT_EXAM = "repeat_exam", _("Repeat the examination")


class SignedReportImmutable(Exception):
    pass


class Report(BaseModel):
    """One version of a consult's report. A signed version never changes (a database trigger
    refuses it); an amendment is a new version pointing at the one it replaces."""

    consult = models.ForeignKey(ConsultRequest, on_delete=models.PROTECT, related_name="reports")
    version = models.PositiveIntegerField(default=1)
    previous = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="amended_by"
    )
    status = models.CharField(
        max_length=16, choices=ReportStatus.choices, default=ReportStatus.DRAFT
    )
    findings = models.TextField(blank=True)
    impression = models.TextField(blank=True)
    recommendations = models.TextField(blank=True)
    amendment_reason = models.CharField(max_length=500, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    content_hash = models.CharField(max_length=64, blank=True)
    # Structured sections of the consult type (see ``report_structure``), the impression's
    # ICD-10 codes and what the reader recommends; all covered by the content hash.
    structured = models.JSONField(default=dict, blank=True)
    icd10_codes = models.JSONField(default=list, blank=True)
    recommendation_kind = models.CharField(
        max_length=16, choices=RecommendationKind.choices, blank=True
    )
    follow_up_days = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["version"]
        constraints = [
            models.UniqueConstraint(fields=["consult", "version"], name="unique_report_version"),
            models.UniqueConstraint(
                fields=["consult"],
                condition=Q(status="draft"),
                name="one_draft_report_per_consult",
            ),
            models.CheckConstraint(
                condition=Q(status="draft")
                | (Q(signed_at__isnull=False) & Q(signed_by__isnull=False) & ~Q(content_hash="")),
                name="signed_report_has_signature",
            ),
            models.CheckConstraint(
                condition=~Q(recommendation_kind="follow_up")
                | Q(follow_up_days__gte=1, follow_up_days__lte=365),
                name="report_follow_up_has_days",
            ),
        ]

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.pk is not None:
            stored = Report.objects.filter(pk=self.pk).values_list("status", flat=True).first()
            if stored == ReportStatus.SIGNED:
                raise SignedReportImmutable("a signed report cannot be changed")
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"report v{self.version}"


class AlertStatus(models.TextChoices):
    OPEN = "open", _("Waiting for acknowledgement")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")


class CriticalValueAlert(BaseModel):
    consult = models.ForeignKey(
        ConsultRequest, on_delete=models.PROTECT, related_name="critical_values"
    )
    finding_code = models.CharField(max_length=64)
    note = models.CharField(max_length=500, blank=True)
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    raised_at = models.DateTimeField()
    acknowledge_by = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    escalation_level = models.PositiveSmallIntegerField(default=0)
    outcome = models.TextField(blank=True)
    outcome_recorded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at"]

    def __str__(self) -> str:
        return self.finding_code


class CriticalValueEscalation(models.Model):
    """One escalation step of one alert; the unique key makes the step happen once."""

    id = models.BigAutoField(primary_key=True)
    alert = models.ForeignKey(
        CriticalValueAlert, on_delete=models.CASCADE, related_name="escalations"
    )
    step = models.PositiveSmallIntegerField()
    target = models.CharField(max_length=32)  # "clinic_head", "centre_coordinator"
    notified = models.JSONField(default=list)  # usernames
    at = models.DateTimeField()

    class Meta:
        ordering = ["step"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "step"], name="unique_alert_escalation_step")
        ]

    def __str__(self) -> str:
        return f"{self.alert_id}:{self.step}"


class SlaKind(models.TextChoices):
    ACCEPT = "accept", _("Accept deadline")
    REPORT = "report", _("Report deadline")


class SlaStep(models.TextChoices):
    COORDINATOR = "coordinator", _("Coordinator notified")
    REROUTE = "reroute", _("Re-routed to a fallback centre")


class SlaEscalation(models.Model):
    """One escalation step for one missed deadline at one centre (unique: done once)."""

    id = models.BigAutoField(primary_key=True)
    consult = models.ForeignKey(
        ConsultRequest, on_delete=models.CASCADE, related_name="sla_escalations"
    )
    centre = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=SlaKind.choices)
    step = models.CharField(max_length=16, choices=SlaStep.choices)
    deadline = models.DateTimeField()
    at = models.DateTimeField()
    detail = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["consult", "centre", "kind", "step"], name="unique_sla_escalation_step"
            )
        ]

    def __str__(self) -> str:
        return f"{self.consult_id}:{self.kind}:{self.step}"


class SlaPolicy(BaseModel):
    """A centre's deadlines for one urgency; without a row the defaults apply."""

    centre = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    urgency = models.CharField(max_length=16, choices=Urgency.choices)
    accept_minutes = models.PositiveIntegerField()
    report_minutes = models.PositiveIntegerField()

    class Meta:
        verbose_name_plural = _("SLA policies")
        constraints = [
            models.UniqueConstraint(fields=["centre", "urgency"], name="unique_sla_per_urgency"),
            models.CheckConstraint(
                condition=Q(report_minutes__gte=models.F("accept_minutes")),
                name="sla_report_after_accept",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.centre_id}:{self.urgency}"


class Shift(BaseModel):
    """A specialist on duty at a centre from ``starts_at`` to ``ends_at`` (the roster)."""

    centre = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    queue = models.CharField(max_length=32, blank=True)  # empty: every queue of the centre
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["centre", "starts_at", "ends_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="shift_ends_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.centre_id}"


# --- live sessions (WebRTC) ----------------------------------------------------------------------


class LiveSessionStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ENDED = "ended", _("Ended")


class LiveSession(BaseModel):
    """A video meeting of one consult. At most one open session per consult."""

    consult = models.ForeignKey(
        ConsultRequest, on_delete=models.PROTECT, related_name="live_sessions"
    )
    status = models.CharField(
        max_length=8, choices=LiveSessionStatus.choices, default=LiveSessionStatus.OPEN
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Set when a call failed and the consult went on as store and forward.
    fallback_at = models.DateTimeField(null=True, blank=True)
    fallback_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["consult"], condition=Q(status="open"), name="one_open_live_session"
            ),
            models.CheckConstraint(
                condition=Q(status="open", ended_at__isnull=True)
                | Q(status="ended", ended_at__isnull=False),
                name="live_session_ended_has_time",
            ),
        ]

    def __str__(self) -> str:
        return str(self.external_id)


class ParticipantRole(models.TextChoices):
    REQUESTER = "requester", _("Requesting doctor")
    SPECIALIST = "specialist", _("Specialist")
    EXTRA_SPECIALIST = "extra_specialist", _("Invited specialist")
    PATIENT = "patient", _("Patient")


class LiveParticipant(BaseModel):
    """Someone admitted to a session: a staff user, or the patient through a confirmed link."""

    session = models.ForeignKey(LiveSession, on_delete=models.CASCADE, related_name="participants")
    role = models.CharField(max_length=20, choices=ParticipantRole.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    display_name = models.CharField(max_length=100)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "user"],
                condition=Q(user__isnull=False, removed_at__isnull=True),
                name="one_active_participant_per_user",
            ),
            models.CheckConstraint(
                condition=Q(user__isnull=False) | Q(patient__isnull=False),
                name="participant_is_user_or_patient",
            ),
        ]

    def __str__(self) -> str:
        return str(self.external_id)


class PatientInvitation(BaseModel):
    """The one-time link of a patient participant, confirmed by a code sent by SMS.

    Only hashes are stored: SHA-256 of the link token, HMAC of the code."""

    participant = models.OneToOneField(
        LiveParticipant, on_delete=models.CASCADE, related_name="invitation"
    )
    link_hash = models.CharField(max_length=64, unique=True)
    link_expires_at = models.DateTimeField()
    code_hash = models.CharField(max_length=64, blank=True)
    code_expires_at = models.DateTimeField(null=True, blank=True)
    codes_sent = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    confirmed_at = models.DateTimeField(null=True, blank=True)


class MessageKind(models.TextChoices):
    CHAT = "chat", _("Chat")
    IMAGE = "image", _("Still image")
    SYSTEM = "system", _("System note")


class ConsultMessage(BaseModel):
    """A message kept with the consult: chat from a live session, or a note that the consult
    went on asynchronously. Append-only."""

    consult = models.ForeignKey(ConsultRequest, on_delete=models.PROTECT, related_name="messages")
    session = models.ForeignKey(
        LiveSession, null=True, blank=True, on_delete=models.PROTECT, related_name="messages"
    )
    author = models.ForeignKey(
        LiveParticipant, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    author_label = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=8, choices=MessageKind.choices, default=MessageKind.CHAT)
    body = models.TextField(max_length=4000, blank=True)
    attachment = models.ForeignKey(
        ConsultAttachment, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    client_seq = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["consult", "created_at"])]


# --- referrals (双向转诊) ------------------------------------------------------------------------


class ReferralState(models.TextChoices):
    REQUESTED = "requested", _("Waiting for the centre")
    ACCEPTED = "accepted", _("Accepted by the centre")
    HANDED_BACK = "handed_back", _("Handed back with a care plan")
    CANCELLED = "cancelled", _("Cancelled")


class Referral(BaseModel):
    """A patient referred up from the requesting organisation to the centre because a signed
    report recommended it, and later handed back down with a care plan. One per consult."""

    consult = models.OneToOneField(
        ConsultRequest, on_delete=models.PROTECT, related_name="referral"
    )
    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    from_organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="referrals_out"
    )
    to_organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="referrals_in"
    )
    reason = models.TextField(_("reason"))
    state = models.CharField(
        max_length=16, choices=ReferralState.choices, default=ReferralState.REQUESTED
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    handed_back_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    handed_back_at = models.DateTimeField(null=True, blank=True)
    back_to_organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    care_plan = models.TextField(_("care plan"), blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["to_organisation", "state"]),
            models.Index(fields=["from_organisation", "state"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(state="handed_back")
                | (Q(handed_back_at__isnull=False) & ~Q(care_plan="")),
                name="referral_handed_back_has_plan",
            ),
            models.CheckConstraint(
                condition=~Q(state__in=["accepted", "handed_back"]) | Q(accepted_at__isnull=False),
                name="referral_accepted_has_time",
            ),
        ]

    def __str__(self) -> str:
        return str(self.external_id)


# --- Recording of live sessions (issue "Consults", item 9b) -------------------------------------


class RecordingAgreement(BaseModel):
    """A staff participant's in-session agreement to be recorded: who and when; withdrawing
    sets ``withdrawn_at`` (the row stays). The patient's consent is the registry's
    ``Consent`` of kind ``recording``, not a row here."""

    session = models.ForeignKey(
        LiveSession, on_delete=models.CASCADE, related_name="recording_agreements"
    )
    participant = models.ForeignKey(
        LiveParticipant, on_delete=models.CASCADE, related_name="recording_agreements"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    agreed_at = models.DateTimeField()
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["participant"],
                condition=Q(withdrawn_at__isnull=True),
                name="one_standing_recording_agreement",
            )
        ]


class RecordingStatus(models.TextChoices):
    RECORDING = "recording", _("Recording")
    STOPPING = "stopping", _("Stopping")
    STORED = "stored", _("Stored")
    FAILED = "failed", _("Failed")


class Recording(BaseModel):
    """One recording of a live session, written by the server's recorder peer; the file is
    kept in default storage until ``retention_until``, then deleted (the row stays)."""

    session = models.ForeignKey(LiveSession, on_delete=models.PROTECT, related_name="recordings")
    consult = models.ForeignKey(ConsultRequest, on_delete=models.PROTECT, related_name="recordings")
    status = models.CharField(
        max_length=12, choices=RecordingStatus.choices, default=RecordingStatus.RECORDING
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    stop_reason = models.CharField(max_length=64, blank=True)
    # The web process whose recorder peer receives the media ("host:pid:random"), claimed by
    # the first offer.
    recorder_node = models.CharField(max_length=100, blank=True)
    storage_key = models.CharField(max_length=300, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    duration = models.FloatField(null=True, blank=True)  # seconds
    retention_until = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session"],
                condition=Q(status__in=["recording", "stopping"]),
                name="one_running_recording_per_session",
            ),
            models.CheckConstraint(
                condition=~Q(status="stored")
                | Q(stopped_at__isnull=False, sha256__regex=r"^[0-9a-f]{64}$"),
                name="stored_recording_has_hash",
            ),
        ]
        indexes = [models.Index(fields=["consult", "started_at"])]

    def __str__(self) -> str:
        return str(self.external_id)
