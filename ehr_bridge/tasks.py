"""Celery tasks of the EHR bridge: thin, idempotent, bounded; each calls one service."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from . import outbound, services


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


@shared_task(acks_late=True, time_limit=600, soft_time_limit=570)
def outbound_send(message_id: int) -> int:
    """Send the queue of the message's partner and patient; a failure schedules its retry.

    Idempotent: acknowledged rows are never claimed again, and a row in flight is skipped.
    """
    result = outbound.outbound_send(message_id=message_id)
    if result.retry_at is not None:
        outbound_send.apply_async((message_id,), eta=result.retry_at)
    return result.acked


@shared_task(acks_late=True, time_limit=600, soft_time_limit=570)
def outbound_drain(partner_id: int) -> int:
    """Send every due message of a partner (used by the sweep)."""
    return outbound.outbound_drain(partner_id=partner_id).acked


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def outbound_sweep() -> int:
    """Periodic: recover abandoned sends and start the partners with due messages."""
    partners = outbound.outbound_sweep()
    for partner_id in partners:
        outbound_drain.delay(partner_id)
    return len(partners)


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1770)
def pacs_pull_run(pull_id: int) -> str:
    """Retrieve a prior study from a remote PACS into the archive (a pending pull only)."""
    from . import pacs

    return pacs.pull_run(pull_id=pull_id)


@shared_task(acks_late=True, time_limit=300, soft_time_limit=270)
def pacs_report_send(send_id: int) -> str:
    """Store a signed report at a remote PACS; a failure schedules its bounded retry."""
    from . import pacs

    result = pacs.report_send(send_id=send_id)
    if result.retry_at is not None:
        pacs_report_send.apply_async((send_id,), eta=result.retry_at)
    return result.status


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def pacs_report_sweep() -> int:
    """Periodic: send the reports whose dispatch was lost or whose retry is due, and start
    the prior pulls whose dispatch was lost."""
    from . import pacs

    ids = pacs.report_send_due()
    for send_id in ids:
        pacs_report_send.delay(send_id)
    pulls = pacs.pulls_due()
    for pull_id in pulls:
        pacs_pull_run.delay(pull_id)
    return len(ids) + len(pulls)
