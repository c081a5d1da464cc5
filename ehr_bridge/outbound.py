"""Every write of the outbound queue: queueing, sending with acknowledgement, retry,
dead-lettering and replay.

Other apps queue a message with ``enqueue_outbound`` inside their own transaction; the
sender starts after commit. Order per partner and patient: a message is sent only when no
older message of the same partner and patient is pending or in flight; dead ones no longer
hold the queue (replaying one sends it after what followed it).

A message is claimed by setting it to ``sent`` in a short committed transaction (``SELECT
... FOR UPDATE SKIP LOCKED`` picks it), then sent with no transaction open, then its outcome
is written. A sender that dies between the two leaves it ``sent``: the sweep puts such rows
back to ``pending`` once their acknowledgement timeout has long passed, and the same bytes
with the same control ID go again (receivers answer a repeated control ID with their
original acknowledgement).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import audit
from registry.errors import Conflict, NotFound, ValidationFailed

from . import builders, mllp
from .mllp_client import MllpConnection, SendFailed
from .models import Hl7Partner, OutboundMessage, OutboundStatus
from .services import alert_admins

logger = logging.getLogger(__name__)

SUCCESS_CODES = frozenset({"AA", "CA"})
# A row left "sent" longer than its ACK timeout plus this margin was abandoned by a sender.
STALE_MARGIN = timedelta(seconds=60)


def partners_for_event(event_type: str) -> list[Hl7Partner]:
    """Partners that take ``event_type`` (e.g. "ORU^R01") and have an endpoint."""
    partners = Hl7Partner.objects.select_related("organisation").filter(
        outbound_enabled=True, outbound_port__isnull=False
    )
    return [p for p in partners if event_type in (p.outbound_events or []) and p.outbound_host]


def enqueue_outbound(
    partner: Hl7Partner, event_type: str, patient_key: str, message: str
) -> OutboundMessage | None:
    """Queue ``message`` (ER7 text, CR-separated) for ``partner``, in the caller's
    transaction; the sender starts after commit.

    Returns None (nothing queued) when the partner does not take ``event_type``. Raises
    ValidationFailed when the text has no usable MSH-10 or does not encode in the partner's
    character set (MSH-18, when given, must name that set). ``patient_key`` orders the
    messages of one patient (e.g. "COUNTY_HOSP|H0001"); empty means no ordering.
    """
    if not partner.outbound_enabled or event_type not in (partner.outbound_events or []):
        return None
    text = mllp.normalise_separators(message)
    try:
        header = mllp.peek_header(text.encode("utf-8", errors="replace"))
    except mllp.MessageRejected as exc:
        raise ValidationFailed(_("The message has no valid MSH segment."), code="msh") from exc
    if not header.control_id:
        raise ValidationFailed(_("The message has no control ID (MSH-10)."), code="msh_10")
    codec = mllp.codec_for(partner.outbound_charset) or "utf-8"
    if header.charset and mllp.codec_for(header.charset) != codec:
        raise ValidationFailed(
            _("MSH-18 of the message does not name the partner's character set."),
            code="charset",
        )
    try:
        payload = text.encode(codec, errors="strict")
    except UnicodeEncodeError as exc:
        raise ValidationFailed(
            _("The message cannot be written in the partner's character set."), code="charset"
        ) from exc
    row = OutboundMessage.objects.create(
        partner=partner,
        event_type=event_type[:32],
        patient_key=patient_key[:255],
        payload=payload,
        codec=codec,
        control_id=header.control_id,
    )
    message_id = row.id
    transaction.on_commit(lambda: outbound_dispatch(message_id))
    return row


def outbound_dispatch(message_id: int) -> None:
    """Start the sender for a queued message. A lost dispatch is picked up by the sweep."""
    from .tasks import outbound_send

    try:
        outbound_send.delay(message_id)
    except Exception:  # noqa: BLE001 - broker down: the periodic sweep sends it later
        logger.warning("could not enqueue an HL7 send; the sweep will", exc_info=True)


def backoff(attempts: int) -> timedelta:
    base = settings.HUIZHEN_MLLP_RETRY_SECONDS
    return timedelta(seconds=min(3600, base * 2 ** max(0, attempts - 1)))


# The head of a partner's queue (of one patient, when %(key)s is given): pending, due, not
# locked by another sender, with no older pending or in-flight message of the same patient.
_CLAIM_SQL = """
UPDATE ehr_bridge_outboundmessage
SET status = 'sent', sent_at = %(now)s, attempts = attempts + 1
WHERE id = (
    SELECT m.id FROM ehr_bridge_outboundmessage m
    WHERE m.partner_id = %(partner)s
      AND m.status = 'pending'
      AND m.next_attempt_at <= %(now)s
      AND (%(key)s::text IS NULL OR m.patient_key = %(key)s::text)
      AND NOT EXISTS (
          SELECT 1 FROM ehr_bridge_outboundmessage o
          WHERE m.patient_key <> '' AND o.partner_id = m.partner_id
            AND o.patient_key = m.patient_key
            AND o.status IN ('pending', 'sent') AND o.id < m.id
      )
    ORDER BY m.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING id, payload, control_id, attempts, patient_key
"""


@dataclass(frozen=True)
class _Claimed:
    id: int
    payload: bytes
    control_id: str
    attempts: int
    patient_key: str


def _claim(
    partner_id: int, patient_key: str | None, acked: tuple[int, bytes, str] | None = None
) -> _Claimed | None:
    """Claim the next message; first record the previous one's acknowledgement (``acked``)
    in the same transaction, so that one commit serves both (a crash before it leaves the
    acknowledged row ``sent``: the sweep sends it again and the receiver answers the repeat
    with its original acknowledgement)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if acked is not None:
            _mark_acked(*acked)
        cursor.execute(
            _CLAIM_SQL, {"now": timezone.now(), "partner": partner_id, "key": patient_key}
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return _Claimed(row[0], bytes(row[1]), row[2], row[3], row[4])


@dataclass(frozen=True)
class DrainResult:
    acked: int
    failed: int
    retry_at: datetime | None = None


def outbound_drain(
    *, partner_id: int, patient_key: str | None = None, limit: int = 500
) -> DrainResult:
    """Send the partner's due messages (of one patient, when given), oldest first, over one
    connection, until none is due or one fails (then its retry time is returned)."""
    partner = Hl7Partner.objects.select_related("organisation").get(pk=partner_id)
    if not partner.outbound_enabled or not partner.outbound_host or not partner.outbound_port:
        return DrainResult(0, 0)
    acked = failed = 0
    done: tuple[int, bytes, str] | None = None
    with MllpConnection(
        partner.outbound_host,
        partner.outbound_port,
        connect_timeout=min(10.0, float(partner.outbound_ack_timeout)),
        ack_timeout=float(partner.outbound_ack_timeout),
    ) as conn:
        while acked + failed < limit:
            claimed = _claim(partner.pk, patient_key, done)
            done = None
            if claimed is None:
                break
            try:
                result = conn.send(claimed.payload)
            except SendFailed as exc:
                retry = _failed(partner, claimed, str(exc), ack=None, code="")
                return DrainResult(acked, failed + 1, retry)
            if result.control_id != claimed.control_id:
                conn.close()
                retry = _failed(
                    partner,
                    claimed,
                    f"The acknowledgement names control ID {result.control_id!r}.",
                    ack=result.raw,
                    code=result.code,
                )
                return DrainResult(acked, failed + 1, retry)
            if result.code not in SUCCESS_CODES:
                retry = _failed(
                    partner,
                    claimed,
                    f"{result.code}: {result.text}",
                    ack=result.raw,
                    code=result.code,
                )
                return DrainResult(acked, failed + 1, retry)
            done = (claimed.id, result.raw, result.code)
            acked += 1
    if done is not None:
        _mark_acked(*done)
    return DrainResult(acked, failed)


def _mark_acked(message_id: int, ack: bytes, code: str) -> None:
    OutboundMessage.objects.filter(id=message_id, status=OutboundStatus.SENT).update(
        status=OutboundStatus.ACKED,
        ack=ack,
        ack_code=code[:2],
        acked_at=timezone.now(),
        last_error="",
    )


def _failed(
    partner: Hl7Partner, claimed: _Claimed, error: str, *, ack: bytes | None, code: str
) -> datetime | None:
    """Record a failed attempt: back to pending with a backoff, or dead after the partner's
    maximum attempts (with an alert to its organisation's admins). Returns the retry time."""
    with transaction.atomic():
        row = OutboundMessage.objects.select_for_update().get(id=claimed.id)
        if row.status != OutboundStatus.SENT:
            return None  # reset by the sweep or replayed meanwhile
        row.last_error, row.ack, row.ack_code = error[:2000], ack, code[:2]
        if row.attempts >= partner.outbound_max_attempts:
            row.status = OutboundStatus.DEAD
            row.save(update_fields=["status", "last_error", "ack", "ack_code"])
            logger.error(
                "HL7 outbound message dead-lettered",
                extra={"hl7_outbound": str(row.external_id), "partner": partner.name},
            )
            alert_admins(
                partner.organisation,
                category="hl7_outbound_dead",
                title=_("An HL7 message could not be delivered"),
                body=_(
                    "%(event)s %(control_id)s to %(partner)s failed %(attempts)d times and "
                    "waits for replay. Last error: %(error)s"
                )
                % {
                    "event": row.event_type,
                    "control_id": row.control_id[:40],
                    "partner": partner.name,
                    "attempts": row.attempts,
                    "error": error[:200],
                },
                data={"outbound": str(row.external_id)},
            )
            return None
        row.status = OutboundStatus.PENDING
        row.next_attempt_at = timezone.now() + backoff(row.attempts)
        row.save(update_fields=["status", "next_attempt_at", "last_error", "ack", "ack_code"])
        logger.warning(
            "HL7 outbound message failed; will retry",
            extra={"hl7_outbound": str(row.external_id), "attempts": row.attempts},
        )
        return row.next_attempt_at


def outbound_send(*, message_id: int) -> DrainResult:
    """Send the queue of the message's partner and patient (the message included when it is
    the head)."""
    row = (
        OutboundMessage.objects.filter(id=message_id)
        .values_list("partner_id", "patient_key")
        .first()
    )
    if row is None:
        return DrainResult(0, 0)
    partner_id, key = row
    return outbound_drain(partner_id=partner_id, patient_key=key or None)


def outbound_sweep() -> list[int]:
    """Put abandoned in-flight rows back to pending; return the partners with due messages."""
    now = timezone.now()
    for partner in Hl7Partner.objects.filter(outbound__status=OutboundStatus.SENT).distinct():
        cutoff = now - timedelta(seconds=partner.outbound_ack_timeout) - STALE_MARGIN
        OutboundMessage.objects.filter(
            partner=partner, status=OutboundStatus.SENT, sent_at__lt=cutoff
        ).update(status=OutboundStatus.PENDING, next_attempt_at=now)
    return list(
        OutboundMessage.objects.filter(status=OutboundStatus.PENDING, next_attempt_at__lte=now)
        .values_list("partner_id", flat=True)
        .distinct()
    )


def outbound_replay(*, message_id: int | str, actor: audit.Actor) -> OutboundMessage:
    """Put a dead message back in the queue (operator action), audited."""
    with transaction.atomic():
        text = str(message_id)
        query = OutboundMessage.objects.select_for_update()
        row = (
            query.filter(id=int(text)).first()
            if text.isdigit()
            else query.filter(external_id=text).first()
            if len(text) == 36
            else None
        )
        if row is None:
            raise NotFound(_("No such HL7 message."))
        if row.status != OutboundStatus.DEAD:
            raise Conflict(_("Only dead messages can be replayed."), code="not_replayable")
        row.status, row.attempts, row.next_attempt_at = (
            OutboundStatus.PENDING,
            0,
            timezone.now(),
        )
        row.save(update_fields=["status", "attempts", "next_attempt_at"])
        audit.record(
            actor=actor,
            action="hl7.outbound.replay",
            object_type="hl7_outbound",
            object_id=row.external_id,
        )
        row_id = row.id
        transaction.on_commit(lambda: outbound_dispatch(row_id))
    return row


def patient_data(patient: Any) -> builders.PatientData:
    """A registry patient as the message builders take it (PID)."""
    return builders.PatientData(
        identifiers=tuple(
            builders.Identifier(value=i.value, authority=i.authority, type_code=i.kind)
            for i in patient.identifiers.all()
        ),
        name=patient.name,
        sex=patient.sex,
        birth_date=patient.birth_date,
        id_number=patient.id_number or "",
    )
