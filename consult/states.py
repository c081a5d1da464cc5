"""Statuses of a consult request and the table of transitions between them.

Every change of ``ConsultRequest.state`` goes through ``check`` (called by the transition
services with the row locked), so that nothing outside this table can happen.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from registry.errors import Conflict


class ConsultState(models.TextChoices):
    DRAFT = "draft", gettext_lazy("Draft")
    SUBMITTED = "submitted", gettext_lazy("Submitted")
    QUEUED = "queued", gettext_lazy("Queued at a centre")
    ACCEPTED = "accepted", gettext_lazy("Accepted")
    IN_PROGRESS = "in_progress", gettext_lazy("Being read")
    REPORTED = "reported", gettext_lazy("Report written")
    SIGNED = "signed", gettext_lazy("Report signed")
    DELIVERED = "delivered", gettext_lazy("Report delivered")
    CLOSED = "closed", gettext_lazy("Closed")
    DECLINED = "declined", gettext_lazy("Declined")
    RETURNED = "returned", gettext_lazy("Returned for more information")
    CANCELLED = "cancelled", gettext_lazy("Cancelled")


S = ConsultState

# from-state -> the states it may move to. A pair missing here is refused with 409.
TRANSITIONS: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.SUBMITTED, S.CANCELLED}),
    # Routing moves a submitted consult on to a centre's queue in the same transaction.
    S.SUBMITTED: frozenset({S.QUEUED, S.CANCELLED}),
    # queued -> queued: re-routed to another centre (SLA escalation) or reassigned.
    S.QUEUED: frozenset({S.QUEUED, S.ACCEPTED, S.DECLINED, S.RETURNED, S.CANCELLED}),
    # accepted -> queued: re-routed after a missed deadline.
    S.ACCEPTED: frozenset({S.QUEUED, S.IN_PROGRESS, S.DECLINED, S.RETURNED, S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.REPORTED, S.RETURNED, S.CANCELLED}),
    # The draft report stays editable while reported; signing freezes it.
    S.REPORTED: frozenset({S.SIGNED}),
    S.SIGNED: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
    # A declined consult is re-routed to the next centre, or waits for its requester.
    S.DECLINED: frozenset({S.QUEUED, S.SUBMITTED, S.CANCELLED}),
    S.RETURNED: frozenset({S.SUBMITTED, S.CANCELLED}),
    S.CANCELLED: frozenset(),
}

TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
# States in which the requesting side may still edit the request and its attachments.
EDITABLE = frozenset({S.DRAFT, S.RETURNED, S.DECLINED})
# States in which a centre holds the consult (its open load, its worklist).
OPEN_AT_CENTRE = frozenset({S.QUEUED, S.ACCEPTED, S.IN_PROGRESS, S.REPORTED})


def allowed_from(state: str) -> list[str]:
    return sorted(TRANSITIONS.get(state, frozenset()))


def check(current: str, target: str) -> None:
    """Raise Conflict naming the allowed transitions when ``current -> target`` is illegal."""
    if target not in TRANSITIONS.get(current, frozenset()):
        allowed = allowed_from(current)
        raise Conflict(
            _("A consult in state “%(current)s” cannot move to “%(target)s”. Allowed: %(allowed)s.")
            % {
                "current": current,
                "target": target,
                "allowed": ", ".join(allowed) if allowed else _("none"),
            },
            code="illegal_transition",
            allowed=allowed,
            current=current,
        )
