"""Critical values (危急值): raise, acknowledge, escalate, record the outcome.

The specialist flags a finding from the configured list for the consult's type; the
requesting doctor is told at once by push and SMS and must acknowledge within
``HUIZHEN_CONSULT_CRITICAL_ACK_MINUTES`` (default 10). Unacknowledged, the alert escalates
to the head (organisation admin) of the requesting clinic, then, after another window, to the
centre's coordinators. Each step is a unique row (done once), audited and an event.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from registry import audit, events
from registry.access import Principal
from registry.errors import Conflict, NotFound, ValidationFailed
from registry.models import Organisation, Role
from registry.notifications import notify

from .access import (
    access_consult,
    consults_visible_to,
    is_assignee,
    is_centre_coordinator,
    is_centre_specialist,
    is_requester_side,
    refuse,
)
from .models import (
    AlertStatus,
    ConsultRequest,
    ConsultType,
    CriticalValueAlert,
    CriticalValueEscalation,
)
from .states import ConsultState

S = ConsultState

FINDING_LABELS = {
    "stemi": gettext_lazy("ST-elevation myocardial infarction (STEMI)"),
    "ventricular_tachycardia": gettext_lazy("Ventricular tachycardia"),
    "complete_heart_block": gettext_lazy("Complete heart block"),
    "intracranial_haemorrhage": gettext_lazy("Intracranial haemorrhage"),
    "tension_pneumothorax": gettext_lazy("Tension pneumothorax"),
    "malignancy": gettext_lazy("Unexpected malignancy"),
    "critical_potassium": gettext_lazy("Critical potassium"),
    "critical_glucose": gettext_lazy("Critical glucose"),
}

DEFAULT_FINDINGS = {
    ConsultType.ECG_READ: ["stemi", "ventricular_tachycardia", "complete_heart_block"],
    ConsultType.IMAGING_READ: ["intracranial_haemorrhage", "tension_pneumothorax"],
    ConsultType.PATHOLOGY_READ: ["malignancy"],
    ConsultType.LAB_REVIEW: ["critical_potassium", "critical_glucose"],
}

RAISABLE_STATES = frozenset({S.ACCEPTED, S.IN_PROGRESS, S.REPORTED, S.SIGNED, S.DELIVERED})
STEPS = ((1, "clinic_head"), (2, "centre_coordinator"))


def findings_for(consult_type: str) -> list[str]:
    configured = getattr(settings, "HUIZHEN_CONSULT_CRITICAL_FINDINGS", None) or DEFAULT_FINDINGS
    return list(configured.get(consult_type, []))


def finding_label(code: str) -> str:
    return str(FINDING_LABELS.get(code, code))


def ack_window() -> timedelta:
    return timedelta(minutes=int(getattr(settings, "HUIZHEN_CONSULT_CRITICAL_ACK_MINUTES", 10)))


def _audit(actor: audit.Actor, action: str, alert: CriticalValueAlert, **detail) -> None:  # type: ignore[no-untyped-def]
    consult = alert.consult
    audit.record(
        actor=actor,
        action=action,
        object_type="critical_value",
        object_id=alert.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
        detail={"finding": alert.finding_code, **detail},
    )


def _alert_text(alert: CriticalValueAlert) -> tuple[str, str]:
    with translation.override(settings.LANGUAGE_CODE):
        title = _("Critical value: %(finding)s") % {"finding": finding_label(alert.finding_code)}
        body = _("A critical finding in a consult you requested. Acknowledge it now.")
    return title, body


@transaction.atomic
def critical_value_raise(
    *, principal: Principal, consult_id: uuid.UUID | str, finding_code: str, note: str = ""
) -> CriticalValueAlert:
    consult = access_consult(principal, consult_id, action="consult.critical.raise")
    consult = (
        ConsultRequest.objects.select_for_update(of=("self",))
        .select_related("patient", "requesting_organisation", "centre", "requester")
        .get(pk=consult.pk)
    )
    if not (is_assignee(principal, consult) or is_centre_specialist(principal, consult)):
        raise refuse(principal, consult, "consult.critical.raise")
    if consult.state not in RAISABLE_STATES:
        raise Conflict(
            _("A critical value is raised on an accepted consult being read or reported."),
            code="illegal_state",
        )
    if finding_code not in findings_for(consult.consult_type):
        raise ValidationFailed(
            _("Choose a critical finding from the list for this consult type."),
            fields={"finding_code": ", ".join(findings_for(consult.consult_type))},
        )
    now = timezone.now()
    alert = CriticalValueAlert.objects.create(
        consult=consult,
        finding_code=finding_code,
        note=(note or "")[:500],
        raised_by=principal.user,
        raised_at=now,
        acknowledge_by=now + ack_window(),
    )
    _audit(principal.actor, "consult.critical.raise", alert)
    events.publish(
        "consult.critical_value_raised",
        {"consult": str(consult.external_id), "alert": str(alert.external_id)},
    )
    title, body = _alert_text(alert)
    notify(
        user=consult.requester,
        category="consult.critical_value",
        title=title,
        body=body,
        data={"consult": str(consult.external_id), "alert": str(alert.external_id)},
    )
    return alert


def _escalation_targets(alert: CriticalValueAlert, step: int) -> list:  # type: ignore[type-arg]
    """Step 1: the heads (organisation admins) of the requesting clinic, else of the nearest
    organisation above it that has one. Step 2: the coordinators of the centre or above."""
    consult = alert.consult
    users = get_user_model().objects.filter(is_active=True, memberships__is_active=True)
    if step == 1:
        role, start = Role.ORG_ADMIN, consult.requesting_organisation
    else:
        role, start = Role.COORDINATOR, consult.centre
    if start is None:
        return []
    ids = [int(p) for p in start.path.strip("/").split("/") if p]
    for org_pk in reversed(ids):
        found = list(
            users.filter(memberships__organisation_id=org_pk, memberships__role=role).distinct()
        )
        if found:
            return found
    return []


def may_acknowledge(principal: Principal, alert: CriticalValueAlert) -> bool:
    consult = alert.consult
    if is_requester_side(principal, consult) or is_centre_coordinator(principal, consult):
        return True
    notified = {u for e in alert.escalations.all() for u in e.notified}
    return principal.user.get_username() in notified


def _locked_alert(
    principal: Principal, alert_id: uuid.UUID | str, action: str
) -> CriticalValueAlert:
    try:
        key = uuid.UUID(str(alert_id))
    except ValueError as exc:
        raise NotFound(_("No such critical value.")) from exc
    alert = (
        CriticalValueAlert.objects.select_for_update(of=("self",))
        .select_related("consult__patient", "consult__requesting_organisation", "consult__centre")
        .filter(external_id=key)
        .first()
    )
    heads = alert is not None and principal.user.get_username() in {
        u for e in alert.escalations.all() for u in e.notified
    }
    if alert is None or not (
        heads or consults_visible_to(principal).filter(pk=alert.consult_id).exists()
    ):
        if alert is not None:
            _audit(principal.actor, action, alert, outcome="denied")
        raise NotFound(_("No such critical value."))
    return alert


@transaction.atomic
def critical_value_acknowledge(
    *, principal: Principal, alert_id: uuid.UUID | str
) -> CriticalValueAlert:
    alert = _locked_alert(principal, alert_id, "consult.critical.acknowledge")
    if not may_acknowledge(principal, alert):
        raise refuse(principal, alert.consult, "consult.critical.acknowledge")
    if alert.status == AlertStatus.ACKNOWLEDGED:
        return alert  # idempotent: the first acknowledgement stands
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_at = timezone.now()
    alert.acknowledged_by = principal.user
    alert.save(update_fields=["status", "acknowledged_at", "acknowledged_by", "updated_at"])
    _audit(
        principal.actor,
        "consult.critical.acknowledge",
        alert,
        seconds=int((alert.acknowledged_at - alert.raised_at).total_seconds()),
    )
    events.publish("consult.critical_value_acknowledged", {"alert": str(alert.external_id)})
    return alert


@transaction.atomic
def critical_value_record_outcome(
    *, principal: Principal, alert_id: uuid.UUID | str, outcome: str
) -> CriticalValueAlert:
    """What became of the patient (the abnormal-case tracking health commissions ask for)."""
    alert = _locked_alert(principal, alert_id, "consult.critical.outcome")
    if not may_acknowledge(principal, alert):
        raise refuse(principal, alert.consult, "consult.critical.outcome")
    outcome = (outcome or "").strip()
    if not outcome:
        raise ValidationFailed(_("Describe the outcome."), fields={"outcome": _("Required.")})
    if alert.status != AlertStatus.ACKNOWLEDGED:
        raise Conflict(_("Acknowledge the critical value first."), code="not_acknowledged")
    alert.outcome = outcome[:2000]
    alert.outcome_recorded_at = timezone.now()
    alert.save(update_fields=["outcome", "outcome_recorded_at", "updated_at"])
    _audit(principal.actor, "consult.critical.outcome", alert)
    return alert


def critical_values_escalate_due(*, now: datetime | None = None) -> int:
    """Escalate every open alert whose window passed: step 1 after one window, step 2 after
    two. Each step happens once (unique row); returns the number of steps taken."""
    now = now or timezone.now()
    window = ack_window()
    taken = 0
    due = CriticalValueAlert.objects.filter(status=AlertStatus.OPEN, acknowledge_by__lte=now)
    for alert_id in due.values_list("pk", flat=True):
        for step, target in STEPS:
            if _escalate_step(alert_id, step, target, now, window):
                taken += 1
    return taken


def _escalate_step(alert_id: int, step: int, target: str, now: datetime, window: timedelta) -> bool:
    with transaction.atomic():
        alert = (
            CriticalValueAlert.objects.select_for_update(of=("self",))
            .select_related(
                "consult__patient", "consult__requesting_organisation", "consult__centre"
            )
            .get(pk=alert_id)
        )
        if alert.status != AlertStatus.OPEN:
            return False
        if now < alert.acknowledge_by + window * (step - 1):
            return False
        if alert.escalations.filter(step=step).exists():
            return False
        recipients = _escalation_targets(alert, step)
        try:
            with transaction.atomic():
                CriticalValueEscalation.objects.create(
                    alert=alert,
                    step=step,
                    target=target,
                    notified=[u.get_username() for u in recipients],
                    at=now,
                )
        except IntegrityError:
            return False  # another worker took this step
        alert.escalation_level = max(alert.escalation_level, step)
        alert.save(update_fields=["escalation_level", "updated_at"])
        _audit(
            audit.Actor.system("critical-values"),
            "consult.critical.escalate",
            alert,
            step=step,
            target=target,
            notified=len(recipients),
        )
        events.publish(
            "consult.critical_value_escalated",
            {"alert": str(alert.external_id), "step": step, "target": target},
        )
        title, _body = _alert_text(alert)
        with translation.override(settings.LANGUAGE_CODE):
            body = _("A critical value was not acknowledged in time. Make sure it is acted on.")
        for user in recipients:
            notify(
                user=user,
                category="consult.critical_value_escalated",
                title=title,
                body=body,
                data={"consult": str(alert.consult.external_id), "alert": str(alert.external_id)},
            )
        return True


def organisation_names(ids: list[int]) -> dict[int, str]:
    return dict(Organisation.objects.filter(pk__in=ids).values_list("pk", "name"))
