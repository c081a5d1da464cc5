"""Every write of the EHR bridge's inbound side.

``inbound_receive`` runs before the acknowledgement: it checks the message (``mllp.check``),
commits the raw message in one short transaction and returns the exact acknowledgement to
send. ``inbound_process`` runs in the worker after the acknowledgement and applies messages
in arrival order per patient: ADT here, orders (ORM^O01, OMG^O19 → consults), lab results
(ORU^R01) and appointments (SIU^S12-S15) in ``inbound_apply``. ``inbound_replay`` puts a
parked message back in the queue.

Receiving writes no audit row: the message log is the record of what arrived, and every
change it causes to the patient index is audited by ``registry.feeds``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import audit, feeds
from registry.errors import Conflict, DomainError, NotFound
from registry.models import Hl7Facility, Organisation, Role
from registry.notifications import notify

from . import adt, inbound_apply, mllp
from .models import (
    PENDING_STATUSES,
    Hl7Partner,
    InboundEventKind,
    InboundMessage,
    InboundMessageEvent,
    InboundStatus,
)
from .parse import parse

logger = logging.getLogger(__name__)
User = get_user_model()

APPLIED_ADT = frozenset({"A01", "A04", "A08", "A28", "A31"})


@dataclass(frozen=True)
class ReceiveResult:
    """What the listener sends (``ack``: None when MSH-15 asks for no commit ACK) and which
    message the worker should process (None: nothing new to process)."""

    ack: bytes | None
    code: str
    message_id: int | None = None
    dispatch: bool = False


def _now() -> datetime:
    return timezone.now()


def nak(raw: bytes, *, code: str, text: str) -> bytes:
    """An AR/AE answer built from whatever MSH can be read (used when storing failed)."""
    try:
        header: mllp.Header | None = mllp.peek_header(raw)
    except mllp.MessageRejected:
        header = None
    codec = (mllp.codec_for(header.charset) if header and header.charset else None) or "ascii"
    error = mllp.Hl7Error(code, mllp.ERR_INTERNAL, text)
    return mllp.build_ack(header, code=code, error=error, now=_now(), codec=codec)


def _partner_for(header: mllp.Header) -> Hl7Partner | None:
    return (
        Hl7Partner.objects.select_related("organisation")
        .filter(
            sending_application=header.sending_application,
            sending_facility=header.sending_facility,
        )
        .first()
    )


def _answer(
    header: mllp.Header | None, code: str, error: mllp.Hl7Error | None, codec: str
) -> bytes | None:
    """The acknowledgement to send, or None when MSH-15 says this outcome gets none."""
    ack = mllp.build_ack(header, code=code, error=error, now=_now(), codec=codec)
    condition = header.accept_ack_type if mllp.enhanced_mode(header) and header else "AL"
    return ack if mllp.should_send(condition, code) else None


def inbound_receive(*, raw: bytes, peer: str = "") -> ReceiveResult:
    """Check, store and acknowledge one framed message. Called before the ACK goes out.

    Returns AA (or CA) only after the message row is committed. A repeated control ID with
    the same bytes gets the acknowledgement stored the first time; with other bytes, AE and
    an alert, and the stored message is left as it was. Database failures propagate: the
    caller answers AR.
    """
    try:
        checked = mllp.check(raw, default_charset=settings.HUIZHEN_MLLP_DEFAULT_CHARSET)
    except mllp.MessageRejected as exc:
        try:
            header: mllp.Header | None = mllp.peek_header(raw)
        except mllp.MessageRejected:
            header = None
        codec = (mllp.codec_for(header.charset) if header and header.charset else None) or "ascii"
        logger.warning(
            "HL7 message refused before storing",
            extra={"peer": peer, "hl7_error": exc.error.code, "reason": exc.error.text},
        )
        ack = _answer(header, exc.error.ack_code, exc.error, codec)
        return ReceiveResult(ack, exc.error.ack_code)
    header = checked.header
    partner = _partner_for(header)
    if (partner is not None and not partner.inbound_enabled) or (
        partner is None and settings.HUIZHEN_MLLP_REQUIRE_KNOWN_SENDER
    ):
        logger.warning(
            "HL7 message from an unknown or disabled sender refused",
            extra={
                "peer": peer,
                "sender": f"{header.sending_application}@{header.sending_facility}",
            },
        )
        error = mllp.Hl7Error(
            "AR",
            mllp.ERR_INTERNAL,
            "Sender (MSH-3/MSH-4) is not a configured partner.",
            "MSH",
            1,
            4,
        )
        return ReceiveResult(_answer(header, "AR", error, checked.codec), "AR")
    digest = hashlib.sha256(raw).hexdigest()
    ack = _answer(header, "AA", None, checked.codec)
    row = InboundMessage(
        partner=partner,
        sending_application=header.sending_application[:180],
        sending_facility=header.sending_facility[:180],
        receiving_application=header.receiving_application[:180],
        receiving_facility=header.receiving_facility[:180],
        control_id=header.control_id,
        message_type=header.message_type[:8],
        trigger_event=header.trigger_event[:8],
        message_structure=header.message_structure[:16],
        version=header.version[:16],
        processing_id=header.processing_id[:8],
        charset=header.charset[:32],
        codec=checked.codec,
        raw=raw,
        text=checked.text,
        size=len(raw),
        sha256=digest,
        peer=peer[:64],
        accept_ack_type=header.accept_ack_type[:2],
        application_ack_type=header.application_ack_type[:2],
        ack=ack,
        ack_code="AA" if ack is not None else "",
        patient_key=mllp.patient_key(checked),
    )
    try:
        with transaction.atomic():
            row.save()
            InboundMessageEvent.objects.create(message=row, kind=InboundEventKind.RECEIVED)
    except IntegrityError:
        return _repeated(row, header, checked.codec)
    return ReceiveResult(ack, "AA", row.id, dispatch=True)


def _repeated(row: InboundMessage, header: mllp.Header, codec: str) -> ReceiveResult:
    """The control ID is taken: the same bytes get the stored ACK, other bytes get AE."""
    with transaction.atomic():
        original = (
            InboundMessage.objects.select_related("partner__organisation")
            .exclude(status=InboundStatus.DUPLICATE_CONFLICT)
            .get(
                sending_application=row.sending_application,
                sending_facility=row.sending_facility,
                control_id=row.control_id,
            )
        )
        if original.sha256 == row.sha256:
            InboundMessageEvent.objects.create(
                message=original, kind=InboundEventKind.DUPLICATE, detail=row.peer
            )
            stored = bytes(original.ack) if original.ack is not None else None
            return ReceiveResult(stored, original.ack_code or "AA", original.id)
        error = mllp.Hl7Error(
            "AE",
            mllp.ERR_DUPLICATE_KEY,
            "This control ID (MSH-10) was already used for a different message.",
            "MSH",
            1,
            10,
        )
        ack = _answer(header, "AE", error, codec)
        row.status = InboundStatus.DUPLICATE_CONFLICT
        row.ack, row.ack_code = ack, ("AE" if ack is not None else "")
        row.error = error.text
        row.patient_key = ""
        try:
            with transaction.atomic():
                row.save()
                InboundMessageEvent.objects.create(
                    message=row, kind=InboundEventKind.CONFLICT, detail=str(original.external_id)
                )
        except IntegrityError:
            return ReceiveResult(ack, "AE")  # this conflicting copy is already kept
        logger.error(
            "HL7 control ID reused for different content",
            extra={
                "sender": f"{row.sending_application}@{row.sending_facility}",
                "control_id": row.control_id,
                "original": str(original.external_id),
                "conflict": str(row.external_id),
            },
        )
        if original.partner is not None:
            alert_admins(
                original.partner.organisation,
                category="hl7_duplicate_conflict",
                title=_("HL7 control ID reused for a different message"),
                body=_(
                    "%(partner)s sent control ID %(control_id)s again with different content. "
                    "The first message was kept; the second was refused."
                )
                % {"partner": original.partner.name, "control_id": row.control_id[:40]},
                data={"message": str(row.external_id), "original": str(original.external_id)},
            )
    return ReceiveResult(ack, "AE", row.id)


def alert_admins(
    organisation: Organisation, *, category: str, title: str, body: str, data: dict[str, Any]
) -> None:
    admins = User.objects.filter(
        memberships__role=Role.ORG_ADMIN,
        memberships__is_active=True,
        memberships__organisation=organisation,
        is_active=True,
    ).distinct()
    for admin in admins:
        notify(user=admin, category=category, title=title, body=body, data=data, channels=("push",))


def inbound_dispatch(message_id: int) -> None:
    """Hand a stored message to the worker. A lost dispatch is picked up by the sweep."""
    from .tasks import inbound_process as task

    try:
        task.delay(message_id)
    except Exception:  # noqa: BLE001 - broker down: the periodic sweep dispatches it later
        logger.warning("could not enqueue an HL7 message; the sweep will", exc_info=True)


# --- Processing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessResult:
    processed: int
    retry_at: datetime | None = None  # set when a message failed in this run


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, settings.HUIZHEN_MLLP_RETRY_SECONDS * 2 ** (attempts - 1)))


# The head of a patient's queue: the oldest pending message of the patient named by the
# message ``%(id)s`` (or that message alone when it names no patient), due, not locked by
# another worker, with no older pending message of the same patient (a locked older one
# included: it is being applied, and this one must wait for it). ``has_more`` says whether
# younger pending messages of the patient follow, so the worker knows whether to go on.
# One statement, because this runs once per message applied (see docs/benchmarks.md).
_CLAIM_SQL = """
SELECT m.id, m.external_id, m.partner_id, m.sending_application, m.sending_facility,
       m.control_id, m.message_type, m.trigger_event, m.codec, m.text, m.accept_ack_type,
       m.application_ack_type, m.patient_key, m.status, m.attempts, m.next_attempt_at,
       m.error, m.patient_id, m.application_ack, m.processed_at,
       EXISTS (
           SELECT 1 FROM ehr_bridge_inboundmessage y
           WHERE m.patient_key <> '' AND y.patient_key = m.patient_key
             AND y.status IN ('received', 'error') AND y.id > m.id
       ) AS has_more
FROM ehr_bridge_inboundmessage m
WHERE m.status IN ('received', 'error')
  AND m.next_attempt_at <= %(now)s
  AND (
      m.id = %(id)s
      OR (m.patient_key <> '' AND m.patient_key = (
          SELECT k.patient_key FROM ehr_bridge_inboundmessage k WHERE k.id = %(id)s
      ))
  )
  AND NOT EXISTS (
      SELECT 1 FROM ehr_bridge_inboundmessage o
      WHERE m.patient_key <> '' AND o.patient_key = m.patient_key
        AND o.status IN ('received', 'error') AND o.id < m.id
  )
ORDER BY m.id
LIMIT 1
FOR UPDATE OF m SKIP LOCKED
"""


def _claim_sql() -> str:
    """SQLite (embedded mode) has no row locks and needs none: it runs one writer at a time."""
    if connection.vendor == "postgresql":
        return _CLAIM_SQL
    return _CLAIM_SQL.replace("FOR UPDATE OF m SKIP LOCKED", "")


_PARTNER_TTL = 30.0
_partners: dict[int, tuple[float, Hl7Partner]] = {}


def _partner(partner_id: int | None) -> Hl7Partner | None:
    """The partner with its organisation, cached in the process for a few seconds: every
    message of a partner needs it, and partners change rarely (a change applies within
    ``_PARTNER_TTL`` seconds)."""
    if partner_id is None:
        return None
    now = time.monotonic()
    cached = _partners.get(partner_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    partner = Hl7Partner.objects.select_related("organisation").get(pk=partner_id)
    _partners[partner_id] = (now + _PARTNER_TTL, partner)
    return partner


def inbound_process(*, message_id: int, limit: int = 200) -> ProcessResult:
    """Apply the message and every older pending message of the same patient, oldest first.

    The head of the patient's queue is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``;
    a row is applied only when no older pending row of its patient exists, so a message
    waits while an older one is unprocessed or failing (parked ones no longer hold it back).
    Each message is applied and committed in its own transaction, so that row locks are held
    briefly and workers run in parallel. The worker that holds the oldest row drains the
    patient's queue. Idempotent: processed rows are never claimed again.
    """
    done = 0
    while done < limit:
        with transaction.atomic():
            rows = list(InboundMessage.objects.raw(_claim_sql(), {"id": message_id, "now": _now()}))
            if not rows:
                return ProcessResult(done)
            row = rows[0]
            row.partner = _partner(row.partner_id)
            _apply_one(row)
            done += 1
            if row.status == InboundStatus.ERROR:
                return ProcessResult(done, row.next_attempt_at)
        if not getattr(row, "has_more", False):
            return ProcessResult(done)
    return ProcessResult(done)


class _Permanent(Exception):
    """A failure that retrying cannot fix: park at once."""


def _apply_one(row: InboundMessage) -> None:
    now = _now()
    row.attempts += 1
    try:
        with transaction.atomic():
            status, patient = _apply(row)
    except (DomainError, adt.MappingError, mllp.MessageRejected, _Permanent) as exc:
        _fail(row, exc, permanent=True)
    except Exception as exc:  # noqa: BLE001 - any other failure is retried, then parked
        _fail(row, exc, permanent=False)
    else:
        row.status, row.error, row.processed_at = status, "", now
        if patient is not None:
            row.patient = patient
        kind = (
            InboundEventKind.PROCESSED
            if status == InboundStatus.PROCESSED
            else InboundEventKind.UNSUPPORTED
        )
        InboundMessageEvent.objects.create(message=row, kind=kind)
    row.application_ack = _application_ack(row)
    row.save(
        update_fields=[
            "status",
            "attempts",
            "next_attempt_at",
            "error",
            "processed_at",
            "patient",
            "application_ack",
        ]
    )


def _fail(row: InboundMessage, exc: Exception, *, permanent: bool) -> None:
    text = f"{type(exc).__name__}: {exc}"
    fields = getattr(exc, "fields", None)
    if fields:
        text += " " + "; ".join(f"{name}: {reason}" for name, reason in fields.items())
    text = text[:2000]
    row.error = text
    if permanent or row.attempts >= settings.HUIZHEN_MLLP_PROCESS_MAX_ATTEMPTS:
        row.status = InboundStatus.PARKED
        InboundMessageEvent.objects.create(message=row, kind=InboundEventKind.PARKED, detail=text)
        logger.error(
            "HL7 message parked",
            extra={"hl7_message": str(row.external_id), "control_id": row.control_id},
        )
        if row.partner is not None:
            alert_admins(
                row.partner.organisation,
                category="hl7_parked",
                title=_("An HL7 message could not be applied"),
                body=_("Message %(control_id)s from %(partner)s is parked for replay.")
                % {"control_id": row.control_id[:40], "partner": row.partner.name},
                data={"message": str(row.external_id)},
            )
    else:
        row.status = InboundStatus.ERROR
        row.next_attempt_at = _now() + backoff(row.attempts)
        InboundMessageEvent.objects.create(message=row, kind=InboundEventKind.FAILED, detail=text)
        logger.warning(
            "HL7 message failed; will retry",
            extra={"hl7_message": str(row.external_id), "attempts": row.attempts},
        )


def _organisation_for(row: InboundMessage) -> Organisation:
    if row.partner is not None:
        return row.partner.organisation
    facility = (
        Hl7Facility.objects.select_related("organisation").filter(code=row.sending_facility).first()
    )
    if facility is None:
        raise _Permanent(
            f"No partner and no organisation with HL7 facility {row.sending_facility!r}."
        )
    return facility.organisation


def _apply(row: InboundMessage) -> tuple[str, Any]:
    """Apply one message; returns (status, patient or None)."""
    applier = _APPLIERS.get(row.message_type)
    if applier is not None and (
        row.message_type != "SIU" or row.trigger_event in inbound_apply.APPLIED_SIU
    ):
        return InboundStatus.PROCESSED, applier(row, parse(row.text))
    if row.message_type != "ADT" or row.trigger_event not in APPLIED_ADT | {"A40"}:
        return InboundStatus.UNSUPPORTED, None
    parsed = parse(row.text)
    pid = parsed.first("PID")
    if pid is None:
        raise _Permanent("PID segment missing.")
    organisation = _organisation_for(row)
    authority = row.partner.authority if row.partner else row.sending_facility
    actor = audit.Actor(
        user_id=None, username=f"hl7:{row.sending_facility}"[:150], organisation_id=organisation.pk
    )
    if row.trigger_event == "A40":
        mrg = parsed.first("MRG")
        if mrg is None:
            raise _Permanent("MRG segment missing.")
        merge = adt.merge(pid, mrg, authority=authority)
        result = feeds.patient_merge_from_feed(
            actor=actor,
            home_organisation=organisation,
            survivor=merge.survivor,
            prior=merge.prior,
        )
        return InboundStatus.PROCESSED, result.survivor
    data = adt.feed_patient(pid, authority=authority)
    upserted = feeds.patient_upsert_from_feed(
        actor=actor, home_organisation=organisation, data=data
    )
    return InboundStatus.PROCESSED, upserted.patient


_APPLIERS = {
    "ORM": inbound_apply.apply_orders,
    "OMG": inbound_apply.apply_orders,
    "ORU": inbound_apply.apply_lab_results,
    "SIU": inbound_apply.apply_appointment,
}


def _application_ack(row: InboundMessage) -> bytes | None:
    """The application acknowledgement MSH-16 asks for, built once the outcome is final.

    Kept on the row; sending it to the partner's outbound endpoint belongs to the outbound
    queue. Original-mode messages (MSH-15 empty) get none: their ACK was the AA.
    """
    if not row.accept_ack_type or row.status in PENDING_STATUSES:
        return row.application_ack
    code = "AE" if row.status == InboundStatus.PARKED else "AA"
    if not mllp.should_send(row.application_ack_type or "AL", code):
        return None
    header = mllp._header(row.text.split("\r", 1)[0])
    error = mllp.Hl7Error("AE", mllp.ERR_INTERNAL, row.error[:200]) if code == "AE" else None
    return mllp.build_ack(header, code=code, error=error, now=_now(), codec=row.codec, commit=False)


def due_message_ids(*, older_than: timedelta, limit: int = 500) -> list[int]:
    """Pending messages due for longer than ``older_than`` (their dispatch or retry was
    lost): the oldest per patient key."""
    cutoff = _now() - older_than
    rows = (
        InboundMessage.objects.filter(status__in=PENDING_STATUSES, next_attempt_at__lte=cutoff)
        .order_by("id")
        .values_list("id", "patient_key")[:limit]
    )
    seen: set[str] = set()
    ids = []
    for message_id, key in rows:
        if key and key in seen:
            continue
        seen.add(key)
        ids.append(message_id)
    return ids


def inbound_replay(*, message_id: int | str, actor: audit.Actor, user: Any | None = None) -> int:
    """Put a parked, failed or not-yet-supported message back in the queue (operator action).

    Returns the message's id; the caller dispatches it after commit.
    """
    with transaction.atomic():
        query = InboundMessage.objects.select_for_update()
        text = str(message_id)
        row = (
            query.filter(id=int(text)).first()
            if text.isdigit()
            else query.filter(external_id=text).first()
            if len(text) == 36
            else None
        )
        if row is None:
            raise NotFound(_("No such HL7 message."))
        replayable = (InboundStatus.PARKED, InboundStatus.ERROR, InboundStatus.UNSUPPORTED)
        if row.status not in replayable:
            raise Conflict(
                _("Only parked, failed or unsupported messages can be replayed."),
                code="not_replayable",
            )
        previous = row.status
        row.status, row.attempts, row.next_attempt_at = InboundStatus.RECEIVED, 0, _now()
        row.save(update_fields=["status", "attempts", "next_attempt_at"])
        InboundMessageEvent.objects.create(
            message=row,
            kind=InboundEventKind.REPLAYED,
            actor=user,
            detail=f"from {previous}",
        )
        audit.record(
            actor=actor,
            action="hl7.message.replay",
            object_type="hl7_message",
            object_id=row.external_id,
            patient_id=row.patient.external_id if row.patient_id else None,
            detail={"from": previous},
        )
        transaction.on_commit(lambda: inbound_dispatch(row.id))
    return row.id
