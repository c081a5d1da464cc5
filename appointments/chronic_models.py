"""Chronic-disease programmes, follow-ups, referrals, readings and family-doctor contracts.

Imported by ``appointments.models`` so that Django finds the models. Thresholds and
intervals are rows of ``Programme`` (per organisation, the most specific one wins), not code.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from registry.models import BaseModel, Organisation, Patient


class ProgrammeKind(models.TextChoices):
    HYPERTENSION = "hypertension", _("Hypertension")
    DIABETES = "diabetes", _("Type 2 diabetes")
    OTHER = "other", _("Other chronic disease")


class Programme(BaseModel):
    """The rules of one programme for one organisation (and everything below it); a row
    without organisation is the national default."""

    code = models.SlugField(_("code"), max_length=40)
    kind = models.CharField(_("kind"), max_length=16, choices=ProgrammeKind.choices)
    name = models.CharField(_("name"), max_length=100)
    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    condition_prefixes = models.JSONField(
        _("ICD-10 code prefixes of the conditions enrolled"), default=list, blank=True
    )
    min_visits_per_year = models.PositiveSmallIntegerField(default=4)
    routine_interval_days = models.PositiveSmallIntegerField(default=90)
    uncontrolled_interval_days = models.PositiveSmallIntegerField(default=14)
    referral_check_days = models.PositiveSmallIntegerField(default=14)
    uncontrolled_in_a_row_to_refer = models.PositiveSmallIntegerField(default=2)
    sbp_controlled_below = models.PositiveSmallIntegerField(null=True, blank=True)
    dbp_controlled_below = models.PositiveSmallIntegerField(null=True, blank=True)
    glucose_controlled_below = models.DecimalField(
        max_digits=4, decimal_places=1, null=True, blank=True
    )
    urgent_sbp_at_least = models.PositiveSmallIntegerField(default=180)
    urgent_dbp_at_least = models.PositiveSmallIntegerField(default=110)
    urgent_glucose_at_least = models.DecimalField(
        max_digits=4, decimal_places=1, default=Decimal("16.7")
    )
    urgent_glucose_at_most = models.DecimalField(
        max_digits=4, decimal_places=1, default=Decimal("3.9")
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(
                fields=["code", "organisation"], name="unique_programme_per_org"
            ),
            models.UniqueConstraint(
                fields=["code"],
                condition=Q(organisation__isnull=True),
                name="unique_default_programme",
            ),
            models.CheckConstraint(
                condition=Q(routine_interval_days__gte=1) & Q(uncontrolled_interval_days__gte=1),
                name="programme_intervals_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class EnrolmentStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    ENDED = "ended", _("Ended")


class Enrolment(BaseModel):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="enrolments")
    programme = models.ForeignKey(Programme, on_delete=models.PROTECT, related_name="enrolments")
    status = models.CharField(
        max_length=8, choices=EnrolmentStatus.choices, default=EnrolmentStatus.ACTIVE
    )
    enrolled_on = models.DateField()
    next_due = models.DateField(db_index=True)
    uncontrolled_in_a_row = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "programme"],
                condition=Q(status="active"),
                name="one_active_enrolment_per_programme",
            )
        ]

    def __str__(self) -> str:
        return f"{self.programme} {self.status}"


class Control(models.TextChoices):
    CONTROLLED = "controlled", _("Controlled")
    UNCONTROLLED = "uncontrolled", _("Not controlled")
    UNKNOWN = "unknown", _("Not assessed")


class FollowUp(BaseModel):
    """One follow-up of an enrolment: the classification and what it decided."""

    enrolment = models.ForeignKey(Enrolment, on_delete=models.PROTECT, related_name="followups")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    visited_on = models.DateField()
    face_to_face = models.BooleanField(default=True)
    control = models.CharField(max_length=16, choices=Control.choices)
    urgent = models.BooleanField(default=False)
    adverse_reaction = models.CharField(max_length=500, blank=True)
    new_complication = models.CharField(max_length=500, blank=True)
    next_due = models.DateField()
    decision = models.JSONField(default=dict, blank=True)
    booking = models.ForeignKey(
        "appointments.Booking", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["visited_on", "id"]

    def __str__(self) -> str:
        return f"{self.visited_on} {self.control}"


class ReferralReason(models.TextChoices):
    UNCONTROLLED = "uncontrolled", _("Not controlled at consecutive follow-ups")
    COMPLICATION = "complication", _("New complication")
    URGENT = "urgent", _("Urgent reading")


class ReferralStatus(models.TextChoices):
    OPEN = "open", _("Waiting for the centre")
    DONE = "done", _("Seen at the centre")
    MISSED = "missed", _("Not seen in time")


class ReferralNeed(BaseModel):
    """A referral to the centre the programme called for, and the check that it happened."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    enrolment = models.ForeignKey(
        Enrolment, null=True, blank=True, on_delete=models.PROTECT, related_name="referrals"
    )
    followup = models.ForeignKey(
        FollowUp, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=16, choices=ReferralReason.choices)
    urgent = models.BooleanField(default=False)
    check_on = models.DateField(db_index=True)
    status = models.CharField(
        max_length=8, choices=ReferralStatus.choices, default=ReferralStatus.OPEN
    )
    checked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"referral {self.reason} {self.status}"


class ReadingKind(models.TextChoices):
    BLOOD_PRESSURE = "blood_pressure", _("Blood pressure (mmHg)")
    HEART_RATE = "heart_rate", _("Heart rate (/min)")
    FASTING_GLUCOSE = "fasting_glucose", _("Fasting glucose (mmol/L)")
    RANDOM_GLUCOSE = "random_glucose", _("Random glucose (mmol/L)")
    HBA1C = "hba1c", _("HbA1c (%)")
    WEIGHT = "weight", _("Weight (kg)")
    HEIGHT = "height", _("Height (cm)")
    BMI = "bmi", _("BMI (kg/m²)")
    WAIST = "waist", _("Waist (cm)")
    SMOKING = "smoking", _("Cigarettes a day")
    ADHERENCE = "adherence", _("Medication adherence")


class ReadingSource(models.TextChoices):
    VISIT = "visit", _("At a visit")
    PATIENT = "patient", _("By the patient")


class Reading(BaseModel):
    """One measurement. Blood pressure keeps systolic in ``value`` and diastolic in
    ``value2``; adherence is 1 regular, 2 intermittent, 3 not taking."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="readings")
    kind = models.CharField(max_length=20, choices=ReadingKind.choices)
    value = models.DecimalField(max_digits=6, decimal_places=1)
    value2 = models.DecimalField(max_digits=6, decimal_places=1, null=True, blank=True)
    taken_at = models.DateTimeField()
    source = models.CharField(max_length=8, choices=ReadingSource.choices)
    followup = models.ForeignKey(
        FollowUp, null=True, blank=True, on_delete=models.SET_NULL, related_name="readings"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["taken_at", "id"]
        indexes = [models.Index(fields=["patient", "kind", "taken_at"])]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="blood_pressure") | Q(value2__isnull=False),
                name="reading_bp_has_diastolic",
            ),
            models.CheckConstraint(condition=Q(value__gte=0), name="reading_value_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


class DoctorTeam(BaseModel):
    """A family-doctor team: a village doctor, a township doctor and a centre specialist."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(_("name"), max_length=100)
    village_doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    township_doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    specialist = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name


class ServicePackage(BaseModel):
    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    code = models.SlugField(max_length=40)
    name = models.CharField(_("name"), max_length=100)
    services = models.JSONField(_("services included"), default=list, blank=True)
    yearly_fee = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("0"))
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["code", "organisation"], name="unique_package_code")
        ]

    def __str__(self) -> str:
        return self.name


class ContractStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for the SMS code")
    ACTIVE = "active", _("Signed")
    ENDED = "ended", _("Ended")


class Contract(BaseModel):
    """A patient's yearly contract with a doctor team (家庭医生签约), signed online with an SMS
    code. The code is kept only as an HMAC."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="contracts")
    team = models.ForeignKey(DoctorTeam, on_delete=models.PROTECT, related_name="contracts")
    package = models.ForeignKey(ServicePackage, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=8, choices=ContractStatus.choices, default=ContractStatus.PENDING
    )
    starts_on = models.DateField()
    ends_on = models.DateField()
    code_hash = models.CharField(max_length=64, blank=True)
    code_expires_at = models.DateTimeField(null=True, blank=True)
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    signed_at = models.DateTimeField(null=True, blank=True)
    renewal_reminded_for = models.DateField(
        null=True, blank=True, help_text="The contract end date a renewal reminder was sent for."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient"], condition=Q(status="active"), name="one_active_contract"
            ),
            models.CheckConstraint(
                condition=Q(ends_on__gt=F("starts_on")), name="contract_ends_after"
            ),
        ]

    def __str__(self) -> str:
        return f"contract {self.status} {self.starts_on}"
