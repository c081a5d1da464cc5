"""Schedules and slot generation (writes).

Slots are generated ``HUIZHEN_SLOT_WEEKS_AHEAD`` weeks ahead from the weekly templates, the
statutory calendar and the exceptions. Regeneration compares the wanted slots with the future
ones in the database: it creates the missing, resizes the kept (never below ``booked``),
withdraws the unwanted that nobody holds, and leaves every slot with a booking as it is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import audit
from registry.access import Principal
from registry.errors import NotFound, ValidationFailed
from registry.models import Organisation

from . import holidays
from .access import require_admin, require_schedule_manager, schedule_for_manager
from .models import (
    Booking,
    ExceptionKind,
    HolidayOverride,
    Schedule,
    ScheduleException,
    Slot,
    SlotStatus,
    VisitType,
    WeeklyTemplate,
)


def weeks_ahead() -> int:
    return int(getattr(settings, "HUIZHEN_SLOT_WEEKS_AHEAD", 8))


# --- schedules and templates ------------------------------------------------------------------


@transaction.atomic
def schedule_create(
    *,
    principal: Principal,
    organisation_id: uuid.UUID,
    name: str,
    department: str = "",
    clinician: object | None = None,
    approval_required: bool = False,
    observes_holidays: bool = True,
    adjusted_workday_as: int = 0,
) -> Schedule:
    organisation = Organisation.objects.filter(external_id=organisation_id).first()
    if organisation is None:
        raise NotFound(_("No such organisation."))
    require_schedule_manager(principal, organisation, action="schedule.create")
    schedule = Schedule.objects.create(
        organisation=organisation,
        name=name,
        department=department,
        clinician=clinician,
        approval_required=approval_required,
        observes_holidays=observes_holidays,
        adjusted_workday_as=adjusted_workday_as,
    )
    audit.record(
        actor=principal.actor,
        action="schedule.create",
        object_type="schedule",
        object_id=str(schedule.external_id),
        subject_organisation_id=organisation.pk,
    )
    return schedule


@dataclass(frozen=True)
class TemplateInput:
    weekday: int
    start: time
    end: time
    slot_minutes: int
    capacity: int
    visit_type: str


def _check_template(data: TemplateInput) -> None:
    fields: dict[str, str] = {}
    if not 0 <= data.weekday <= 6:
        fields["weekday"] = _("A weekday from 0 (Monday) to 6 (Sunday).")
    if data.end <= data.start:
        fields["end"] = _("The session must end after it starts.")
    if data.slot_minutes < 5:
        fields["slot_minutes"] = _("Slots last at least 5 minutes.")
    if data.capacity < 1:
        fields["capacity"] = _("At least one patient per slot.")
    if data.visit_type not in VisitType.values:
        fields["visit_type"] = _("Unknown visit type.")
    if fields:
        raise ValidationFailed(_("The session is not valid."), fields=fields)


@transaction.atomic
def template_create(
    *, principal: Principal, schedule_id: uuid.UUID | str, data: TemplateInput
) -> WeeklyTemplate:
    schedule = schedule_for_manager(principal, schedule_id, action="schedule.template")
    _check_template(data)
    template = WeeklyTemplate.objects.create(schedule=schedule, **data.__dict__)
    _audit_schedule(principal, schedule, "schedule.template.create")
    transaction.on_commit(lambda: _regenerate_later(schedule.pk))
    return template


@transaction.atomic
def template_update(
    *, principal: Principal, template_id: uuid.UUID | str, data: TemplateInput, active: bool = True
) -> WeeklyTemplate:
    template = _template(template_id)
    require_schedule_manager(principal, template.schedule.organisation, action="schedule.template")
    _check_template(data)
    for name, value in data.__dict__.items():
        setattr(template, name, value)
    template.is_active = active
    template.save()
    _audit_schedule(principal, template.schedule, "schedule.template.update")
    schedule_pk = template.schedule_id
    transaction.on_commit(lambda: _regenerate_later(schedule_pk))
    return template


def _template(template_id: uuid.UUID | str) -> WeeklyTemplate:
    try:
        key = uuid.UUID(str(template_id))
    except ValueError:
        raise NotFound(_("No such session.")) from None
    template = (
        WeeklyTemplate.objects.select_related("schedule__organisation")
        .filter(external_id=key)
        .first()
    )
    if template is None:
        raise NotFound(_("No such session."))
    return template


@transaction.atomic
def exception_create(
    *,
    principal: Principal,
    organisation: Organisation,
    schedule: Schedule | None,
    kind: str,
    starts_at: datetime,
    ends_at: datetime,
    reason: str = "",
) -> ScheduleException:
    require_schedule_manager(principal, organisation, action="schedule.exception")
    if kind not in ExceptionKind.values:
        raise ValidationFailed(_("Unknown exception kind."), fields={"kind": kind})
    if ends_at <= starts_at:
        raise ValidationFailed(_("It must end after it starts."), fields={"ends_at": ""})
    exc = ScheduleException.objects.create(
        organisation=organisation,
        schedule=schedule,
        kind=kind,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
    )
    audit.record(
        actor=principal.actor,
        action="schedule.exception.create",
        object_type="schedule_exception",
        object_id=str(exc.external_id),
        subject_organisation_id=organisation.pk,
        detail={"kind": kind},
    )
    ids = (
        [schedule.pk]
        if schedule
        else list(Schedule.objects.filter(organisation=organisation).values_list("pk", flat=True))
    )
    transaction.on_commit(lambda: [_regenerate_later(i) for i in ids])
    return exc


@transaction.atomic
def holiday_override_set(
    *,
    principal: Principal,
    day: date,
    is_workday: bool,
    name: str = "",
    works_as_weekday: int | None = None,
) -> HolidayOverride:
    """Correct the statutory calendar for one day (admins); every schedule regenerates."""
    require_admin(principal, action="holiday.override")
    override, _created = HolidayOverride.objects.update_or_create(
        date=day,
        defaults={"is_workday": is_workday, "name": name, "works_as_weekday": works_as_weekday},
    )
    audit.record(
        actor=principal.actor,
        action="holiday.override",
        object_type="holiday",
        object_id=day.isoformat(),
        detail={"is_workday": is_workday},
    )
    transaction.on_commit(_regenerate_all_later)
    return override


def _audit_schedule(principal: Principal, schedule: Schedule, action: str) -> None:
    audit.record(
        actor=principal.actor,
        action=action,
        object_type="schedule",
        object_id=str(schedule.external_id),
        subject_organisation_id=schedule.organisation_id,
    )


def _regenerate_later(schedule_pk: int) -> None:
    from .tasks import slots_generate_for_schedule

    slots_generate_for_schedule.delay(schedule_pk)


def _regenerate_all_later() -> None:
    from .tasks import slots_generate_all

    slots_generate_all.delay()


# --- slot generation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WantedSlot:
    template_id: int
    starts_at: datetime
    ends_at: datetime
    visit_type: str
    capacity: int


def wanted_slots(schedule: Schedule, first: date, last: date) -> list[WantedSlot]:
    """The slots the templates, the calendar and the exceptions ask for (reads only)."""
    tz = timezone.get_default_timezone()
    templates: dict[int, list[WeeklyTemplate]] = {}
    for template in schedule.templates.filter(is_active=True):
        templates.setdefault(template.weekday, []).append(template)
    kinds = holidays.day_kinds(first, last) if schedule.observes_holidays else {}
    start_bound = datetime.combine(first, time.min, tzinfo=tz)
    end_bound = datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz)
    closed = list(
        ScheduleException.objects.filter(
            Q(schedule=schedule) | Q(schedule__isnull=True, organisation=schedule.organisation_id),
            starts_at__lt=end_bound,
            ends_at__gt=start_bound,
        ).values_list("starts_at", "ends_at")
    )
    wanted: list[WantedSlot] = []
    day = first
    while day <= last:
        weekday = holidays.effective_weekday(
            day, kinds.get(day), adjusted_as=schedule.adjusted_workday_as
        )
        for template in templates.get(weekday, []) if weekday is not None else []:
            step = timedelta(minutes=template.slot_minutes)
            begin = datetime.combine(day, template.start, tzinfo=tz)
            stop = datetime.combine(day, template.end, tzinfo=tz)
            while begin + step <= stop:
                if not any(s < begin + step and e > begin for s, e in closed):
                    wanted.append(
                        WantedSlot(
                            template.pk, begin, begin + step, template.visit_type, template.capacity
                        )
                    )
                begin += step
        day += timedelta(days=1)
    return wanted


@dataclass(frozen=True)
class GenerationResult:
    created: int
    resized: int
    withdrawn: int
    kept_booked: int


@transaction.atomic
def slots_generate(*, schedule: Schedule, weeks: int | None = None) -> GenerationResult:
    """Bring the future slots of ``schedule`` in line with its templates, ``weeks`` ahead.

    Safe to run concurrently with bookings: every change to an existing slot is a conditional
    UPDATE on ``booked`` that PostgreSQL re-checks under the row lock.
    """
    now = timezone.now()
    today = timezone.localdate()
    last = today + timedelta(weeks=weeks or weeks_ahead())
    wanted = {(w.visit_type, w.starts_at): w for w in wanted_slots(schedule, today, last)}
    tz = timezone.get_default_timezone()
    horizon = datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz)
    future = Slot.objects.filter(schedule=schedule, starts_at__gt=now, starts_at__lt=horizon)
    existing = {(s.visit_type, s.starts_at): s for s in future}

    created = Slot.objects.bulk_create(
        [
            Slot(
                schedule=schedule,
                template_id=w.template_id,
                starts_at=w.starts_at,
                ends_at=w.ends_at,
                visit_type=w.visit_type,
                capacity=w.capacity,
            )
            for key, w in wanted.items()
            if key not in existing and w.starts_at > now
        ],
        ignore_conflicts=True,
    )
    resized = 0
    for key, slot in existing.items():
        w = wanted.get(key)
        if w is None:
            continue
        if (slot.capacity, slot.status, slot.ends_at, slot.template_id) != (
            w.capacity,
            SlotStatus.OPEN,
            w.ends_at,
            w.template_id,
        ):
            resized += Slot.objects.filter(pk=slot.pk).update(
                capacity=Greatest(Value(w.capacity), F("booked")),
                status=SlotStatus.OPEN,
                ends_at=w.ends_at,
                template_id=w.template_id,
            )
    unwanted = [s.pk for key, s in existing.items() if key not in wanted]
    withdrawn = Slot.objects.filter(pk__in=unwanted, booked=0).update(status=SlotStatus.WITHDRAWN)
    # Withdrawn slots that no booking ever referenced can go altogether.
    Slot.objects.filter(pk__in=unwanted, booked=0, status=SlotStatus.WITHDRAWN).exclude(
        Exists(Booking.objects.filter(slot=OuterRef("pk")))
    ).delete()
    kept = Slot.objects.filter(pk__in=unwanted, booked__gt=0).count()
    return GenerationResult(len(created), resized, withdrawn, kept)


def slots_generate_by_pk(schedule_pk: int, weeks: int | None = None) -> GenerationResult | None:
    schedule = Schedule.objects.filter(pk=schedule_pk, is_active=True).first()
    if schedule is None:
        return None
    return slots_generate(schedule=schedule, weeks=weeks)


def slots_generate_every_schedule(weeks: int | None = None) -> int:
    count = 0
    for pk in Schedule.objects.filter(is_active=True).values_list("pk", flat=True):
        slots_generate_by_pk(pk, weeks)
        count += 1
    return count
