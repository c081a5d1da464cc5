"""Measurements of a resting 12-lead ECG, offered to the reading specialist as suggestions.

Method (documented in docs/ecg-accuracy.md):

1. R peaks: neurokit2 ``ecg_clean`` and ``ecg_peaks`` on lead II (else the first of I, V5,
   V2, aVF, ... that yields beats), then every peak is checked against the QRS energy of all
   leads: a peak much weaker than the others (a tall T wave taken for an R) is dropped, and
   each beat is re-aligned on the steepest point of its QRS across the leads.
2. A median beat per lead from all beats, on a zero-phase filtered signal (0.5 Hz high-pass,
   50 Hz notch, 150 Hz low-pass), so that onsets and ends are not smeared. neurokit2's own
   cleaning (a 40 ms moving average for mains) and its DWT delineation widen the QRS by
   20–40 ms on signals of known truth, so they are used for the beats only.
3. Global QRS onset and end from the summed absolute slope of the eight independent leads;
   T end per lead by the tangent method (steepest descent after the T peak, crossing the PR
   baseline), the median over the leads with a T wave; P onset by the same tangent on lead II
   (else another lead with a P wave).
4. Rate from the mean RR; QTc by Bazett and Fridericia; the frontal axis from the net QRS
   amplitudes of I and aVF (aVF scaled by 2/√3 for its smaller lead vector); ST level at
   J+60 ms against the PR baseline.

Flags are suggestions, never a diagnosis: bradycardia (< 50/min), tachycardia (> 100/min),
irregular rhythm suggesting atrial fibrillation (RR coefficient of variation > 0.10, noted
when no P wave is seen), long QTc (Bazett > 470 ms women, > 450 ms men, > 460 ms sex
unknown), possible ST elevation (≥ 0.1 mV at J+60 ms in two contiguous leads) and fast wide
complexes (rate > 120/min with QRS ≥ 120 ms). The last two are emergency patterns.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import signal as sps

from .signal import EcgSignal, ordered

INDEPENDENT = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
RHYTHM_LEADS = ("II", "I", "V5", "V2", "aVF", "V6", "V1", "III", "V3", "V4", "aVL", "aVR")
# Contiguous pairs: limb leads in the Cabrera sequence, precordial leads in order.
CONTIGUOUS = (
    ("aVL", "I"), ("I", "II"), ("II", "aVF"), ("aVF", "III"),
    ("V1", "V2"), ("V2", "V3"), ("V3", "V4"), ("V4", "V5"), ("V5", "V6"),
)  # fmt: skip

BRADYCARDIA_BPM = 50
TACHYCARDIA_BPM = 100
IRREGULAR_CV = 0.10
LONG_QTC_MS = {"F": 470, "M": 450, "": 460}
ST_ELEVATION_MV = 0.1
WIDE_QRS_MS = 120
FAST_WIDE_BPM = 120

FLAG_BRADYCARDIA = "bradycardia"
FLAG_TACHYCARDIA = "tachycardia"
FLAG_IRREGULAR = "irregular_rhythm_possible_af"
FLAG_LONG_QTC = "long_qtc"
FLAG_ST_ELEVATION = "possible_st_elevation"
FLAG_FAST_WIDE = "fast_wide_complexes"
EMERGENCY_FLAGS = frozenset({FLAG_ST_ELEVATION, FLAG_FAST_WIDE})

# Fields a specialist may confirm or correct (ms, bpm, degrees).
MEASUREMENT_FIELDS = (
    "heart_rate", "rr", "pr", "qrs", "qt", "qtc_bazett", "qtc_fridericia", "axis",
)  # fmt: skip


class MeasurementError(ValueError):
    """Too little signal to measure (no beats found); the ECG can still be shown."""


@dataclass
class Measurements:
    heart_rate: float | None = None  # beats per minute
    rr: float | None = None  # ms, mean
    pr: float | None = None  # ms
    qrs: float | None = None  # ms
    qt: float | None = None  # ms
    qtc_bazett: float | None = None  # ms
    qtc_fridericia: float | None = None  # ms
    axis: float | None = None  # degrees, -180..180
    rr_cv: float | None = None
    beats: int = 0
    p_waves: bool = True
    st_level: dict[str, float] = field(default_factory=dict)  # mV at J+60 ms, per lead
    flags: list[str] = field(default_factory=list)
    rhythm_lead: str = ""
    # Sample positions (s) of the median-beat fiducials relative to the R peak, for display.
    fiducials: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def emergency(self) -> bool:
        return bool(EMERGENCY_FLAGS.intersection(self.flags))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, float):
                data[key] = round(value, 3 if key == "rr_cv" else 1)
        data["st_level"] = {k: round(v, 3) for k, v in self.st_level.items()}
        data["fiducials"] = {k: round(v, 4) for k, v in self.fiducials.items()}
        return data

    def values(self) -> dict[str, float | None]:
        """The confirmable values, rounded as shown."""
        data = self.as_dict()
        return {name: data[name] for name in MEASUREMENT_FIELDS}


def _prepare(x: np.ndarray, fs: float) -> np.ndarray:
    """Zero-phase filtering that keeps the corners of the waves where they are."""
    y = x - np.median(x)
    sos = sps.butter(2, 0.5, "highpass", fs=fs, output="sos")
    y = sps.sosfiltfilt(sos, y)
    if fs > 120 and _has_mains(y, fs):
        b, a = sps.iirnotch(50.0, 30.0, fs=fs)
        y = sps.filtfilt(b, a, y)
    if fs > 320:
        sos = sps.butter(2, 150.0, "lowpass", fs=fs, output="sos")
        y = sps.sosfiltfilt(sos, y)
    return y


def _has_mains(y: np.ndarray, fs: float) -> bool:
    """Whether 50 Hz interference stands out of the spectrum around it (a notch filter rings
    at every QRS corner, so it is applied only when needed)."""
    freqs, power = sps.welch(y, fs=fs, nperseg=min(len(y), int(2 * fs)))
    at = (freqs > 49) & (freqs < 51)
    around = ((freqs > 42) & (freqs < 47)) | ((freqs > 53) & (freqs < 58))
    if not at.any() or not around.any():
        return False
    return float(np.max(power[at])) > 10 * float(np.median(power[around]))


def _nk_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    import neurokit2 as nk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            clean = nk.ecg_clean(x, sampling_rate=int(round(fs)), method="neurokit")
            _, info = nk.ecg_peaks(clean, sampling_rate=int(round(fs)), method="neurokit")
        except (ValueError, IndexError, ZeroDivisionError):
            return np.array([], dtype=int)
    return np.asarray(info["ECG_R_Peaks"], dtype=int)


def _slope_energy(filtered: dict[str, np.ndarray]) -> np.ndarray:
    leads = [filtered[n] for n in INDEPENDENT if n in filtered] or list(filtered.values())
    return np.sum([np.abs(np.gradient(v)) for v in leads], axis=0)


def _validated_beats(peaks: np.ndarray, energy: np.ndarray, fs: float) -> np.ndarray:
    """Re-align each detected peak on the steepest point of its QRS and drop weak ones."""
    half = int(0.06 * fs)
    aligned = []
    for p in peaks:
        lo, hi = max(0, p - half), min(len(energy), p + half + 1)
        if hi - lo < 3:
            continue
        aligned.append(lo + int(np.argmax(energy[lo:hi])))
    if not aligned:
        return np.array([], dtype=int)
    beats = np.unique(np.asarray(aligned))
    strength = energy[beats]
    keep = strength >= 0.4 * np.median(strength)
    beats = beats[keep]
    # Two peaks closer than 200 ms: keep the stronger.
    out: list[int] = []
    for b in beats:
        if out and b - out[-1] < 0.2 * fs:
            if energy[b] > energy[out[-1]]:
                out[-1] = int(b)
            continue
        out.append(int(b))
    return np.asarray(out, dtype=int)


def _median_beats(
    filtered: dict[str, np.ndarray], beats: np.ndarray, pre: int, post: int
) -> dict[str, np.ndarray]:
    n = len(next(iter(filtered.values())))
    usable = [b for b in beats if b - pre >= 0 and b + post < n]
    if not usable:
        raise MeasurementError("No complete beat in the recording.")
    index = np.asarray(usable)[:, None] + np.arange(-pre, post + 1)[None, :]
    return {name: np.median(v[index], axis=0) for name, v in filtered.items()}


def _odd(width: float, minimum: int) -> int:
    n = max(minimum, int(round(width)))
    return n if n % 2 else n + 1


def _quiet_run(values: np.ndarray, start: int, stop: int, step: int, thr: float, run: int) -> int:
    """First index from ``start`` towards ``stop`` where ``values`` stays below ``thr`` for
    ``run`` samples in the direction of travel; ``stop`` if none."""
    count = 0
    i = start
    while i != stop:
        if values[i] < thr:
            count += 1
            if count >= run:
                return i - step * (run - 1)
        else:
            count = 0
        i += step
    return stop


def _tangent_end(y: np.ndarray, peak: int, stop: int, baseline: float) -> int | None:
    """Where the steepest descent after ``peak`` (towards the baseline) crosses it."""
    if stop - peak < 4:
        return None
    sign = 1.0 if y[peak] >= baseline else -1.0
    d = np.gradient(y[peak:stop]) * sign
    k = int(np.argmin(d))
    slope = d[k]
    if slope >= 0:
        return None
    i = peak + k
    return int(round(i + (sign * (y[i] - baseline)) / -slope))


def _tangent_start(y: np.ndarray, start: int, peak: int, baseline: float) -> int | None:
    """Where the steepest rise before ``peak`` (away from the baseline) crosses it."""
    if peak - start < 4:
        return None
    sign = 1.0 if y[peak] >= baseline else -1.0
    d = np.gradient(y[start:peak]) * sign
    k = int(np.argmax(d))
    slope = d[k]
    if slope <= 0:
        return None
    i = start + k
    return int(round(i - (sign * (y[i] - baseline)) / slope))


def measure(signal: EcgSignal, *, sex: str = "") -> Measurements:
    """Measure a resting ECG. Raises MeasurementError when no beats can be found."""
    fs = float(signal.sample_rate)
    names = [n for n in ordered(signal) if len(signal.leads[n])]
    filtered = {n: _prepare(np.asarray(signal.leads[n], dtype=float), fs) for n in names}
    energy = _slope_energy(filtered)
    result = Measurements()
    beats = np.array([], dtype=int)
    span = {n: float(np.percentile(v, 99.5) - np.percentile(v, 0.5)) for n, v in filtered.items()}
    tallest = max(span.values())
    # Lead II first unless its complexes are small (an axis near -30°), then by preference.
    candidates = [n for n in RHYTHM_LEADS if n in span and span[n] >= 0.4 * tallest]
    candidates += sorted((n for n in names if n not in candidates), key=lambda n: -span[n])
    for lead in candidates:
        beats = _validated_beats(_nk_peaks(signal.leads[lead], fs), energy, fs)
        if len(beats) >= 2:
            result.rhythm_lead = lead
            break
    if len(beats) < 2:
        raise MeasurementError("Fewer than two heartbeats were found.")
    rr = np.diff(beats) / fs * 1000.0
    result.beats = len(beats)
    result.rr = float(np.mean(rr))
    result.heart_rate = 60000.0 / result.rr
    result.rr_cv = float(np.std(rr) / np.mean(rr)) if len(rr) >= 2 else 0.0

    rr_min = float(np.min(rr)) / 1000.0
    pre = int(min(0.40, 0.65 * rr_min) * fs)
    post = int(min(0.70, 0.92 * rr_min) * fs)
    med = _median_beats(filtered, beats, pre, post)
    r = pre  # index of the aligned R peak in the median beat
    indep = {n: med[n] for n in INDEPENDENT if n in med} or med
    sv = np.sum([np.abs(np.gradient(v)) for v in indep.values()], axis=0)
    # Slope noise floor: the quietest 30 % of the beat.
    floor = float(np.percentile(sv, 30))
    peak = float(np.max(sv[max(0, r - int(0.05 * fs)) : r + int(0.05 * fs)]))
    thr = floor + 0.03 * (peak - floor)
    run = max(2, int(0.006 * fs))
    on = _quiet_run(sv, r, max(0, r - int(0.15 * fs)), -1, thr, run)
    off = _quiet_run(sv, r, min(len(sv) - 1, r + int(0.2 * fs)), 1, thr, run)
    qrs_on, qrs_off = on, off
    result.qrs = (qrs_off - qrs_on) / fs * 1000.0

    # Baseline of each lead: the PR segment just before the QRS.
    b0, b1 = max(0, qrs_on - int(0.016 * fs)), max(1, qrs_on - int(0.002 * fs))
    base = {n: float(np.mean(v[b0:b1])) for n, v in med.items()}

    # T end per lead: tangent method after the T peak.
    t_lo = qrs_off + int(0.06 * fs)
    t_hi = len(sv) - 1
    ends = []
    for n in ("II", "V5", "V2", "V3", "V4", "V6", "I", "aVF", "V1", "III", "aVL", "aVR"):
        if n not in med or t_hi - t_lo < int(0.05 * fs):
            continue
        y = med[n]
        seg = y[t_lo:t_hi] - base[n]
        if len(seg) == 0:
            continue
        tp = t_lo + int(np.argmax(np.abs(seg)))
        if abs(y[tp] - base[n]) < 80.0:  # µV: no T wave worth measuring in this lead
            continue
        end = _tangent_end(y, tp, min(t_hi, tp + int(0.25 * fs)), base[n])
        if end is not None and tp < end <= t_hi + int(0.05 * fs):
            ends.append(end)
    if ends:
        t_end = float(np.median(ends))
        result.qt = (t_end - qrs_on) / fs * 1000.0
        result.fiducials["t_end"] = (t_end - r) / fs

    # P wave and PR interval.
    p_lo = max(0, qrs_on - int(min(0.35, 0.6 * rr_min) * fs))
    if result.qt is not None:
        previous_t_end = qrs_on + result.qt / 1000 * fs - rr_min * fs
        p_lo = max(p_lo, int(previous_t_end + 0.004 * fs))
    p_hi = qrs_on - int(0.02 * fs)
    result.p_waves = False
    for n in ("II", "I", "V1", "aVF", "V2", "III"):
        if n not in med or p_hi - p_lo < int(0.04 * fs):
            continue
        y = med[n]
        seg = y[p_lo:p_hi] - base[n]
        pp = p_lo + int(np.argmax(np.abs(seg)))
        if abs(y[pp] - base[n]) < 50.0:
            continue
        start = _tangent_start(y, max(0, pp - int(0.08 * fs)), pp, base[n])
        if start is not None and p_lo - int(0.02 * fs) <= start < pp:
            result.p_waves = True
            result.pr = (qrs_on - start) / fs * 1000.0
            result.fiducials["p_on"] = (start - r) / fs
            break

    rr_s = result.rr / 1000.0
    if result.qt is not None:
        result.qtc_bazett = result.qt / math.sqrt(rr_s)
        result.qtc_fridericia = result.qt / rr_s ** (1 / 3)

    def net(n: str) -> float | None:
        if n not in med:
            return None
        seg = med[n][qrs_on : qrs_off + 1] - base[n]
        return float(np.max(seg) + np.min(seg)) if len(seg) else None

    one, avf = net("I"), net("aVF")
    if one is not None and avf is not None and (abs(one) + abs(avf)) > 1e-6:
        # aVF sees the frontal vector at sqrt(3)/2 of lead I's gain (Einthoven/Goldberger).
        result.axis = math.degrees(math.atan2(2 * avf / math.sqrt(3), one))

    j60 = qrs_off + int(0.06 * fs)
    if j60 < len(sv):
        result.st_level = {n: (float(v[j60]) - base[n]) / 1000.0 for n, v in med.items()}
    result.fiducials.update(qrs_on=(qrs_on - r) / fs, qrs_off=(qrs_off - r) / fs)
    result.flags = _flags(result, sex)
    return result


def _flags(m: Measurements, sex: str) -> list[str]:
    flags = []
    hr = m.heart_rate or 0
    if hr and hr < BRADYCARDIA_BPM:
        flags.append(FLAG_BRADYCARDIA)
    if hr > TACHYCARDIA_BPM:
        flags.append(FLAG_TACHYCARDIA)
    if m.rr_cv is not None and m.rr_cv > IRREGULAR_CV and m.beats >= 5:
        flags.append(FLAG_IRREGULAR)
        if not m.p_waves:
            m.notes.append("no_p_waves")
    limit = LONG_QTC_MS.get(sex.upper()[:1], LONG_QTC_MS[""])
    if m.qtc_bazett is not None and m.qtc_bazett > limit:
        flags.append(FLAG_LONG_QTC)
    elevated = {n for n, v in m.st_level.items() if v >= ST_ELEVATION_MV}
    if any(a in elevated and b in elevated for a, b in CONTIGUOUS):
        flags.append(FLAG_ST_ELEVATION)
    if hr > FAST_WIDE_BPM and (m.qrs or 0) >= WIDE_QRS_MS:
        flags.append(FLAG_FAST_WIDE)
    return flags


def deltas(
    current: dict[str, float | None], prior: dict[str, float | None]
) -> dict[str, float | None]:
    """Change of each measurement from a prior ECG to this one (None when either is missing)."""
    out: dict[str, float | None] = {}
    for name in MEASUREMENT_FIELDS:
        a, b = current.get(name), prior.get(name)
        out[name] = round(a - b, 1) if a is not None and b is not None else None
    return out
