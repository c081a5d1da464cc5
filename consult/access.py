"""The access gate of consults: who may see one, and the roles that act on one.

Visible to: the requesting organisation's tree (its staff and the staff of the organisations
above it), the staff of the routed centre (and of the organisations above it), and the
assignee. Everyone else gets NotFound, exactly as for a consult that does not exist, and the
refusal of an existing consult is audited.
"""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from registry import audit
from registry.access import CLINICAL_ROLES, Principal, organisations_subtree_q
from registry.errors import Forbidden, NotFound
from registry.models import AuditOutcome, ProfessionalTitle, Role, StaffProfile

from .models import ConsultRequest

TITLE_RANK = {
    ProfessionalTitle.NONE: 0,
    ProfessionalTitle.RESIDENT: 1,
    ProfessionalTitle.ATTENDING: 2,
    ProfessionalTitle.ASSOCIATE_CHIEF: 3,
    ProfessionalTitle.CHIEF: 4,
}


def consults_visible_to(principal: Principal) -> QuerySet[ConsultRequest]:
    orgs = principal.organisations_with(CLINICAL_ROLES)
    if not orgs:
        return ConsultRequest.objects.none()
    return ConsultRequest.objects.filter(
        organisations_subtree_q(orgs, "requesting_organisation__path")
        | organisations_subtree_q(orgs, "centre__path")
        | Q(assignee=principal.user)
    )


def _key(consult_id: uuid.UUID | str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(consult_id))
    except ValueError:
        return None


def access_consult(
    principal: Principal, consult_id: uuid.UUID | str, *, action: str = "consult.read"
) -> ConsultRequest:
    """The consult if the principal may see it; else audit (when it exists) and NotFound."""
    key = _key(consult_id)
    consult = (
        consults_visible_to(principal)
        .select_related("patient", "requesting_organisation", "centre", "requester", "assignee")
        .filter(external_id=key)
        .first()
        if key
        else None
    )
    if consult is None:
        hidden = (
            ConsultRequest.objects.filter(external_id=key)
            .values_list("patient__external_id", "requesting_organisation_id")
            .first()
            if key
            else None
        )
        if hidden is not None:
            audit.record(
                actor=principal.actor,
                action=action,
                outcome=AuditOutcome.DENIED,
                object_type="consult",
                object_id=str(key),
                patient_id=hidden[0],
                subject_organisation_id=hidden[1],
            )
        raise NotFound(_("No such consult."))
    return consult


def audit_read(principal: Principal, consult: ConsultRequest, action: str = "consult.read") -> None:
    audit.record(
        actor=principal.actor,
        action=action,
        object_type="consult",
        object_id=consult.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
    )


# --- roles on one consult ---------------------------------------------------------------------


def is_requester_side(principal: Principal, consult: ConsultRequest) -> bool:
    """A clinical member of the requesting organisation or of one above it."""
    return principal.role in CLINICAL_ROLES and consult.requesting_organisation.path.startswith(
        principal.organisation.path
    )


def is_centre_specialist(principal: Principal, consult: ConsultRequest) -> bool:
    return (
        consult.centre_id is not None
        and principal.role == Role.SPECIALIST
        and principal.organisation.pk == consult.centre_id
    )


def is_centre_coordinator(principal: Principal, consult: ConsultRequest) -> bool:
    """A coordinator of the centre or of an organisation above it."""
    return (
        consult.centre_id is not None
        and principal.role == Role.COORDINATOR
        and consult.centre.path.startswith(principal.organisation.path)
    )


def is_assignee(principal: Principal, consult: ConsultRequest) -> bool:
    return consult.assignee_id is not None and consult.assignee_id == principal.user.pk


def refuse(principal: Principal, consult: ConsultRequest, action: str) -> Forbidden:
    """Audit a refused action on a consult the principal can see, and return the error."""
    audit.record(
        actor=principal.actor,
        action=action,
        outcome=AuditOutcome.DENIED,
        object_type="consult",
        object_id=consult.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
    )
    return Forbidden(_("Your role may not do this with this consult."), code="role")


def specialist_fits(user: object, consult: ConsultRequest) -> bool:
    """Whether a specialist's specialties and professional title meet what the request asks."""
    profile = StaffProfile.objects.filter(user=user).first()
    if profile is None:
        return False
    if consult.wanted_specialty and consult.wanted_specialty not in (profile.specialties or []):
        return False
    if consult.minimum_title:
        wanted = TITLE_RANK.get(consult.minimum_title, 0)
        if TITLE_RANK.get(profile.professional_title or "", 0) < wanted:
            return False
    return True
