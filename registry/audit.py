"""The audit trail: append-only, hash-chained records of every read and write of patient data.

``record`` appends one row in the caller's transaction (or its own). Appends are serialised
by a PostgreSQL advisory lock (SQLite serialises writers already), so the chain has one order.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction

from . import context
from .models import AuditEvent, AuditOutcome

GENESIS = "0" * 64
_LOCK_KEY = 0x48554941  # "HUIA"
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
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        prev = last or GENESIS
        return AuditEvent.objects.create(**fields, prev_hash=prev, hash=compute_hash(prev, fields))


@dataclass(frozen=True)
class ChainBreak:
    row_id: int
    reason: str


def verify_chain(batch: int = 5000) -> tuple[int, list[ChainBreak]]:
    """Walk the whole trail in order; return rows checked and every break found."""
    breaks: list[ChainBreak] = []
    prev = GENESIS
    checked = 0
    for row in _iter_rows(batch):
        checked += 1
        if row.prev_hash != prev:
            breaks.append(ChainBreak(row.id, "previous-hash link broken (row removed or inserted)"))
        fields = {name: getattr(row, name) for name in HASHED_FIELDS}
        if compute_hash(row.prev_hash, fields) != row.hash:
            breaks.append(ChainBreak(row.id, "content does not match its hash (row altered)"))
        prev = row.hash
    return checked, breaks


def _iter_rows(batch: int) -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        rows = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch])
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id
