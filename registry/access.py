"""Who is acting, and the one access gate for patient records.

Every interface (API view, consumer, task, protocol handler) resolves a ``Principal`` and
goes through ``patients_visible_to`` / ``access_patient``; nothing else decides who sees a
patient. Denials are audited and answered as "not found" so that existence is not revealed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from . import audit
from .errors import Forbidden, NotFound
from .models import (
    AuditOutcome,
    BreakGlassAccess,
    Membership,
    Organisation,
    Patient,
    PatientShare,
    Role,
)

CLINICAL_ROLES = frozenset({Role.VILLAGE_DOCTOR, Role.DOCTOR, Role.SPECIALIST, Role.COORDINATOR})
ADMIN_ROLES = frozenset({Role.ORG_ADMIN, Role.SYSTEM_ADMIN})
SECOND_FACTOR_ROLES = frozenset({Role.SPECIALIST, Role.ORG_ADMIN, Role.SYSTEM_ADMIN})


@dataclass(frozen=True)
class Principal:
    """A staff user acting in one of their organisations (the acting membership)."""

    user: AbstractBaseUser
    membership: Membership
    memberships: tuple[Membership, ...]

    @property
    def organisation(self) -> Organisation:
        return self.membership.organisation

    @property
    def role(self) -> str:
        return self.membership.role

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor(
            user_id=self.user.pk,
            username=self.user.get_username(),
            role=self.membership.role,
            organisation_id=self.membership.organisation_id,
        )

    def has_role(self, *roles: str) -> bool:
        return any(m.role in roles for m in self.memberships)

    def organisations_with(self, roles: frozenset[str]) -> list[Organisation]:
        return [m.organisation for m in self.memberships if m.role in roles]


def principal_for(user: AbstractBaseUser, organisation_id: str | None = None) -> Principal:
    """Resolve the acting membership: the one named (by organisation external ID) or the first.

    Raises Forbidden for a user with no active membership in an active organisation.
    """
    memberships = tuple(
        Membership.objects.filter(user=user, is_active=True, organisation__is_active=True)
        .select_related("organisation")
        .order_by("id")
    )
    if not memberships:
        raise Forbidden(_("This account belongs to no organisation."), code="no_membership")
    acting = memberships[0]
    if organisation_id:
        chosen = [m for m in memberships if str(m.organisation.external_id) == organisation_id]
        if not chosen:
            raise Forbidden(
                _("You are not a member of the organisation named in X-Huizhen-Organisation."),
                code="not_member",
            )
        acting = chosen[0]
    return Principal(user=user, membership=acting, memberships=memberships)


def organisations_subtree_q(orgs: list[Organisation], field: str = "path") -> Q:
    q = Q(pk__in=[])
    for org in orgs:
        q |= Q(**{f"{field}__startswith": org.path})
    return q


def patients_visible_to(principal: Principal, *, at: datetime | None = None) -> QuerySet[Patient]:
    """Patients a principal may see: the home organisation lies in the subtree of one of their
    clinical organisations, or the patient is shared with them or one of those organisations,
    or they hold an unexpired break-the-glass grant for the patient. Merged records are hidden.
    """
    now = at or timezone.now()
    orgs = principal.organisations_with(CLINICAL_ROLES)
    if not orgs:
        return Patient.objects.none()
    shared = PatientShare.objects.filter(
        Q(user=principal.user) | Q(organisation__in=orgs),
        patient=OuterRef("pk"),
        revoked_at__isnull=True,
    ).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    glass = BreakGlassAccess.objects.filter(
        user=principal.user, patient=OuterRef("pk"), expires_at__gt=now
    )
    return Patient.objects.filter(merged_into__isnull=True).filter(
        organisations_subtree_q(orgs, "home_organisation__path") | Exists(shared) | Exists(glass)
    )


def _emergency_grant(principal: Principal, patient: Patient) -> bool:
    return BreakGlassAccess.objects.filter(
        user=principal.user, patient=patient, expires_at__gt=timezone.now()
    ).exists()


def access_patient(
    principal: Principal, patient_id: uuid.UUID | str, *, action: str = "patient.read"
) -> Patient:
    """The gate for one patient record: returns it and audits the access, or audits the
    denial and raises NotFound (also for an ID that does not exist or is malformed)."""
    try:
        key = uuid.UUID(str(patient_id))
    except ValueError:
        key = None
    patient = (
        patients_visible_to(principal)
        .select_related("home_organisation")
        .filter(external_id=key)
        .first()
        if key
        else None
    )
    if patient is None:
        subject = (
            Patient.objects.filter(external_id=key)
            .values_list("home_organisation_id", flat=True)
            .first()
            if key
            else None
        )
        audit.record(
            actor=principal.actor,
            action=action,
            outcome=AuditOutcome.DENIED,
            object_type="patient",
            object_id=str(patient_id)[:64],
            patient_id=key if subject is not None else None,
            subject_organisation_id=subject,
        )
        raise NotFound(_("No such patient."))
    in_tree = patient.home_organisation.path.startswith(
        tuple(o.path for o in principal.organisations_with(CLINICAL_ROLES))
    )
    outcome = AuditOutcome.SUCCESS
    if not in_tree and _emergency_grant(principal, patient) and not _shared(principal, patient):
        outcome = AuditOutcome.EMERGENCY
    audit.record(
        actor=principal.actor,
        action=action,
        outcome=outcome,
        object_type="patient",
        object_id=str(patient.external_id),
        patient_id=patient.external_id,
        subject_organisation_id=patient.home_organisation_id,
    )
    return patient


def _shared(principal: Principal, patient: Patient) -> bool:
    orgs = principal.organisations_with(CLINICAL_ROLES)
    now = timezone.now()
    return (
        PatientShare.objects.filter(
            Q(user=principal.user) | Q(organisation__in=orgs),
            patient=patient,
            revoked_at__isnull=True,
        )
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .exists()
    )


def require_role(principal: Principal, roles: frozenset[str], *, action: str) -> None:
    """Refuse (and audit) a principal whose acting role is not among ``roles``."""
    if principal.role not in roles:
        audit.record(actor=principal.actor, action=action, outcome=AuditOutcome.DENIED)
        raise Forbidden(_("Your role may not do this."), code="role")
