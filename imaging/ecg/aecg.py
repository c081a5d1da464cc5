"""Reader of HL7 annotated ECG (aECG, HL7 v3 XML) files.

Reads the first rhythm series (``code="RHYTHM"``, else the first series): the time sequence
(``GLIST_TS``/``GLIST_PQ`` increment gives the sampling interval) and each lead's
``SLIST_PQ`` (origin + scale × digits). Patient name, ID, sex and birth date and the
acquisition time are taken when present. Documents with a DTD or entity declarations are
refused (no entity expansion, no external resources).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, datetime

import numpy as np

from .signal import EcgFormatError, EcgSignal, PatientData, complete_limb_leads, lead_name

NS = "urn:hl7-org:v3"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
MAX_BYTES = 50 * 1024 * 1024
_UNIT_UV = {"uV": 1.0, "mV": 1000.0, "V": 1e6, "nV": 0.001}
_UNIT_S = {"s": 1.0, "ms": 0.001, "us": 1e-6}


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _hl7_time(value: str | None) -> datetime | None:
    if not value:
        return None
    digits = re.match(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?", value)
    if not digits:
        return None
    parts = [int(p) if p else d for p, d in zip(digits.groups(), (0, 1, 1, 0, 0, 0), strict=True)]
    try:
        return datetime(*parts)
    except ValueError:
        return None


def _number(element: ET.Element | None, attr: str = "value") -> float | None:
    if element is None or element.get(attr) is None:
        return None
    try:
        return float(element.get(attr, ""))
    except ValueError as exc:
        raise EcgFormatError(f"Not a number in the aECG file: {element.get(attr)!r}.") from exc


def read_aecg(raw: bytes) -> EcgSignal:
    if len(raw) > MAX_BYTES:
        raise EcgFormatError("The aECG file is larger than 50 MB.")
    head = raw[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in raw.upper():
        raise EcgFormatError("aECG files with a DTD or entity declarations are not accepted.")
    try:
        # No DTD or entity declaration got this far (refused above), and ElementTree
        # resolves no external resources: nothing for an XML bomb or XXE to use.
        root = ET.fromstring(raw)  # noqa: S314
    except ET.ParseError as exc:
        raise EcgFormatError(f"The aECG file is not well-formed XML: {exc}.") from exc
    if root.tag != _q("AnnotatedECG"):
        raise EcgFormatError("Not an HL7 aECG document (the root is not AnnotatedECG).")

    series_list = list(root.iter(_q("series")))
    if not series_list:
        raise EcgFormatError("The aECG document holds no series.")
    chosen = next(
        (s for s in series_list if (s.find(_q("code")) is not None)
         and s.find(_q("code")).get("code") == "RHYTHM"),
        series_list[0],
    )  # fmt: skip
    interval = None
    leads: dict[str, np.ndarray] = {}
    resolution = None
    for sequence in chosen.iter(_q("sequence")):
        code = sequence.find(_q("code"))
        value = sequence.find(_q("value"))
        if code is None or value is None:
            continue
        name = code.get("code", "")
        kind = value.get(XSI_TYPE, "")
        if name.startswith("TIME_"):
            increment = value.find(_q("increment"))
            step = _number(increment)
            unit = increment.get("unit", "s") if increment is not None else "s"
            if step is None or unit not in _UNIT_S:
                raise EcgFormatError("The aECG time sequence has no usable increment.")
            interval = step * _UNIT_S[unit]
            continue
        if not kind.endswith("SLIST_PQ"):
            continue
        origin, scale = value.find(_q("origin")), value.find(_q("scale"))
        digits = value.find(_q("digits"))
        if digits is None or not (digits.text or "").strip():
            raise EcgFormatError(f"Lead {name} has no samples.")
        o = _number(origin) or 0.0
        s = _number(scale)
        if s is None:
            s = 1.0
        o_unit = _UNIT_UV.get(origin.get("unit", "uV") if origin is not None else "uV")
        s_unit = _UNIT_UV.get(scale.get("unit", "uV") if scale is not None else "uV")
        if o_unit is None or s_unit is None:
            raise EcgFormatError(f"Lead {name} has an amplitude unit other than V, mV or µV.")
        try:
            values = np.array(digits.text.split(), dtype=np.float64)
        except ValueError as exc:
            raise EcgFormatError(f"Lead {name} holds samples that are not numbers.") from exc
        leads[lead_name(name)] = o * o_unit + s * s_unit * values
        resolution = s * s_unit if resolution is None else min(resolution, s * s_unit)
    if interval is None or interval <= 0:
        raise EcgFormatError("The aECG series has no time sequence with an increment.")
    if not leads:
        raise EcgFormatError("The aECG series holds no lead.")

    patient = PatientData()
    person = next(root.iter(_q("subjectDemographicPerson")), None)
    if person is not None:
        name_el = person.find(_q("name"))
        if name_el is not None:
            family = name_el.findtext(_q("family"), "").strip()
            given = name_el.findtext(_q("given"), "").strip()
            text = (name_el.text or "").strip()
            patient.name = "^".join(p for p in (family, given) if p) or text
        gender = person.find(_q("administrativeGenderCode"))
        if gender is not None:
            patient.sex = {"M": "M", "F": "F"}.get(gender.get("code", ""), "")
        birth_el = person.find(_q("birthTime"))
        birth = _hl7_time(birth_el.get("value") if birth_el is not None else None)
        patient.birth_date = date(birth.year, birth.month, birth.day) if birth else None
    subject = next(root.iter(_q("trialSubject")), None)
    if subject is not None:
        ident = subject.find(_q("id"))
        if ident is not None:
            patient.patient_id = ident.get("extension", "") or ident.get("root", "")
    effective = root.find(_q("effectiveTime"))
    low = effective.find(_q("low")) if effective is not None else None
    acquired = _hl7_time(low.get("value") if low is not None else None)
    signal = EcgSignal(
        leads=leads,
        sample_rate=round(1.0 / interval, 6),
        resolution_uv=resolution or 1.0,
        patient=patient,
        acquired_at=acquired,
    )
    return complete_limb_leads(signal)
