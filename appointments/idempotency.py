"""Idempotent write requests (``Idempotency-Key``).

The first request with a key claims it by committing a pending row; then the work runs in its
own transaction (so that an audited denial stays in the trail), and its answer, a domain error
included, is stored on the row. A retry with the same key and body gets the stored answer; a
retry while the first is still running gets 409; the same key with a different body gets 422.
A pending row left by a crashed process may be taken over after ``STALE_AFTER``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry.errors import Conflict, DomainError, ValidationFailed

from .models import IdempotentRequest

MAX_KEY_LENGTH = 200
STALE_AFTER = timedelta(minutes=5)


class KeyReused(DomainError):
    status_code = 422
    default_code = "idempotency_key_reused"


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: Any
    replayed: bool = False


def fingerprint(operation: str, body: Any) -> str:
    canonical = json.dumps(
        {"operation": operation, "body": body}, sort_keys=True, default=str, ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def error_body(exc: DomainError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": exc.code, "detail": exc.message}
    if isinstance(exc, ValidationFailed) and exc.fields:
        body["fields"] = exc.fields
    return body


def run(
    *,
    scope: str,
    key: str | None,
    operation: str,
    body: Any,
    work: Callable[[], tuple[int, Any]],
) -> Answer:
    """Run ``work`` (returning status and JSON body) at most once for ``(scope, key)``.

    Without a key the work simply runs; its domain errors propagate as usual.
    """
    if not key:
        status, payload = work()
        return Answer(status, payload)
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(
            _("The Idempotency-Key is too long."), fields={"Idempotency-Key": key[:20]}
        )
    digest = fingerprint(operation, body)
    row = _claim(scope, key, operation, digest)
    if isinstance(row, Answer):
        return row
    try:
        status, payload = work()
    except DomainError as exc:
        status, payload = exc.status_code, error_body(exc)
    except BaseException:
        IdempotentRequest.objects.filter(pk=row.pk, status_code__isnull=True).delete()
        raise
    IdempotentRequest.objects.filter(pk=row.pk).update(status_code=status, response=payload)
    return Answer(status, payload)


def _claim(scope: str, key: str, operation: str, digest: str) -> IdempotentRequest | Answer:
    for _attempt in range(2):
        try:
            with transaction.atomic():
                return IdempotentRequest.objects.create(
                    scope=scope, key=key, operation=operation, fingerprint=digest
                )
        except IntegrityError:
            stale = timezone.now() - STALE_AFTER
            taken_over = IdempotentRequest.objects.filter(
                scope=scope, key=key, status_code__isnull=True, created_at__lt=stale
            ).delete()[0]
            if not taken_over:
                return _replay(scope, key, digest)
    return _replay(scope, key, digest)


def _replay(scope: str, key: str, digest: str) -> Answer:
    row = IdempotentRequest.objects.get(scope=scope, key=key)
    if row.fingerprint != digest:
        raise KeyReused(
            _(
                "This Idempotency-Key was used for a different request. Use a new key for a new "
                "request."
            )
        )
    if row.status_code is None:
        raise Conflict(
            _("A request with this Idempotency-Key is still being processed; retry shortly."),
            code="idempotency_in_progress",
        )
    return Answer(row.status_code, row.response, replayed=True)


def purge_expired() -> int:
    hours = int(getattr(settings, "HUIZHEN_IDEMPOTENCY_TTL_HOURS", 48))
    cutoff = timezone.now() - timedelta(hours=hours)
    deleted, _detail = IdempotentRequest.objects.filter(created_at__lt=cutoff).delete()
    return deleted
