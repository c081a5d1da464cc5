"""Celery tasks: thin, idempotent, bounded; each calls one service."""

from __future__ import annotations

from celery import shared_task

from . import idempotency, reminders, scheduling, waitlist


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540)
def slots_generate_all() -> int:
    """Periodic (daily): extend every active schedule's slots to the horizon."""
    return scheduling.slots_generate_every_schedule()


@shared_task(acks_late=True, time_limit=300, soft_time_limit=270)
def slots_generate_for_schedule(schedule_pk: int) -> int:
    """After a template or exception changes: regenerate one schedule's slots."""
    result = scheduling.slots_generate_by_pk(schedule_pk)
    return result.created if result else 0


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def reminders_send() -> int:
    """Periodic (every 5 minutes): SMS reminders; a ReminderSent row prevents repeats."""
    return reminders.reminders_send_due()


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def waitlist_holds_expire() -> int:
    """Periodic (every minute): release expired holds and offer the seat to the next."""
    return waitlist.holds_expire()


@shared_task(acks_late=True, time_limit=300, soft_time_limit=270)
def idempotency_purge() -> int:
    """Periodic (daily): forget stored answers older than HUIZHEN_IDEMPOTENCY_TTL_HOURS."""
    return idempotency.purge_expired()


@shared_task(acks_late=True, time_limit=300, soft_time_limit=270)
def referrals_check() -> int:
    """Periodic (daily): referrals not confirmed by their check day alert the village doctor."""
    from . import programmes

    return programmes.referrals_check_due()


@shared_task(acks_late=True, time_limit=300, soft_time_limit=270)
def contracts_remind_renewal() -> int:
    """Periodic (daily): one renewal SMS per contract-year, stamped before it is queued."""
    from . import contracts

    return contracts.contracts_remind_renewal()
