"""Reads that decide who may see what. Every patient read is audited."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from . import audit
from .access import ADMIN_ROLES, Principal, access_patient, patients_visible_to
from .errors import Forbidden, ValidationFailed
from .identity import IdentityError, normalise_mobile
from .models import AuditEvent, AuditOutcome, Consent, Organisation, Patient, Role


def organisation_list(*, kind: str | None = None, service: str | None = None) -> list[Organisation]:
    """The directory of active organisations (not patient data; every staff member may read it)."""
    orgs = (
        Organisation.objects.filter(is_active=True)
        .select_related("parent")
        .prefetch_related("dicom_aes", "hl7_facilities")
    )
    if kind:
        orgs = orgs.filter(kind=kind)
    result = list(orgs)
    if service:
        result = [o for o in result if service in o.services]
    return result


def patient_search(
    *,
    principal: Principal,
    id_number: str | None = None,
    name: str | None = None,
    mobile: str | None = None,
    identifier: str | None = None,
    chronic_condition: str | None = None,
) -> QuerySet[Patient]:
    """Search the patients the principal may see. The audit row records which criteria
    were used, never their values."""
    criteria = {
        k: v
        for k, v in {
            "id_number": id_number,
            "name": name,
            "mobile": mobile,
            "identifier": identifier,
            "chronic_condition": chronic_condition,
        }.items()
        if v
    }
    patients = patients_visible_to(principal).select_related("home_organisation")
    if id_number:
        patients = patients.filter(id_number=id_number.strip().upper())
    if name:
        patients = patients.filter(
            Q(name__contains=name.strip()) | Q(name_pinyin__icontains=name.strip())
        )
    if mobile:
        try:
            patients = patients.filter(mobile=normalise_mobile(mobile))
        except IdentityError as exc:
            raise ValidationFailed(str(exc), fields={"mobile": str(exc)}) from exc
    if identifier:
        patients = patients.filter(identifiers__value=identifier.strip()).distinct()
    if chronic_condition:
        code = chronic_condition.strip().upper()
        patients = patients.filter(chronic_conditions__icontains=f'"{code}')
    audit.record(
        actor=principal.actor,
        action="patient.search",
        object_type="patient",
        detail={"criteria": sorted(criteria)},
    )
    return patients.order_by("name", "id")


@dataclass(frozen=True)
class ProbableMatch:
    patient: Patient
    score: int
    reasons: tuple[str, ...]


def patient_probable_matches(
    *, principal: Principal, name: str, birth_date: date | None, mobile: str | None
) -> list[ProbableMatch]:
    """Possible duplicates among the patients the principal may see, best first: same name
    and birth date (2 points), same mobile (1), same name with a different birth date (1)."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed(_("Give at least the name."), fields={"name": "required"})
    phone = ""
    if mobile:
        try:
            phone = normalise_mobile(mobile)
        except IdentityError as exc:
            raise ValidationFailed(str(exc), fields={"mobile": str(exc)}) from exc
    q = Q(name=name)
    if phone:
        q |= Q(mobile=phone)
    candidates = patients_visible_to(principal).filter(q).select_related("home_organisation")[:50]
    matches = []
    for patient in candidates:
        reasons = []
        score = 0
        if patient.name == name and birth_date and patient.birth_date == birth_date:
            score += 2
            reasons.append("name_and_birth_date")
        elif patient.name == name:
            score += 1
            reasons.append("name")
        if phone and patient.mobile == phone:
            score += 1
            reasons.append("mobile")
        matches.append(ProbableMatch(patient, score, tuple(reasons)))
    matches.sort(key=lambda m: (-m.score, m.patient.pk))
    audit.record(
        actor=principal.actor,
        action="patient.match",
        object_type="patient",
        detail={"candidates": len(matches)},
    )
    return matches


def consent_list(*, principal: Principal, patient_id: uuid.UUID | str) -> list[Consent]:
    patient = access_patient(principal, patient_id, action="consent.list")
    return list(
        Consent.objects.filter(patient=patient)
        .select_related("organisation", "recorded_by", "revoked_by", "patient")
        .order_by("-granted_at")
    )


def consent_is_active(
    *, patient: Patient, kind: str, organisation: Organisation | None = None
) -> bool:
    """Whether the patient's consent of this kind (for this centre) stands unrevoked."""
    consents = Consent.objects.filter(patient=patient, kind=kind, revoked_at__isnull=True)
    if organisation is not None:
        consents = consents.filter(organisation=organisation)
    return consents.exists()


def audit_search(
    *,
    principal: Principal,
    patient_id: uuid.UUID | None = None,
    action: str | None = None,
    outcome: str | None = None,
    actor_username: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Organisation admins see the trail of their organisations' subtrees: rows where an
    actor of theirs acted, and rows about patients of theirs."""
    admin_orgs = principal.organisations_with(ADMIN_ROLES)
    if principal.role not in (Role.ORG_ADMIN, Role.SYSTEM_ADMIN) or not admin_orgs:
        audit.record(actor=principal.actor, action="audit.search", outcome=AuditOutcome.DENIED)
        raise Forbidden(_("Only organisation admins may search the audit trail."), code="role")
    q = Q(pk__in=[])
    for org in admin_orgs:
        q |= Q(path__startswith=org.path)
    org_ids = list(Organisation.objects.filter(q).values_list("id", flat=True))
    rows = AuditEvent.objects.filter(
        Q(organisation_id__in=org_ids) | Q(subject_organisation_id__in=org_ids)
    )
    if patient_id:
        rows = rows.filter(patient_id=patient_id)
    if action:
        rows = rows.filter(action__startswith=action)
    if outcome:
        rows = rows.filter(outcome=outcome)
    if actor_username:
        rows = rows.filter(actor_username=actor_username)
    if since:
        rows = rows.filter(occurred_at__gte=since)
    if until:
        rows = rows.filter(occurred_at__lt=until)
    audit.record(actor=principal.actor, action="audit.search", object_type="audit")
    return rows.order_by("-id")
