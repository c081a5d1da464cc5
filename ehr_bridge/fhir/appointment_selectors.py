"""Reads of bookings (Appointment), scoped by the appointments app's gate
(``appointments.access.bookings_visible_to``; one booking through
``appointments.services.staff_booking``, which audits a refusal). A read is audited as the
REST API's booking read is; a search writes one ``booking.search`` row naming its
parameters, never their values."""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Q, QuerySet

from appointments import services as appointment_services
from appointments.access import bookings_visible_to
from appointments.models import Booking
from registry import audit
from registry.access import Principal

from .search import SearchQuery, Token
from .selectors import NONE, _any_of, _ids_q, _uuid, date_q

# FHIR Appointment.status -> the booking statuses it stands for.
STATUSES_OF_APPOINTMENT_STATUS: dict[str, tuple[str, ...]] = {
    "pending": ("requested",),
    "booked": ("confirmed",),
    "checked-in": ("checked_in",),
    "fulfilled": ("completed",),
    "cancelled": ("cancelled", "rejected"),
    "noshow": ("no_show",),
}
_RELATED = ("patient", "slot__schedule__clinician__staff", "organisation")


def _patient_q(value: object) -> Q:
    key = _uuid(value)
    return Q(patient__external_id=key) if key else NONE


def _status_q(token: Token) -> Q:
    return Q(status__in=STATUSES_OF_APPOINTMENT_STATUS.get(token.code or "", ()))


APPOINTMENT_FILTERS: dict[str, Callable[[str, tuple[object, ...]], Q]] = {
    "_id": lambda _m, values: _ids_q(values),
    "patient": lambda _m, values: _any_of(values, _patient_q),
    "actor": lambda _m, values: _any_of(values, _patient_q),
    "date": lambda _m, values: _any_of(values, lambda v: date_q("day", v)),
    "status": lambda _m, values: _any_of(values, _status_q),
    "slot": lambda _m, values: _any_of(values, lambda v: _ids_q((v,), "slot__external_id")),
}


def appointment_search(*, principal: Principal, query: SearchQuery) -> QuerySet[Booking]:
    bookings = bookings_visible_to(principal)
    for criterion in query.criteria:
        bookings = bookings.filter(
            APPOINTMENT_FILTERS[criterion.name](criterion.modifier, criterion.values)
        )
    audit.record(
        actor=principal.actor,
        action="booking.search",
        object_type="booking",
        detail={"criteria": query.names(), "interface": "fhir"},
    )
    return bookings.select_related(*_RELATED).order_by("starts_at", "id")


def appointment_read(*, principal: Principal, resource_id: str) -> Booking:
    """Through the appointments gate (NotFound, audited, for what is not visible)."""
    booking = appointment_services.staff_booking(principal, resource_id, action="booking.read")
    appointment_services.audit_read(principal.actor, booking)
    return Booking.objects.select_related(*_RELATED).get(pk=booking.pk)
