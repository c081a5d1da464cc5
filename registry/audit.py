"""The audit trail: append-only, hash-chained records of every read and write of patient data.

``record`` appends one row in the caller's transaction (or its own) and marks it pending; no
lock is shared between writers, so auditing does not serialise the service. ``seal`` (run
every few seconds by Celery beat, and before every verification) links committed pending
rows into the hash chain, one at a time in the order it finds them, under a lock that only
sealers take. In embedded mode (SQLite, which serialises writers anyway) rows are sealed
as they are written. A row is tamper-evident from the moment it is sealed; until then the
database's triggers and grants are what keep it unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef

from . import context
from .models import AuditEvent, AuditOutcome, AuditPending, AuditSeal

logger = logging.getLogger(__name__)

# Refusals recorded inside a transaction of work, waiting to be written once it has ended:
# a refusal usually ends in an exception that rolls that transaction back.
_deferred: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "huizhen_audit_deferred", default=None
)

GENESIS = "0" * 64
_SEAL_LOCK_KEY = 0x48554941  # "HUIA": held by sealers only
HASHED_FIELDS = (
    "occurred_at",
    "actor_id",
    "actor_username",
    "actor_role",
    "organisation_id",
    "subject_organisation_id",
    "action",
    "object_type",
    "object_id",
    "patient_id",
    "client_address",
    "request_id",
    "outcome",
    "detail",
)


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff user in one organisation and role, or a system process."""

    user_id: int | None
    username: str
    role: str = ""
    organisation_id: int | None = None

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(user_id=None, username=f"system:{name}")


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def compute_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    body = json.dumps(
        {name: _canonical(fields[name]) for name in HASHED_FIELDS},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def record(
    *,
    actor: Actor,
    action: str,
    outcome: str = AuditOutcome.SUCCESS,
    object_type: str = "",
    object_id: str | uuid.UUID | None = "",
    patient_id: uuid.UUID | str | None = None,
    subject_organisation_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit row. ``detail`` must hold no names, ID numbers, tokens or secrets."""
    ctx = context.current()
    fields: dict[str, Any] = {
        "occurred_at": datetime.now(UTC),
        "actor_id": actor.user_id,
        "actor_username": actor.username,
        "actor_role": actor.role,
        "organisation_id": actor.organisation_id,
        "subject_organisation_id": subject_organisation_id,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id or ""),
        "patient_id": uuid.UUID(str(patient_id)) if patient_id else None,
        "client_address": ctx.client_address,
        "request_id": ctx.request_id,
        "outcome": str(outcome),
        "detail": detail or {},
    }
    if outcome == AuditOutcome.DENIED and _in_work_transaction():
        pending = _deferred.get()
        if pending is None:
            pending = []
            _deferred.set(pending)
        pending.append(fields)
        transaction.on_commit(flush_deferred)
        return AuditEvent(**fields)
    return _write(fields)


@contextlib.contextmanager
def collecting_refusals() -> Iterator[None]:
    """Give refusals recorded inside (for example by a request's view, on whatever thread it
    runs) one list to wait in, so that ``flush_deferred`` afterwards finds them."""
    token = _deferred.set([])
    try:
        yield
    finally:
        _deferred.reset(token)


def _in_work_transaction() -> bool:
    """Whether an atomic block of the application (not a test's wrapper) is open."""
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def flush_deferred() -> int:
    """Write the refusals recorded inside transactions that have since ended; return how many.

    Called after a request (middleware), by the API's exception handler, after a task, and
    on commit. Each refusal is written once, whether its transaction committed or not.
    """
    pending = _deferred.get()
    if not pending or _in_work_transaction():
        return 0
    written = 0
    while pending:
        _write(pending.pop(0))
        written += 1
    return written


def _write(fields: dict[str, Any]) -> AuditEvent:
    with transaction.atomic():
        event = AuditEvent.objects.create(**fields)
        AuditPending.objects.create(event_id=event.pk)
        if connection.vendor != "postgresql":
            _seal_batch(after=0, limit=1000)
    return event


def _fields(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in HASHED_FIELDS}


def _seal_batch(*, after: int, limit: int) -> tuple[int, int | None]:
    """Seal up to ``limit`` pending rows with IDs above ``after``, in the current transaction.

    Return how many were sealed and the last pending ID looked at (None when none was left).
    A pending mark whose row is gone (removed behind the database's back) stays, and
    ``verify_chain`` reports it.
    """
    pending = list(
        AuditPending.objects.filter(event_id__gt=after)
        .order_by("event_id")
        .values_list("event_id", flat=True)[:limit]
    )
    if not pending:
        return 0, None
    events = AuditEvent.objects.in_bulk(pending)
    last = AuditSeal.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev = last or (0, GENESIS)
    now = datetime.now(UTC)
    seals: list[AuditSeal] = []
    for event_id in pending:
        event = events.get(event_id)
        if event is None:
            logger.error("audit row %s is pending but gone; it cannot be sealed", event_id)
            continue
        seq += 1
        digest = compute_hash(prev, _fields(event))
        seals.append(
            AuditSeal(seq=seq, event_id=event_id, prev_hash=prev, hash=digest, sealed_at=now)
        )
        prev = digest
    AuditSeal.objects.bulk_create(seals)
    AuditPending.objects.filter(event_id__in=[seal.event_id for seal in seals]).delete()
    return len(seals), pending[-1]


def seal(batch: int = 2000) -> int:
    """Link every committed pending row into the chain; return how many were sealed."""
    total = 0
    after = 0
    while True:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SEAL_LOCK_KEY])
            sealed, last_seen = _seal_batch(after=after, limit=batch)
        total += sealed
        if last_seen is None:
            return total
        after = last_seen


def pending_count() -> int:
    return AuditPending.objects.count()


@dataclass(frozen=True)
class ChainBreak:
    row_id: int
    reason: str


def verify_chain(batch: int = 5000) -> tuple[int, list[ChainBreak]]:
    """Seal what is pending, then walk the whole chain in order.

    Return the number of rows checked and every break found: a row altered, a row removed,
    a link removed or inserted, and rows that are in the table but not in the chain.
    """
    seal()
    breaks: list[ChainBreak] = []
    prev = GENESIS
    checked = 0
    for link, event in _iter_links(batch):
        checked += 1
        if link.prev_hash != prev:
            breaks.append(
                ChainBreak(link.event_id, "previous-hash link broken (a link removed or inserted)")
            )
        if event is None:
            breaks.append(ChainBreak(link.event_id, "row removed from the trail"))
        elif compute_hash(link.prev_hash, _fields(event)) != link.hash:
            breaks.append(
                ChainBreak(link.event_id, "content does not match its hash (row altered)")
            )
        prev = link.hash
    for event_id in AuditPending.objects.values_list("event_id", flat=True)[:100]:
        breaks.append(ChainBreak(event_id, "row removed from the trail before it was sealed"))
    outside = (
        AuditEvent.objects.filter(
            ~Exists(AuditSeal.objects.filter(event_id=OuterRef("id"))),
            ~Exists(AuditPending.objects.filter(event_id=OuterRef("id"))),
        )
        .order_by("id")
        .values_list("id", flat=True)[:100]
    )
    for event_id in outside:
        breaks.append(ChainBreak(event_id, "row not in the chain (inserted outside the trail)"))
    return checked, breaks


def _iter_links(batch: int) -> Iterator[tuple[AuditSeal, AuditEvent | None]]:
    last_seq = 0
    while True:
        links = list(AuditSeal.objects.filter(seq__gt=last_seq).order_by("seq")[:batch])
        if not links:
            return
        events = AuditEvent.objects.in_bulk([link.event_id for link in links])
        for link in links:
            yield link, events.get(link.event_id)
        last_seq = links[-1].seq
