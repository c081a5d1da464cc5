"""Chronic-disease programmes: enrolment, follow-ups with their classification, referrals to
the centre and the check that each happened, and alerts on urgent readings.

The rules are ``programme_rules`` (pure); the thresholds come from the ``Programme`` row that
applies to the patient's home organisation (the most specific one up the tree, else the
national default). A referral is published as ``appointments.referral_needed`` in the same
transaction; the consult app subscribes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import audit, events, notifications
from registry.access import CLINICAL_ROLES, Principal, access_patient, require_role
from registry.errors import Conflict, NotFound, ValidationFailed
from registry.models import Membership, Organisation, Patient, Role

from . import programme_rules as rules_mod
from .chronic_models import (
    Contract,
    ContractStatus,
    Control,
    Enrolment,
    EnrolmentStatus,
    FollowUp,
    Programme,
    ProgrammeKind,
    Reading,
    ReadingKind,
    ReadingSource,
    ReferralNeed,
    ReferralReason,
    ReferralStatus,
)

EVENT_REFERRAL_NEEDED = "appointments.referral_needed"

DEFAULT_PROGRAMMES: dict[str, dict[str, Any]] = {
    "hypertension": {
        "kind": ProgrammeKind.HYPERTENSION,
        "name": "高血压患者健康管理",
        "condition_prefixes": ["I10", "I11", "I12", "I13", "I15"],
        "sbp_controlled_below": 140,
        "dbp_controlled_below": 90,
    },
    "diabetes": {
        "kind": ProgrammeKind.DIABETES,
        "name": "2型糖尿病患者健康管理",
        "condition_prefixes": ["E11"],
        "glucose_controlled_below": Decimal("7.0"),
    },
}


# --- programmes ------------------------------------------------------------------------------


def programme_defaults() -> None:
    """Make sure the national default rows exist (idempotent, safe under concurrency)."""
    for code, fields in DEFAULT_PROGRAMMES.items():
        if Programme.objects.filter(code=code, organisation__isnull=True).exists():
            continue
        try:
            with transaction.atomic():
                Programme.objects.create(code=code, organisation=None, **fields)
        except IntegrityError:
            pass


def programme_for(*, code: str, organisation: Organisation) -> Programme:
    """The programme row that applies at ``organisation``: its own, its nearest ancestor's,
    or the national default."""
    programme_defaults()
    candidates = {
        p.organisation.path if p.organisation else "": p
        for p in Programme.objects.filter(code=code, is_active=True).select_related("organisation")
    }
    best = max(
        (path for path in candidates if organisation.path.startswith(path)),
        key=len,
        default=None,
    )
    if best is None:
        raise NotFound(_("No such programme."))
    return candidates[best]


def rules_of(programme: Programme) -> rules_mod.Rules:
    return rules_mod.Rules(
        kind=programme.kind,
        routine_interval_days=programme.routine_interval_days,
        uncontrolled_interval_days=programme.uncontrolled_interval_days,
        referral_check_days=programme.referral_check_days,
        uncontrolled_in_a_row_to_refer=programme.uncontrolled_in_a_row_to_refer,
        sbp_controlled_below=programme.sbp_controlled_below,
        dbp_controlled_below=programme.dbp_controlled_below,
        glucose_controlled_below=programme.glucose_controlled_below,
        urgent_sbp_at_least=programme.urgent_sbp_at_least,
        urgent_dbp_at_least=programme.urgent_dbp_at_least,
        urgent_glucose_at_least=programme.urgent_glucose_at_least,
        urgent_glucose_at_most=programme.urgent_glucose_at_most,
    )


@transaction.atomic
def programme_set_rules(
    *, principal: Principal, code: str, organisation: Organisation, **fields: Any
) -> Programme:
    """A county (or any organisation) overrides a programme's thresholds and intervals for
    itself and everything below it. Precondition: the caller is its manager (checked here)."""
    from .access import require_schedule_manager

    require_schedule_manager(principal, organisation, action="programme.rules")
    base = programme_for(code=code, organisation=organisation)
    allowed = {f.name for f in Programme._meta.fields} - {
        "id",
        "external_id",
        "created_at",
        "updated_at",
        "organisation",
        "code",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationFailed(_("Unknown rule."), fields={k: "unknown" for k in unknown})
    own, _created = Programme.objects.get_or_create(
        code=code,
        organisation=organisation,
        defaults={f: getattr(base, f) for f in allowed if f not in {"id"}},
    )
    for name, value in fields.items():
        setattr(own, name, value)
    own.save()
    audit.record(
        actor=principal.actor,
        action="programme.rules",
        object_type="programme",
        object_id=str(own.external_id),
        subject_organisation_id=organisation.pk,
        detail={k: str(v) for k, v in fields.items()},
    )
    return own


def programmes_matching(patient: Patient) -> list[str]:
    """Programme codes whose condition prefixes match the patient's chronic conditions."""
    programme_defaults()
    codes = [str(c).upper() for c in patient.chronic_conditions or []]
    found = []
    for programme in Programme.objects.filter(organisation__isnull=True, is_active=True):
        if any(c.startswith(str(p).upper()) for c in codes for p in programme.condition_prefixes):
            found.append(programme.code)
    return found


# --- enrolment -------------------------------------------------------------------------------


def enrolment_create(*, principal: Principal, patient_id: uuid.UUID | str, code: str) -> Enrolment:
    """Enrol a visible patient; the first follow-up falls due at once."""
    require_role(principal, CLINICAL_ROLES, action="programme.enrol")
    patient = access_patient(principal, patient_id, action="programme.enrol")
    return enrol(patient=patient, code=code, actor=principal.actor, user=principal.user)


@transaction.atomic
def enrol(*, patient: Patient, code: str, actor: audit.Actor, user: Any = None) -> Enrolment:
    programme = programme_for(code=code, organisation=patient.home_organisation)
    try:
        with transaction.atomic():
            enrolment = Enrolment.objects.create(
                patient=patient,
                programme=programme,
                enrolled_on=timezone.localdate(),
                next_due=timezone.localdate(),
                created_by=user,
            )
    except IntegrityError:
        raise Conflict(
            _("The patient is already enrolled in this programme."), code="already_enrolled"
        ) from None
    audit.record(
        actor=actor,
        action="programme.enrol",
        object_type="enrolment",
        object_id=str(enrolment.external_id),
        patient_id=patient.external_id,
        subject_organisation_id=patient.home_organisation_id,
        detail={"programme": code},
    )
    return enrolment


def enrolment_for_staff(principal: Principal, enrolment_id: uuid.UUID | str, *, action: str):
    """Gate: the enrolment of a patient the principal may see (else NotFound, audited)."""
    require_role(principal, CLINICAL_ROLES, action=action)
    try:
        key = uuid.UUID(str(enrolment_id))
    except ValueError:
        raise NotFound(_("No such enrolment.")) from None
    enrolment = (
        Enrolment.objects.select_related("patient", "programme").filter(external_id=key).first()
    )
    if enrolment is None:
        raise NotFound(_("No such enrolment."))
    access_patient(principal, enrolment.patient.external_id, action=action)
    return enrolment


# --- follow-ups ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FollowUpInput:
    visited_on: date
    sbp: int | None = None
    dbp: int | None = None
    heart_rate: int | None = None
    fasting_glucose: Decimal | None = None
    random_glucose: Decimal | None = None
    weight: Decimal | None = None
    adverse_reaction: str = ""
    new_complication: str = ""
    face_to_face: bool = True


def followup_record(
    *, principal: Principal, enrolment_id: uuid.UUID | str, data: FollowUpInput
) -> FollowUp:
    enrolment = enrolment_for_staff(principal, enrolment_id, action="programme.followup")
    return followup_apply(
        enrolment=enrolment, data=data, actor=principal.actor, user=principal.user
    )


@transaction.atomic
def followup_apply(
    *, enrolment: Enrolment, data: FollowUpInput, actor: audit.Actor, user: Any = None
) -> FollowUp:
    """Record a follow-up, classify it, move the next due date and refer when the rules say
    so. Precondition: the enrolment passed its gate. The enrolment row is locked so that two
    follow-ups entered at once count the uncontrolled streak correctly."""
    if data.visited_on > timezone.localdate():
        raise ValidationFailed(_("A follow-up cannot be in the future."), fields={"visited_on": ""})
    if (data.sbp is None) != (data.dbp is None):
        raise ValidationFailed(_("Enter both blood-pressure values."), fields={"dbp": ""})
    enrolment = (
        Enrolment.objects.select_for_update()
        .select_related("patient", "programme")
        .get(pk=enrolment.pk)
    )
    if enrolment.status != EnrolmentStatus.ACTIVE:
        raise Conflict(_("The enrolment has ended."), code="ended")
    rules = rules_of(enrolment.programme)
    readings = rules_mod.Readings(
        sbp=data.sbp,
        dbp=data.dbp,
        fasting_glucose=data.fasting_glucose,
        random_glucose=data.random_glucose,
    )
    assessment = rules_mod.assess(rules, readings)
    decision = rules_mod.decide(
        rules,
        assessment,
        adverse_reaction=bool(data.adverse_reaction.strip()),
        new_complication=bool(data.new_complication.strip()),
        uncontrolled_before=enrolment.uncontrolled_in_a_row,
    )
    next_due = data.visited_on + timedelta(days=decision.next_in_days)
    followup = FollowUp.objects.create(
        enrolment=enrolment,
        patient=enrolment.patient,
        visited_on=data.visited_on,
        face_to_face=data.face_to_face,
        control=assessment.control,
        urgent=assessment.urgent,
        adverse_reaction=data.adverse_reaction[:500],
        new_complication=data.new_complication[:500],
        next_due=next_due,
        decision={"refer": decision.refer, "reasons": list(decision.reasons)},
        created_by=user,
    )
    _readings_of_followup(followup, data, user)
    if assessment.control != Control.UNKNOWN:
        enrolment.uncontrolled_in_a_row = decision.uncontrolled_in_a_row
    enrolment.next_due = next_due
    enrolment.save(update_fields=["uncontrolled_in_a_row", "next_due", "updated_at"])
    audit.record(
        actor=actor,
        action="programme.followup",
        object_type="followup",
        object_id=str(followup.external_id),
        patient_id=enrolment.patient.external_id,
        subject_organisation_id=enrolment.patient.home_organisation_id,
        detail={"control": assessment.control, "refer": decision.refer or ""},
    )
    if decision.refer:
        referral = referral_raise(
            patient=enrolment.patient,
            enrolment=enrolment,
            followup=followup,
            reason=decision.refer,
            check_days=rules.referral_check_days,
        )
        if decision.refer == "uncontrolled":
            enrolment.uncontrolled_in_a_row = 0  # the streak has been acted on
            enrolment.save(update_fields=["uncontrolled_in_a_row"])
        del referral
    if assessment.urgent:
        alert_urgent(patient=enrolment.patient, reasons=assessment.urgent_reasons)
    return followup


def _readings_of_followup(followup: FollowUp, data: FollowUpInput, user: Any) -> None:
    at = timezone.now()
    rows = []

    def add(kind: str, value: Any, value2: Any = None) -> None:
        if value is not None:
            rows.append(
                Reading(
                    patient=followup.patient,
                    kind=kind,
                    value=Decimal(value),
                    value2=None if value2 is None else Decimal(value2),
                    taken_at=at,
                    source=ReadingSource.VISIT,
                    followup=followup,
                    created_by=user,
                )
            )

    add(ReadingKind.BLOOD_PRESSURE, data.sbp, data.dbp)
    add(ReadingKind.HEART_RATE, data.heart_rate)
    add(ReadingKind.FASTING_GLUCOSE, data.fasting_glucose)
    add(ReadingKind.RANDOM_GLUCOSE, data.random_glucose)
    add(ReadingKind.WEIGHT, data.weight)
    Reading.objects.bulk_create(rows)


# --- referrals -------------------------------------------------------------------------------


def referral_raise(
    *,
    patient: Patient,
    reason: str,
    check_days: int = 14,
    enrolment: Enrolment | None = None,
    followup: FollowUp | None = None,
) -> ReferralNeed:
    """Record the referral, publish it for the consult app, and schedule the check.
    An urgent referral is not raised twice while one is open."""
    urgent = reason == ReferralReason.URGENT
    if urgent:
        open_one = ReferralNeed.objects.filter(
            patient=patient, urgent=True, status=ReferralStatus.OPEN
        ).first()
        if open_one is not None:
            return open_one
    referral = ReferralNeed.objects.create(
        patient=patient,
        enrolment=enrolment,
        followup=followup,
        reason=reason,
        urgent=urgent,
        check_on=timezone.localdate() + timedelta(days=check_days),
    )
    events.publish(
        EVENT_REFERRAL_NEEDED,
        {
            "referral": str(referral.external_id),
            "patient": str(patient.external_id),
            "reason": reason,
            "urgent": urgent,
            "programme": enrolment.programme.code if enrolment else "",
            "followup": str(followup.external_id) if followup else "",
            "check_on": referral.check_on.isoformat(),
        },
    )
    return referral


@transaction.atomic
def referral_mark_done(*, referral_id: uuid.UUID | str, actor: audit.Actor) -> ReferralNeed:
    """The centre saw the patient (called by the consult app's subscriber or by staff)."""
    referral = ReferralNeed.objects.select_for_update().filter(external_id=referral_id).first()
    if referral is None:
        raise NotFound(_("No such referral."))
    if referral.status == ReferralStatus.OPEN:
        referral.status = ReferralStatus.DONE
        referral.checked_at = timezone.now()
        referral.save(update_fields=["status", "checked_at", "updated_at"])
        audit.record(
            actor=actor,
            action="referral.done",
            object_type="referral",
            object_id=str(referral.external_id),
            patient_id=referral.patient.external_id,
        )
    return referral


def referrals_check_due(*, today: date | None = None) -> int:
    """Periodic: referrals still open on their check day are marked missed and the village
    doctor is told to follow up. Each row is handled once (status guard under lock)."""
    today = today or timezone.localdate()
    done = 0
    ids = list(
        ReferralNeed.objects.filter(status=ReferralStatus.OPEN, check_on__lte=today).values_list(
            "pk", flat=True
        )[:500]
    )
    for pk in ids:
        with transaction.atomic():
            referral = (
                ReferralNeed.objects.select_for_update(skip_locked=True)
                .select_related("patient")
                .filter(pk=pk, status=ReferralStatus.OPEN)
                .first()
            )
            if referral is None:
                continue
            referral.status = ReferralStatus.MISSED
            referral.checked_at = timezone.now()
            referral.save(update_fields=["status", "checked_at", "updated_at"])
            for user in village_doctors_of(referral.patient):
                notifications.notify(
                    user=user,
                    category="chronic.referral_missed",
                    title=_("Referral not confirmed"),
                    body=_("A referral to the centre has not been confirmed. Please follow up."),
                    data={
                        "patient": str(referral.patient.external_id),
                        "referral": str(referral.external_id),
                    },
                )
            done += 1
    return done


# --- urgent readings -------------------------------------------------------------------------


def village_doctors_of(patient: Patient) -> list[Any]:
    """The contract team's village doctor, else the village doctors of the home clinic."""
    contract = (
        Contract.objects.filter(patient=patient, status=ContractStatus.ACTIVE)
        .select_related("team__village_doctor")
        .first()
    )
    if contract is not None:
        return [contract.team.village_doctor]
    members = Membership.objects.filter(
        organisation_id=patient.home_organisation_id,
        role=Role.VILLAGE_DOCTOR,
        is_active=True,
        user__is_active=True,
    ).select_related("user")
    return [m.user for m in members]


def alert_urgent(*, patient: Patient, reasons: tuple[str, ...]) -> ReferralNeed:
    """Alert the village doctor at once (push and SMS) and call for urgent referral, to be
    checked within two weeks."""
    programme_codes = programmes_matching(patient)
    check_days = 14
    if programme_codes:
        check_days = programme_for(
            code=programme_codes[0], organisation=patient.home_organisation
        ).referral_check_days
    referral = referral_raise(patient=patient, reason=ReferralReason.URGENT, check_days=check_days)
    for user in village_doctors_of(patient):
        notifications.notify(
            user=user,
            category="chronic.urgent_reading",
            title=_("Urgent reading: refer now"),
            body=_("A patient of yours has an urgent reading (%(reasons)s). Please refer now.")
            % {"reasons": ", ".join(reasons)},
            data={"patient": str(patient.external_id), "referral": str(referral.external_id)},
        )
    return referral


def readings_check_urgent(*, patient: Patient, readings: rules_mod.Readings) -> ReferralNeed | None:
    """Any reading (at a visit or at home) past the urgent thresholds raises the alert."""
    codes = programmes_matching(patient) or ["hypertension"]
    rules = rules_of(programme_for(code=codes[0], organisation=patient.home_organisation))
    reasons = rules_mod.urgent_reasons(rules, readings)
    if not reasons:
        return None
    return alert_urgent(patient=patient, reasons=reasons)


def next_due_by_patient(patient_ids: list[int]) -> dict[int, date]:
    """The earliest next-due date of each patient's active enrolments."""
    due: dict[int, date] = {}
    for pid, next_due in Enrolment.objects.filter(
        patient_id__in=patient_ids, status=EnrolmentStatus.ACTIVE
    ).values_list("patient_id", "next_due"):
        due[pid] = min(due.get(pid, next_due), next_due)
    return due


def referral_mark_done_by_staff(*, principal: Principal, referral_id: uuid.UUID | str):
    """Gate: a clinician who may see the referred patient."""
    require_role(principal, CLINICAL_ROLES, action="referral.done")
    try:
        key = uuid.UUID(str(referral_id))
    except ValueError:
        raise NotFound(_("No such referral.")) from None
    referral = ReferralNeed.objects.select_related("patient").filter(external_id=key).first()
    if referral is None:
        raise NotFound(_("No such referral."))
    access_patient(principal, referral.patient.external_id, action="referral.done")
    return referral_mark_done(referral_id=key, actor=principal.actor)


@transaction.atomic
def followup_bring_forward(
    *, patient: Patient, due_on: date, actor: audit.Actor, source: str, source_ref: str
) -> list[Enrolment]:
    """A follow-up asked for outside the programme's own rules (a signed consult report that
    says "follow up in 14 days"): every active enrolment of the patient falls due no later
    than ``due_on``, so that the patient shows on the village doctor's due list then.
    Precondition: the caller passed its own access gate for the patient. Returns the
    enrolments whose due date moved (none when the patient is enrolled in no programme or
    is already due earlier)."""
    moved = []
    for enrolment in (
        Enrolment.objects.select_for_update()
        .filter(patient=patient, status=EnrolmentStatus.ACTIVE)
        .order_by("pk")
    ):
        if enrolment.next_due <= due_on:
            continue
        previous = enrolment.next_due
        enrolment.next_due = due_on
        enrolment.save(update_fields=["next_due", "updated_at"])
        audit.record(
            actor=actor,
            action="programme.followup_due",
            object_type="enrolment",
            object_id=str(enrolment.external_id),
            patient_id=patient.external_id,
            subject_organisation_id=patient.home_organisation_id,
            detail={
                "from": previous.isoformat(),
                "to": due_on.isoformat(),
                "source": source,
                "source_ref": source_ref,
            },
        )
        moved.append(enrolment)
    return moved
