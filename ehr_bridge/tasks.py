"""Celery tasks of the EHR bridge: thin, idempotent, bounded; each calls one service."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from . import services


@shared_task(acks_late=True, time_limit=300, soft_time_limit=270)
def inbound_process(message_id: int) -> int:
    """Apply a stored message (and the older pending ones of its patient, first).

    A failed message is retried at its ``next_attempt_at`` (bounded by
    HUIZHEN_MLLP_PROCESS_MAX_ATTEMPTS, then parked); running twice does nothing the second time.
    """
    result = services.inbound_process(message_id=message_id)
    if result.retry_at is not None:
        inbound_process.apply_async((message_id,), eta=result.retry_at)
    return result.processed


@shared_task(acks_late=True, time_limit=300, soft_time_limit=270)
def inbound_sweep() -> int:
    """Periodic: dispatch pending messages whose dispatch was lost or whose retry is due."""
    ids = services.due_message_ids(older_than=timedelta(seconds=30))
    for message_id in ids:
        services.inbound_dispatch(message_id)
    return len(ids)
