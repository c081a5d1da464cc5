"""Celery tasks of the consult workflow: thin, idempotent, each calls one service."""

from __future__ import annotations

from celery import shared_task

from . import critical, recording, sla


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def sla_sweep() -> int:
    """Periodic: escalate consults past their accept or report deadline (each step once)."""
    return sla.sla_escalate_due()


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def critical_value_sweep() -> int:
    """Periodic: escalate critical values not acknowledged in time (each step once)."""
    return critical.critical_values_escalate_due()


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540)
def recordings_purge() -> int:
    """Periodic: delete the files of recordings past their retention date (rows stay), and
    fail recordings whose recorder process was lost."""
    return recording.recordings_purge_expired() + recording.recordings_fail_stale()
