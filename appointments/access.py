"""Access gates of the appointments app. Patient visibility is the registry's
(``patients_visible_to`` / ``access_patient``); this module adds who may manage a schedule and
which bookings a staff member may see or act on."""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from registry import audit
from registry.access import (
    ADMIN_ROLES,
    CLINICAL_ROLES,
    Principal,
    organisations_subtree_q,
    patients_visible_to,
)
from registry.errors import Forbidden, NotFound
from registry.models import AuditOutcome, Organisation, Role

from .models import Booking, Schedule

MANAGER_ROLES = frozenset(ADMIN_ROLES | {Role.COORDINATOR})
FRONT_DESK_ROLES = frozenset(CLINICAL_ROLES | ADMIN_ROLES)


def _in_subtree(principal: Principal, organisation: Organisation, roles: frozenset[str]) -> bool:
    return any(organisation.path.startswith(o.path) for o in principal.organisations_with(roles))


def require_schedule_manager(principal: Principal, organisation: Organisation, *, action: str):
    """Admins and coordinators of the organisation or one above it manage its schedules."""
    if principal.has_role(Role.SYSTEM_ADMIN) or _in_subtree(principal, organisation, MANAGER_ROLES):
        return
    audit.record(
        actor=principal.actor,
        action=action,
        outcome=AuditOutcome.DENIED,
        object_type="organisation",
        object_id=str(organisation.external_id),
        subject_organisation_id=organisation.pk,
    )
    raise Forbidden(_("Only admins and coordinators of this organisation may do this."))


def require_admin(principal: Principal, *, action: str) -> None:
    if principal.has_role(*ADMIN_ROLES):
        return
    audit.record(actor=principal.actor, action=action, outcome=AuditOutcome.DENIED)
    raise Forbidden(_("Only admins may do this."), code="role")


def schedule_for_manager(principal: Principal, schedule_id: uuid.UUID | str, *, action: str):
    schedule = _schedule(schedule_id)
    require_schedule_manager(principal, schedule.organisation, action=action)
    return schedule


def _schedule(schedule_id: uuid.UUID | str) -> Schedule:
    try:
        key = uuid.UUID(str(schedule_id))
    except ValueError:
        raise NotFound(_("No such schedule.")) from None
    schedule = Schedule.objects.select_related("organisation").filter(external_id=key).first()
    if schedule is None:
        raise NotFound(_("No such schedule."))
    return schedule


def bookings_visible_to(principal: Principal) -> QuerySet[Booking]:
    """Bookings of patients the principal may see, and bookings at the principal's own
    organisations (the front desk sees who is coming)."""
    orgs = principal.organisations_with(FRONT_DESK_ROLES)
    return Booking.objects.filter(
        Q(patient__in=patients_visible_to(principal))
        | organisations_subtree_q(orgs, "organisation__path")
    )


def access_booking(
    principal: Principal, booking_id: uuid.UUID | str, *, action: str, for_update: bool = False
) -> Booking:
    """The gate for one booking: returns it (locked when ``for_update``) and audits the access,
    or audits the denial and raises NotFound."""
    try:
        key = uuid.UUID(str(booking_id))
    except ValueError:
        key = None
    booking = None
    if key:
        visible = bookings_visible_to(principal).filter(external_id=key).values("pk")
        qs = Booking.objects.filter(pk__in=visible)
        if for_update:
            qs = qs.select_for_update(of=("self",))
        booking = qs.select_related("patient", "slot", "organisation").first()
    if booking is None:
        hidden = Booking.objects.filter(external_id=key).select_related("patient").first()
        audit.record(
            actor=principal.actor,
            action=action,
            outcome=AuditOutcome.DENIED,
            object_type="booking",
            object_id=str(booking_id)[:64],
            patient_id=hidden.patient.external_id if hidden else None,
            subject_organisation_id=hidden.organisation_id if hidden else None,
        )
        raise NotFound(_("No such booking."))
    return booking
