"""Registry data: organisations, staff, patients, consent, audit trail, outbox, notifications."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

division_code_validator = RegexValidator(r"^[1-8]\d{5}$", _("Six-digit division code."))


class BaseModel(models.Model):
    """Shared columns; ``external_id`` is the only identifier that leaves the database."""

    external_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


# --- Organisations ---


class OrganisationKind(models.TextChoices):
    COUNTY_HOSPITAL = "county_hospital", _("County hospital")
    REGIONAL_CENTRE = "regional_centre", _("Regional consult centre")
    TOWNSHIP_CENTRE = "township_centre", _("Township health centre")
    VILLAGE_CLINIC = "village_clinic", _("Village clinic")


class Service(models.TextChoices):
    ECG = "ecg", _("ECG")
    IMAGING = "imaging", _("Imaging")
    PATHOLOGY = "pathology", _("Pathology")
    LAB = "lab", _("Laboratory")
    CARDIOLOGY = "cardiology", _("Cardiology")
    ENDOCRINOLOGY = "endocrinology", _("Endocrinology")
    GENERAL_MEDICINE = "general_medicine", _("General medicine")
    PAEDIATRICS = "paediatrics", _("Paediatrics")
    OBSTETRICS = "obstetrics", _("Obstetrics")


class Organisation(BaseModel):
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=32, choices=OrganisationKind.choices)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    # Materialised path of primary keys ("/1/4/17/") so that a subtree is one prefix query.
    path = models.CharField(max_length=255, db_index=True, editable=False)
    division_code = models.CharField(
        _("administrative division code"), max_length=6, validators=[division_code_validator]
    )
    services = models.JSONField(_("services offered"), default=list, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["path"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="village_clinic") | Q(parent__isnull=False),
                name="village_clinic_has_parent",
            )
        ]

    def __str__(self) -> str:
        return self.name


class DicomApplicationEntity(BaseModel):
    """A DICOM AE title (and optionally host) that belongs to an organisation."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="dicom_aes"
    )
    ae_title = models.CharField(max_length=16, unique=True)
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return self.ae_title


class Hl7Facility(BaseModel):
    """An HL7 facility code (MSH-4 / assigning authority) that belongs to an organisation."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="hl7_facilities"
    )
    code = models.CharField(max_length=64, unique=True)

    def __str__(self) -> str:
        return self.code


# --- Staff ---


class Role(models.TextChoices):
    VILLAGE_DOCTOR = "village_doctor", _("Village doctor")
    DOCTOR = "doctor", _("Doctor")
    SPECIALIST = "specialist", _("Specialist")
    COORDINATOR = "coordinator", _("Coordinator")
    ORG_ADMIN = "org_admin", _("Organisation admin")
    SYSTEM_ADMIN = "system_admin", _("System admin")


class ProfessionalTitle(models.TextChoices):
    NONE = "", _("None")
    RESIDENT = "resident", _("Resident physician")
    ATTENDING = "attending", _("Attending physician")
    ASSOCIATE_CHIEF = "associate_chief", _("Associate chief physician")
    CHIEF = "chief", _("Chief physician")


class StaffProfile(BaseModel):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff"
    )
    display_name = models.CharField(_("display name"), max_length=100)
    licence_number = models.CharField(_("licence number"), max_length=64, blank=True)
    professional_title = models.CharField(
        max_length=32, choices=ProfessionalTitle.choices, blank=True, default=""
    )
    specialties = models.JSONField(default=list, blank=True)
    mobile = models.CharField(max_length=11, blank=True)

    def __str__(self) -> str:
        return self.display_name


class Membership(BaseModel):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="memberships"
    )
    role = models.CharField(max_length=32, choices=Role.choices)
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organisation", "role"], name="unique_membership_role"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.organisation_id}:{self.role}"


# --- Patients (master patient index) --------------------------------------------------------------


class Sex(models.TextChoices):
    MALE = "male", _("Male")
    FEMALE = "female", _("Female")
    UNKNOWN = "unknown", _("Unknown")


class Patient(BaseModel):
    name = models.CharField(_("name"), max_length=100)
    name_pinyin = models.CharField(_("name in pinyin"), max_length=200, blank=True)
    sex = models.CharField(_("sex"), max_length=8, choices=Sex.choices)
    birth_date = models.DateField(_("birth date"))
    # Nullable: infants and some migrants have no resident ID yet.
    id_number = models.CharField(_("resident ID number"), max_length=18, null=True, blank=True)
    mobile = models.CharField(_("mobile number"), max_length=11, blank=True)
    address = models.CharField(_("address"), max_length=255, blank=True)
    address_division_code = models.CharField(
        max_length=6, blank=True, validators=[division_code_validator]
    )
    home_organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="patients"
    )
    chronic_conditions = models.JSONField(default=list, blank=True)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_from"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["id_number"],
                condition=Q(id_number__isnull=False),
                name="unique_patient_id_number",
            )
        ]
        indexes = [models.Index(fields=["name", "birth_date"]), models.Index(fields=["mobile"])]

    def __str__(self) -> str:
        return str(self.external_id)


class IdentifierKind(models.TextChoices):
    MEDICAL_RECORD = "MR", _("Medical record number")
    INSURANCE = "INS", _("Health insurance number")
    PATIENT_ID = "PI", _("Patient identifier")
    OTHER = "OTHER", _("Other")


class PatientIdentifier(BaseModel):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="identifiers")
    authority = models.CharField(_("assigning authority"), max_length=64)
    kind = models.CharField(max_length=8, choices=IdentifierKind.choices)
    value = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["authority", "kind", "value"], name="unique_identifier_per_authority"
            )
        ]

    def __str__(self) -> str:
        return f"{self.authority}:{self.kind}"


class ConsentKind(models.TextChoices):
    TELECONSULT = "teleconsult", _("Teleconsultation")
    RECORDING = "recording", _("Recording of a live consult")
    SHARE_WITH_CENTRE = "share_with_centre", _("Sharing records with a centre")


class ConsentMethod(models.TextChoices):
    WRITTEN = "written", _("Signed paper form")
    ELECTRONIC = "electronic", _("Electronic signature")
    VERBAL = "verbal", _("Verbal, witnessed")
    GUARDIAN = "guardian", _("Signed by a guardian")


class Consent(BaseModel):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="consents")
    kind = models.CharField(max_length=32, choices=ConsentKind.choices)
    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    method = models.CharField(max_length=16, choices=ConsentMethod.choices)
    note = models.CharField(max_length=500, blank=True)
    granted_at = models.DateTimeField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at_organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoke_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="share_with_centre") | Q(organisation__isnull=False),
                name="share_consent_names_centre",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} ({self.get_method_display()})"


class PatientShare(BaseModel):
    """A care relationship outside the patient's home organisation tree.

    Written by the consult and referral workflows (and when a second clinic registers the
    same person); read by the access selectors.
    """

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="shares")
    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    source = models.CharField(max_length=32)
    source_ref = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(organisation__isnull=False) | Q(user__isnull=False),
                name="share_has_grantee",
            )
        ]

    def __str__(self) -> str:
        return f"share {self.pk}"


class BreakGlassAccess(BaseModel):
    """Emergency access to one patient's record by a doctor with no care relationship."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=500)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "patient", "expires_at"])]

    def __str__(self) -> str:
        return f"break-glass {self.pk}"


# --- Audit trail ---


class AuditOutcome(models.TextChoices):
    SUCCESS = "success", _("Success")
    DENIED = "denied", _("Denied")
    FAILED = "failed", _("Failed")
    EMERGENCY = "emergency", _("Emergency override")


class AuditEvent(models.Model):
    """Append-only. No foreign keys: deleting a user changes no audit row.

    Each row is written in the transaction of the act it records, with no lock shared between
    writers. A sealer then links committed rows into a hash chain (``AuditSeal``), so a changed,
    inserted or deleted row breaks the chain (``manage.py verify_audit``). In PostgreSQL a
    trigger refuses UPDATE and DELETE and the application role loses both grants.
    """

    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True)
    actor_username = models.CharField(max_length=150, blank=True)
    actor_role = models.CharField(max_length=32, blank=True)
    organisation_id = models.BigIntegerField(null=True, db_index=True)
    subject_organisation_id = models.BigIntegerField(null=True, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    patient_id = models.UUIDField(null=True, db_index=True)
    client_address = models.CharField(max_length=45, null=True)
    request_id = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=16, choices=AuditOutcome.choices)
    detail = models.JSONField(default=dict)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.action} {self.outcome}"


class AuditPending(models.Model):
    """An audit row written but not yet sealed into the chain; removed when it is sealed."""

    event_id = models.BigIntegerField(primary_key=True)

    def __str__(self) -> str:
        return f"pending audit row {self.event_id}"


class AuditSeal(models.Model):
    """One link of the audit chain, append-only like the rows it seals.

    ``seq`` is the row's place in the chain; ``hash`` = SHA-256 over ``prev_hash`` (the hash
    of the link before) and the canonical form of every column of the sealed row.
    """

    seq = models.BigIntegerField(primary_key=True)
    event_id = models.BigIntegerField(unique=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    sealed_at = models.DateTimeField()

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"audit link {self.seq} (row {self.event_id})"


# --- Domain-event outbox ---


class DomainEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    external_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(max_length=100, db_index=True)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.event_type} #{self.pk}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    PARKED = "parked", _("Parked after repeated failures")


class EventDelivery(models.Model):
    """One event for one subscriber: delivered at least once, parked after its retries."""

    id = models.BigAutoField(primary_key=True)
    event = models.ForeignKey(DomainEvent, on_delete=models.CASCADE, related_name="deliveries")
    subscriber = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "subscriber"], name="unique_event_subscriber")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.subscriber} #{self.event_id}"


# --- Notifications ---


class Notification(BaseModel):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    category = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    body = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False) | Q(patient__isnull=False),
                name="notification_has_recipient",
            )
        ]

    def __str__(self) -> str:
        return self.category


class NotificationChannel(models.TextChoices):
    PUSH = "push", _("WebSocket push")
    SMS = "sms", _("SMS")


class NotificationDelivery(BaseModel):
    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=8, choices=NotificationChannel.choices)
    address = models.CharField(max_length=64, blank=True)  # masked
    status = models.CharField(max_length=16, default="pending")
    attempts = models.PositiveIntegerField(default=0)
    provider_reference = models.CharField(max_length=128, blank=True)
    error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "channel"], name="unique_notification_channel"
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.status}"
