"""Appointments data: schedules, weekly templates, exceptions, holidays, slots, bookings,
waitlist, reminders, idempotent requests and the patient portal's one-time codes.

Invariants live in the database: a slot's ``booked`` counter can never exceed its
``capacity`` (CHECK), and a patient holds at most one active booking per visit type and day
(partial unique index).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from registry.models import BaseModel, Organisation, Patient

from .states import ACTIVE_STATUSES, BookingStatus


class VisitType(models.TextChoices):
    IN_PERSON = "in_person", _("In person")
    TELECONSULT = "teleconsult", _("Teleconsult")
    HOME_VISIT = "home_visit", _("Home visit")
    CHRONIC_FOLLOWUP = "chronic_followup", _("Chronic-disease follow-up")


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class Schedule(BaseModel):
    """A bookable calendar of one organisation, optionally one department and one clinician."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="schedules"
    )
    department = models.CharField(_("department"), max_length=100, blank=True)
    clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="schedules",
    )
    name = models.CharField(_("name"), max_length=200)
    approval_required = models.BooleanField(
        _("online requests wait for staff confirmation"), default=False
    )
    observes_holidays = models.BooleanField(
        _("closed on statutory holidays, open on adjusted working days"), default=True
    )
    adjusted_workday_as = models.PositiveSmallIntegerField(
        _("an adjusted working day (调休) follows the sessions of"),
        choices=Weekday.choices,
        default=Weekday.MONDAY,
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        indexes = [models.Index(fields=["organisation", "is_active"])]

    def __str__(self) -> str:
        return self.name


class WeeklyTemplate(BaseModel):
    """One session on one weekday: slots of ``slot_minutes`` from ``start`` to ``end``."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="templates")
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    start = models.TimeField(_("session start"))
    end = models.TimeField(_("session end"))
    slot_minutes = models.PositiveSmallIntegerField(_("slot length (minutes)"))
    capacity = models.PositiveSmallIntegerField(_("patients per slot"), default=1)
    visit_type = models.CharField(_("visit type"), max_length=32, choices=VisitType.choices)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["weekday", "start"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="template_end_after"),
            models.CheckConstraint(condition=Q(slot_minutes__gte=5), name="template_slot_min"),
            models.CheckConstraint(condition=Q(capacity__gte=1), name="template_capacity_min"),
            models.CheckConstraint(condition=Q(weekday__lte=6), name="template_weekday_range"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start:%H:%M}-{self.end:%H:%M}"


class ExceptionKind(models.TextChoices):
    LEAVE = "leave", _("Leave")
    CLOSURE = "closure", _("Closure")


class ScheduleException(BaseModel):
    """No slots in ``[starts_at, ends_at)``: for one schedule, or (no schedule) for every
    schedule of the organisation."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    schedule = models.ForeignKey(
        Schedule, null=True, blank=True, on_delete=models.CASCADE, related_name="exceptions"
    )
    kind = models.CharField(max_length=16, choices=ExceptionKind.choices)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="exception_ends_after"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.starts_at:%Y-%m-%d}"


class HolidayOverride(BaseModel):
    """A correction to the statutory holiday calendar; wins over the packaged table.

    ``is_workday`` False closes the day; True opens it as an adjusted working day, following
    ``works_as_weekday`` (or the schedule's ``adjusted_workday_as`` on a weekend).
    """

    date = models.DateField(_("date"), unique=True)
    is_workday = models.BooleanField(_("working day"))
    name = models.CharField(_("name"), max_length=100, blank=True)
    works_as_weekday = models.PositiveSmallIntegerField(
        _("follows the sessions of"), choices=Weekday.choices, null=True, blank=True
    )

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {'workday' if self.is_workday else 'holiday'}"


class SlotStatus(models.TextChoices):
    OPEN = "open", _("Open")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class Slot(BaseModel):
    """A bookable time. ``booked`` counts active bookings and waitlist holds."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="slots")
    template = models.ForeignKey(
        WeeklyTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="slots"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    visit_type = models.CharField(max_length=32, choices=VisitType.choices)
    capacity = models.PositiveSmallIntegerField()
    booked = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=SlotStatus.choices, default=SlotStatus.OPEN)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(booked__gte=0) & Q(booked__lte=F("capacity")),
                name="slot_booked_within_capacity",
            ),
            models.UniqueConstraint(
                fields=["schedule", "visit_type", "starts_at"], name="unique_slot_start"
            ),
        ]
        indexes = [
            models.Index(fields=["starts_at", "visit_type"]),
            models.Index(fields=["schedule", "starts_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.starts_at:%Y-%m-%d %H:%M} ({self.booked}/{self.capacity})"


class BookingChannel(models.TextChoices):
    PORTAL = "portal", _("Patient portal")
    STAFF = "staff", _("Staff on the patient's behalf")
    HIS = "his", _("Hospital information system")


class RecurringSeries(BaseModel):
    """Bookings repeated every ``interval_weeks`` until ``until``."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    schedule = models.ForeignKey(Schedule, on_delete=models.PROTECT, related_name="+")
    interval_weeks = models.PositiveSmallIntegerField()
    until = models.DateField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(interval_weeks__gte=1), name="series_interval_min")
        ]

    def __str__(self) -> str:
        return f"every {self.interval_weeks} weeks until {self.until}"


class Booking(BaseModel):
    slot = models.ForeignKey(Slot, on_delete=models.PROTECT, related_name="bookings")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="bookings")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    visit_type = models.CharField(max_length=32, choices=VisitType.choices)
    starts_at = models.DateTimeField(db_index=True)
    day = models.DateField(help_text="Local date of the visit.")
    status = models.CharField(max_length=16, choices=BookingStatus.choices)
    channel = models.CharField(max_length=16, choices=BookingChannel.choices)
    series = models.ForeignKey(
        RecurringSeries, null=True, blank=True, on_delete=models.SET_NULL, related_name="bookings"
    )
    rescheduled_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=500, blank=True)
    cancel_reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "visit_type", "day"],
                condition=Q(status__in=sorted(ACTIVE_STATUSES)),  # sorted: a stable migration
                name="one_active_booking_per_patient_type_day",
            )
        ]
        indexes = [models.Index(fields=["patient", "status", "starts_at"])]

    def __str__(self) -> str:
        return str(self.external_id)


class BookingEvent(models.Model):
    """Append-only history of a booking, written by the services."""

    id = models.BigAutoField(primary_key=True)
    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    actor = models.CharField(max_length=150)
    at = models.DateTimeField(auto_now_add=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.from_status}->{self.to_status}"


class WaitlistStatus(models.TextChoices):
    WAITING = "waiting", _("Waiting")
    OFFERED = "offered", _("Slot offered")
    BOOKED = "booked", _("Booked")
    EXPIRED = "expired", _("Offer expired")
    CANCELLED = "cancelled", _("Cancelled")


class WaitlistEntry(BaseModel):
    """A patient waiting for a slot of a schedule and visit type between two dates.

    An offer holds one seat of ``offered_slot`` (counted in ``Slot.booked``) until
    ``hold_expires_at``."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="waitlist")
    visit_type = models.CharField(max_length=32, choices=VisitType.choices)
    earliest = models.DateField()
    latest = models.DateField()
    status = models.CharField(
        max_length=16, choices=WaitlistStatus.choices, default=WaitlistStatus.WAITING
    )
    offered_slot = models.ForeignKey(
        Slot, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    booking = models.ForeignKey(
        Booking, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="offered")
                | (Q(offered_slot__isnull=False) & Q(hold_expires_at__isnull=False)),
                name="waitlist_offer_has_hold",
            ),
            models.UniqueConstraint(
                fields=["patient", "schedule", "visit_type"],
                condition=Q(status__in=["waiting", "offered"]),
                name="one_open_waitlist_entry",
            ),
        ]
        indexes = [models.Index(fields=["schedule", "visit_type", "status", "created_at"])]

    def __str__(self) -> str:
        return f"waitlist {self.status}"


class ReminderSent(models.Model):
    """One reminder for one booking and offset. The row is written before the SMS is queued,
    so a retried task never reminds twice."""

    id = models.BigAutoField(primary_key=True)
    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="reminders")
    offset_minutes = models.PositiveIntegerField()
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["booking", "offset_minutes"], name="unique_reminder")
        ]

    def __str__(self) -> str:
        return f"reminder {self.booking_id} -{self.offset_minutes}m"


class IdempotentRequest(models.Model):
    """A write request and its stored answer, keyed by who sent it and its Idempotency-Key."""

    id = models.BigAutoField(primary_key=True)
    scope = models.CharField(max_length=100)
    key = models.CharField(max_length=200)
    operation = models.CharField(max_length=100)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="unique_idempotency_key")
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.key}"


class OtpChallenge(models.Model):
    """A one-time sign-in code sent by SMS to a mobile number; only its HMAC is kept."""

    id = models.BigAutoField(primary_key=True)
    mobile = models.CharField(max_length=11, db_index=True)
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["mobile", "created_at"])]

    def __str__(self) -> str:
        return f"otp {self.pk}"


from .chronic_models import (  # noqa: E402,F401  (models Django must find)
    Contract,
    DoctorTeam,
    Enrolment,
    FollowUp,
    Programme,
    Reading,
    ReferralNeed,
    ServicePackage,
)
