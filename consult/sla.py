"""SLA escalation: a consult past its accept or report deadline is escalated first to the
centre's coordinators (notification), then, after ``HUIZHEN_CONSULT_SLA_REROUTE_MINUTES``
more (default 10), re-routed to the next centre (the fallback) when it has not been started.
Every step is a unique row per consult, centre, deadline kind and step, so a step never
happens twice, whatever runs the sweep how often."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from registry import audit, events
from registry.models import NotificationChannel, Role
from registry.notifications import notify

from . import services
from .models import ConsultRequest, SlaEscalation, SlaKind, SlaStep
from .states import ConsultState

S = ConsultState
ACTOR = audit.Actor.system("sla")
ACCEPT_PENDING = (S.QUEUED,)
REPORT_PENDING = (S.ACCEPTED, S.IN_PROGRESS)
REROUTABLE = (S.QUEUED, S.ACCEPTED)


def reroute_delay() -> timedelta:
    return timedelta(minutes=int(getattr(settings, "HUIZHEN_CONSULT_SLA_REROUTE_MINUTES", 10)))


def overdue(now: datetime) -> list[tuple[int, str]]:
    rows = ConsultRequest.objects.filter(
        Q(state__in=ACCEPT_PENDING, accept_by__lte=now)
        | Q(state__in=REPORT_PENDING, report_by__lte=now)
    ).values_list("pk", "state")
    return [
        (pk, SlaKind.ACCEPT if state in ACCEPT_PENDING else SlaKind.REPORT) for pk, state in rows
    ]


def sla_escalate_due(*, now: datetime | None = None) -> int:
    """Take every escalation step that is due; returns how many were taken."""
    now = now or timezone.now()
    taken = 0
    for pk, kind in overdue(now):
        if _coordinator_step(pk, kind, now):
            taken += 1
        if _reroute_step(pk, kind, now):
            taken += 1
    return taken


def _locked(pk: int) -> ConsultRequest:
    return (
        ConsultRequest.objects.select_for_update(of=("self",))
        .select_related("patient", "requesting_organisation", "centre", "requester", "assignee")
        .get(pk=pk)
    )


def _deadline(consult: ConsultRequest, kind: str) -> datetime | None:
    if kind == SlaKind.ACCEPT:
        return consult.accept_by if consult.state in ACCEPT_PENDING else None
    return consult.report_by if consult.state in REPORT_PENDING else None


def _record(
    consult: ConsultRequest, kind: str, step: str, deadline: datetime, now: datetime, **detail
) -> bool:  # type: ignore[no-untyped-def]
    try:
        with transaction.atomic():
            SlaEscalation.objects.create(
                consult=consult,
                centre=consult.centre,
                kind=kind,
                step=step,
                deadline=deadline,
                at=now,
                detail=detail,
            )
    except IntegrityError:
        return False
    audit.record(
        actor=ACTOR,
        action=f"consult.sla.{step}",
        object_type="consult",
        object_id=consult.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
        detail={"kind": kind, **detail},
    )
    events.publish(
        "consult.sla_escalated",
        {"consult": str(consult.external_id), "kind": kind, "step": step},
    )
    return True


def coordinators_of(consult: ConsultRequest) -> list:  # type: ignore[type-arg]
    """The coordinators of the centre, else of the nearest organisation above it."""
    ids = [int(p) for p in consult.centre.path.strip("/").split("/") if p]
    users = get_user_model().objects.filter(
        is_active=True, memberships__is_active=True, memberships__role=Role.COORDINATOR
    )
    for org_pk in reversed(ids):
        found = list(users.filter(memberships__organisation_id=org_pk).distinct())
        if found:
            return found
    return []


def _coordinator_step(pk: int, kind: str, now: datetime) -> bool:
    with transaction.atomic():
        consult = _locked(pk)
        deadline = _deadline(consult, kind)
        if deadline is None or deadline > now or consult.centre_id is None:
            return False
        if SlaEscalation.objects.filter(
            consult=consult, centre=consult.centre, kind=kind, step=SlaStep.COORDINATOR
        ).exists():
            return False
        recipients = coordinators_of(consult)
        if not _record(
            consult,
            kind,
            SlaStep.COORDINATOR,
            deadline,
            now,
            notified=[u.get_username() for u in recipients],
        ):
            return False
        with translation.override(settings.LANGUAGE_CODE):
            title = (
                _("Consult not accepted in time")
                if kind == SlaKind.ACCEPT
                else _("Consult report overdue")
            )
            body = _("A %(urgency)s consult at your centre missed its deadline.") % {
                "urgency": consult.get_urgency_display()
            }
        for user in recipients:
            notify(
                user=user,
                category="consult.sla_missed",
                title=title,
                body=body,
                data={"consult": str(consult.external_id), "kind": kind},
                channels=(NotificationChannel.PUSH, NotificationChannel.SMS),
            )
        return True


def _reroute_step(pk: int, kind: str, now: datetime) -> bool:
    with transaction.atomic():
        consult = _locked(pk)
        deadline = _deadline(consult, kind)
        if deadline is None or consult.centre_id is None or consult.state not in REROUTABLE:
            return False
        if now < deadline + reroute_delay():
            return False
        if not SlaEscalation.objects.filter(
            consult=consult, centre=consult.centre, kind=kind, step=SlaStep.COORDINATOR
        ).exists():
            return False  # the coordinator hears first
        previous = consult.centre_id
        with translation.override(settings.LANGUAGE_CODE):
            reason = _("Deadline missed at the centre; re-routed.")
        if not _record(consult, kind, SlaStep.REROUTE, deadline, now):
            return False
        services.sla_reroute(consult, previous=previous, reason=reason)
        return True
