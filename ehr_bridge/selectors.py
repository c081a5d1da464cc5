"""Reads of the HL7 message log, with the one access gate for it.

Who sees the log: system admins see every message; organisation admins see the messages of
the HL7 partners of their organisations' subtrees (and, for messages from senders that are
not partners, those whose sending facility is an HL7 facility code of such an organisation).
Everyone else is refused (403) and the refusal is audited.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from registry import audit
from registry.access import Principal, access_patient, organisations_subtree_q
from registry.errors import Forbidden, NotFound
from registry.models import AuditOutcome, Hl7Facility, Organisation, Role

from .models import InboundMessage, LabResult, OutboundMessage


@dataclass(frozen=True)
class LogScope:
    """What part of the log a principal sees: everything, or what concerns some
    organisation subtrees."""

    everything: bool
    organisations: tuple[Organisation, ...] = ()

    def q(self, field: str) -> Q:
        """Rows whose ``field`` (an organisation path) lies in the scope."""
        return Q() if self.everything else organisations_subtree_q(list(self.organisations), field)


def log_scope(principal: Principal, *, action: str) -> LogScope:
    """The access gate of the message log. Raises Forbidden (audited) for non-admins."""
    if principal.role == Role.SYSTEM_ADMIN:
        return LogScope(True)
    orgs = principal.organisations_with(frozenset({Role.ORG_ADMIN}))
    if principal.role != Role.ORG_ADMIN or not orgs:
        audit.record(
            actor=principal.actor,
            action=action,
            object_type="hl7_message",
            outcome=AuditOutcome.DENIED,
        )
        raise Forbidden(_("Only administrators may read the HL7 message log."), code="role")
    return LogScope(False, tuple(orgs))


def _inbound_visible(scope: LogScope) -> QuerySet[InboundMessage]:
    rows = InboundMessage.objects.all()
    if scope.everything:
        return rows
    facilities = Hl7Facility.objects.filter(scope.q("organisation__path")).values("code")
    return rows.filter(
        scope.q("partner__organisation__path")
        | Q(partner__isnull=True, sending_facility__in=facilities)
    )


def _outbound_visible(scope: LogScope) -> QuerySet[OutboundMessage]:
    return OutboundMessage.objects.filter(scope.q("partner__organisation__path"))


@dataclass(frozen=True)
class MessageQuery:
    control_id: str | None = None
    patient: str | None = None  # patient external ID, or an identifier value
    message_type: str | None = None  # "ADT" or "ADT^A04"
    partner: uuid.UUID | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def inbound_message_search(
    *, principal: Principal, query: MessageQuery
) -> QuerySet[InboundMessage]:
    """Search the inbound log, newest first. Audited as one search."""
    scope = log_scope(principal, action="hl7.message.search")
    rows = _inbound_visible(scope).select_related("partner", "patient")
    if query.control_id:
        rows = rows.filter(control_id=query.control_id)
    if query.patient:
        try:
            rows = rows.filter(patient__external_id=uuid.UUID(query.patient))
        except ValueError:
            rows = rows.filter(
                Q(patient_key__endswith=f"|{query.patient}") | Q(patient_key=query.patient)
            )
    if query.message_type:
        kind, _sep, trigger = query.message_type.upper().partition("^")
        rows = rows.filter(message_type=kind)
        if trigger:
            rows = rows.filter(trigger_event=trigger)
    if query.partner:
        rows = rows.filter(partner__external_id=query.partner)
    if query.status:
        rows = rows.filter(status=query.status)
    if query.since:
        rows = rows.filter(received_at__gte=query.since)
    if query.until:
        rows = rows.filter(received_at__lt=query.until)
    audit.record(
        actor=principal.actor,
        action="hl7.message.search",
        object_type="hl7_message",
        detail={k: str(v) for k, v in query.__dict__.items() if v},
    )
    return rows.order_by("-id").defer("raw", "text", "ack", "application_ack")


def inbound_message_get(
    *,
    principal: Principal,
    message_id: uuid.UUID | str,
    action: str = "hl7.message.read",
    record_access: bool = True,
) -> InboundMessage:
    """One inbound message the principal may see, or NotFound. The access is audited under
    ``action`` (a refusal always; a success when ``record_access``, i.e. unless the caller's
    service audits its own action)."""
    scope = log_scope(principal, action=action)
    try:
        key = uuid.UUID(str(message_id))
    except ValueError:
        key = None
    row = (
        _inbound_visible(scope).select_related("partner", "patient").filter(external_id=key).first()
    )
    if row is None:
        audit.record(
            actor=principal.actor,
            action=action,
            object_type="hl7_message",
            object_id=str(message_id)[:64],
            outcome=AuditOutcome.DENIED,
        )
        raise NotFound(_("No such HL7 message."))
    if record_access:
        audit.record(
            actor=principal.actor,
            action=action,
            object_type="hl7_message",
            object_id=row.external_id,
            patient_id=row.patient.external_id if row.patient_id else None,
        )
    return row


def outbound_message_search(
    *, principal: Principal, query: MessageQuery
) -> QuerySet[OutboundMessage]:
    scope = log_scope(principal, action="hl7.outbound.search")
    rows = _outbound_visible(scope).select_related("partner")
    if query.control_id:
        rows = rows.filter(control_id=query.control_id)
    if query.patient:
        rows = rows.filter(patient_key=query.patient)
    if query.message_type:
        rows = rows.filter(event_type__istartswith=query.message_type)
    if query.partner:
        rows = rows.filter(partner__external_id=query.partner)
    if query.status:
        rows = rows.filter(status=query.status)
    if query.since:
        rows = rows.filter(created_at__gte=query.since)
    if query.until:
        rows = rows.filter(created_at__lt=query.until)
    audit.record(
        actor=principal.actor,
        action="hl7.outbound.search",
        object_type="hl7_outbound",
        detail={k: str(v) for k, v in query.__dict__.items() if v},
    )
    return rows.order_by("-id").defer("payload", "ack")


def outbound_message_get(
    *,
    principal: Principal,
    message_id: uuid.UUID | str,
    action: str = "hl7.outbound.read",
    record_access: bool = True,
) -> OutboundMessage:
    """One outbound message the principal may see, or NotFound; audited as above."""
    scope = log_scope(principal, action=action)
    try:
        key = uuid.UUID(str(message_id))
    except ValueError:
        key = None
    row = _outbound_visible(scope).select_related("partner").filter(external_id=key).first()
    if row is None:
        audit.record(
            actor=principal.actor,
            action=action,
            object_type="hl7_outbound",
            object_id=str(message_id)[:64],
            outcome=AuditOutcome.DENIED,
        )
        raise NotFound(_("No such HL7 message."))
    if record_access:
        audit.record(
            actor=principal.actor,
            action=action,
            object_type="hl7_outbound",
            object_id=row.external_id,
        )
    return row


# --- Lab results ---------------------------------------------------------------------------------


def lab_result_list(
    *, principal: Principal, patient_id: uuid.UUID | str, history: bool = False
) -> QuerySet[LabResult]:
    """A patient's lab results from partners, newest observation first. The patient gate
    (``registry.access.access_patient``) decides and audits: a patient the principal may not
    see is NotFound (404), the denial audited. ``history`` adds the results replaced by a
    correction."""
    patient = access_patient(principal, patient_id, action="lab_result.list")
    rows = LabResult.objects.filter(patient=patient).select_related("replaces")
    if not history:
        rows = rows.filter(is_current=True)
    return rows.order_by("-observed_at", "order_key", "code", "sub_id", "-id")
