"""Visit reminders by SMS, ``HUIZHEN_REMINDER_OFFSETS_MINUTES`` before each confirmed visit
(24 h and 2 h by default).

A ``ReminderSent`` row (unique per booking and offset) is inserted in the same transaction as
the notification; a retried or parallel run meets the unique index and sends nothing. When
several offsets are due at once (the worker was down, or the booking was made late) one SMS
goes out and every due offset is recorded.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from registry.notifications import notify

from .models import Booking, ReminderSent
from .states import BookingStatus


def offsets() -> list[int]:
    raw = getattr(settings, "HUIZHEN_REMINDER_OFFSETS_MINUTES", (24 * 60, 120))
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    return sorted({int(v) for v in raw}, reverse=True)


def reminders_send_due(*, now: datetime | None = None) -> int:
    """Send every reminder that is due; returns how many SMS were queued."""
    now = now or timezone.now()
    wanted = offsets()
    if not wanted:
        return 0
    horizon = now + timedelta(minutes=max(wanted))
    candidates = (
        Booking.objects.filter(
            status=BookingStatus.CONFIRMED, starts_at__gt=now, starts_at__lte=horizon
        )
        .select_related("patient", "organisation")
        .prefetch_related("reminders")
        .order_by("starts_at")
    )
    sent = 0
    for booking in candidates.iterator(chunk_size=200):
        done = {r.offset_minutes for r in booking.reminders.all()}
        due = [
            o
            for o in wanted
            if o not in done
            and booking.starts_at - timedelta(minutes=o) <= now
            and booking.created_at < booking.starts_at - timedelta(minutes=o)
        ]
        if due and _send(booking, due):
            sent += 1
    return sent


def _send(booking: Booking, due: list[int]) -> bool:
    try:
        with transaction.atomic():
            for offset in due:
                ReminderSent.objects.create(booking=booking, offset_minutes=offset)
            # Re-check under the row lock: a cancellation may have landed meanwhile.
            still = Booking.objects.select_for_update().filter(
                pk=booking.pk, status=BookingStatus.CONFIRMED, starts_at__gt=F("created_at")
            )
            if not still.exists():
                transaction.set_rollback(True)
                return False
            local = timezone.localtime(booking.starts_at)
            notify(
                patient=booking.patient,
                category="appointments.reminder",
                title=_("Visit reminder"),
                body=_("Your %(visit)s at %(clinic)s is on %(when)s.")
                % {
                    "visit": booking.get_visit_type_display(),
                    "clinic": booking.organisation.name,
                    "when": formats.date_format(local, "SHORT_DATETIME_FORMAT"),
                },
                data={"booking": str(booking.external_id), "offsets": due},
                channels=("sms",),
            )
    except IntegrityError:  # another run recorded it first
        return False
    return True
