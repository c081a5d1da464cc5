"""Reads of schedules and slots (Schedule, Slot). They hold no patient data, so, like the
REST API's slot list and the Practitioner directory, they are not audited; they are scoped
to the organisations in the county trees of the principal's organisations (the community
whose clinics the user books into), so that another county's staff see none."""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import F, Q, QuerySet
from django.utils.translation import gettext as _

from appointments.models import Schedule, Slot, SlotStatus
from registry.access import Principal
from registry.errors import NotFound

from . import systems
from .search import SearchQuery, Token
from .selectors import NONE, _any_of, _county_roots, _ids_q, _uuid, date_q


def _in_community(principal: Principal, path_field: str) -> Q:
    q = NONE
    for root in _county_roots(principal):
        q |= Q(**{f"{path_field}__startswith": root})
    return q


def schedules_visible_to(principal: Principal) -> QuerySet[Schedule]:
    return Schedule.objects.filter(
        _in_community(principal, "organisation__path"), organisation__is_active=True
    )


def slots_visible_to(principal: Principal) -> QuerySet[Slot]:
    return Slot.objects.filter(schedule__in=schedules_visible_to(principal).values("pk"))


def _actor_q(prefix: str) -> Callable[[object], Q]:
    """An Organization (the schedule's organisation) or a Practitioner (its clinician)."""

    def build(value: object) -> Q:
        key = _uuid(value)
        if key is None:
            return NONE
        return Q(**{f"{prefix}organisation__external_id": key}) | Q(
            **{f"{prefix}clinician__staff__external_id": key}
        )

    return build


def _active_q(token: Token) -> Q:
    if token.code in ("true", "false"):
        return Q(is_active=token.code == "true")
    return NONE


SCHEDULE_FILTERS: dict[str, Callable[[str, tuple[object, ...]], Q]] = {
    "_id": lambda _m, values: _ids_q(values),
    "actor": lambda _m, values: _any_of(values, _actor_q("")),
    "active": lambda _m, values: _any_of(values, _active_q),
}
_SCHEDULE_RELATED = ("organisation", "clinician__staff")


def schedule_search(*, principal: Principal, query: SearchQuery) -> QuerySet[Schedule]:
    schedules = schedules_visible_to(principal)
    for criterion in query.criteria:
        schedules = schedules.filter(
            SCHEDULE_FILTERS[criterion.name](criterion.modifier, criterion.values)
        )
    return (
        schedules.select_related(*_SCHEDULE_RELATED)
        .prefetch_related("templates")
        .order_by("organisation__path", "name", "id")
    )


def schedule_read(*, principal: Principal, resource_id: str) -> Schedule:
    key = _uuid(resource_id)
    schedule = (
        schedules_visible_to(principal)
        .select_related(*_SCHEDULE_RELATED)
        .prefetch_related("templates")
        .filter(external_id=key)
        .first()
        if key
        else None
    )
    if schedule is None:
        raise NotFound(_("No such schedule."))
    return schedule


def _slot_status_q(token: Token) -> Q:
    open_ = Q(status=SlotStatus.OPEN, schedule__is_active=True)
    return {
        "free": open_ & Q(booked__lt=F("capacity")),
        "busy": open_ & Q(booked__gte=F("capacity")),
        "busy-unavailable": Q(status=SlotStatus.WITHDRAWN) | Q(schedule__is_active=False),
    }.get(token.code or "", NONE)


def _service_type_q(token: Token) -> Q:
    if token.system not in (None, systems.VISIT_TYPE) or not token.code:
        return NONE
    return Q(visit_type=token.code)


SLOT_FILTERS: dict[str, Callable[[str, tuple[object, ...]], Q]] = {
    "_id": lambda _m, values: _ids_q(values),
    "schedule": lambda _m, values: _any_of(values, lambda v: _ids_q((v,), "schedule__external_id")),
    "actor": lambda _m, values: _any_of(values, _actor_q("schedule__")),
    "start": lambda _m, values: _any_of(values, lambda v: date_q("starts_at__date", v)),
    "status": lambda _m, values: _any_of(values, _slot_status_q),
    "service-type": lambda _m, values: _any_of(values, _service_type_q),
}


def slot_search(*, principal: Principal, query: SearchQuery) -> QuerySet[Slot]:
    slots = slots_visible_to(principal)
    for criterion in query.criteria:
        slots = slots.filter(SLOT_FILTERS[criterion.name](criterion.modifier, criterion.values))
    return slots.select_related("schedule").order_by("starts_at", "id")


def slot_read(*, principal: Principal, resource_id: str) -> Slot:
    key = _uuid(resource_id)
    slot = (
        slots_visible_to(principal).select_related("schedule").filter(external_id=key).first()
        if key
        else None
    )
    if slot is None:
        raise NotFound(_("No such slot."))
    return slot
