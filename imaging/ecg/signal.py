"""The in-memory ECG every reader produces and every consumer takes.

Samples are microvolts (float64), one array per lead, all leads the same length and
sampled at the same rate. ``resolution_uv`` is the quantum the source stored samples in
(e.g. 5 µV), so that a conversion to DICOM can keep the values exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LIMB_DERIVED = ("III", "aVR", "aVL", "aVF")

_ALIASES = {
    "i": "I", "ii": "II", "iii": "III", "avr": "aVR", "avl": "aVL", "avf": "aVF",
    "v1": "V1", "v2": "V2", "v3": "V3", "v4": "V4", "v5": "V5", "v6": "V6",
    "lead i": "I", "lead ii": "II", "lead iii": "III",
    "mdc_ecg_lead_i": "I", "mdc_ecg_lead_ii": "II", "mdc_ecg_lead_iii": "III",
    "mdc_ecg_lead_avr": "aVR", "mdc_ecg_lead_avl": "aVL", "mdc_ecg_lead_avf": "aVF",
    "mdc_ecg_lead_v1": "V1", "mdc_ecg_lead_v2": "V2", "mdc_ecg_lead_v3": "V3",
    "mdc_ecg_lead_v4": "V4", "mdc_ecg_lead_v5": "V5", "mdc_ecg_lead_v6": "V6",
}  # fmt: skip


class EcgFormatError(ValueError):
    """The input cannot be read as an ECG; the message says why, for the person uploading."""


def lead_name(raw: str) -> str:
    """The standard name of a lead label ("lead II", "MDC_ECG_LEAD_AVF", "avl"), or the label
    itself, stripped, when it is not one of the twelve."""
    key = raw.strip().lower().replace("_", " ").replace("-", " ")
    return _ALIASES.get(key) or _ALIASES.get(key.replace(" ", "_")) or raw.strip()


@dataclass
class PatientData:
    name: str = ""
    patient_id: str = ""
    birth_date: date | None = None
    sex: str = ""  # "M", "F" or ""


@dataclass
class EcgSignal:
    leads: dict[str, np.ndarray]
    sample_rate: float
    resolution_uv: float = 1.0
    patient: PatientData = field(default_factory=PatientData)
    acquired_at: datetime | None = None
    device: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return len(next(iter(self.leads.values()))) if self.leads else 0

    @property
    def duration(self) -> float:
        return self.n_samples / self.sample_rate if self.sample_rate else 0.0

    def lead(self, name: str) -> np.ndarray | None:
        return self.leads.get(name)


def complete_limb_leads(signal: EcgSignal) -> EcgSignal:
    """Derive III, aVR, aVL and aVF from I and II when a cart stored only the eight
    independent leads (I, II, V1–V6), as many do (Einthoven and Goldberger relations)."""
    one, two = signal.leads.get("I"), signal.leads.get("II")
    if one is None or two is None:
        return signal
    derived = {
        "III": two - one,
        "aVR": -(one + two) / 2.0,
        "aVL": one - two / 2.0,
        "aVF": two - one / 2.0,
    }
    added = [name for name in LIMB_DERIVED if name not in signal.leads]
    for name in added:
        signal.leads[name] = derived[name]
    if added:
        signal.warnings.append("derived leads: " + ", ".join(added))
    return signal


def validate(signal: EcgSignal, *, min_seconds: float = 2.0) -> EcgSignal:
    """Refuse what cannot be measured or shown: no leads, unequal lengths, an implausible
    sampling rate, too short a recording, non-finite samples."""
    if not signal.leads:
        raise EcgFormatError("The file holds no ECG leads.")
    lengths = {len(v) for v in signal.leads.values()}
    if len(lengths) != 1:
        raise EcgFormatError("The leads have different numbers of samples.")
    if not 100 <= signal.sample_rate <= 10000:
        raise EcgFormatError(f"Implausible sampling rate: {signal.sample_rate:g} Hz.")
    if signal.duration < min_seconds:
        raise EcgFormatError(
            f"The recording is {signal.duration:.1f} s long; at least {min_seconds:g} s is needed."
        )
    for name, values in signal.leads.items():
        if not np.all(np.isfinite(values)):
            raise EcgFormatError(f"Lead {name} holds values that are not numbers.")
    if "II" not in signal.leads and not any(n in signal.leads for n in STANDARD_LEADS):
        raise EcgFormatError("None of the twelve standard leads is named in the file.")
    return signal


def ordered(signal: EcgSignal) -> list[str]:
    """Lead names: the standard twelve in their usual order first, then any others."""
    names = [n for n in STANDARD_LEADS if n in signal.leads]
    return names + [n for n in signal.leads if n not in STANDARD_LEADS]
