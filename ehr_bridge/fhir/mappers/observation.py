"""Observation: a blood pressure reading (a panel with systolic and diastolic components) or
a blood glucose reading (mmol/L)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from fhir.resources.R4B.observation import Observation

from appointments.chronic_models import Reading

from .. import systems
from .common import last_updated


def _loinc(code: str, display: str) -> dict[str, Any]:
    return {
        "coding": [{"system": systems.LOINC, "code": code, "display": display}],
        "text": display,
    }


def _category(code: str, display: str) -> list[dict[str, Any]]:
    return [
        {"coding": [{"system": systems.OBSERVATION_CATEGORY, "code": code, "display": display}]}
    ]


def _quantity(value: Any, unit: str, code: str) -> dict[str, Any]:
    return {"value": float(value), "unit": unit, "system": systems.UCUM, "code": code}


def observation_to_fhir(reading: Reading) -> Observation:
    """Needs ``patient`` selected. Only blood pressure and glucose readings are served."""
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(reading.external_id),
        **last_updated(reading.updated_at),
        "status": "final",
        "subject": {"reference": f"Patient/{reading.patient.external_id}"},
        "effectiveDateTime": reading.taken_at.isoformat(),
    }
    if reading.source == "patient":
        body["performer"] = [{"reference": f"Patient/{reading.patient.external_id}"}]
        body["method"] = {"text": _("Measured by the patient at home")}
    if reading.kind == "blood_pressure":
        mmhg = ("mmHg", "mm[Hg]")
        body.update(
            category=_category("vital-signs", "Vital Signs"),
            code=_loinc(systems.LOINC_BP_PANEL, "Blood pressure panel with all children optional"),
            component=[
                {
                    "code": _loinc(systems.LOINC_SYSTOLIC, "Systolic blood pressure"),
                    "valueQuantity": _quantity(reading.value, *mmhg),
                },
                {
                    "code": _loinc(systems.LOINC_DIASTOLIC, "Diastolic blood pressure"),
                    "valueQuantity": _quantity(reading.value2, *mmhg),
                },
            ],
        )
    else:
        fasting = reading.kind == "fasting_glucose"
        code = (
            _loinc(
                systems.LOINC_GLUCOSE_FASTING, "Fasting glucose [Moles/volume] in Serum or Plasma"
            )
            if fasting
            else _loinc(systems.LOINC_GLUCOSE, "Glucose [Moles/volume] in Blood")
        )
        body.update(
            category=_category("laboratory", "Laboratory"),
            code=code,
            valueQuantity=_quantity(reading.value, "mmol/L", "mmol/L"),
        )
    return Observation.model_validate(body)
