"""EHR bridge data: HL7 partners and the inbound message log.

The message log is the durable record of what each partner sent and what we answered. A
row's received bytes, identity (sender, control ID, hash) and the acknowledgement sent are
written once, before the acknowledgement goes out; in PostgreSQL a trigger refuses any later
change to them. Processing changes only the status columns, and each step appends an
``InboundMessageEvent``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from registry.models import BaseModel, ConsentMethod, Organisation, Patient


class Hl7Version(models.TextChoices):
    V2_3 = "2.3", "2.3"
    V2_3_1 = "2.3.1", "2.3.1"
    V2_4 = "2.4", "2.4"
    V2_5 = "2.5", "2.5"
    V2_5_1 = "2.5.1", "2.5.1"


class Hl7Charset(models.TextChoices):
    UTF8 = "UNICODE UTF-8", "UNICODE UTF-8"
    GB18030 = "GB 18030-2000", "GB 18030-2000"
    GBK = "GBK", "GBK"
    ASCII = "ASCII", "ASCII"
    LATIN1 = "8859/1", "8859/1"


class Hl7Partner(BaseModel):
    """A system that exchanges HL7 v2 with Huizhen (a hospital HIS, a lab system).

    Inbound messages are matched to a partner by MSH-3/MSH-4 (first components). The
    outbound endpoint fields are used by the outbound queue.
    """

    name = models.CharField(_("name"), max_length=200)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="hl7_partners"
    )
    sending_application = models.CharField(_("sending application (MSH-3)"), max_length=180)
    sending_facility = models.CharField(_("sending facility (MSH-4)"), max_length=180)
    assigning_authority = models.CharField(
        _("default assigning authority"),
        max_length=64,
        blank=True,
        help_text=_("Used for identifiers without CX.4; the sending facility when empty."),
    )
    inbound_enabled = models.BooleanField(_("inbound enabled"), default=True)
    outbound_enabled = models.BooleanField(_("outbound enabled"), default=False)
    outbound_host = models.CharField(_("outbound host"), max_length=255, blank=True)
    outbound_port = models.PositiveIntegerField(_("outbound port"), null=True, blank=True)
    outbound_version = models.CharField(
        _("outbound HL7 version"), max_length=8, choices=Hl7Version.choices, default="2.5"
    )
    outbound_charset = models.CharField(
        _("outbound character set"),
        max_length=32,
        choices=Hl7Charset.choices,
        default=Hl7Charset.UTF8,
    )
    outbound_events = models.JSONField(
        _("outbound events"),
        default=list,
        blank=True,
        help_text=_('Message types sent to this partner, e.g. ["ORU^R01", "SIU^S12"].'),
    )
    outbound_ack_timeout = models.PositiveSmallIntegerField(
        _("acknowledgement timeout (seconds)"), default=30
    )
    outbound_max_attempts = models.PositiveSmallIntegerField(
        _("attempts before a message is dead-lettered"), default=8
    )
    outbound_include_pdf = models.BooleanField(
        _("attach report PDFs (OBX of type ED)"), default=False
    )
    # Inbound orders (ORM^O01, OMG^O19) and appointments (SIU^S12-S15).
    order_requester = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("order account"),
        help_text=_(
            "A doctor of the partner's organisation who requests consults ordered by this "
            "partner when the ordering provider (ORC-12) is not a Huizhen user."
        ),
    )
    order_consent_method = models.CharField(
        _("teleconsult consent implied by an order"),
        max_length=16,
        choices=ConsentMethod.choices,
        blank=True,
        default=ConsentMethod.WRITTEN,
        help_text=_(
            "How the hospital records a patient's consent before it orders a remote read. "
            "Empty: orders wait as drafts until a clinician records the consent."
        ),
    )
    service_map = models.JSONField(
        _("order code → consult type"),
        default=dict,
        blank=True,
        help_text=_('OBR-4 codes of this partner, e.g. {"XD001": "ecg_read"}.'),
    )
    schedule_map = models.JSONField(
        _("resource code → schedule"),
        default=dict,
        blank=True,
        help_text=_(
            "AIP/AIL/AIS resource codes of this partner mapped to schedule IDs, "
            'e.g. {"NK01": "<schedule external ID>"}.'
        ),
    )

    class Meta:
        verbose_name = _("HL7 partner")
        verbose_name_plural = _("HL7 partners")
        constraints = [
            models.UniqueConstraint(
                fields=["sending_application", "sending_facility"], name="unique_hl7_partner"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def authority(self) -> str:
        return self.assigning_authority or self.sending_facility


class InboundStatus(models.TextChoices):
    RECEIVED = "received", _("Received, waiting to be processed")
    PROCESSED = "processed", _("Processed")
    UNSUPPORTED = "unsupported", _("Stored; not applied yet (type not supported yet)")
    ERROR = "error", _("Failed; will be retried")
    PARKED = "parked", _("Parked after failures; waiting for replay")
    DUPLICATE_CONFLICT = "duplicate_conflict", _("Control ID reused for different content")


# Statuses that still wait for the worker, and hold back younger messages of the patient.
PENDING_STATUSES = (InboundStatus.RECEIVED, InboundStatus.ERROR)


class InboundMessage(models.Model):
    id = models.BigAutoField(primary_key=True)
    external_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    partner = models.ForeignKey(
        Hl7Partner, null=True, blank=True, on_delete=models.PROTECT, related_name="inbound"
    )
    sending_application = models.CharField(_("sending application"), max_length=180)
    sending_facility = models.CharField(_("sending facility"), max_length=180)
    receiving_application = models.CharField(max_length=180, blank=True)
    receiving_facility = models.CharField(max_length=180, blank=True)
    control_id = models.CharField(_("control ID (MSH-10)"), max_length=199)
    message_type = models.CharField(_("message type"), max_length=8)
    trigger_event = models.CharField(_("trigger event"), max_length=8)
    message_structure = models.CharField(max_length=16, blank=True)
    version = models.CharField(_("HL7 version"), max_length=16)
    processing_id = models.CharField(max_length=8, blank=True)
    charset = models.CharField(_("declared character set (MSH-18)"), max_length=32, blank=True)
    codec = models.CharField(max_length=16)
    raw = models.BinaryField(_("bytes received"))
    text = models.TextField(_("decoded text"))
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    peer = models.CharField(_("peer address"), max_length=64, blank=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)
    accept_ack_type = models.CharField(max_length=2, blank=True)
    application_ack_type = models.CharField(max_length=2, blank=True)
    ack = models.BinaryField(_("acknowledgement sent"), null=True, blank=True)
    ack_code = models.CharField(_("acknowledgement code"), max_length=2, blank=True)
    patient_key = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=InboundStatus.choices, default=InboundStatus.RECEIVED
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    error = models.TextField(_("last error"), blank=True)
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    application_ack = models.BinaryField(
        _("application acknowledgement (MSH-16)"), null=True, blank=True
    )
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("inbound HL7 message")
        verbose_name_plural = _("inbound HL7 messages")
        constraints = [
            # One message per sender and control ID; conflicting copies are kept beside it,
            # once per distinct content.
            models.UniqueConstraint(
                fields=["sending_application", "sending_facility", "control_id"],
                condition=~Q(status="duplicate_conflict"),
                name="unique_inbound_control_id",
            ),
            models.UniqueConstraint(
                fields=["sending_application", "sending_facility", "control_id", "sha256"],
                condition=Q(status="duplicate_conflict"),
                name="unique_inbound_conflict_copy",
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=[
                        "received",
                        "processed",
                        "unsupported",
                        "error",
                        "parked",
                        "duplicate_conflict",
                    ]
                ),
                name="inbound_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["patient_key", "status", "id"], name="inbound_patient_order"),
            models.Index(fields=["status", "next_attempt_at"], name="inbound_due"),
            models.Index(fields=["message_type", "trigger_event"], name="inbound_type"),
        ]

    def __str__(self) -> str:
        return f"{self.message_type}^{self.trigger_event} {self.control_id}"


class InboundEventKind(models.TextChoices):
    RECEIVED = "received", _("Received")
    DUPLICATE = "duplicate", _("Duplicate answered with the original acknowledgement")
    CONFLICT = "conflict", _("Control ID reused for different content")
    PROCESSED = "processed", _("Processed")
    UNSUPPORTED = "unsupported", _("Not applied: type not supported yet")
    FAILED = "failed", _("Processing failed")
    PARKED = "parked", _("Parked")
    REPLAYED = "replayed", _("Replayed by an operator")


class InboundMessageEvent(models.Model):
    """Append-only history of one inbound message."""

    id = models.BigAutoField(primary_key=True)
    message = models.ForeignKey(InboundMessage, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=InboundEventKind.choices)
    at = models.DateTimeField(default=timezone.now)
    detail = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.message_id}"


# --- Outbound --------------------------------------------------------------------------------


class OutboundStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to be sent")
    SENT = "sent", _("Sent, waiting for the acknowledgement")
    ACKED = "acked", _("Acknowledged (AA)")
    DEAD = "dead", _("Given up after failures; waiting for replay")


# Statuses that hold back younger messages of the same partner and patient.
OUTBOUND_BLOCKING = (OutboundStatus.PENDING, OutboundStatus.SENT)


class OutboundMessage(models.Model):
    """One HL7 message to send to a partner, in order per partner and patient.

    ``payload`` holds the exact bytes sent (encoded in the partner's character set when
    queued); a retry sends the same bytes with the same control ID, so that a receiver that
    already applied it answers with its original acknowledgement.
    """

    id = models.BigAutoField(primary_key=True)
    external_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    partner = models.ForeignKey(Hl7Partner, on_delete=models.PROTECT, related_name="outbound")
    event_type = models.CharField(_("event type"), max_length=32)
    patient_key = models.CharField(_("patient key"), max_length=255, blank=True)
    payload = models.BinaryField(_("bytes to send"))
    codec = models.CharField(max_length=16)
    control_id = models.CharField(_("control ID (MSH-10)"), max_length=199)
    status = models.CharField(
        _("status"), max_length=8, choices=OutboundStatus.choices, default=OutboundStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(_("last error"), blank=True)
    ack = models.BinaryField(_("acknowledgement received"), null=True, blank=True)
    ack_code = models.CharField(_("acknowledgement code"), max_length=2, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    acked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("outbound HL7 message")
        verbose_name_plural = _("outbound HL7 messages")
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "control_id"], name="unique_outbound_control_id"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "sent", "acked", "dead"]),
                name="outbound_status_valid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["partner", "patient_key", "status", "id"], name="outbound_patient_order"
            ),
            models.Index(fields=["status", "next_attempt_at"], name="outbound_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.control_id}"


# --- Inbound orders, appointments and results --------------------------------------------------


class InboundOrder(BaseModel):
    """An order a partner placed (ORM^O01 / OMG^O19), mapped to the consult it became.

    The placer order number (ORC-2/OBR-2) is the partner's key: a repeated NW finds the row
    and creates nothing; the ORU^R01 sent back on signing carries it in ORC-2/OBR-2.
    """

    partner = models.ForeignKey(Hl7Partner, on_delete=models.PROTECT, related_name="orders")
    placer_order_number = models.CharField(_("placer order number"), max_length=64)
    filler_order_number = models.CharField(_("filler order number"), max_length=64, blank=True)
    consult = models.ForeignKey(
        "consult.ConsultRequest", on_delete=models.PROTECT, related_name="+"
    )
    service_code = models.CharField(_("universal service ID"), max_length=64, blank=True)
    service_text = models.CharField(max_length=200, blank=True)
    ordering_provider = models.CharField(max_length=200, blank=True)
    message = models.ForeignKey(
        InboundMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("inbound order")
        verbose_name_plural = _("inbound orders")
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "placer_order_number"], name="unique_inbound_order"
            )
        ]

    def __str__(self) -> str:
        return self.placer_order_number


class InboundAppointment(BaseModel):
    """An appointment a partner booked (SIU^S12), keyed by its filler appointment ID (SCH-2),
    and the Huizhen booking it is now (a reschedule points it at the new booking).

    Bookings listed here are not sent back to the partner that booked them."""

    partner = models.ForeignKey(Hl7Partner, on_delete=models.PROTECT, related_name="appointments")
    filler_appointment_id = models.CharField(_("filler appointment ID"), max_length=75)
    placer_appointment_id = models.CharField(max_length=75, blank=True)
    booking = models.ForeignKey("appointments.Booking", on_delete=models.PROTECT, related_name="+")
    message = models.ForeignKey(
        InboundMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("inbound appointment")
        verbose_name_plural = _("inbound appointments")
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "filler_appointment_id"], name="unique_inbound_appointment"
            )
        ]

    def __str__(self) -> str:
        return self.filler_appointment_id


class LabResultStatus(models.TextChoices):
    PRELIMINARY = "P", _("Preliminary")
    FINAL = "F", _("Final")
    CORRECTED = "C", _("Corrected")


class LabResult(BaseModel):
    """One lab observation (OBX) of a partner's ORU^R01, attached to a registry patient.

    Rows are never changed but for ``is_current``: a corrected (OBX-11 C) or later result
    for the same order and observation adds a row that ``replaces`` the earlier one, which
    stays as history. ``organisation`` is the partner's organisation, the data's owner.
    """

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="lab_results")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    partner = models.ForeignKey(Hl7Partner, on_delete=models.PROTECT, related_name="lab_results")
    message = models.ForeignKey(
        InboundMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    order_key = models.CharField(_("order (filler, else placer number)"), max_length=64)
    placer_order_number = models.CharField(max_length=64, blank=True)
    filler_order_number = models.CharField(max_length=64, blank=True)
    order_code = models.CharField(_("panel code (OBR-4)"), max_length=64, blank=True)
    order_text = models.CharField(_("panel (OBR-4)"), max_length=200, blank=True)
    code = models.CharField(_("observation code (OBX-3)"), max_length=64)
    coding_system = models.CharField(max_length=32, blank=True)
    text = models.CharField(_("observation (OBX-3)"), max_length=200, blank=True)
    sub_id = models.CharField(max_length=20, blank=True)
    value_type = models.CharField(max_length=3, blank=True)
    value = models.TextField(_("value (OBX-5)"), blank=True)
    units = models.CharField(_("units (OBX-6)"), max_length=64, blank=True)
    reference_range = models.CharField(_("reference range (OBX-7)"), max_length=64, blank=True)
    abnormal_flag = models.CharField(_("abnormal flag (OBX-8)"), max_length=8, blank=True)
    status = models.CharField(_("status (OBX-11)"), max_length=1, choices=LabResultStatus.choices)
    observed_at = models.DateTimeField(_("observed at"), null=True, blank=True)
    is_current = models.BooleanField(default=True)
    replaces = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by"
    )

    class Meta:
        verbose_name = _("lab result")
        verbose_name_plural = _("lab results")
        ordering = ["-observed_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "patient", "order_key", "code", "sub_id"],
                condition=Q(is_current=True),
                name="one_current_lab_result",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["P", "F", "C"]), name="lab_result_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["patient", "is_current", "observed_at"])]

    def __str__(self) -> str:
        return f"{self.code} {self.value} {self.units}"


# --- external PACS (query/retrieve of priors, reports stored back) ------------------------------


class PacsRetrieve(models.TextChoices):
    GET = "get", _("C-GET")
    MOVE = "move", _("C-MOVE to Huizhen")


class PacsReportFormat(models.TextChoices):
    NONE = "", _("Do not store reports")
    PDF = "pdf", _("Encapsulated PDF")


class RemotePacs(BaseModel):
    """A hospital PACS Huizhen queries for priors (and may store signed reports to).

    It serves the consults requested anywhere under ``organisation`` (the nearest configured
    ancestor of the requesting organisation wins)."""

    name = models.CharField(_("name"), max_length=200)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="remote_pacs"
    )
    ae_title = models.CharField(_("PACS AE title"), max_length=16)
    host = models.CharField(_("host"), max_length=255)
    port = models.PositiveIntegerField(_("port"))
    calling_ae_title = models.CharField(_("our calling AE title"), max_length=16, default="HUIZHEN")
    assigning_authority = models.CharField(
        _("assigning authority of Patient ID"),
        max_length=64,
        blank=True,
        help_text=_("The organisation's HL7 facility codes when empty."),
    )
    retrieve = models.CharField(
        _("retrieve by"), max_length=8, choices=PacsRetrieve.choices, default=PacsRetrieve.GET
    )
    report_format = models.CharField(
        _("store signed reports as"),
        max_length=8,
        choices=PacsReportFormat.choices,
        default=PacsReportFormat.NONE,
        blank=True,
    )
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta:
        verbose_name = _("remote PACS")
        verbose_name_plural = _("remote PACS")

    def __str__(self) -> str:
        return f"{self.name} ({self.ae_title}@{self.host}:{self.port})"


class PacsJobStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class PacsPull(BaseModel):
    """One retrieve of a prior study from a remote PACS for a consult."""

    pacs = models.ForeignKey(RemotePacs, on_delete=models.PROTECT, related_name="pulls")
    consult = models.ForeignKey(
        "consult.ConsultRequest", on_delete=models.PROTECT, related_name="+"
    )
    study_instance_uid = models.CharField(max_length=64)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The organisation the requester acted in: an unmatched study is linked to the consult's
    # patient in the requester's name.
    requested_in = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=PacsJobStatus.choices, default=PacsJobStatus.PENDING
    )
    stored = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    study = models.ForeignKey(
        "imaging.Study", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"pull {self.study_instance_uid} ({self.status})"


class PacsReportSend(BaseModel):
    """A signed report to be stored to a remote PACS, retried with backoff until sent."""

    pacs = models.ForeignKey(RemotePacs, on_delete=models.PROTECT, related_name="report_sends")
    report = models.ForeignKey("consult.Report", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=16, choices=PacsJobStatus.choices, default=PacsJobStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now, db_index=True)
    sop_instance_uid = models.CharField(max_length=64, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pacs", "report"], name="one_pacs_send_per_report")
        ]

    def __str__(self) -> str:
        return f"report {self.report_id} to {self.pacs_id} ({self.status})"
