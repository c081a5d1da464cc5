"""Reads of home and visit readings (Observation): blood pressure and blood glucose only.

Scoped as the REST API's readings: a clinical role (``require_role``) and a patient the
principal may see (``registry.access.patients_visible_to``; one reading through
``access_patient``, which audits the read and any refusal). A search writes one
``reading.search`` row naming its parameters, never their values.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from appointments.chronic_models import Reading
from registry import audit
from registry.access import (
    CLINICAL_ROLES,
    Principal,
    access_patient,
    patients_visible_to,
    require_role,
)
from registry.errors import NotFound

from . import systems
from .search import SearchQuery, Token
from .selectors import NONE, _any_of, _ids_q, _uuid, date_q

# LOINC code -> the reading kinds it finds (the BP panel and its components find BP readings).
KINDS_OF_LOINC: dict[str, tuple[str, ...]] = {
    systems.LOINC_BP_PANEL: ("blood_pressure",),
    systems.LOINC_SYSTOLIC: ("blood_pressure",),
    systems.LOINC_DIASTOLIC: ("blood_pressure",),
    systems.LOINC_GLUCOSE_FASTING: ("fasting_glucose",),
    systems.LOINC_GLUCOSE: ("random_glucose",),
}
SERVED_KINDS = ("blood_pressure", "fasting_glucose", "random_glucose")
KINDS_OF_CATEGORY = {
    "vital-signs": ("blood_pressure",),
    "laboratory": ("fasting_glucose", "random_glucose"),
}


def _patient_q(value: object) -> Q:
    key = _uuid(value)
    return Q(patient__external_id=key) if key else NONE


def _code_q(token: Token) -> Q:
    if token.system not in (None, systems.LOINC) or token.code is None:
        return NONE
    return Q(kind__in=KINDS_OF_LOINC.get(token.code, ()))


def _category_q(token: Token) -> Q:
    if token.system not in (None, systems.OBSERVATION_CATEGORY):
        return NONE
    return Q(kind__in=KINDS_OF_CATEGORY.get(token.code or "", ()))


OBSERVATION_FILTERS: dict[str, Callable[[str, tuple[object, ...]], Q]] = {
    "_id": lambda _m, values: _ids_q(values),
    "patient": lambda _m, values: _any_of(values, _patient_q),
    "subject": lambda _m, values: _any_of(values, _patient_q),
    "code": lambda _m, values: _any_of(values, _code_q),
    "category": lambda _m, values: _any_of(values, _category_q),
    "date": lambda _m, values: _any_of(values, lambda v: date_q("taken_at__date", v)),
}


def _served() -> QuerySet[Reading]:
    return Reading.objects.filter(kind__in=SERVED_KINDS)


def observation_search(*, principal: Principal, query: SearchQuery) -> QuerySet[Reading]:
    require_role(principal, CLINICAL_ROLES, action="reading.search")
    readings = _served().filter(patient__in=patients_visible_to(principal).values("pk"))
    for criterion in query.criteria:
        readings = readings.filter(
            OBSERVATION_FILTERS[criterion.name](criterion.modifier, criterion.values)
        )
    audit.record(
        actor=principal.actor,
        action="reading.search",
        object_type="reading",
        detail={"criteria": query.names(), "interface": "fhir"},
    )
    return readings.select_related("patient").order_by("-taken_at", "-pk")


def observation_read(*, principal: Principal, resource_id: str) -> Reading:
    """Through the patient gate (audited as ``reading.read``; NotFound when hidden)."""
    require_role(principal, CLINICAL_ROLES, action="reading.read")
    key = _uuid(resource_id)
    patient_key = (
        _served().filter(external_id=key).values_list("patient__external_id", flat=True).first()
        if key
        else None
    )
    if patient_key is None:
        raise NotFound(_("No such observation."))
    access_patient(principal, patient_key, action="reading.read")
    return _served().select_related("patient").get(external_id=key)
