"""Celery tasks of the pathology room: thin, idempotent, by id."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True, time_limit=3 * 3600, soft_time_limit=3 * 3600 - 60)
def slide_convert(conversion_id: int) -> str:
    """Convert one uploaded slide; a conversion already done or failed is left alone."""
    return services.slide_conversion_run(conversion_id=conversion_id)
