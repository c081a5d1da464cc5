"""Booking statuses and the transitions between them."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class BookingStatus(models.TextChoices):
    REQUESTED = "requested", _("Awaiting confirmation")
    CONFIRMED = "confirmed", _("Confirmed")
    CHECKED_IN = "checked_in", _("Checked in")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")
    REJECTED = "rejected", _("Declined by the clinic")
    NO_SHOW = "no_show", _("Did not attend")


# A booking in one of these holds a seat of its slot and counts for "one per type and day".
ACTIVE_STATUSES = frozenset({"requested", "confirmed", "checked_in"})

TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"confirmed", "rejected", "cancelled"}),
    "confirmed": frozenset({"checked_in", "cancelled", "no_show"}),
    "checked_in": frozenset({"completed"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
    "rejected": frozenset(),
    "no_show": frozenset(),
}

# Leaving an active status for one of these gives the seat back.
RELEASES_SEAT = frozenset({"cancelled", "rejected"})


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())
