"""Notifying people: one call, WebSocket push and SMS, with a delivery log.

``notify`` writes the notification and its delivery rows in the caller's transaction; the
push and the SMS go out after commit (the SMS through a Celery task that retries a
retryable gateway failure a bounded number of times and never sends twice once sent).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from . import sms
from .identity import mask_mobile
from .models import (
    Notification,
    NotificationChannel,
    NotificationDelivery,
    Patient,
    StaffProfile,
)

logger = logging.getLogger(__name__)
User = get_user_model()


def user_group(user_external_id: str) -> str:
    return f"user.{user_external_id}"


def notify(
    *,
    user: Any | None = None,
    patient: Patient | None = None,
    category: str,
    title: str,
    body: str,
    data: dict[str, Any] | None = None,
    channels: Iterable[str] = (NotificationChannel.PUSH, NotificationChannel.SMS),
) -> Notification:
    """Notify a staff user or a patient. Push goes to staff only; SMS to whoever has a mobile."""
    if (user is None) == (patient is None):
        raise ValueError("notify() takes exactly one recipient")
    with transaction.atomic():
        notification = Notification.objects.create(
            user=user,
            patient=patient,
            category=category,
            title=title,
            body=body,
            data=data or {},
        )
        mobile = _mobile_of(user=user, patient=patient)
        wanted = set(channels)
        rows = []
        if NotificationChannel.PUSH in wanted and user is not None:
            rows.append(NotificationDelivery(notification=notification, channel="push"))
        if NotificationChannel.SMS in wanted and mobile:
            rows.append(
                NotificationDelivery(
                    notification=notification, channel="sms", address=mask_mobile(mobile)
                )
            )
        NotificationDelivery.objects.bulk_create(rows)
    for row in rows:
        if row.channel == NotificationChannel.PUSH:
            transaction.on_commit(lambda r=row: push_send(r.id))
        else:
            transaction.on_commit(lambda r=row: _enqueue_sms(r.id))
    return notification


def _mobile_of(*, user: Any | None, patient: Patient | None) -> str:
    if patient is not None:
        return patient.mobile
    profile = StaffProfile.objects.filter(user=user).only("mobile").first()
    return profile.mobile if profile else ""


def _enqueue_sms(delivery_id: int) -> None:
    from .tasks import notification_sms_send

    try:
        notification_sms_send.delay(delivery_id)
    except Exception:  # noqa: BLE001 - broker down: the row stays pending and is swept later
        logger.warning("could not enqueue SMS delivery", exc_info=True)


def push_send(delivery_id: int) -> None:
    """Push to the recipient's open WebSocket connections (best effort, logged)."""
    row = NotificationDelivery.objects.select_related("notification__user__staff").get(
        id=delivery_id
    )
    note = row.notification
    profile = getattr(note.user, "staff", None)
    if profile is None:
        NotificationDelivery.objects.filter(id=row.id).update(
            status="failed", error="recipient has no staff profile"
        )
        return
    layer = get_channel_layer()
    try:
        async_to_sync(layer.group_send)(
            user_group(str(profile.external_id)),
            {
                "type": "notification.push",
                "notification": {
                    "id": str(note.external_id),
                    "category": note.category,
                    "title": note.title,
                    "body": note.body,
                    "data": note.data,
                    "created_at": note.created_at.isoformat(),
                },
            },
        )
    except Exception as exc:  # noqa: BLE001 - push is best effort; the row records why
        NotificationDelivery.objects.filter(id=row.id).update(
            status="failed", attempts=row.attempts + 1, error=type(exc).__name__
        )
        return
    NotificationDelivery.objects.filter(id=row.id).update(
        status="sent", attempts=row.attempts + 1, sent_at=timezone.now()
    )


def sms_send(delivery_id: int) -> str:
    """Send one SMS delivery if still pending. Returns the row's status afterwards.

    The row is locked while sending, so two workers never send the same message. Raises
    sms.SmsError(retryable=True) after recording the attempt, so that the task can retry;
    the row then stays pending.
    """
    retry_error: sms.SmsError | None = None
    with transaction.atomic():
        row = (
            NotificationDelivery.objects.select_for_update(of=("self",))
            .select_related("notification__patient", "notification__user")
            .get(id=delivery_id)
        )
        if row.status != "pending":
            return row.status
        note = row.notification
        mobile = _mobile_of(user=note.user, patient=note.patient)
        row.attempts += 1
        fields = ["status", "error", "attempts", "updated_at"]
        if not mobile:
            row.status, row.error = "failed", "recipient has no mobile number"
        else:
            try:
                row.provider_reference = sms.send(
                    sms.SmsMessage(
                        mobile=mobile,
                        text=f"{note.title}: {note.body}",
                        reference=str(row.external_id),
                    )
                )
            except sms.SmsError as exc:
                row.error = str(exc)[:500]
                if exc.retryable:
                    retry_error = exc
                else:
                    row.status = "failed"
            else:
                row.status, row.sent_at, row.error = "sent", timezone.now(), ""
                fields += ["provider_reference", "sent_at"]
        row.save(update_fields=fields)
    if retry_error is not None:
        raise retry_error
    return row.status
