"""Where a consult goes: the centre offering the service within the requester's county
medical community (nearest ancestor's subtree first), else the configured fallback centres;
the centre's deadlines; and the on-duty specialist with the lightest open load."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Q

from registry.models import Membership, Organisation, OrganisationKind, Role

from .access import specialist_fits
from .models import ConsultRequest, ConsultType, Shift, SlaPolicy, Urgency
from .states import OPEN_AT_CENTRE

SERVICE_FOR_TYPE = {
    ConsultType.ECG_READ: "ecg",
    ConsultType.IMAGING_READ: "imaging",
    ConsultType.PATHOLOGY_READ: "pathology",
    ConsultType.LAB_REVIEW: "lab",
}

# (accept within, report within) in minutes, per urgency.
DEFAULT_SLA_MINUTES = {
    Urgency.EMERGENCY: (10, 30),
    Urgency.URGENT: (30, 120),
    Urgency.ROUTINE: (240, 1440),
}


def service_for(consult: ConsultRequest) -> str:
    """The service a centre must offer: fixed for reads, the wanted specialty otherwise."""
    return SERVICE_FOR_TYPE.get(consult.consult_type, "") or consult.wanted_specialty


def _ancestor_ids(org: Organisation) -> list[int]:
    return [int(part) for part in org.path.strip("/").split("/") if part]


def find_centre(
    *, requesting: Organisation, service: str, exclude: set[int] | None = None
) -> Organisation | None:
    """The nearest active centre offering ``service``: search the subtree of the requesting
    organisation's parent, then of each ancestor up to the root; then the fallback centres
    (``HUIZHEN_CONSULT_FALLBACK_CENTRES``, organisation external IDs, in order)."""
    if not service:
        return None
    skip = set(exclude or ()) | {requesting.pk}
    ancestors = _ancestor_ids(requesting)
    if ancestors:
        root = Organisation.objects.get(pk=ancestors[0])
        community = [
            o
            for o in Organisation.objects.filter(path__startswith=root.path, is_active=True)
            if service in (o.services or []) and o.pk not in skip
        ]
        by_pk = {o.pk: o for o in Organisation.objects.filter(pk__in=ancestors)}
        for ancestor_pk in reversed(ancestors):
            ancestor = by_pk.get(ancestor_pk)
            if ancestor is None:
                continue
            found = [o for o in community if o.path.startswith(ancestor.path)]
            if found:
                found.sort(
                    key=lambda o: (o.kind != OrganisationKind.REGIONAL_CENTRE, len(o.path), o.pk)
                )
                return found[0]
    for external_id in getattr(settings, "HUIZHEN_CONSULT_FALLBACK_CENTRES", []) or []:
        centre = Organisation.objects.filter(external_id=external_id, is_active=True).first()
        if centre is not None and centre.pk not in skip and service in (centre.services or []):
            return centre
    return None


@dataclass(frozen=True)
class Deadlines:
    accept_by: datetime
    report_by: datetime


def deadlines_for(centre: Organisation, urgency: str, start: datetime) -> Deadlines:
    policy = SlaPolicy.objects.filter(centre=centre, urgency=urgency).first()
    if policy is not None:
        accept, report = policy.accept_minutes, policy.report_minutes
    else:
        defaults = {
            **DEFAULT_SLA_MINUTES,
            **(getattr(settings, "HUIZHEN_CONSULT_SLA_MINUTES", {}) or {}),
        }
        accept, report = defaults.get(urgency, DEFAULT_SLA_MINUTES[Urgency.ROUTINE])
    return Deadlines(start + timedelta(minutes=accept), start + timedelta(minutes=report))


def on_duty_specialist(consult: ConsultRequest, at: datetime) -> object | None:
    """The qualified specialist on shift at the consult's centre with the fewest open
    consults; None when no roster covers this moment (the consult waits unassigned)."""
    if not getattr(settings, "HUIZHEN_CONSULT_AUTO_ASSIGN", True) or consult.centre_id is None:
        return None
    user_ids = set(
        Shift.objects.filter(centre_id=consult.centre_id, starts_at__lte=at, ends_at__gt=at)
        .filter(Q(queue="") | Q(queue=consult.queue))
        .values_list("user_id", flat=True)
    )
    members = set(
        Membership.objects.filter(
            organisation_id=consult.centre_id,
            role=Role.SPECIALIST,
            is_active=True,
            user_id__in=user_ids,
            user__is_active=True,
        ).values_list("user_id", flat=True)
    )
    if not members:
        return None
    users = (
        get_user_model()
        .objects.filter(pk__in=members)
        .annotate(
            load=Count(
                "consults_assigned",
                filter=Q(consults_assigned__state__in=list(OPEN_AT_CENTRE)),
            )
        )
        .order_by("load", "pk")
    )
    for user in users:
        if specialist_fits(user, consult):
            return user
    return None
