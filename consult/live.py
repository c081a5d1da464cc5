"""Live sessions of a consult: open, invite, remove, end; the patient's one-time link confirmed
by an SMS code; chat kept with the consult; the fall-back to store and forward; and the checks
the signalling consumer makes on connect and periodically afterwards.

Every write is one transaction with its audit row and domain event; messages to open sockets
are sent after commit (``_room_send``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.base import SessionBase
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import audit, events, sms
from registry.access import Principal
from registry.errors import Conflict, Forbidden, NotFound, ValidationFailed
from registry.identity import mask_mobile
from registry.models import Membership, Role, StaffProfile

from .access import (
    access_consult,
    is_assignee,
    is_centre_coordinator,
    is_centre_specialist,
    is_requester_side,
)
from .models import (
    ConsultMessage,
    ConsultRequest,
    LiveParticipant,
    LiveSession,
    LiveSessionStatus,
    MessageKind,
    ParticipantRole,
    PatientInvitation,
)
from .states import ConsultState

logger = logging.getLogger(__name__)
User = get_user_model()

MAX_PARTICIPANTS = 6
CLOSED_CONSULT = frozenset({ConsultState.CLOSED, ConsultState.CANCELLED, ConsultState.DRAFT})
TOKEN_SALT = "consult.live.participant"  # noqa: S105 - a signing salt, not a secret
CODE_ATTEMPTS = 5
CODE_SENDS = 5


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


# --- group names and after-commit sends ---------------------------------------------------------


def session_group(session_external_id: str) -> str:
    return f"live.s.{session_external_id}"


def participant_group(participant_external_id: str) -> str:
    return f"live.p.{participant_external_id}"


def _room_send(group: str, message: dict[str, Any]) -> None:
    """Send to a channel-layer group after commit; best effort (sockets re-check anyway)."""

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:  # noqa: BLE001 - the periodic re-check still disconnects
            logger.warning("live session push failed", exc_info=True)

    transaction.on_commit(send)


def _audit(actor: audit.Actor, action: str, session: LiveSession, **detail: Any) -> None:
    consult = session.consult
    audit.record(
        actor=actor,
        action=f"consult.live.{action}",
        object_type="live_session",
        object_id=session.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
        detail={"consult": str(consult.external_id), **detail},
    )


def _publish(action: str, session: LiveSession, **payload: Any) -> None:
    events.publish(
        f"consult.live.{action}",
        {
            "consult": str(session.consult.external_id),
            "session": str(session.external_id),
            **payload,
        },
    )


def _key(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise NotFound(_("No such live session.")) from exc


def _display_name(user: Any) -> str:
    profile = StaffProfile.objects.filter(user=user).first()
    name = (getattr(profile, "display_name", "") or user.get_full_name() or "").strip()
    return (name or user.get_username())[:100]


# --- reads ---------------------------------------------------------------------------------------


def _may_manage(principal: Principal, consult: ConsultRequest) -> bool:
    return (
        is_requester_side(principal, consult)
        or is_assignee(principal, consult)
        or is_centre_specialist(principal, consult)
        or is_centre_coordinator(principal, consult)
    )


def session_access(
    *, principal: Principal, session_id: uuid.UUID | str, action: str = "consult.live.read"
) -> LiveSession:
    """The session if the principal may see its consult (404 otherwise, audited)."""
    session = (
        LiveSession.objects.select_related("consult").filter(external_id=_key(session_id)).first()
    )
    if session is None:
        raise NotFound(_("No such live session."))
    access_consult(principal, session.consult.external_id, action=action)
    return (
        LiveSession.objects.select_related(
            "consult", "consult__patient", "consult__requesting_organisation", "consult__centre"
        )
        .filter(pk=session.pk)
        .get()
    )


def participants_active(session: LiveSession) -> list[LiveParticipant]:
    return list(session.participants.filter(removed_at__isnull=True).order_by("created_at"))


def messages_of(consult: ConsultRequest, *, limit: int = 200) -> list[ConsultMessage]:
    rows = ConsultMessage.objects.filter(consult=consult).order_by("-created_at")[:limit]
    return list(reversed(list(rows)))


# --- sessions ------------------------------------------------------------------------------------


def _lock_session(principal: Principal, session_id: uuid.UUID | str, action: str) -> LiveSession:
    visible = session_access(principal=principal, session_id=session_id, action=action)
    return (
        LiveSession.objects.select_for_update(of=("self",))
        .select_related("consult", "consult__patient", "consult__requesting_organisation")
        .get(pk=visible.pk)
    )


def _add(
    session: LiveSession,
    *,
    role: str,
    user: Any = None,
    patient: Any = None,
    name: str,
    invited_by: Any,
) -> LiveParticipant:
    if session.participants.filter(removed_at__isnull=True).count() >= MAX_PARTICIPANTS:
        raise Conflict(
            _("A live session has at most %(n)d participants.") % {"n": MAX_PARTICIPANTS},
            code="session_full",
        )
    try:
        with transaction.atomic():
            return LiveParticipant.objects.create(
                session=session,
                role=role,
                user=user,
                patient=patient,
                display_name=name[:100],
                invited_by=invited_by,
            )
    except IntegrityError as exc:
        raise Conflict(_("Already a participant."), code="already_participant") from exc


@transaction.atomic
def live_session_open(*, principal: Principal, consult_id: uuid.UUID | str) -> LiveSession:
    """Open the consult's live session (or return the open one), with the requester and the
    assigned specialist as its first participants. Requester side, assignee, centre staff."""
    visible = access_consult(principal, consult_id, action="consult.live.open")
    # Lock the consult row so that two openers get the same session.
    ConsultRequest.objects.select_for_update(of=("self",)).filter(pk=visible.pk).first()
    if not _may_manage(principal, visible):
        raise Forbidden(_("Your role may not start a live session here."), code="role")
    if visible.state in CLOSED_CONSULT:
        raise Conflict(_("This consult is not open for a live session."), code="state")
    existing = LiveSession.objects.filter(consult=visible, status=LiveSessionStatus.OPEN).first()
    if existing is not None:
        return existing
    session = LiveSession.objects.create(consult=visible, created_by=principal.user)
    session.consult = visible
    _add(
        session,
        role=ParticipantRole.REQUESTER,
        user=visible.requester,
        name=_display_name(visible.requester),
        invited_by=principal.user,
    )
    if visible.assignee_id:
        _add(
            session,
            role=ParticipantRole.SPECIALIST,
            user=visible.assignee,
            name=_display_name(visible.assignee),
            invited_by=principal.user,
        )
    if principal.user.pk not in (visible.requester_id, visible.assignee_id):
        _add(
            session,
            role=ParticipantRole.EXTRA_SPECIALIST,
            user=principal.user,
            name=_display_name(principal.user),
            invited_by=principal.user,
        )
    _audit(principal.actor, "open", session)
    _publish("opened", session)
    return session


@transaction.atomic
def live_participant_invite(
    *, principal: Principal, session_id: uuid.UUID | str, staff_id: uuid.UUID | str
) -> LiveParticipant:
    """Invite another specialist (a multidisciplinary consult), up to six participants."""
    session = _lock_session(principal, session_id, "consult.live.invite")
    consult = session.consult
    if not _may_manage(principal, consult):
        raise Forbidden(_("Your role may not invite to this session."), code="role")
    if session.status != LiveSessionStatus.OPEN:
        raise Conflict(_("This live session has ended."), code="ended")
    profile = StaffProfile.objects.select_related("user").filter(external_id=_key(staff_id)).first()
    if profile is None or not profile.user.is_active:
        raise ValidationFailed(_("No such staff member."), fields={"staff": _("Unknown.")})
    clinical = Membership.objects.filter(
        user=profile.user,
        is_active=True,
        organisation__is_active=True,
        role__in=[Role.SPECIALIST, Role.DOCTOR, Role.COORDINATOR, Role.VILLAGE_DOCTOR],
    ).exists()
    if not clinical:
        raise ValidationFailed(
            _("Only clinical staff may join a consult."), fields={"staff": _("Not clinical.")}
        )
    participant = _add(
        session,
        role=ParticipantRole.EXTRA_SPECIALIST,
        user=profile.user,
        name=_display_name(profile.user),
        invited_by=principal.user,
    )
    _audit(principal.actor, "invite", session, participant=str(participant.external_id))
    _publish("invited", session, participant=str(participant.external_id))
    _room_send(session_group(str(session.external_id)), _roster_event(session))
    return participant


@dataclass(frozen=True)
class PatientLink:
    participant: LiveParticipant
    token: str  # shown once, in the SMS and to the inviting doctor


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _code_hash(invitation_key: str, code: str) -> str:
    return hmac.new(
        settings.SECRET_KEY.encode(), f"{invitation_key}:{code}".encode(), hashlib.sha256
    ).hexdigest()


@transaction.atomic
def live_patient_invite(*, principal: Principal, session_id: uuid.UUID | str) -> PatientLink:
    """Invite the consult's patient through a one-time link sent by SMS to their mobile."""
    session = _lock_session(principal, session_id, "consult.live.invite_patient")
    consult = session.consult
    if not _may_manage(principal, consult):
        raise Forbidden(_("Your role may not invite to this session."), code="role")
    if session.status != LiveSessionStatus.OPEN:
        raise Conflict(_("This live session has ended."), code="ended")
    patient = consult.patient
    if not patient.mobile:
        raise ValidationFailed(_("The patient has no mobile number for the SMS code."))
    if session.participants.filter(patient=patient, removed_at__isnull=True).exists():
        raise Conflict(_("The patient is already invited."), code="already_participant")
    participant = _add(
        session,
        role=ParticipantRole.PATIENT,
        patient=patient,
        name=_("Patient"),
        invited_by=principal.user,
    )
    token = secrets.token_urlsafe(24)
    ttl = int(_setting("HUIZHEN_LIVE_LINK_TTL_SECONDS", 24 * 3600))
    PatientInvitation.objects.create(
        participant=participant,
        link_hash=_hash(token),
        link_expires_at=timezone.now() + timedelta(seconds=ttl),
    )
    base = str(_setting("HUIZHEN_PUBLIC_URL", "")).rstrip("/")
    text = _("%(site)s: your doctor invites you to a video consult: %(url)s") % {
        "site": settings.HUIZHEN_SITE_NAME,
        "url": f"{base}/consult/join/{token}/",
    }
    _sms_after_commit(patient.mobile, text, f"live-link-{participant.external_id}")
    _audit(
        principal.actor,
        "invite_patient",
        session,
        participant=str(participant.external_id),
        to=mask_mobile(patient.mobile),
    )
    _publish("invited", session, participant=str(participant.external_id))
    return PatientLink(participant=participant, token=token)


def _sms_after_commit(mobile: str, text: str, reference: str) -> None:
    def send() -> None:
        try:
            sms.send(sms.SmsMessage(mobile=mobile, text=text, reference=reference))
        except sms.SmsError:
            logger.warning("live session SMS failed", exc_info=True)

    transaction.on_commit(send)


def _invitation_for_link(token: str) -> PatientInvitation:
    invitation = (
        PatientInvitation.objects.select_for_update(of=("self",))
        .select_related(
            "participant",
            "participant__session",
            "participant__session__consult",
            "participant__session__consult__patient",
            "participant__patient",
        )
        .filter(link_hash=_hash(token or ""))
        .first()
    )
    if (
        invitation is None
        or invitation.confirmed_at is not None
        or invitation.link_expires_at <= timezone.now()
        or invitation.participant.removed_at is not None
        or invitation.participant.session.status != LiveSessionStatus.OPEN
    ):
        raise NotFound(_("This link is not valid any more. Ask your doctor for a new one."))
    return invitation


@transaction.atomic
def live_patient_link_send_code(*, token: str) -> None:
    """Send a six-digit code to the invited patient's mobile (valid a few minutes)."""
    invitation = _invitation_for_link(token)
    if invitation.codes_sent >= CODE_SENDS:
        raise Conflict(_("Too many codes sent. Ask your doctor for a new link."), code="too_many")
    code = f"{secrets.randbelow(1_000_000):06d}"
    ttl = int(_setting("HUIZHEN_LIVE_CODE_TTL_SECONDS", 600))
    invitation.code_hash = _code_hash(str(invitation.external_id), code)
    invitation.code_expires_at = timezone.now() + timedelta(seconds=ttl)
    invitation.codes_sent += 1
    invitation.attempts = 0
    invitation.save()
    text = _("%(site)s video consult code: %(code)s (valid %(minutes)d minutes)") % {
        "site": settings.HUIZHEN_SITE_NAME,
        "code": code,
        "minutes": ttl // 60,
    }
    patient = invitation.participant.patient
    _sms_after_commit(
        patient.mobile, text, f"live-code-{invitation.external_id}-{invitation.codes_sent}"
    )


def live_patient_link_confirm(*, token: str, code: str) -> str:
    """Check the SMS code (five attempts); on success the link is used up and a signed
    participant token is returned for the signalling socket and the room page.

    A wrong code is counted and audited in its own committed transaction before the error is
    raised, so that failed attempts cannot be rolled back by the caller's error handling."""
    with transaction.atomic():
        invitation = _invitation_for_link(token)
        now = timezone.now()
        if not invitation.code_hash or invitation.code_expires_at is None:
            raise ValidationFailed(_("Ask for a code first."), fields={"code": _("No code sent.")})
        if invitation.attempts >= CODE_ATTEMPTS or invitation.code_expires_at <= now:
            raise Conflict(_("This code has expired. Ask for a new one."), code="code_expired")
        invitation.attempts += 1
        good = hmac.compare_digest(
            invitation.code_hash, _code_hash(str(invitation.external_id), (code or "").strip())
        )
        session = invitation.participant.session
        actor = audit.Actor.system("patient-link")
        if good:
            invitation.confirmed_at = now
            invitation.save()
            _audit(
                actor,
                "patient_confirmed",
                session,
                participant=str(invitation.participant.external_id),
            )
            return participant_token(invitation.participant)
        invitation.save(update_fields=["attempts", "updated_at"])
        _audit(actor, "patient_code", session, outcome="wrong", attempt=invitation.attempts)
    raise ValidationFailed(_("Wrong code."), fields={"code": _("Wrong code.")})


def participant_token(participant: LiveParticipant) -> str:
    return signing.dumps(
        {"p": str(participant.external_id), "s": str(participant.session.external_id)},
        salt=TOKEN_SALT,
        compress=True,
    )


@transaction.atomic
def live_participant_remove(
    *, principal: Principal, session_id: uuid.UUID | str, participant_id: uuid.UUID | str
) -> LiveParticipant:
    """Remove a participant; their sockets are closed at once (and by the periodic re-check)."""
    session = _lock_session(principal, session_id, "consult.live.remove")
    if not _may_manage(principal, session.consult):
        raise Forbidden(_("Your role may not remove participants."), code="role")
    participant = (
        session.participants.select_for_update()
        .filter(external_id=_key(participant_id), removed_at__isnull=True)
        .first()
    )
    if participant is None:
        raise NotFound(_("No such participant."))
    participant.removed_at = timezone.now()
    participant.removed_by = principal.user
    participant.save()
    _audit(principal.actor, "remove", session, participant=str(participant.external_id))
    _publish("removed", session, participant=str(participant.external_id))
    _room_send(participant_group(str(participant.external_id)), {"type": "room.revoke"})
    _room_send(session_group(str(session.external_id)), _roster_event(session))
    return participant


@transaction.atomic
def live_session_end(*, principal: Principal, session_id: uuid.UUID | str) -> LiveSession:
    session = _lock_session(principal, session_id, "consult.live.end")
    if not _may_manage(principal, session.consult):
        raise Forbidden(_("Your role may not end this session."), code="role")
    if session.status == LiveSessionStatus.ENDED:
        return session
    session.status = LiveSessionStatus.ENDED
    session.ended_at = timezone.now()
    session.ended_by = principal.user
    session.save()
    _audit(principal.actor, "end", session)
    _publish("ended", session)
    _room_send(session_group(str(session.external_id)), {"type": "room.ended"})
    return session


# --- what a participant does in the room ---------------------------------------------------------


@dataclass(frozen=True)
class Admitted:
    """A participant as the signalling consumer knows them."""

    session_id: str
    participant_id: str
    role: str
    display_name: str
    user_id: int | None
    session_key: str  # the Django session a cookie login came with ('' otherwise)
    token_key: str  # the knox token key a token login came with ('' otherwise)


def _participant_of_user(session: LiveSession, user: Any) -> LiveParticipant | None:
    return session.participants.filter(user=user, removed_at__isnull=True).first()


def live_admit(
    *,
    session_id: str,
    user: Any = None,
    participant_token_value: str = "",
    session_key: str = "",
    token_key: str = "",
) -> Admitted | None:
    """Whether the socket's owner is an active participant of an open session. ``None`` means
    refuse; anonymous callers are told apart by the consumer before calling this."""
    try:
        key = uuid.UUID(str(session_id))
    except ValueError:
        return None
    session = LiveSession.objects.filter(external_id=key, status=LiveSessionStatus.OPEN).first()
    if session is None:
        return None
    participant: LiveParticipant | None = None
    if participant_token_value:
        max_age = int(_setting("HUIZHEN_LIVE_TOKEN_TTL_SECONDS", 4 * 3600))
        try:
            data = signing.loads(participant_token_value, salt=TOKEN_SALT, max_age=max_age)
        except signing.BadSignature:
            return None
        if data.get("s") != str(session.external_id):
            return None
        participant = (
            session.participants.filter(external_id=data.get("p"), removed_at__isnull=True)
            .exclude(invitation__confirmed_at__isnull=True)
            .first()
        )
    elif user is not None and getattr(user, "is_authenticated", False) and user.is_active:
        participant = _participant_of_user(session, user)
    if participant is None:
        return None
    return Admitted(
        session_id=str(session.external_id),
        participant_id=str(participant.external_id),
        role=participant.role,
        display_name=participant.display_name,
        user_id=participant.user_id,
        session_key=session_key,
        token_key=token_key,
    )


def live_still_admitted(admitted: Admitted) -> bool:
    """The periodic re-check: not removed, session open, account active, still signed in."""
    participant = (
        LiveParticipant.objects.select_related("session", "user")
        .filter(external_id=admitted.participant_id)
        .first()
    )
    if (
        participant is None
        or participant.removed_at is not None
        or participant.session.status != LiveSessionStatus.OPEN
    ):
        return False
    if participant.user_id is not None:
        if not participant.user.is_active:
            return False
        if admitted.session_key:
            from importlib import import_module

            engine = import_module(settings.SESSION_ENGINE)
            store: SessionBase = engine.SessionStore(admitted.session_key)
            if not store.exists(admitted.session_key):
                return False
            if str(store.get("_auth_user_id")) != str(participant.user_id):
                return False
        if admitted.token_key:
            from knox.models import AuthToken

            alive = AuthToken.objects.filter(
                token_key=admitted.token_key, user_id=participant.user_id
            ).exclude(expiry__lt=timezone.now())
            if not alive.exists():
                return False
    return True


def live_chat_post(*, admitted: Admitted, body: str, client_seq: int | None) -> ConsultMessage:
    """Keep a chat message with the consult (it stays when the call fails)."""
    body = (body or "").strip()
    if not body:
        raise ValidationFailed(_("Empty message."))
    participant = LiveParticipant.objects.select_related("session").get(
        external_id=admitted.participant_id
    )
    return ConsultMessage.objects.create(
        consult_id=participant.session.consult_id,
        session=participant.session,
        author=participant,
        author_label=participant.display_name,
        kind=MessageKind.CHAT,
        body=body[:4000],
        client_seq=client_seq,
    )


@transaction.atomic
def live_call_failed(*, admitted: Admitted, reason: str) -> LiveSession:
    """A participant's call could not be kept up: the consult goes on as store and forward.

    The chat and attachments already belong to the consult, so nothing is lost; a system note
    says so and the requester and the assignee are told once per session."""
    participant = LiveParticipant.objects.select_related("session").get(
        external_id=admitted.participant_id
    )
    session = (
        LiveSession.objects.select_for_update(of=("self",))
        .select_related("consult", "consult__patient", "consult__requesting_organisation")
        .get(pk=participant.session_id)
    )
    if session.fallback_at is not None:
        return session
    session.fallback_at = timezone.now()
    session.fallback_reason = (reason or "")[:200]
    session.save(update_fields=["fallback_at", "fallback_reason", "updated_at"])
    ConsultMessage.objects.create(
        consult=session.consult,
        session=session,
        kind=MessageKind.SYSTEM,
        author_label="system",
        body=_(
            "The live call failed. The consult continues by messages and attachments; "
            "nothing said so far is lost."
        ),
    )
    actor = (
        audit.Actor(user_id=participant.user_id, username=participant.display_name)
        if participant.user_id
        else audit.Actor.system("patient-link")
    )
    _audit(actor, "store_and_forward", session, reason=session.fallback_reason)
    _publish("store_and_forward", session)
    _room_send(session_group(str(session.external_id)), {"type": "room.fallback"})
    return session


def _roster_event(session: LiveSession) -> dict[str, Any]:
    return {"type": "room.roster"}


def roster(session_id: str) -> list[dict[str, Any]]:
    return [
        {"id": str(p.external_id), "name": p.display_name, "role": p.role}
        for p in LiveParticipant.objects.filter(
            session__external_id=session_id, removed_at__isnull=True
        ).order_by("created_at")
    ]


def session_of_token(value: str) -> str | None:
    """The session a participant token belongs to (signature and age checked), else None."""
    max_age = int(_setting("HUIZHEN_LIVE_TOKEN_TTL_SECONDS", 4 * 3600))
    try:
        data = signing.loads(value, salt=TOKEN_SALT, max_age=max_age)
    except signing.BadSignature:
        return None
    return str(data.get("s")) if isinstance(data, dict) and data.get("s") else None


# --- messages outside a call (store and forward) -------------------------------------------------


def consult_messages(*, principal: Principal, consult_id: uuid.UUID | str) -> list[ConsultMessage]:
    consult = access_consult(principal, consult_id, action="consult.messages.read")
    return messages_of(consult)


@transaction.atomic
def consult_message_post(
    *, principal: Principal, consult_id: uuid.UUID | str, body: str
) -> ConsultMessage:
    """A message kept with the consult, written outside (or after) a live call."""
    consult = access_consult(principal, consult_id, action="consult.messages.post")
    if not _may_manage(principal, consult):
        raise Forbidden(_("Your role may not write to this consult."), code="role")
    if consult.state in CLOSED_CONSULT:
        raise Conflict(_("This consult is closed."), code="state")
    body = (body or "").strip()
    if not body:
        raise ValidationFailed(_("Empty message."), fields={"body": _("Required.")})
    row = ConsultMessage.objects.create(
        consult=consult,
        kind=MessageKind.CHAT,
        author_label=_display_name(principal.user),
        body=body[:4000],
    )
    audit.record(
        actor=principal.actor,
        action="consult.message",
        object_type="consult",
        object_id=consult.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
    )
    events.publish("consult.message", {"consult": str(consult.external_id)})
    return row
