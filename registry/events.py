"""The domain-event outbox.

``publish`` writes the event, and one delivery row per subscriber, in the caller's
transaction; after commit a Celery task delivers them (inline in the embedded default).
Delivery is at least once: a row is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``, the
handler runs in a savepoint, and the row is marked delivered in the same transaction. A
failing handler is retried with exponential backoff and parked after
``HUIZHEN_OUTBOX_MAX_ATTEMPTS`` attempts. Handlers must be idempotent (key on
``event.external_id``). A periodic sweep picks up anything whose dispatch was lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from .models import DeliveryStatus, DomainEvent, EventDelivery

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    external_id: str
    event_type: str
    payload: dict[str, Any]


Handler = Callable[[Event], None]
_subscribers: dict[str, dict[str, Handler]] = {}


def subscribe(event_type: str, name: str | None = None) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``event_type`` under a stable ``name`` (kept in delivery rows)."""

    def register(handler: Handler) -> Handler:
        key = name or f"{handler.__module__}.{handler.__qualname__}"
        _subscribers.setdefault(event_type, {})[key] = handler
        return handler

    return register


def subscribers_of(event_type: str) -> dict[str, Handler]:
    return dict(_subscribers.get(event_type, {}))


def publish(event_type: str, payload: dict[str, Any]) -> DomainEvent:
    """Record an event in the current transaction. ``payload`` holds IDs, not patient data."""
    with transaction.atomic():
        event = DomainEvent.objects.create(event_type=event_type, payload=payload)
        now = timezone.now()
        deliveries = EventDelivery.objects.bulk_create(
            [
                EventDelivery(event=event, subscriber=name, next_attempt_at=now)
                for name in subscribers_of(event_type)
            ]
        )
    ids = [d.id for d in deliveries]
    if ids:
        transaction.on_commit(lambda: _dispatch(ids))
    return event


def _dispatch(delivery_ids: list[int]) -> None:
    from .tasks import outbox_deliver

    try:
        outbox_deliver.delay(delivery_ids)
    except Exception:  # noqa: BLE001 - broker down: the sweep delivers later, nothing is lost
        logger.warning("outbox dispatch failed; the periodic sweep will deliver", exc_info=True)


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 5 * 2 ** max(0, attempts - 1)))


def deliver(delivery_id: int) -> str | None:
    """Deliver one pending row if it is due and not claimed by another worker.

    Returns the resulting status, or None when there was nothing to do.
    """
    with transaction.atomic():
        row = (
            EventDelivery.objects.select_for_update(skip_locked=True)
            .select_related("event")
            .filter(
                id=delivery_id,
                status=DeliveryStatus.PENDING,
                next_attempt_at__lte=timezone.now(),
            )
            .first()
        )
        if row is None:
            return None
        handler = subscribers_of(row.event.event_type).get(row.subscriber)
        event = Event(str(row.event.external_id), row.event.event_type, row.event.payload)
        row.attempts += 1
        error = ""
        if handler is None:
            error = "no handler registered under this name"
        else:
            try:
                with transaction.atomic():
                    handler(event)
            except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then parked
                error = f"{type(exc).__name__}: {exc}"[:2000]
                logger.warning(
                    "outbox handler failed",
                    extra={"subscriber": row.subscriber, "event": event.external_id},
                )
        if not error:
            row.status = DeliveryStatus.DELIVERED
            row.delivered_at = timezone.now()
            row.last_error = ""
        elif row.attempts >= settings.HUIZHEN_OUTBOX_MAX_ATTEMPTS:
            row.status = DeliveryStatus.PARKED
            row.last_error = error
            logger.error(
                "outbox delivery parked",
                extra={"subscriber": row.subscriber, "event": event.external_id},
            )
        else:
            row.last_error = error
            row.next_attempt_at = timezone.now() + backoff(row.attempts)
        row.save(
            update_fields=["status", "attempts", "next_attempt_at", "last_error", "delivered_at"]
        )
        return row.status


def due_delivery_ids(limit: int | None = None) -> list[int]:
    return list(
        EventDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("id")
        .values_list("id", flat=True)[: limit or settings.HUIZHEN_OUTBOX_BATCH]
    )


def deliver_due(limit: int | None = None) -> int:
    """Deliver every due row (used by the periodic sweep); returns how many were delivered."""
    delivered = 0
    for delivery_id in due_delivery_ids(limit):
        try:
            if deliver(delivery_id) == DeliveryStatus.DELIVERED:
                delivered += 1
        except DatabaseError:
            logger.warning("outbox delivery hit a database error", exc_info=True)
    return delivered


def replay(delivery_id: int) -> None:
    """Put a parked delivery back in the queue (operator action)."""
    EventDelivery.objects.filter(id=delivery_id, status=DeliveryStatus.PARKED).update(
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=timezone.now()
    )
