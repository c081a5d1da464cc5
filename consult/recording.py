"""Recording of a live session (issue "Consults", item 9b): consent, start, stop, storage,
listing, download and retention. The aiortc recorder peer itself is in ``recorder``.

Consent. Recording may start, and goes on, only while every current participant consents:
the consult's patient by a standing (unrevoked) registry ``Consent`` of kind ``recording``
(required whether or not the patient is in the call: the recording is about them), and each
staff participant by an in-session agreement (``RecordingAgreement``: who, when; withdrawn
by setting ``withdrawn_at``). The recorder re-checks this every
``HUIZHEN_RECORDING_RECHECK_SECONDS``; a newcomer without agreement, a withdrawal, a revoked
registry consent, an ended session, a stop request or ``HUIZHEN_RECORDING_MAX_SECONDS`` make
it stop and store what it has.

How media reaches the recorder. Each browser opens one extra, send-only RTCPeerConnection
to the recorder and posts its offer to ``POST /api/v1/consult/live/<session>/recording/offer/``
(non-trickle, answered with all candidates, as the pre-call test does); signalling frames are
untouched. Start and stop are announced to the room as a ``recording`` frame (``from:
"server"``) through the existing ``room.relay`` event. The recorder of one recording lives
in the one web process that answered its first offer (``Recording.recorder_node``, claimed
atomically); offers reaching another process are refused with 409 ``recorder_elsewhere``, so
multi-process deployments route ``/recording/offer/`` of a session to one process (sticky by
path). Stop is a status change in the database that the owning process sees on its next
re-check, so stopping works from any process.

Every write is one transaction with its audit row; audit details hold ids and hashes only.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import audit, events
from registry.access import Principal
from registry.errors import Conflict, Forbidden, NotFound
from registry.models import AuditOutcome, ConsentKind
from registry.selectors import consent_is_active

from . import live
from .access import access_consult
from .models import (
    LiveParticipant,
    LiveSession,
    LiveSessionStatus,
    Recording,
    RecordingAgreement,
    RecordingStatus,
)

logger = logging.getLogger(__name__)

RUNNING = (RecordingStatus.RECORDING, RecordingStatus.STOPPING)
PATIENT = "patient"


def retention_days() -> int:
    return int(getattr(settings, "HUIZHEN_RECORDING_RETENTION_DAYS", 1095))


def recheck_seconds() -> float:
    return float(getattr(settings, "HUIZHEN_RECORDING_RECHECK_SECONDS", 2))


def max_seconds() -> float:
    return float(getattr(settings, "HUIZHEN_RECORDING_MAX_SECONDS", 4 * 3600))


class ConsentMissing(Conflict):
    """Someone in the session has not consented; ``missing`` names them (display names and
    participant ids only)."""

    def __init__(self, missing: list[Missing]) -> None:
        names = ", ".join(m.name for m in missing)
        super().__init__(
            _("Recording needs everyone's consent. Not consented: %(names)s.") % {"names": names},
            code="consent_missing",
        )
        self.missing = missing


@dataclass(frozen=True)
class Missing:
    participant_id: str  # a participant's external id, or "patient" (not in the call)
    name: str
    role: str


@dataclass(frozen=True)
class ParticipantConsent:
    participant_id: str
    name: str
    role: str
    consented: bool
    since: datetime | None


@dataclass(frozen=True)
class RecordingState:
    session_id: str
    patient_consent: bool
    participants: list[ParticipantConsent]
    running: Recording | None

    @property
    def missing(self) -> list[Missing]:
        out = [
            Missing(p.participant_id, p.name, p.role) for p in self.participants if not p.consented
        ]
        if not self.patient_consent and not any(m.role == PATIENT for m in out):
            out.append(Missing(PATIENT, str(_("the patient (registry consent)")), PATIENT))
        return out


def _audit(
    actor: audit.Actor,
    action: str,
    session: LiveSession,
    obj: Any,
    outcome: str = AuditOutcome.SUCCESS,
    **detail: Any,
) -> None:
    consult = session.consult
    audit.record(
        actor=actor,
        outcome=outcome,
        action=f"consult.recording.{action}",
        object_type="recording" if isinstance(obj, Recording) else "live_session",
        object_id=obj.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
        detail={"consult": str(consult.external_id), "session": str(session.external_id), **detail},
    )


def _announce(session: LiveSession, recording: Recording) -> None:
    """Tell the room (after commit) through the consumer's existing relay event."""
    live._room_send(
        live.session_group(str(session.external_id)),
        {
            "type": "room.relay",
            "frame": {
                "type": "recording",
                "from": "server",
                "payload": {"id": str(recording.external_id), "state": recording.status},
            },
        },
    )


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise NotFound(_("No such recording.")) from exc


# --- consent -------------------------------------------------------------------------------------


def consent_state(session: LiveSession) -> RecordingState:
    """Who consents now; ``session.consult.patient`` must be loaded (``session_access`` does)."""
    participants = live.participants_active(session)
    agreed = dict(
        RecordingAgreement.objects.filter(
            session=session, withdrawn_at__isnull=True, participant__in=participants
        ).values_list("participant_id", "agreed_at")
    )
    patient_ok = consent_is_active(patient=session.consult.patient, kind=ConsentKind.RECORDING)
    rows = []
    for p in participants:
        if p.patient_id is not None:
            ok, since = patient_ok, None
        else:
            ok, since = p.pk in agreed, agreed.get(p.pk)
        rows.append(ParticipantConsent(str(p.external_id), p.display_name, p.role, ok, since))
    running = Recording.objects.filter(session=session, status__in=RUNNING).first()
    return RecordingState(str(session.external_id), patient_ok, rows, running)


def _staff_participant(principal: Principal, session: LiveSession) -> LiveParticipant:
    participant = live._participant_of_user(session, principal.user)
    if participant is None:
        raise Forbidden(_("Only staff in this live session may do this."), code="not_participant")
    return participant


def recording_state(*, principal: Principal, session_id: uuid.UUID | str) -> RecordingState:
    """Consent and recording state of a session, for anyone who may see its consult (audited)."""
    session = live.session_access(
        principal=principal, session_id=session_id, action="consult.recording.state"
    )
    state = consent_state(session)
    _audit(principal.actor, "state", session, session)
    return state


@transaction.atomic
def recording_agree(*, principal: Principal, session_id: uuid.UUID | str) -> RecordingAgreement:
    """A staff participant agrees to be recorded in this session (idempotent)."""
    session = live._lock_session(principal, session_id, "consult.recording.agree")
    participant = _staff_participant(principal, session)
    if session.status != LiveSessionStatus.OPEN:
        raise Conflict(_("This live session has ended."), code="ended")
    standing = RecordingAgreement.objects.filter(
        participant=participant, withdrawn_at__isnull=True
    ).first()
    if standing is not None:
        return standing
    row = RecordingAgreement.objects.create(
        session=session, participant=participant, user=principal.user, agreed_at=timezone.now()
    )
    _audit(principal.actor, "agree", session, session, participant=str(participant.external_id))
    return row


@transaction.atomic
def recording_withdraw(*, principal: Principal, session_id: uuid.UUID | str) -> None:
    """A staff participant withdraws their agreement; a running recording is marked stopping
    at once and its recorder stores what it has on its next re-check."""
    session = live._lock_session(principal, session_id, "consult.recording.withdraw")
    participant = _staff_participant(principal, session)
    changed = RecordingAgreement.objects.filter(
        participant=participant, withdrawn_at__isnull=True
    ).update(withdrawn_at=timezone.now())
    if changed:
        _audit(
            principal.actor, "withdraw", session, session, participant=str(participant.external_id)
        )
        _request_stop(session, reason="consent_withdrawn", user=principal.user)


# --- start and stop ------------------------------------------------------------------------------


def recording_start(*, principal: Principal, session_id: uuid.UUID | str) -> Recording:
    """A staff participant starts recording; refused (409, naming them) unless everyone in the
    session consents, or when a recording already runs. A refusal for missing consent is
    audited in its own committed transaction before the error is raised."""
    with transaction.atomic():
        session = live._lock_session(principal, session_id, "consult.recording.start")
        _staff_participant(principal, session)
        if session.status != LiveSessionStatus.OPEN:
            raise Conflict(_("This live session has ended."), code="ended")
        state = consent_state(session)
        if state.running is not None:
            raise Conflict(_("This session is already being recorded."), code="already_recording")
        missing = state.missing
        if not missing:
            return _create(principal, session)
        _audit(
            principal.actor,
            "start",
            session,
            session,
            outcome=AuditOutcome.DENIED,
            missing=[m.participant_id for m in missing],
        )
    raise ConsentMissing(missing)


def _create(principal: Principal, session: LiveSession) -> Recording:
    try:
        with transaction.atomic():
            recording = Recording.objects.create(
                session=session,
                consult=session.consult,
                started_by=principal.user,
                started_at=timezone.now(),
            )
    except IntegrityError as exc:
        raise Conflict(
            _("This session is already being recorded."), code="already_recording"
        ) from exc
    _audit(principal.actor, "start", session, recording)
    events.publish(
        "consult.recording.started",
        {"consult": str(session.consult.external_id), "recording": str(recording.external_id)},
    )
    _announce(session, recording)
    return recording


def _request_stop(session: LiveSession, *, reason: str, user: Any = None) -> Recording | None:
    recording = (
        Recording.objects.select_for_update()
        .filter(session=session, status=RecordingStatus.RECORDING)
        .first()
    )
    if recording is None:
        return None
    recording.stop_reason = reason[:64]
    recording.stopped_by = user
    if not recording.recorder_node:
        # No browser ever reached a recorder: nothing was recorded.
        recording.status = RecordingStatus.FAILED
        recording.stopped_at = timezone.now()
        recording.stop_reason = "no_media"
    else:
        recording.status = RecordingStatus.STOPPING
    recording.save()
    _announce(session, recording)
    return recording


@transaction.atomic
def recording_stop(*, principal: Principal, session_id: uuid.UUID | str) -> Recording:
    """Ask the recorder to stop; it stores the file within a re-check interval (status
    ``stopping`` → ``stored``)."""
    session = live._lock_session(principal, session_id, "consult.recording.stop")
    if live._participant_of_user(session, principal.user) is None and not live._may_manage(
        principal, session.consult
    ):
        raise Forbidden(_("Your role may not stop this recording."), code="role")
    recording = _request_stop(session, reason="stopped", user=principal.user)
    if recording is None:
        raise Conflict(_("Nothing is being recorded."), code="not_recording")
    _audit(principal.actor, "stop", session, recording)
    return recording


# --- what the recorder calls ---------------------------------------------------------------------


@dataclass(frozen=True)
class OfferAdmission:
    recording_id: str
    session_id: str
    participant_id: str


def recording_offer_admit(
    *, session_id: str, user: Any = None, participant_token_value: str = "", node: str
) -> OfferAdmission:
    """Whether a participant may send media to the recorder of the session's running recording,
    and claim the recorder for ``node`` (this process) if no process runs it yet."""
    admitted = live.live_admit(
        session_id=session_id, user=user, participant_token_value=participant_token_value
    )
    if admitted is None:
        raise NotFound(_("No such live session."))
    with transaction.atomic():
        recording = (
            Recording.objects.select_for_update()
            .select_related("session", "consult", "consult__patient")
            .filter(session__external_id=admitted.session_id, status=RecordingStatus.RECORDING)
            .first()
        )
        if recording is None:
            raise Conflict(_("Nothing is being recorded."), code="not_recording")
        if recording.recorder_node and recording.recorder_node != node:
            raise Conflict(
                _("The recorder runs on another server; try again."), code="recorder_elsewhere"
            )
        if not recording.recorder_node:
            recording.recorder_node = node
            recording.save(update_fields=["recorder_node", "updated_at"])
        session = recording.session
        session.consult = recording.consult
        actor = (
            audit.Actor(user_id=admitted.user_id, username=admitted.display_name)
            if admitted.user_id
            else audit.Actor.system("patient-link")
        )
        _audit(actor, "media", session, recording, participant=admitted.participant_id)
    return OfferAdmission(str(recording.external_id), admitted.session_id, admitted.participant_id)


def recording_check(*, recording_id: str) -> str | None:
    """The recorder's periodic question: the reason to stop now, or None to go on."""
    recording = (
        Recording.objects.select_related("session", "consult", "consult__patient")
        .filter(external_id=recording_id)
        .first()
    )
    if recording is None or recording.status != RecordingStatus.RECORDING:
        return recording.stop_reason if recording and recording.stop_reason else "stopped"
    session = recording.session
    session.consult = recording.consult
    if session.status != LiveSessionStatus.OPEN:
        reason = "session_ended"
    elif consent_state(session).missing:
        reason = "consent_missing"
    elif (timezone.now() - recording.started_at).total_seconds() > max_seconds():
        reason = "max_duration"
    else:
        return None
    with transaction.atomic():
        _request_stop(LiveSession.objects.select_for_update().get(pk=session.pk), reason=reason)
    return reason


def _sha256(handle: IO[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: handle.read(1024 * 1024), b""):
        digest.update(chunk)
        size += len(chunk)
    handle.seek(0)
    return digest.hexdigest(), size


def recording_store(*, recording_id: str, path: str | None, duration: float | None) -> Recording:
    """Keep the recorder's file in default storage with its hash, size and retention date;
    the hash goes to the audit trail. ``path`` None (no media arrived) marks it failed."""
    recording = (
        Recording.objects.select_related("session", "consult", "consult__patient")
        .filter(external_id=recording_id)
        .get()
    )
    if recording.status not in RUNNING:
        return recording
    now = timezone.now()
    actor = audit.Actor.system("recorder")
    session = recording.session
    session.consult = recording.consult
    if path is None:
        with transaction.atomic():
            Recording.objects.filter(pk=recording.pk).update(
                status=RecordingStatus.FAILED, stopped_at=now, updated_at=now
            )
            _audit(actor, "failed", session, recording, reason=recording.stop_reason or "")
        recording.refresh_from_db()
        _announce(session, recording)
        return recording
    key = f"recordings/{recording.consult.external_id}/{recording.external_id}.mkv"
    with open(path, "rb") as handle:
        sha256, size = _sha256(handle)
        if default_storage.exists(key):  # left by an interrupted earlier attempt
            default_storage.delete(key)
        saved = default_storage.save(key, File(handle, name=key))
    try:
        with transaction.atomic():
            row = Recording.objects.select_for_update().get(pk=recording.pk)
            if row.status not in RUNNING:
                default_storage.delete(saved)
                return row
            row.status = RecordingStatus.STORED
            row.stopped_at = now
            row.stop_reason = row.stop_reason or "stopped"
            row.storage_key = saved
            row.sha256 = sha256
            row.size = size
            row.duration = (
                duration if duration is not None else (now - row.started_at).total_seconds()
            )
            row.retention_until = now + timedelta(days=retention_days())
            row.save()
            _audit(
                actor,
                "stored",
                session,
                row,
                sha256=sha256,
                size=size,
                duration=round(row.duration or 0, 3),
                reason=row.stop_reason,
            )
            events.publish(
                "consult.recording.stored",
                {"consult": str(row.consult.external_id), "recording": str(row.external_id)},
            )
    except Exception:
        default_storage.delete(saved)
        raise
    _announce(session, row)
    return row


# --- reads ---------------------------------------------------------------------------------------


def recordings_of_consult(*, principal: Principal, consult_id: uuid.UUID | str) -> list[Recording]:
    """The consult's recordings, for anyone who may read the consult (404 otherwise; audited)."""
    consult = access_consult(principal, consult_id, action="consult.recording.list")
    rows = list(
        Recording.objects.filter(consult=consult)
        .select_related("session", "started_by")
        .order_by("-started_at")
    )
    audit.record(
        actor=principal.actor,
        action="consult.recording.list",
        object_type="consult",
        object_id=consult.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
        detail={"count": len(rows)},
    )
    return rows


def recording_open(
    *, principal: Principal, consult_id: uuid.UUID | str, recording_id: uuid.UUID | str
) -> tuple[Recording, IO[bytes]]:
    """The stored file of a recording (scoped like reading the consult; audited)."""
    consult = access_consult(principal, consult_id, action="consult.recording.read")
    recording = Recording.objects.filter(
        consult=consult,
        external_id=_uuid(recording_id),
        status=RecordingStatus.STORED,
        deleted_at__isnull=True,
    ).first()
    if recording is None or not recording.storage_key:
        raise NotFound(_("No such recording."))
    audit.record(
        actor=principal.actor,
        action="consult.recording.read",
        object_type="recording",
        object_id=recording.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
        detail={"consult": str(consult.external_id), "sha256": recording.sha256},
    )
    return recording, default_storage.open(recording.storage_key, "rb")


# --- retention -----------------------------------------------------------------------------------


def recordings_purge_expired(*, now: datetime | None = None, limit: int = 200) -> int:
    """Delete the files of recordings past ``retention_until``; the row stays with
    ``deleted_at`` and the deletion is audited with the file's hash. Idempotent."""
    now = now or timezone.now()
    done = 0
    due = Recording.objects.filter(
        Q(status=RecordingStatus.STORED), retention_until__lte=now, deleted_at__isnull=True
    ).values_list("pk", flat=True)[:limit]
    for pk in list(due):
        with transaction.atomic():
            row = (
                Recording.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("session", "consult", "consult__patient")
                .filter(pk=pk, deleted_at__isnull=True)
                .first()
            )
            if row is None:
                continue
            if row.storage_key and default_storage.exists(row.storage_key):
                default_storage.delete(row.storage_key)
            row.deleted_at = now
            row.save(update_fields=["deleted_at", "updated_at"])
            session = row.session
            session.consult = row.consult
            _audit(
                audit.Actor.system("retention"),
                "delete",
                session,
                row,
                sha256=row.sha256,
                retention_until=row.retention_until.isoformat() if row.retention_until else "",
            )
            done += 1
    return done


def recordings_fail_stale(*, now: datetime | None = None) -> int:
    """Mark failed the recordings still running well past ``HUIZHEN_RECORDING_MAX_SECONDS``:
    their recorder's process died (a live recorder stops itself at the limit). Frees the
    session for a new recording; audited."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=max_seconds() + 600)
    done = 0
    for pk in list(
        Recording.objects.filter(status__in=RUNNING, started_at__lt=cutoff).values_list(
            "pk", flat=True
        )[:200]
    ):
        with transaction.atomic():
            row = (
                Recording.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("session", "consult", "consult__patient")
                .filter(pk=pk, status__in=RUNNING)
                .first()
            )
            if row is None:
                continue
            row.status, row.stopped_at = RecordingStatus.FAILED, now
            row.stop_reason = "recorder_lost"
            row.save(update_fields=["status", "stopped_at", "stop_reason", "updated_at"])
            session = row.session
            session.consult = row.consult
            _audit(audit.Actor.system("retention"), "failed", session, row, reason="recorder_lost")
            done += 1
    return done
