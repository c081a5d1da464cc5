"""Two-way referral (双向转诊) after a consult, and the other actions a signed report's
recommendation starts.

A report signed with "refer up" opens a ``Referral`` from the requesting organisation to the
consult's centre; a clinician of the centre (or of an organisation above it) accepts it and,
when the patient is done there, hands them back down with a care plan to the referring
clinic or to the township centre above it. A report signed with "follow up in N days" makes
the patient's chronic-programme follow-up fall due then (``appointments``).

Visible to: clinical staff of the referring organisation's tree and of the receiving
organisation's tree. Everyone else gets NotFound, audited when the referral exists.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from appointments.programmes import followup_bring_forward
from registry import audit, events
from registry.access import CLINICAL_ROLES, Principal, organisations_subtree_q
from registry.errors import Conflict, Forbidden, NotFound, ValidationFailed
from registry.models import (
    AuditOutcome,
    Membership,
    NotificationChannel,
    Organisation,
    OrganisationKind,
    Role,
)
from registry.notifications import notify

from .models import ConsultRequest, RecommendationKind, Referral, ReferralState, Report

R = ReferralState

# from-state -> the states it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    R.REQUESTED: frozenset({R.ACCEPTED, R.CANCELLED}),
    R.ACCEPTED: frozenset({R.HANDED_BACK}),
    R.HANDED_BACK: frozenset(),
    R.CANCELLED: frozenset(),
}
_RELATED = (
    "consult",
    "report",
    "patient",
    "from_organisation",
    "to_organisation",
    "back_to_organisation",
    "requested_by__staff",
    "accepted_by__staff",
    "handed_back_by__staff",
)


def _site_language() -> Any:
    return translation.override(settings.LANGUAGE_CODE)


def _check(referral: Referral, target: str) -> None:
    if target not in TRANSITIONS.get(referral.state, frozenset()):
        raise Conflict(
            _("A referral that is “%(current)s” cannot become “%(target)s”.")
            % {"current": referral.get_state_display(), "target": ReferralState(target).label},
            code="illegal_transition",
            current=referral.state,
        )


# --- gate and reads ---------------------------------------------------------------------------


def referrals_visible_to(principal: Principal) -> QuerySet[Referral]:
    orgs = principal.organisations_with(CLINICAL_ROLES)
    if not orgs:
        return Referral.objects.none()
    return Referral.objects.filter(
        organisations_subtree_q(orgs, "from_organisation__path")
        | organisations_subtree_q(orgs, "to_organisation__path")
    )


def _audit(
    principal: Principal | None,
    referral: Referral,
    action: str,
    *,
    outcome: str = AuditOutcome.SUCCESS,
    detail: dict[str, Any] | None = None,
) -> None:
    audit.record(
        actor=principal.actor if principal is not None else audit.Actor.system("consult"),
        action=action,
        outcome=outcome,
        object_type="referral",
        object_id=referral.external_id,
        patient_id=referral.patient.external_id,
        subject_organisation_id=referral.from_organisation_id,
        detail=detail,
    )


def access_referral(
    principal: Principal, referral_id: uuid.UUID | str, *, action: str = "referral.read"
) -> Referral:
    """The referral if the principal may see it; else audit (when it exists) and NotFound."""
    try:
        key = uuid.UUID(str(referral_id))
    except ValueError:
        raise NotFound(_("No such referral.")) from None
    referral = (
        referrals_visible_to(principal).select_related(*_RELATED).filter(external_id=key).first()
    )
    if referral is None:
        hidden = Referral.objects.select_related("patient").filter(external_id=key).first()
        if hidden is not None:
            _audit(principal, hidden, action, outcome=AuditOutcome.DENIED)
        raise NotFound(_("No such referral."))
    return referral


def referral_list(
    *, principal: Principal, side: str | None = None, state: str | None = None
) -> QuerySet[Referral]:
    """Referrals the principal may see, newest first. ``incoming``: to the acting
    organisation's tree; ``outgoing``: from it."""
    qs = referrals_visible_to(principal).select_related(*_RELATED)
    if side == "incoming":
        qs = qs.filter(to_organisation__path__startswith=principal.organisation.path)
    elif side == "outgoing":
        qs = qs.filter(from_organisation__path__startswith=principal.organisation.path)
    if state:
        qs = qs.filter(state=state)
    audit.record(
        actor=principal.actor,
        action="referral.list",
        object_type="referral",
        detail={"side": side or "all", "state": state or ""},
    )
    return qs.order_by("-created_at")


def referral_detail(*, principal: Principal, referral_id: uuid.UUID | str) -> Referral:
    referral = access_referral(principal, referral_id)
    _audit(principal, referral, "referral.read")
    return referral


def is_receiving_side(principal: Principal, referral: Referral) -> bool:
    return principal.role in CLINICAL_ROLES and referral.to_organisation.path.startswith(
        principal.organisation.path
    )


def _gate(principal: Principal, referral_id: uuid.UUID | str, action: str) -> Referral:
    """NotFound or Forbidden for someone who may not act. Called before the write's
    transaction opens, so that the audited refusal is not rolled back with it."""
    referral = access_referral(principal, referral_id, action=action)
    if not is_receiving_side(principal, referral):
        _audit(principal, referral, action, outcome=AuditOutcome.DENIED)
        raise Forbidden(_("Only the receiving centre acts on this referral."), code="role")
    return referral


def _lock(referral: Referral) -> Referral:
    return (
        Referral.objects.select_for_update(of=("self",))
        .select_related(*_RELATED)
        .get(pk=referral.pk)
    )


# --- writes -----------------------------------------------------------------------------------


def _tell(user: Any, referral: Referral, *, category: str, title: str, body: str) -> None:
    if user is None:
        return
    notify(
        user=user,
        category=category,
        title=title,
        body=body,
        data={"referral": str(referral.external_id), "consult": str(referral.consult.external_id)},
        channels=(NotificationChannel.PUSH, NotificationChannel.SMS),
    )


def _centre_coordinators(organisation: Organisation) -> list[Any]:
    return [
        m.user
        for m in Membership.objects.filter(
            organisation=organisation, role=Role.COORDINATOR, is_active=True, user__is_active=True
        ).select_related("user")
    ]


def referral_open(*, principal: Principal, consult: ConsultRequest, report: Report) -> Referral:
    """Open the referral a signed report asks for (called inside the signing transaction,
    the consult row locked). A consult has one referral: an amendment that still says
    "refer up" keeps the one already open."""
    existing = Referral.objects.filter(consult=consult).select_related(*_RELATED).first()
    if existing is not None:
        return existing
    if consult.centre_id is None:
        raise Conflict(_("This consult has no centre to refer to."), code="no_centre")
    reason = (report.recommendations or report.impression or "").strip() or _(
        "Referral recommended by the consult report."
    )
    referral = Referral.objects.create(
        consult=consult,
        report=report,
        patient=consult.patient,
        from_organisation=consult.requesting_organisation,
        to_organisation=consult.centre,
        reason=reason,
        requested_by=principal.user,
    )
    _audit(principal, referral, "referral.request", detail={"report": report.version})
    events.publish(
        "consult.referral_requested",
        {
            "referral": str(referral.external_id),
            "consult": str(consult.external_id),
            "patient": str(consult.patient.external_id),
            "from": str(consult.requesting_organisation.external_id),
            "to": str(consult.centre.external_id),
        },
    )
    with _site_language():
        _tell(
            consult.requester,
            referral,
            category="referral.requested",
            title=_("Patient referred to the centre"),
            body=_("The consult report recommends referring your patient to %(centre)s.")
            % {"centre": consult.centre.name},
        )
        for user in _centre_coordinators(consult.centre):
            _tell(
                user,
                referral,
                category="referral.incoming",
                title=_("New referral"),
                body=_("A patient was referred to your centre after a consult."),
            )
    return referral


def referral_accept(*, principal: Principal, referral_id: uuid.UUID | str) -> Referral:
    """The centre takes the patient on (a clinician of the centre or above it)."""
    visible = _gate(principal, referral_id, "referral.accept")
    with transaction.atomic():
        return _accept(principal, _lock(visible))


def _accept(principal: Principal, referral: Referral) -> Referral:
    _check(referral, R.ACCEPTED)
    referral.state = R.ACCEPTED
    referral.accepted_by = principal.user
    referral.accepted_at = timezone.now()
    referral.save(update_fields=["state", "accepted_by", "accepted_at", "updated_at"])
    _audit(principal, referral, "referral.accept")
    events.publish("consult.referral_accepted", {"referral": str(referral.external_id)})
    with _site_language():
        _tell(
            referral.consult.requester,
            referral,
            category="referral.accepted",
            title=_("Referral accepted"),
            body=_("%(centre)s accepted the referral of your patient.")
            % {"centre": referral.to_organisation.name},
        )
    return referral


def _hand_back_target(referral: Referral, back_to: uuid.UUID | str | None) -> Organisation:
    """The referring clinic, or the township centre (or clinic) above it on its path."""
    if not back_to:
        return referral.from_organisation
    try:
        key = uuid.UUID(str(back_to))
    except ValueError:
        key = None
    target = Organisation.objects.filter(external_id=key, is_active=True).first() if key else None
    if (
        target is None
        or not referral.from_organisation.path.startswith(target.path)
        or target.kind not in (OrganisationKind.TOWNSHIP_CENTRE, OrganisationKind.VILLAGE_CLINIC)
    ):
        raise ValidationFailed(
            _("Hand back to the referring clinic or to the township centre above it."),
            fields={"back_to": _("Not a clinic on the referring side.")},
        )
    return target


def referral_hand_back(
    *,
    principal: Principal,
    referral_id: uuid.UUID | str,
    care_plan: str,
    back_to: uuid.UUID | str | None = None,
) -> Referral:
    """Hand the patient back down with a care plan; the requester is told."""
    visible = _gate(principal, referral_id, "referral.hand_back")
    care_plan = (care_plan or "").strip()
    if not care_plan:
        raise ValidationFailed(
            _("Write the care plan for the clinic."), fields={"care_plan": _("Required.")}
        )
    with transaction.atomic():
        return _hand_back(principal, _lock(visible), care_plan, back_to)


def _hand_back(
    principal: Principal, referral: Referral, care_plan: str, back_to: uuid.UUID | str | None
) -> Referral:
    _check(referral, R.HANDED_BACK)
    target = _hand_back_target(referral, back_to)
    referral.state = R.HANDED_BACK
    referral.care_plan = care_plan[:8000]
    referral.back_to_organisation = target
    referral.handed_back_by = principal.user
    referral.handed_back_at = timezone.now()
    referral.save(
        update_fields=[
            "state",
            "care_plan",
            "back_to_organisation",
            "handed_back_by",
            "handed_back_at",
            "updated_at",
        ]
    )
    _audit(
        principal,
        referral,
        "referral.hand_back",
        detail={"back_to": str(target.external_id)},
    )
    events.publish(
        "consult.referral_handed_back",
        {"referral": str(referral.external_id), "back_to": str(target.external_id)},
    )
    with _site_language():
        _tell(
            referral.consult.requester,
            referral,
            category="referral.handed_back",
            title=_("Patient handed back with a care plan"),
            body=_("%(centre)s handed your patient back. Care plan: %(plan)s")
            % {"centre": referral.to_organisation.name, "plan": referral.care_plan[:200]},
        )
    return referral


# --- what a signed report's recommendation starts ---------------------------------------------


def act_on_recommendation(
    *, principal: Principal, consult: ConsultRequest, report: Report
) -> Referral | None:
    """Called by the signing service in its transaction, once the version is frozen."""
    kind = report.recommendation_kind
    if kind == RecommendationKind.REFER_UP:
        return referral_open(principal=principal, consult=consult, report=report)
    if kind == RecommendationKind.FOLLOW_UP and report.follow_up_days:
        due_on = timezone.localdate() + timedelta(days=report.follow_up_days)
        moved = followup_bring_forward(
            patient=consult.patient,
            due_on=due_on,
            actor=principal.actor,
            source="consult",
            source_ref=str(consult.external_id),
        )
        audit.record(
            actor=principal.actor,
            action="consult.followup_requested",
            object_type="consult",
            object_id=consult.external_id,
            patient_id=consult.patient.external_id,
            subject_organisation_id=consult.requesting_organisation_id,
            detail={"due_on": due_on.isoformat(), "enrolments": len(moved)},
        )
        with _site_language():
            notify(
                user=consult.requester,
                category="consult.followup_due",
                title=_("Follow-up recommended"),
                body=_("The consult report asks for a follow-up of your patient by %(date)s.")
                % {"date": due_on.isoformat()},
                data={"consult": str(consult.external_id), "due_on": due_on.isoformat()},
                channels=(NotificationChannel.PUSH,),
            )
    return None
