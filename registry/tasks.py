"""Celery tasks: thin, idempotent, bounded retries; each calls one service."""

from __future__ import annotations

from celery import shared_task
from celery.signals import task_postrun

from . import audit, events, notifications, sms


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def outbox_deliver(delivery_ids: list[int]) -> int:
    """Deliver the given outbox rows; rows already delivered or claimed are skipped."""
    done = 0
    for delivery_id in delivery_ids:
        if events.deliver(delivery_id) == "delivered":
            done += 1
    return done


@shared_task(acks_late=True, time_limit=300, soft_time_limit=270)
def outbox_sweep() -> int:
    """Periodic: deliver every due row (retries after backoff, and dispatches that were lost)."""
    return events.deliver_due()


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(sms.SmsError,),
    retry_backoff=30,
    retry_backoff_max=1800,
    max_retries=6,
    time_limit=60,
    soft_time_limit=45,
)
def notification_sms_send(self, delivery_id: int) -> str:  # type: ignore[no-untyped-def]
    return notifications.sms_send(delivery_id)


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def audit_seal() -> int:
    """Periodic: link the audit rows written since the last run into the hash chain."""
    return audit.seal()


@task_postrun.connect
def _write_refusals(**_kwargs: object) -> None:
    """A refusal recorded inside a task's rolled-back transaction is written after the task."""
    audit.flush_deferred()
