"""Reads of the consult workflow, scoped by the access gate in ``access.py``."""

from __future__ import annotations

import statistics as stats
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import audit
from registry.access import ADMIN_ROLES, Principal, organisations_subtree_q
from registry.errors import Conflict, Forbidden, NotFound
from registry.models import AuditOutcome, Role

from .access import access_consult, audit_read, consults_visible_to
from .critical import findings_for
from .models import (
    ConsultRequest,
    ConsultTransition,
    CriticalValueAlert,
    Report,
    ReportStatus,
)
from .states import OPEN_AT_CENTRE, TERMINAL, ConsultState

S = ConsultState
_RELATED = ("patient", "requesting_organisation", "centre", "requester__staff", "assignee__staff")


def _worklist_order(qs: QuerySet[ConsultRequest]) -> QuerySet[ConsultRequest]:
    """Most urgent first, then the nearest deadline (accept for queued, else report)."""
    return qs.order_by(
        "urgency_rank", F("accept_by").asc(nulls_last=True), F("report_by").asc(nulls_last=True)
    )


def consult_list_requested(
    *, principal: Principal, state: str | None = None, clinic: bool = False
) -> QuerySet[ConsultRequest]:
    """The requester's consults (``clinic``: every consult of the acting organisation's
    tree), newest first."""
    qs = consults_visible_to(principal).select_related(*_RELATED)
    if clinic:
        qs = qs.filter(requesting_organisation__path__startswith=principal.organisation.path)
    else:
        qs = qs.filter(requester=principal.user)
    if state:
        qs = qs.filter(state=state)
    audit.record(actor=principal.actor, action="consult.list", object_type="consult")
    return qs.order_by("-created_at")


def worklist(*, principal: Principal, which: str = "mine") -> QuerySet[ConsultRequest]:
    """``mine``: open consults assigned to me. ``unassigned``: queued and unassigned at my
    centre (a coordinator sees those of every centre below their organisation)."""
    qs = consults_visible_to(principal).select_related(*_RELATED)
    if which == "unassigned":
        if principal.role == Role.COORDINATOR:
            qs = qs.filter(organisations_subtree_q([principal.organisation], "centre__path"))
        else:
            qs = qs.filter(centre=principal.organisation)
        qs = qs.filter(state=S.QUEUED, assignee__isnull=True)
    else:
        qs = qs.filter(assignee=principal.user, state__in=list(OPEN_AT_CENTRE))
    audit.record(
        actor=principal.actor,
        action="consult.worklist",
        object_type="consult",
        detail={"which": which},
    )
    return _worklist_order(qs)


@dataclass
class ConsultDetail:
    consult: ConsultRequest
    attachments: list
    transitions: list
    reports: list
    critical_values: list
    critical_findings: list[str]
    allowed: list[str] = field(default_factory=list)


def consult_detail(*, principal: Principal, consult_id: uuid.UUID | str) -> ConsultDetail:
    consult = access_consult(principal, consult_id)
    audit_read(principal, consult)
    from .states import allowed_from

    return ConsultDetail(
        consult=consult,
        attachments=list(consult.attachments.select_related("study").order_by("created_at")),
        transitions=list(consult.transitions.select_related("actor__staff", "centre")),
        reports=list(
            Report.objects.filter(consult=consult).select_related(
                "consult", "author__staff", "signed_by__staff", "previous"
            )
        ),
        critical_values=list(
            consult.critical_values.select_related("raised_by__staff", "acknowledged_by__staff")
        ),
        critical_findings=findings_for(consult.consult_type),
        allowed=allowed_from(consult.state),
    )


def report_for_print(*, principal: Principal, consult_id: uuid.UUID | str, version: int) -> Report:
    """One signed report version of a consult the principal may see, for printing.
    NotFound (audited) when the consult is hidden or has no such version; Conflict for a
    draft, which is not a report yet."""
    consult = access_consult(principal, consult_id, action="consult.report.pdf")
    report = (
        Report.objects.filter(consult=consult, version=version)
        .select_related("signed_by__staff", "author__staff", "previous")
        .first()
        if 0 < version < 2**31
        else None
    )
    if report is None:
        raise NotFound(_("This consult has no report version %(version)s.") % {"version": version})
    if report.status != ReportStatus.SIGNED:
        raise Conflict(
            _("Only a signed report can be printed; this version is still a draft."),
            code="report_not_signed",
        )
    report.consult = consult
    audit.record(
        actor=principal.actor,
        action="consult.report.pdf",
        object_type="report",
        object_id=report.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
        detail={"consult": str(consult.external_id), "version": report.version},
    )
    return report


def critical_value_list(
    *, principal: Principal, status: str | None = None
) -> QuerySet[CriticalValueAlert]:
    """Critical values of the consults the principal may see, plus those escalated to
    them; open ones first."""
    username = principal.user.get_username()
    visible = consults_visible_to(principal).values("pk")
    qs = CriticalValueAlert.objects.filter(consult__in=visible) | CriticalValueAlert.objects.filter(
        escalations__notified__contains=[username]
    )
    qs = qs.distinct().select_related(
        "consult__patient",
        "consult__requesting_organisation",
        "consult__centre",
        "raised_by__staff",
        "acknowledged_by__staff",
    )
    if status:
        qs = qs.filter(status=status)
    audit.record(
        actor=principal.actor, action="consult.critical.list", object_type="critical_value"
    )
    return qs.order_by("status", "-raised_at")


# --- reading statistics ------------------------------------------------------------------------


@dataclass
class TurnaroundRow:
    centre: str
    specialty: str
    reader: str
    consults: int
    reported: int
    median_minutes: float | None
    accept_met: int
    accept_missed: int
    report_met: int
    report_missed: int


@dataclass
class ClinicRow:
    clinic: str
    submitted: int
    returned: int
    declined: int
    returned_rate: float


@dataclass
class Statistics:
    turnaround: list[TurnaroundRow]
    decline_reasons: list[tuple[str, int]]
    clinics: list[ClinicRow]


def consult_statistics(
    *, principal: Principal, since: datetime | None = None, until: datetime | None = None
) -> Statistics:
    """Turnaround per centre, specialty and reader with SLAs met or missed; decline reasons;
    returned-for-information rates per requesting clinic. For coordinators and admins, over
    the consults of their organisation's tree."""
    if principal.role not in (Role.COORDINATOR, *ADMIN_ROLES):
        audit.record(
            actor=principal.actor, action="consult.statistics", outcome=AuditOutcome.DENIED
        )
        raise Forbidden(_("Reading statistics are for coordinators and admins."), code="role")
    orgs = [principal.organisation]
    qs = ConsultRequest.objects.filter(submitted_at__isnull=False).filter(
        organisations_subtree_q(orgs, "centre__path")
        | organisations_subtree_q(orgs, "requesting_organisation__path")
    )
    if since:
        qs = qs.filter(submitted_at__gte=since)
    if until:
        qs = qs.filter(submitted_at__lt=until)
    consults = list(
        qs.select_related("centre", "requesting_organisation", "assignee__staff").order_by("pk")
    )
    ids = [c.pk for c in consults]
    audit.record(
        actor=principal.actor,
        action="consult.statistics",
        object_type="consult",
        detail={"consults": len(ids)},
    )
    groups: dict[tuple[str, str, str], list[ConsultRequest]] = defaultdict(list)
    for c in consults:
        reader = ""
        if c.assignee_id:
            staff = getattr(c.assignee, "staff", None)
            reader = staff.display_name if staff else c.assignee.get_username()
        groups[(c.centre.name if c.centre_id else "", c.queue, reader)].append(c)
    now = timezone.now()
    rows = []
    for (centre, specialty, reader), items in sorted(groups.items()):
        minutes = [
            (c.signed_at - c.submitted_at).total_seconds() / 60 for c in items if c.signed_at
        ]
        row = TurnaroundRow(centre, specialty, reader, len(items), len(minutes), None, 0, 0, 0, 0)
        if minutes:
            row.median_minutes = round(stats.median(minutes), 1)
        for c in items:
            if c.accept_by:
                accepted = c.accepted_at
                if accepted is not None:
                    row.accept_met += accepted <= c.accept_by
                    row.accept_missed += accepted > c.accept_by
                elif now > c.accept_by and c.state not in TERMINAL:
                    row.accept_missed += 1
            if c.report_by:
                if c.signed_at is not None:
                    row.report_met += c.signed_at <= c.report_by
                    row.report_missed += c.signed_at > c.report_by
                elif now > c.report_by and c.state not in TERMINAL:
                    row.report_missed += 1
        rows.append(row)
    moves = ConsultTransition.objects.filter(
        consult_id__in=ids, to_state__in=[S.DECLINED, S.RETURNED]
    )
    reasons = Counter(m.reason or _("(no reason)") for m in moves if m.to_state == S.DECLINED)
    returned = {m.consult_id for m in moves if m.to_state == S.RETURNED}
    declined = {m.consult_id for m in moves if m.to_state == S.DECLINED}
    per_clinic: dict[str, list[ConsultRequest]] = defaultdict(list)
    for c in consults:
        per_clinic[c.requesting_organisation.name].append(c)
    clinics = []
    for name, items in sorted(per_clinic.items()):
        n_returned = sum(1 for c in items if c.pk in returned)
        clinics.append(
            ClinicRow(
                clinic=name,
                submitted=len(items),
                returned=n_returned,
                declined=sum(1 for c in items if c.pk in declined),
                returned_rate=round(n_returned / len(items), 3) if items else 0.0,
            )
        )
    return Statistics(rows, reasons.most_common(), clinics)
