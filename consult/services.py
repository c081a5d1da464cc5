"""Every write of the consult workflow. One service per transition: it locks the consult,
checks the actor and the state against ``states.TRANSITIONS``, writes the state and its
timestamp, appends a ``ConsultTransition`` row, the audit trail and a domain event, and
schedules the live worklist push after commit, all in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from imaging.models import Study
from imaging.services import study_share_grant
from registry import audit, events
from registry.access import CLINICAL_ROLES, Principal, access_patient
from registry.errors import Conflict, Forbidden, ValidationFailed
from registry.models import (
    Consent,
    ConsentKind,
    NotificationChannel,
    Organisation,
    PatientShare,
    Role,
    Service,
    StaffProfile,
)
from registry.notifications import notify
from registry.services import patient_share_grant

from . import centres, push, referrals, report_structure
from .access import (
    TITLE_RANK,
    access_consult,
    is_assignee,
    is_centre_coordinator,
    is_centre_specialist,
    is_requester_side,
    refuse,
    specialist_fits,
)
from .models import (
    URGENCY_RANK,
    AttachmentKind,
    ConsultAttachment,
    ConsultRequest,
    ConsultTransition,
    ConsultType,
    Report,
    ReportStatus,
    Urgency,
)
from .states import EDITABLE, ConsultState, check

S = ConsultState
User = get_user_model()

STATE_TIMESTAMP = {
    S.SUBMITTED: "submitted_at",
    S.QUEUED: "queued_at",
    S.ACCEPTED: "accepted_at",
    S.IN_PROGRESS: "started_at",
    S.REPORTED: "reported_at",
    S.SIGNED: "signed_at",
    S.DELIVERED: "delivered_at",
    S.CLOSED: "closed_at",
    S.DECLINED: "declined_at",
    S.RETURNED: "returned_at",
    S.CANCELLED: "cancelled_at",
}


# --- shared steps -------------------------------------------------------------------------------


def _lock(principal: Principal, consult_id: uuid.UUID | str, action: str) -> ConsultRequest:
    """Gate (404 + audited denial) then lock the row for the rest of the transaction."""
    visible = access_consult(principal, consult_id, action=action)
    return _lock_pk(visible.pk)


def _lock_pk(pk: int) -> ConsultRequest:
    return (
        ConsultRequest.objects.select_for_update(of=("self",))
        .select_related("patient", "requesting_organisation", "centre", "requester", "assignee")
        .get(pk=pk)
    )


def _actor_of(principal: Principal | None, system: str) -> audit.Actor:
    return principal.actor if principal is not None else audit.Actor.system(system)


def _move(
    consult: ConsultRequest,
    target: str,
    *,
    action: str,
    principal: Principal | None = None,
    system: str = "consult",
    reason: str = "",
    previous_centres: list[int] | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Apply one checked transition to a locked consult (caller holds the transaction)."""
    current = consult.state
    check(current, target)
    now = at or timezone.now()
    consult.state = target
    setattr(consult, STATE_TIMESTAMP[target], now)
    consult.version += 1
    consult.save()
    actor = _actor_of(principal, system)
    ConsultTransition.objects.create(
        consult=consult,
        from_state=current,
        to_state=target,
        action=action,
        actor=principal.user if principal is not None else None,
        actor_label=actor.username,
        at=now,
        reason=reason[:500],
        centre=consult.centre,
    )
    audit.record(
        actor=actor,
        action=f"consult.{action}",
        object_type="consult",
        object_id=consult.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
        detail={"from": current, "to": target, **(detail or {})},
    )
    events.publish(
        f"consult.{action}",
        {
            "consult": str(consult.external_id),
            "from": current,
            "to": target,
            "centre": str(consult.centre.external_id) if consult.centre_id else None,
            "actor": actor.user_id,
        },
    )
    push.worklist_changed(consult, extra_centres=previous_centres)


def _require_reason(reason: str, field_name: str = "reason") -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(_("Give a reason."), fields={field_name: _("Required.")})
    return reason[:500]


def _tell(user: Any, *, category: str, title: str, body: str, consult: ConsultRequest) -> None:
    if user is None:
        return
    notify(
        user=user,
        category=category,
        title=title,
        body=body,
        data={"consult": str(consult.external_id)},
        channels=(NotificationChannel.PUSH,),
    )


def _in_site_language() -> Any:
    return translation.override(settings.LANGUAGE_CODE)


# --- drafts -------------------------------------------------------------------------------------


@dataclass
class ConsultInput:
    consult_type: str | None = None
    urgency: str | None = None
    reason: str | None = None
    proposed_time: datetime | None = None
    record_summary: str | None = None
    wanted_specialty: str | None = None
    minimum_title: str | None = None
    clinical_question: str | None = None
    vital_signs: dict[str, Any] | None = None
    consent_id: uuid.UUID | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _validate_input(data: ConsultInput) -> dict[str, str]:
    errors: dict[str, str] = {}
    if data.consult_type is not None and data.consult_type not in ConsultType.values:
        errors["consult_type"] = _("Unknown consult type.")
    if data.urgency is not None and data.urgency not in Urgency.values:
        errors["urgency"] = _("Unknown urgency.")
    if data.wanted_specialty and data.wanted_specialty not in Service.values:
        errors["wanted_specialty"] = _("Unknown specialty.")
    if data.minimum_title and data.minimum_title not in TITLE_RANK:
        errors["minimum_title"] = _("Unknown professional title.")
    if data.vital_signs is not None and not isinstance(data.vital_signs, dict):
        errors["vital_signs"] = _("Vital signs are name/value pairs.")
    return errors


def _apply_input(consult: ConsultRequest, data: ConsultInput, principal: Principal) -> None:
    for name in (
        "consult_type",
        "urgency",
        "reason",
        "proposed_time",
        "record_summary",
        "wanted_specialty",
        "minimum_title",
        "clinical_question",
        "vital_signs",
    ):
        value = getattr(data, name)
        if value is not None:
            setattr(consult, name, value)
    consult.urgency_rank = URGENCY_RANK.get(consult.urgency, 2)
    if data.consent_id is not None:
        consent = Consent.objects.filter(
            external_id=data.consent_id, patient=consult.patient
        ).first()
        if consent is None:
            raise ValidationFailed(
                _("No such consent for this patient."), fields={"consent": _("Not found.")}
            )
        consult.consent = consent


@transaction.atomic
def consult_create(
    *, principal: Principal, patient_id: uuid.UUID | str, data: ConsultInput
) -> ConsultRequest:
    """A draft consult for a patient the principal may see (requesting clinician)."""
    if principal.role not in CLINICAL_ROLES or principal.role == Role.SPECIALIST:
        audit.record(actor=principal.actor, action="consult.create", outcome="denied")
        raise Forbidden(_("Only the treating clinic's doctors request consults."), code="role")
    errors = _validate_input(data)
    if data.consult_type is None:
        errors["consult_type"] = _("Required.")
    if errors:
        raise ValidationFailed(_("The consult request is not complete."), fields=errors)
    patient = access_patient(principal, patient_id, action="consult.create")
    consult = ConsultRequest(
        requester=principal.user,
        requesting_organisation=principal.organisation,
        patient=patient,
    )
    _apply_input(consult, data, principal)
    consult.save()
    audit.record(
        actor=principal.actor,
        action="consult.create",
        object_type="consult",
        object_id=consult.external_id,
        patient_id=patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
    )
    events.publish("consult.created", {"consult": str(consult.external_id)})
    return consult


@transaction.atomic
def consult_update(
    *,
    principal: Principal,
    consult_id: uuid.UUID | str,
    data: ConsultInput,
    version: int | None = None,
) -> ConsultRequest:
    """Edit a draft (or a returned/declined request before resubmitting). ``version`` is the
    version the editor saw; a stale one gets 409 instead of overwriting someone's change."""
    consult = _lock(principal, consult_id, "consult.update")
    if not is_requester_side(principal, consult):
        raise refuse(principal, consult, "consult.update")
    if consult.state not in EDITABLE:
        raise Conflict(_("Only a draft or a returned request can be edited."), code="not_editable")
    if version is not None and version != consult.version:
        raise Conflict(
            _("Someone changed this request meanwhile; reload it."), code="stale_version"
        )
    errors = _validate_input(data)
    if errors:
        raise ValidationFailed(_("The consult request is not complete."), fields=errors)
    _apply_input(consult, data, principal)
    consult.version += 1
    consult.save()
    audit.record(
        actor=principal.actor,
        action="consult.update",
        object_type="consult",
        object_id=consult.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
    )
    return consult


# --- routing ------------------------------------------------------------------------------------


def _active_teleconsult_consent(consult: ConsultRequest) -> Consent | None:
    if consult.consent_id is not None:
        consent = consult.consent
        if (
            consent.kind == ConsentKind.TELECONSULT
            and consent.revoked_at is None
            and consent.patient_id == consult.patient_id
        ):
            return consent
        return None
    return (
        Consent.objects.filter(
            patient=consult.patient, kind=ConsentKind.TELECONSULT, revoked_at__isnull=True
        )
        .order_by("-granted_at")
        .first()
    )


def _share_with_centre(consult: ConsultRequest, actor: audit.Actor) -> None:
    """Let the centre see the patient and the attached studies (once per centre)."""
    centre = consult.centre
    ref = str(consult.external_id)
    if not PatientShare.objects.filter(
        patient=consult.patient, organisation=centre, source="consult", source_ref=ref
    ).exists():
        patient_share_grant(
            actor=actor,
            patient=consult.patient,
            source="consult",
            organisation=centre,
            source_ref=ref,
        )
    for attachment in consult.attachments.filter(study__isnull=False).select_related("study"):
        _share_study(attachment.study, centre, ref, actor)


def _share_study(study: Study, centre: Organisation, ref: str, actor: audit.Actor) -> None:
    if not study.shares.filter(organisation=centre, source="consult", source_ref=ref).exists():
        study_share_grant(
            actor=actor, study=study, source="consult", organisation=centre, source_ref=ref
        )


def _place(consult: ConsultRequest, centre: Organisation, actor: audit.Actor) -> datetime:
    """Put a locked consult at a centre: queue, deadlines, sharing, on-duty assignee.
    Returns the moment the deadlines count from (the queued time)."""
    now = timezone.now()
    consult.centre = centre
    consult.queue = centres.service_for(consult)
    consult.assignee = None
    consult.tried_centres = [*consult.tried_centres, centre.pk]
    deadlines = centres.deadlines_for(centre, consult.urgency, now)
    consult.accept_by, consult.report_by = deadlines.accept_by, deadlines.report_by
    _share_with_centre(consult, actor)
    consult.assignee = centres.on_duty_specialist(consult, now)
    return now


def _route_or_fail(consult: ConsultRequest, exclude: set[int]) -> Organisation:
    centre = centres.find_centre(
        requesting=consult.requesting_organisation,
        service=centres.service_for(consult),
        exclude=exclude,
    )
    if centre is None:
        raise ValidationFailed(
            _("No centre offers this service to your clinic."), code="no_centre", fields={}
        )
    return centre


def _submission_errors(consult: ConsultRequest) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not consult.clinical_question.strip():
        errors["clinical_question"] = _("Ask the clinical question.")
    if not consult.reason.strip():
        errors["reason"] = _("State the reason and purpose.")
    if (
        consult.consult_type in (ConsultType.SPECIALIST_VIDEO, ConsultType.MDT)
        and not consult.wanted_specialty
    ):
        errors["wanted_specialty"] = _("Name the specialty wanted.")
    if _active_teleconsult_consent(consult) is None:
        errors["consent"] = _("Record the patient's consent to a teleconsultation first.")
    return errors


@transaction.atomic
def consult_submit(*, principal: Principal, consult_id: uuid.UUID | str) -> ConsultRequest:
    """Submit a draft, or resubmit a returned or declined request: check completeness and
    consent, route to a centre, share the record with it, and queue it there."""
    consult = _lock(principal, consult_id, "consult.submit")
    if not is_requester_side(principal, consult):
        raise refuse(principal, consult, "consult.submit")
    check(consult.state, S.SUBMITTED)
    action = "submit" if consult.state == S.DRAFT else "resubmit"
    errors = _submission_errors(consult)
    if errors:
        raise ValidationFailed(_("The consult request is not complete."), fields=errors)
    # Routing starts afresh: the requester may have added what the centres asked for.
    consult.tried_centres = []
    centre = _route_or_fail(consult, set())
    previous = consult.centre_id
    consult.consent = _active_teleconsult_consent(consult)
    for attachment in consult.attachments.filter(kind=AttachmentKind.STUDY, study__isnull=True):
        _resolve_study(attachment)
    _move(consult, S.SUBMITTED, action=action, principal=principal)
    placed = _place(consult, centre, principal.actor)
    _move(
        consult,
        S.QUEUED,
        at=placed,
        action="route",
        principal=principal,
        previous_centres=[previous] if previous else None,
        detail={"centre": str(centre.external_id)},
    )
    return consult


def _resolve_study(attachment: ConsultAttachment) -> bool:
    study = Study.objects.filter(study_instance_uid=attachment.study_instance_uid).first()
    if study is None:
        return False
    consult = attachment.consult
    if study.patient_id is not None and study.patient_id != consult.patient_id:
        return False  # a study of another patient never links to this consult
    attachment.study = study
    attachment.save(update_fields=["study", "updated_at"])
    return True


def study_arrived(*, study_external_id: str) -> int:
    """Link waiting study references to a study that has arrived, and share it with the
    centres of the consults already routed. Idempotent. Returns how many were linked."""
    study = Study.objects.filter(external_id=study_external_id).first()
    if study is None:
        return 0
    linked = 0
    waiting = ConsultAttachment.objects.select_related("consult", "consult__centre").filter(
        kind=AttachmentKind.STUDY, study__isnull=True, study_instance_uid=study.study_instance_uid
    )
    for attachment in waiting:
        with transaction.atomic():
            if not _resolve_study(attachment):
                continue
            linked += 1
            consult = attachment.consult
            if consult.centre_id is not None:
                _share_study(
                    study,
                    consult.centre,
                    str(consult.external_id),
                    audit.Actor.system("consult"),
                )
    return linked


# --- centre side --------------------------------------------------------------------------------


@transaction.atomic
def consult_accept(*, principal: Principal, consult_id: uuid.UUID | str) -> ConsultRequest:
    """A qualified specialist of the routed centre takes the consult (if unassigned or
    assigned to them)."""
    consult = _lock(principal, consult_id, "consult.accept")
    if not is_centre_specialist(principal, consult):
        raise refuse(principal, consult, "consult.accept")
    check(consult.state, S.ACCEPTED)
    if consult.assignee_id not in (None, principal.user.pk):
        raise Conflict(_("This consult is assigned to another specialist."), code="assigned")
    if not specialist_fits(principal.user, consult):
        raise refuse(principal, consult, "consult.accept")
    consult.assignee = principal.user
    _move(consult, S.ACCEPTED, action="accept", principal=principal)
    return consult


@transaction.atomic
def consult_decline(
    *, principal: Principal, consult_id: uuid.UUID | str, reason: str
) -> ConsultRequest:
    """The centre declines (a reason is required). The consult is re-routed to the next
    centre not yet tried, or waits for its requester when there is none."""
    consult = _lock(principal, consult_id, "consult.decline")
    if not (is_centre_specialist(principal, consult) or is_centre_coordinator(principal, consult)):
        raise refuse(principal, consult, "consult.decline")
    check(consult.state, S.DECLINED)
    reason = _require_reason(reason)
    consult.decline_reason = reason
    declining = consult.centre_id
    _move(consult, S.DECLINED, action="decline", principal=principal, reason=reason)
    _reroute_or_return(consult, principal=principal, previous=declining, reason=reason)
    return consult


def _reroute_or_return(
    consult: ConsultRequest,
    *,
    principal: Principal | None,
    previous: int | None,
    reason: str,
    system: str = "consult",
) -> None:
    centre = centres.find_centre(
        requesting=consult.requesting_organisation,
        service=centres.service_for(consult),
        exclude=set(consult.tried_centres),
    )
    actor = _actor_of(principal, system)
    if centre is None:
        consult.centre = None
        consult.assignee = None
        consult.save(update_fields=["centre", "assignee", "updated_at"])
        with _in_site_language():
            _tell(
                consult.requester,
                category="consult.declined",
                title=_("Consult declined"),
                body=_("No centre could take the consult: %(reason)s") % {"reason": reason},
                consult=consult,
            )
        push.worklist_changed(consult, extra_centres=[previous] if previous else None)
        return
    placed = _place(consult, centre, actor)
    _move(
        consult,
        S.QUEUED,
        at=placed,
        action="reroute",
        principal=principal,
        system=system,
        reason=reason,
        previous_centres=[previous] if previous else None,
        detail={"centre": str(centre.external_id)},
    )


@transaction.atomic
def consult_return(
    *, principal: Principal, consult_id: uuid.UUID | str, reason: str
) -> ConsultRequest:
    """Send the request back to its requester for more information (reason required)."""
    consult = _lock(principal, consult_id, "consult.return")
    if not (is_centre_specialist(principal, consult) or is_centre_coordinator(principal, consult)):
        raise refuse(principal, consult, "consult.return")
    check(consult.state, S.RETURNED)
    if consult.assignee_id not in (None, principal.user.pk) and not is_centre_coordinator(
        principal, consult
    ):
        raise refuse(principal, consult, "consult.return")
    consult.return_reason = _require_reason(reason)
    consult.assignee = None
    _move(consult, S.RETURNED, action="return", principal=principal, reason=consult.return_reason)
    with _in_site_language():
        _tell(
            consult.requester,
            category="consult.returned",
            title=_("More information needed"),
            body=consult.return_reason,
            consult=consult,
        )
    return consult


def _require_assignee(principal: Principal, consult: ConsultRequest, action: str) -> None:
    if not is_assignee(principal, consult):
        raise refuse(principal, consult, action)


@transaction.atomic
def consult_start(*, principal: Principal, consult_id: uuid.UUID | str) -> ConsultRequest:
    consult = _lock(principal, consult_id, "consult.start")
    _require_assignee(principal, consult, "consult.start")
    check(consult.state, S.IN_PROGRESS)
    _move(consult, S.IN_PROGRESS, action="start", principal=principal)
    return consult


@dataclass
class ReportInput:
    findings: str = ""
    impression: str = ""
    recommendations: str = ""
    structured: dict[str, Any] | None = None
    icd10_codes: list[str] | None = None
    recommendation_kind: str | None = None
    follow_up_days: int | None = None


def _draft_report(consult: ConsultRequest) -> Report | None:
    return consult.reports.filter(status=ReportStatus.DRAFT).first()


@transaction.atomic
def consult_report(
    *, principal: Principal, consult_id: uuid.UUID | str, data: ReportInput
) -> Report:
    """Save the draft report. The first save moves in_progress → reported; later saves (and
    an amendment's draft after signing) edit the draft without changing the state."""
    consult = _lock(principal, consult_id, "consult.report")
    _require_assignee(principal, consult, "consult.report")
    draft = _draft_report(consult)
    amending = consult.state in (S.SIGNED, S.DELIVERED, S.CLOSED) and draft is not None
    if consult.state != S.REPORTED and not amending:
        check(consult.state, S.REPORTED)
    structure = report_structure.validate(
        consult_type=consult.consult_type,
        structured=data.structured,
        icd10_codes=data.icd10_codes,
        recommendation_kind=data.recommendation_kind,
        follow_up_days=data.follow_up_days,
    )
    if not (data.findings.strip() or data.impression.strip() or structure.structured):
        raise ValidationFailed(
            _("Write the findings or the impression."), fields={"impression": _("Required.")}
        )
    if draft is None:
        last = consult.reports.order_by("-version").first()
        draft = Report(
            consult=consult, version=(last.version + 1) if last else 1, author=principal.user
        )
    draft.findings, draft.impression = data.findings, data.impression
    draft.recommendations = data.recommendations
    draft.structured = structure.structured
    draft.icd10_codes = structure.icd10_codes
    draft.recommendation_kind = structure.recommendation_kind
    draft.follow_up_days = structure.follow_up_days
    draft.save()
    if consult.state == S.IN_PROGRESS:
        _move(consult, S.REPORTED, action="report", principal=principal)
    else:
        audit.record(
            actor=principal.actor,
            action="consult.report.save",
            object_type="report",
            object_id=draft.external_id,
            patient_id=consult.patient.external_id,
            subject_organisation_id=consult.requesting_organisation_id,
        )
    return draft


def report_hash(report: Report, consult: ConsultRequest) -> str:
    """SHA-256 of the signed content. The structured parts enter the hashed body only when
    filled, so that reports signed before they existed keep verifying."""
    content: dict[str, Any] = {
        "consult": str(consult.external_id),
        "version": report.version,
        "previous": str(report.previous.external_id) if report.previous_id else None,
        "findings": report.findings,
        "impression": report.impression,
        "recommendations": report.recommendations,
        "signed_by": report.signed_by_id,
        "signed_at": report.signed_at.isoformat() if report.signed_at else None,
    }
    if report.structured:
        content["structured"] = report.structured
    if report.icd10_codes:
        content["icd10_codes"] = report.icd10_codes
    if report.recommendation_kind:
        content["recommendation_kind"] = report.recommendation_kind
    if report.follow_up_days is not None:
        content["follow_up_days"] = report.follow_up_days
    body = json.dumps(content, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


@transaction.atomic
def consult_sign(*, principal: Principal, consult_id: uuid.UUID | str, password: str) -> Report:
    """Sign the draft report: the specialist re-enters their password; signer, time and a
    hash of the content are stored and the version is frozen. Signing an amendment leaves
    the consult's state as it is and tells the requester."""
    consult = _lock(principal, consult_id, "consult.sign")
    _require_assignee(principal, consult, "consult.sign")
    draft = _draft_report(consult)
    amending = consult.state in (S.SIGNED, S.DELIVERED, S.CLOSED) and draft is not None
    if not amending:
        check(consult.state, S.SIGNED)
    if draft is None:
        raise Conflict(_("There is no draft report to sign."), code="no_draft")
    if not principal.user.check_password(password or ""):
        audit.record(
            actor=principal.actor,
            action="consult.sign",
            outcome="denied",
            object_type="consult",
            object_id=consult.external_id,
            detail={"reason": "re-authentication failed"},
        )
        raise Forbidden(_("The password is not right; the report was not signed."), code="reauth")
    draft.status = ReportStatus.SIGNED
    draft.signed_by = principal.user
    draft.signed_at = timezone.now()
    draft.content_hash = report_hash(draft, consult)
    draft.save()
    if amending:
        audit.record(
            actor=principal.actor,
            action="consult.report.amend",
            object_type="report",
            object_id=draft.external_id,
            patient_id=consult.patient.external_id,
            subject_organisation_id=consult.requesting_organisation_id,
            detail={"version": draft.version, "hash": draft.content_hash},
        )
        events.publish(
            "consult.report_amended",
            {"consult": str(consult.external_id), "report": str(draft.external_id)},
        )
        with _in_site_language():
            notify(
                user=consult.requester,
                category="consult.report_amended",
                title=_("Report amended"),
                body=_("The report of a consult you requested was amended."),
                data={"consult": str(consult.external_id), "version": draft.version},
            )
        push.worklist_changed(consult)
    else:
        _move(
            consult,
            S.SIGNED,
            action="sign",
            principal=principal,
            detail={"report": str(draft.external_id), "hash": draft.content_hash},
        )
    referrals.act_on_recommendation(principal=principal, consult=consult, report=draft)
    return draft


@transaction.atomic
def report_amend(*, principal: Principal, consult_id: uuid.UUID | str, reason: str) -> Report:
    """Open an amendment: a new draft version linked to the last signed one."""
    consult = _lock(principal, consult_id, "consult.report.amend")
    _require_assignee(principal, consult, "consult.report.amend")
    if consult.state not in (S.SIGNED, S.DELIVERED, S.CLOSED):
        raise Conflict(_("Only a signed report can be amended."), code="not_signed")
    if _draft_report(consult) is not None:
        raise Conflict(_("An amendment is already being written."), code="draft_exists")
    reason = _require_reason(reason)
    last = consult.reports.filter(status=ReportStatus.SIGNED).order_by("-version").first()
    if last is None:
        raise Conflict(_("Only a signed report can be amended."), code="not_signed")
    draft = Report.objects.create(
        consult=consult,
        version=last.version + 1,
        previous=last,
        findings=last.findings,
        impression=last.impression,
        recommendations=last.recommendations,
        structured=last.structured,
        icd10_codes=last.icd10_codes,
        recommendation_kind=last.recommendation_kind,
        follow_up_days=last.follow_up_days,
        amendment_reason=reason,
        author=principal.user,
    )
    audit.record(
        actor=principal.actor,
        action="consult.report.amend.open",
        object_type="report",
        object_id=draft.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
    )
    return draft


@transaction.atomic
def consult_deliver(*, principal: Principal, consult_id: uuid.UUID | str) -> ConsultRequest:
    """Send the signed report to the requesting clinic (push and SMS to the requester)."""
    consult = _lock(principal, consult_id, "consult.deliver")
    if not (is_assignee(principal, consult) or is_centre_coordinator(principal, consult)):
        raise refuse(principal, consult, "consult.deliver")
    check(consult.state, S.DELIVERED)
    _move(consult, S.DELIVERED, action="deliver", principal=principal)
    with _in_site_language():
        notify(
            user=consult.requester,
            category="consult.delivered",
            title=_("Consult report ready"),
            body=_("The signed report of your consult request is ready."),
            data={"consult": str(consult.external_id)},
        )
    return consult


@transaction.atomic
def consult_close(*, principal: Principal, consult_id: uuid.UUID | str) -> ConsultRequest:
    consult = _lock(principal, consult_id, "consult.close")
    if not (is_requester_side(principal, consult) or is_centre_coordinator(principal, consult)):
        raise refuse(principal, consult, "consult.close")
    check(consult.state, S.CLOSED)
    _move(consult, S.CLOSED, action="close", principal=principal)
    return consult


@transaction.atomic
def consult_cancel(
    *, principal: Principal, consult_id: uuid.UUID | str, reason: str = ""
) -> ConsultRequest:
    """The requesting side (or a coordinator of the centre) withdraws the request."""
    consult = _lock(principal, consult_id, "consult.cancel")
    if not (is_requester_side(principal, consult) or is_centre_coordinator(principal, consult)):
        raise refuse(principal, consult, "consult.cancel")
    check(consult.state, S.CANCELLED)
    if consult.state != S.DRAFT:
        reason = _require_reason(reason)
    consult.cancel_reason = (reason or "").strip()[:500]
    previous = consult.centre_id
    _move(
        consult,
        S.CANCELLED,
        action="cancel",
        principal=principal,
        reason=consult.cancel_reason,
        previous_centres=[previous] if previous else None,
    )
    return consult


@transaction.atomic
def consult_reassign(
    *, principal: Principal, consult_id: uuid.UUID | str, assignee_id: uuid.UUID | str | None
) -> ConsultRequest:
    """A coordinator of the centre (or above) gives the consult to another qualified
    specialist of the centre, or back to the queue (``assignee_id`` None)."""
    consult = _lock(principal, consult_id, "consult.reassign")
    if not is_centre_coordinator(principal, consult):
        raise refuse(principal, consult, "consult.reassign")
    check(consult.state, S.QUEUED)
    target = None
    if assignee_id:
        profile = (
            StaffProfile.objects.select_related("user")
            .filter(
                external_id=assignee_id,
                user__is_active=True,
                user__memberships__organisation=consult.centre,
                user__memberships__role=Role.SPECIALIST,
                user__memberships__is_active=True,
            )
            .first()
        )
        if profile is None:
            raise ValidationFailed(
                _("Choose a specialist of this centre."), fields={"assignee": _("Not found.")}
            )
        if not specialist_fits(profile.user, consult):
            raise ValidationFailed(
                _("This specialist's specialty or title does not fit the request."),
                fields={"assignee": _("Not qualified.")},
            )
        target = profile.user
    consult.assignee = target
    _move(
        consult,
        S.QUEUED,
        action="reassign",
        principal=principal,
        detail={"assignee": str(assignee_id) if assignee_id else None},
    )
    with _in_site_language():
        _tell(
            target,
            category="consult.assigned",
            title=_("Consult assigned to you"),
            body=_("A coordinator assigned a consult to you."),
            consult=consult,
        )
    return consult


def sla_reroute(consult: ConsultRequest, *, previous: int | None, reason: str) -> bool:
    """Move a locked, overdue consult to the next centre not yet tried (the SLA task's last
    step). With no other centre it stays where it is; its coordinators were told."""
    centre = centres.find_centre(
        requesting=consult.requesting_organisation,
        service=centres.service_for(consult),
        exclude=set(consult.tried_centres),
    )
    if centre is None:
        return False
    actor = audit.Actor.system("sla")
    placed = _place(consult, centre, actor)
    _move(
        consult,
        S.QUEUED,
        at=placed,
        action="reroute",
        system="sla",
        reason=reason,
        previous_centres=[previous] if previous else None,
        detail={"centre": str(centre.external_id)},
    )
    return True


# --- machine findings ----------------------------------------------------------------------

OPEN_FOR_PRIORITY = frozenset(
    {
        ConsultState.DRAFT,
        ConsultState.SUBMITTED,
        ConsultState.QUEUED,
        ConsultState.ACCEPTED,
        ConsultState.IN_PROGRESS,
        ConsultState.RETURNED,
        ConsultState.DECLINED,
    }
)


def consult_raise_priority(*, study_external_id: str, reason: str, detail: dict[str, Any]) -> int:
    """Make every open consult that carries this study an emergency (a machine-flagged
    emergency pattern, e.g. possible ST elevation on the ECG). Deadlines shorten to the
    emergency SLA counted from now; the centre and the assignee are told. Returns how many
    consults changed."""
    study = Study.objects.filter(external_id=study_external_id).first()
    if study is None:
        return 0
    ids = list(
        ConsultRequest.objects.filter(
            Q(attachments__study=study)
            | Q(attachments__study_instance_uid=study.study_instance_uid),
            state__in=OPEN_FOR_PRIORITY,
        )
        .exclude(urgency=Urgency.EMERGENCY)
        .values_list("pk", flat=True)
        .distinct()
    )
    changed = 0
    actor = audit.Actor(user_id=None, username="system:machine-finding")
    for pk in ids:
        with transaction.atomic():
            consult = _lock_pk(pk)
            if consult.state not in OPEN_FOR_PRIORITY or consult.urgency == Urgency.EMERGENCY:
                continue
            previous = consult.urgency
            consult.urgency = Urgency.EMERGENCY
            fields = ["urgency", "updated_at"]
            if consult.centre_id is not None:
                deadlines = centres.deadlines_for(consult.centre, Urgency.EMERGENCY, timezone.now())
                consult.accept_by, consult.report_by = deadlines.accept_by, deadlines.report_by
                fields += ["accept_by", "report_by"]
            consult.save(update_fields=fields)
            audit.record(
                actor=actor,
                action="consult.priority_raised",
                object_type="consult",
                object_id=consult.external_id,
                patient_id=consult.patient.external_id,
                subject_organisation_id=consult.requesting_organisation_id,
                detail={"from": previous, "reason": reason, **detail},
            )
            events.publish(
                "consult.priority_raised",
                {"consult": str(consult.external_id), "from": previous, "reason": reason},
            )
            push.worklist_changed(consult)
            changed += 1
    return changed
