"""Readings: entered at a visit by staff (gated, audited) or at home by the patient in the
portal; the reads behind the trend charts. Any reading past the urgent thresholds alerts the
village doctor (``programmes.readings_check_urgent``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import audit
from registry.access import CLINICAL_ROLES, Principal, access_patient, require_role
from registry.errors import ValidationFailed
from registry.models import Patient

from . import programme_rules, programmes
from .chronic_models import Reading, ReadingKind, ReadingSource

# Plausible ranges: anything outside is a typing error, not a reading.
LIMITS: dict[str, tuple[Decimal, Decimal]] = {
    ReadingKind.BLOOD_PRESSURE: (Decimal(50), Decimal(300)),
    ReadingKind.HEART_RATE: (Decimal(20), Decimal(250)),
    ReadingKind.FASTING_GLUCOSE: (Decimal("1.0"), Decimal("40.0")),
    ReadingKind.RANDOM_GLUCOSE: (Decimal("1.0"), Decimal("40.0")),
    ReadingKind.HBA1C: (Decimal("3.0"), Decimal("20.0")),
    ReadingKind.WEIGHT: (Decimal(2), Decimal(300)),
    ReadingKind.HEIGHT: (Decimal(40), Decimal(250)),
    ReadingKind.BMI: (Decimal(8), Decimal(80)),
    ReadingKind.WAIST: (Decimal(30), Decimal(250)),
    ReadingKind.SMOKING: (Decimal(0), Decimal(100)),
    ReadingKind.ADHERENCE: (Decimal(1), Decimal(3)),
}
DIASTOLIC_LIMITS = (Decimal(20), Decimal(200))
PATIENT_KINDS = frozenset(
    {
        ReadingKind.BLOOD_PRESSURE,
        ReadingKind.HEART_RATE,
        ReadingKind.FASTING_GLUCOSE,
        ReadingKind.RANDOM_GLUCOSE,
        ReadingKind.WEIGHT,
        ReadingKind.WAIST,
    }
)


@dataclass(frozen=True)
class ReadingInput:
    kind: str
    value: Any
    value2: Any = None
    taken_at: datetime | None = None


def _number(raw: Any, field: str) -> Decimal:
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise ValidationFailed(_("Enter a number."), fields={field: "number"}) from None
    if not value.is_finite():
        raise ValidationFailed(_("Enter a number."), fields={field: "number"})
    return value.quantize(Decimal("0.1"))


def _clean(data: ReadingInput, allowed: frozenset[str] | None = None) -> tuple:
    if data.kind not in ReadingKind.values or (allowed is not None and data.kind not in allowed):
        raise ValidationFailed(_("Unknown kind of reading."), fields={"kind": data.kind})
    value = _number(data.value, "value")
    low, high = LIMITS[data.kind]
    if not low <= value <= high:
        raise ValidationFailed(
            _("%(value)s is outside %(low)s–%(high)s.")
            % {"value": value, "low": low, "high": high},
            fields={"value": "range"},
        )
    value2 = None
    if data.kind == ReadingKind.BLOOD_PRESSURE:
        if data.value2 in (None, ""):
            raise ValidationFailed(_("Enter the lower (diastolic) value."), fields={"value2": ""})
        value2 = _number(data.value2, "value2")
        if not DIASTOLIC_LIMITS[0] <= value2 <= DIASTOLIC_LIMITS[1] or value2 >= value:
            raise ValidationFailed(
                _("The lower value must be below the upper value."), fields={"value2": "range"}
            )
    now = timezone.now()
    taken_at = data.taken_at or now
    if taken_at > now + timedelta(minutes=5) or taken_at < now - timedelta(days=366):
        raise ValidationFailed(
            _("The time of the reading is not plausible."), fields={"taken_at": ""}
        )
    return value, value2, taken_at


def _urgent_input(reading: Reading) -> programme_rules.Readings:
    kind = reading.kind
    return programme_rules.Readings(
        sbp=int(reading.value) if kind == ReadingKind.BLOOD_PRESSURE else None,
        dbp=int(reading.value2) if kind == ReadingKind.BLOOD_PRESSURE else None,
        fasting_glucose=reading.value if kind == ReadingKind.FASTING_GLUCOSE else None,
        random_glucose=reading.value if kind == ReadingKind.RANDOM_GLUCOSE else None,
    )


@transaction.atomic
def _record(
    *, patient: Patient, data: ReadingInput, source: str, actor: audit.Actor, user: Any, allowed
) -> Reading:
    value, value2, taken_at = _clean(data, allowed)
    reading = Reading.objects.create(
        patient=patient,
        kind=data.kind,
        value=value,
        value2=value2,
        taken_at=taken_at,
        source=source,
        created_by=user,
    )
    audit.record(
        actor=actor,
        action="reading.create",
        object_type="reading",
        object_id=str(reading.external_id),
        patient_id=patient.external_id,
        subject_organisation_id=patient.home_organisation_id,
        detail={"kind": data.kind, "source": source},
    )
    programmes.readings_check_urgent(patient=patient, readings=_urgent_input(reading))
    return reading


def reading_record_by_staff(
    *, principal: Principal, patient_id: uuid.UUID | str, data: ReadingInput
) -> Reading:
    require_role(principal, CLINICAL_ROLES, action="reading.create")
    patient = access_patient(principal, patient_id, action="reading.create")
    return _record(
        patient=patient,
        data=data,
        source=ReadingSource.VISIT,
        actor=principal.actor,
        user=principal.user,
        allowed=None,
    )


def reading_record_by_patient(*, patient: Patient, data: ReadingInput, actor: audit.Actor):
    """Precondition: ``patient`` is the signed-in portal patient."""
    return _record(
        patient=patient,
        data=data,
        source=ReadingSource.PATIENT,
        actor=actor,
        user=None,
        allowed=PATIENT_KINDS,
    )


def readings_of(*, patient: Patient, kind: str | None = None, days: int = 365) -> QuerySet[Reading]:
    """A patient's readings of the last ``days`` days, oldest first. Precondition: gate
    passed (staff) or the signed-in patient."""
    qs = Reading.objects.filter(
        patient=patient, taken_at__gte=timezone.now() - timedelta(days=days)
    )
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("taken_at", "id")


def readings_for_staff(
    *, principal: Principal, patient_id: uuid.UUID | str, kind: str | None, days: int = 365
) -> tuple[Patient, QuerySet[Reading]]:
    require_role(principal, CLINICAL_ROLES, action="reading.list")
    patient = access_patient(principal, patient_id, action="reading.list")
    return patient, readings_of(patient=patient, kind=kind, days=days)


CHART_KINDS = (
    ReadingKind.BLOOD_PRESSURE,
    ReadingKind.FASTING_GLUCOSE,
    ReadingKind.HBA1C,
    ReadingKind.WEIGHT,
)


def trend_charts(*, patient: Patient, days: int = 365) -> list[tuple[str, str]]:
    """(kind, SVG) for each kind the patient has readings of. Precondition: gate passed."""
    from . import charts

    by_kind: dict[str, list[Reading]] = {}
    for reading in readings_of(patient=patient, days=days).filter(kind__in=CHART_KINDS):
        by_kind.setdefault(reading.kind, []).append(reading)
    out = []
    for kind in CHART_KINDS:
        rows = by_kind.get(kind)
        if not rows:
            continue
        label = str(ReadingKind(kind).label)
        unit = label[label.rfind("(") + 1 : -1] if "(" in label else ""
        title = label[: label.rfind("(")].strip() if "(" in label else label
        if kind == ReadingKind.BLOOD_PRESSURE:
            chart = charts.Chart(
                title=title,
                unit=unit,
                series=[
                    charts.Series(_("Systolic"), [(r.taken_at, r.value) for r in rows]),
                    charts.Series(_("Diastolic"), [(r.taken_at, r.value2) for r in rows]),
                ],
                targets=[(140.0, _("target")), (90.0, _("target"))],
            )
        elif kind == ReadingKind.FASTING_GLUCOSE:
            chart = charts.Chart(
                title=title,
                unit=unit,
                series=[charts.Series(title, [(r.taken_at, r.value) for r in rows])],
                targets=[(7.0, _("target"))],
            )
        else:
            chart = charts.Chart(
                title=title,
                unit=unit,
                series=[charts.Series(title, [(r.taken_at, r.value) for r in rows])],
            )
        out.append((kind, charts.render_svg(chart)))
    return out
