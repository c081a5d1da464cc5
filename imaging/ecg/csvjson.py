"""Reader of the simple CSV and JSON formats for carts without SCP-ECG or DICOM export.

The formats are documented in docs/ecg-formats.md. In short:

CSV (UTF-8): optional ``# key: value`` lines (``sample_rate_hz`` required, ``units`` uV or
mV, default uV, ``acquired_at`` ISO 8601, ``device``), then a header row of lead names, then
one row per sample instant. An optional first column named ``time`` (or ``t``) is ignored.

JSON: ``{"format": "huizhen-ecg", "version": 1, "sample_rate_hz": 500, "units": "uV",
"acquired_at": "...", "device": "...", "leads": {"I": [...], "II": [...], ...}}``.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

import numpy as np

from .signal import EcgFormatError, EcgSignal, complete_limb_leads, lead_name

MAX_BYTES = 50 * 1024 * 1024
UNITS = {"uv": 1.0, "µv": 1.0, "mv": 1000.0}


def _text(raw: bytes) -> str:
    if len(raw) > MAX_BYTES:
        raise EcgFormatError("The file is larger than 50 MB.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EcgFormatError("The file is not UTF-8 text.") from exc


def _rate(value: Any) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError) as exc:
        raise EcgFormatError("sample_rate_hz is missing or not a number.") from exc
    return rate


def _units(value: Any) -> float:
    factor = UNITS.get(str(value or "uV").strip().lower())
    if factor is None:
        raise EcgFormatError(f"Unknown units {value!r}: use uV or mV.")
    return factor


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise EcgFormatError(f"acquired_at is not an ISO 8601 time: {value!r}.") from exc


def _resolution(leads: dict[str, np.ndarray]) -> float:
    """The largest quantum all samples are whole multiples of (1 µV when none fits)."""
    values = np.concatenate(list(leads.values()))
    for quantum in (5.0, 2.5, 1.0):
        if np.allclose(values / quantum, np.round(values / quantum), atol=1e-6):
            return quantum
    return 1.0


def read_csv(raw: bytes) -> EcgSignal:
    text = _text(raw)
    meta: dict[str, str] = {}
    body_lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            key, _, value = stripped[1:].partition(":")
            if not _:
                key, _, value = stripped[1:].partition("=")
            meta[key.strip().lower()] = value.strip()
        elif stripped:
            body_lines.append(stripped)
    if not body_lines:
        raise EcgFormatError("The CSV file has no header row and no samples.")
    rows = list(csv.reader(io.StringIO("\n".join(body_lines))))
    header = [h.strip() for h in rows[0]]
    skip = 1 if header and header[0].lower() in ("time", "t", "time_s", "time_ms") else 0
    names = [lead_name(h) for h in header[skip:]]
    if not names or len(set(names)) != len(names):
        raise EcgFormatError("The CSV header must name each lead once.")
    try:
        data = np.array([[float(v) for v in row[skip:]] for row in rows[1:]], dtype=np.float64)
    except ValueError as exc:
        raise EcgFormatError(f"A CSV sample is not a number: {exc}.") from exc
    if data.ndim != 2 or data.shape[1] != len(names):
        raise EcgFormatError("Every CSV row must hold one value per lead.")
    factor = _units(meta.get("units"))
    leads = {name: data[:, k] * factor for k, name in enumerate(names)}
    signal = EcgSignal(
        leads=leads,
        sample_rate=_rate(meta.get("sample_rate_hz") or meta.get("sample_rate")),
        resolution_uv=_resolution(leads),
        acquired_at=_when(meta.get("acquired_at")),
        device=meta.get("device", "")[:64],
    )
    return complete_limb_leads(signal)


def read_json(raw: bytes) -> EcgSignal:
    try:
        doc = json.loads(_text(raw))
    except json.JSONDecodeError as exc:
        raise EcgFormatError(f"The file is not valid JSON: {exc}.") from exc
    if not isinstance(doc, dict) or doc.get("format") != "huizhen-ecg":
        raise EcgFormatError('Not a Huizhen ECG JSON document ("format": "huizhen-ecg").')
    if doc.get("version", 1) != 1:
        raise EcgFormatError("Only version 1 of the ECG JSON format is known.")
    raw_leads = doc.get("leads")
    if not isinstance(raw_leads, dict) or not raw_leads:
        raise EcgFormatError('"leads" must map lead names to lists of samples.')
    factor = _units(doc.get("units"))
    leads = {}
    for name, values in raw_leads.items():
        try:
            leads[lead_name(str(name))] = np.asarray(values, dtype=np.float64) * factor
        except (TypeError, ValueError) as exc:
            raise EcgFormatError(f"Lead {name} holds values that are not numbers.") from exc
        if leads[lead_name(str(name))].ndim != 1:
            raise EcgFormatError(f"Lead {name} must be a flat list of samples.")
    signal = EcgSignal(
        leads=leads,
        sample_rate=_rate(doc.get("sample_rate_hz")),
        resolution_uv=_resolution(leads),
        acquired_at=_when(doc.get("acquired_at")),
        device=str(doc.get("device", ""))[:64],
    )
    return complete_limb_leads(signal)
