"""The structured sections of a report for each consult type, and their validation.

Pure: no ORM. A report keeps its free-text ``findings`` and ``impression``; the sections
here are stored in ``Report.structured`` (a JSON object) and checked against the consult
type before anything is written. ICD-10 codes reuse the registry's validation (the one used
for patients' chronic conditions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from registry.errors import ValidationFailed
from registry.identity import IdentityError, normalise_icd10

from .models import ConsultType, RecommendationKind

TEXT_LIMIT = 4000
MAX_ICD10 = 10


@dataclass(frozen=True)
class Section:
    key: str
    label: Any  # lazy translation
    kind: str = "text"  # "text" or "int"
    low: int | None = None
    high: int | None = None
    unit: str = ""


ECG_SECTIONS = (
    Section("rhythm", gettext_lazy("Rhythm")),
    Section("rate", gettext_lazy("Heart rate"), "int", 10, 350, "bpm"),
    Section("axis", gettext_lazy("Axis"), "int", -180, 180, "°"),
    Section("pr_ms", gettext_lazy("PR interval"), "int", 0, 1000, "ms"),
    Section("qrs_ms", gettext_lazy("QRS duration"), "int", 0, 1000, "ms"),
    Section("qt_ms", gettext_lazy("QT interval"), "int", 0, 1000, "ms"),
    Section("qtc_ms", gettext_lazy("QTc interval"), "int", 0, 1000, "ms"),
    Section("st_t", gettext_lazy("ST-T")),
    Section("conclusion", gettext_lazy("Conclusion")),
)
IMAGING_SECTIONS = (
    Section("examination", gettext_lazy("Examination")),
    Section("comparison", gettext_lazy("Comparison")),
)
PATHOLOGY_SECTIONS = (
    Section("gross", gettext_lazy("Gross description")),
    Section("microscopic", gettext_lazy("Microscopic description")),
    Section("diagnosis", gettext_lazy("Pathological diagnosis")),
)

SECTIONS: dict[str, tuple[Section, ...]] = {
    ConsultType.ECG_READ: ECG_SECTIONS,
    ConsultType.IMAGING_READ: IMAGING_SECTIONS,
    ConsultType.PATHOLOGY_READ: PATHOLOGY_SECTIONS,
}


def sections_for(consult_type: str) -> tuple[Section, ...]:
    return SECTIONS.get(consult_type, ())


@dataclass(frozen=True)
class Structure:
    """What a report editor sent, checked: sections, codes and the recommendation."""

    structured: dict[str, Any]
    icd10_codes: list[str]
    recommendation_kind: str
    follow_up_days: int | None


def _section_value(section: Section, value: Any) -> tuple[Any, str | None]:
    if value is None or value == "":
        return None, None
    if section.kind == "int":
        if isinstance(value, bool):
            return None, _("Enter a whole number.")
        try:
            number = int(str(value).strip())
        except (TypeError, ValueError):
            return None, _("Enter a whole number.")
        assert section.low is not None and section.high is not None
        if not section.low <= number <= section.high:
            return None, _("Between %(low)s and %(high)s.") % {
                "low": section.low,
                "high": section.high,
            }
        return number, None
    if not isinstance(value, str) or "\x00" in value:
        return None, _("Enter text.")
    text = value.strip()
    if len(text) > TEXT_LIMIT:
        return None, _("At most %(n)s characters.") % {"n": TEXT_LIMIT}
    return text or None, None


def validate(
    *,
    consult_type: str,
    structured: Any,
    icd10_codes: Any,
    recommendation_kind: str | None,
    follow_up_days: Any,
) -> Structure:
    """Check the structured part of a report for a consult type; raise ValidationFailed
    naming every field that is wrong (``structured.<key>``, ``icd10_codes``, …)."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    structured = structured if structured is not None else {}
    if not isinstance(structured, dict):
        errors["structured"] = _("Send the report sections as name/value pairs.")
        structured = {}
    known = {s.key: s for s in sections_for(consult_type)}
    for key in structured:
        if key not in known:
            errors[f"structured.{key}"] = _("This consult type has no section “%(key)s”.") % {
                "key": key
            }
    for key, section in known.items():
        value, error = _section_value(section, structured.get(key))
        if error:
            errors[f"structured.{key}"] = error
        elif value is not None:
            clean[key] = value
    codes: list[str] = []
    icd10_codes = icd10_codes if icd10_codes is not None else []
    if not isinstance(icd10_codes, list):
        errors["icd10_codes"] = _("Send a list of ICD-10 codes.")
    elif len(icd10_codes) > MAX_ICD10:
        errors["icd10_codes"] = _("At most %(n)s codes.") % {"n": MAX_ICD10}
    else:
        for code in icd10_codes:
            try:
                normalised = normalise_icd10(str(code) if code is not None else "")
            except IdentityError as exc:
                errors["icd10_codes"] = str(exc)
                continue
            if normalised not in codes:
                codes.append(normalised)
    kind = (recommendation_kind or "").strip()
    days: int | None = None
    if kind and kind not in RecommendationKind.values:
        errors["recommendation_kind"] = _("Choose one of: %(kinds)s.") % {
            "kinds": ", ".join(RecommendationKind.values)
        }
    if kind == RecommendationKind.FOLLOW_UP:
        try:
            days = int(follow_up_days) if not isinstance(follow_up_days, bool) else None
        except (TypeError, ValueError):
            days = None
        if days is None or not 1 <= days <= 365:
            errors["follow_up_days"] = _("Follow up in 1 to 365 days.")
            days = None
    elif follow_up_days not in (None, ""):
        errors["follow_up_days"] = _("Days are only for the “follow up in N days” recommendation.")
    if errors:
        raise ValidationFailed(_("Some report fields are not valid."), fields=errors)
    return Structure(
        structured=clean, icd10_codes=codes, recommendation_kind=kind, follow_up_days=days
    )


def labelled(consult_type: str, structured: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value with unit) of the filled sections, in the type's order."""
    rows = []
    for section in sections_for(consult_type):
        value = structured.get(section.key)
        if value in (None, ""):
            continue
        text = f"{value} {section.unit}".strip() if section.unit else str(value)
        rows.append((str(section.label), text))
    return rows
