"""Synthetic 12-lead ECGs whose rate and intervals are known exactly.

Every wave has a finite support, so "onset" and "end" are defined without judgement:
the P wave is a half sine (it starts at a corner), the QRS complex is piecewise linear
(Q, R and S corners), and the T wave rises as a raised cosine and falls as a quarter cosine,
so its steepest slope is at its very end (where the tangent method puts the end of T).
Limb leads are projections of one frontal vector at a known axis, so the frontal axis is
known too. Used by the accuracy tests, the benchmark and the demo data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .signal import EcgSignal, PatientData

# Precordial R and S amplitudes (mV) from V1 to V6: R wave progression, transition at V3/V4.
_PRECORDIAL_RS = (
    (0.2, 1.0), (0.4, 1.2), (0.7, 0.9), (1.1, 0.5), (1.3, 0.3), (1.1, 0.15),
)  # fmt: skip
_PRECORDIAL_T = (0.05, 0.3, 0.4, 0.4, 0.35, 0.3)


@dataclass(frozen=True)
class Truth:
    """What was built in: intervals in ms, rate in beats per minute, axis in degrees."""

    heart_rate: float
    pr: float
    qrs: float
    qt: float
    axis: float
    rr: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rr", 60000.0 / self.heart_rate)


def _beat(t: np.ndarray, *, pr: float, qrs: float, qt: float, p_amp: float, q: float, r: float,
          s: float, t_amp: float, st: float, p_wave: bool) -> np.ndarray:  # fmt: skip
    """One beat in mV at times ``t`` (s) relative to QRS onset; intervals in s."""
    y = np.zeros_like(t)
    if p_wave:
        p_dur = min(0.1, pr - 0.04)
        p0 = -pr
        inside = (t >= p0) & (t <= p0 + p_dur)
        y[inside] += p_amp * np.sin(math.pi * (t[inside] - p0) / p_dur)
    knots_t = [0.0, 0.12 * qrs, 0.45 * qrs, 0.8 * qrs, qrs]
    knots_v = [0.0, -q, r, -s, 0.0]
    inside = (t >= 0) & (t <= qrs)
    y[inside] += np.interp(t[inside], knots_t, knots_v)
    # T wave: rises over 60 % of its width, falls over the rest; ends exactly at QT.
    t_dur = min(0.2, 0.55 * (qt - qrs))
    t0, t_peak = qt - t_dur, qt - 0.4 * t_dur
    up = (t >= t0) & (t < t_peak)
    y[up] += t_amp * 0.5 * (1 - np.cos(math.pi * (t[up] - t0) / (t_peak - t0)))
    down = (t >= t_peak) & (t <= qt)
    y[down] += t_amp * np.cos(0.5 * math.pi * (t[down] - t_peak) / (qt - t_peak))
    if st:
        # ST elevation: level from the J point, fading out linearly to the end of T.
        plateau = (t > qrs) & (t <= qt)
        y[plateau] += st * (1 - (t[plateau] - qrs) / (qt - qrs)) ** 0.5
    return y


def synthetic_ecg(
    *,
    heart_rate: float = 70,
    pr: float = 160,
    qrs: float = 90,
    qt: float = 400,
    axis: float = 60,
    duration: float = 10.0,
    sample_rate: float = 500,
    noise_uv: float = 8.0,
    wander_uv: float = 60.0,
    st_elevation: dict[str, float] | None = None,
    irregular: float = 0.0,
    p_waves: bool = True,
    seed: int = 1,
    resolution_uv: float = 1.0,
    patient: PatientData | None = None,
) -> tuple[EcgSignal, Truth]:
    """A 12-lead ECG and its truth. Intervals in ms. ``irregular`` is the coefficient of
    variation of RR (0 = perfectly regular; 0.2 with ``p_waves=False`` looks like AF).
    ``st_elevation`` maps lead names to ST elevation in mV at the J point."""
    rng = np.random.default_rng(seed)
    n = int(round(duration * sample_rate))
    t = np.arange(n) / sample_rate
    rr = 60.0 / heart_rate
    onsets = []
    at = pr / 1000 + 0.15
    while at < duration + 1:
        onsets.append(at)
        step = rr * (1 + irregular * rng.standard_normal()) if irregular else rr
        at += max(step, qt / 1000 + 0.05)
    theta = math.radians(axis)
    # Einthoven's triangle: augmented leads see the heart vector at sqrt(3)/2 of the gain
    # of the bipolar leads, so that III = II - I and aVF = II - I/2 hold exactly.
    aug = math.sqrt(3) / 2
    projection = {
        "I": math.cos(theta),
        "II": math.cos(theta - math.radians(60)),
        "III": math.cos(theta - math.radians(120)),
        "aVR": aug * math.cos(theta - math.radians(-150)),
        "aVL": aug * math.cos(theta - math.radians(-30)),
        "aVF": aug * math.cos(theta - math.radians(90)),
    }
    st_elevation = st_elevation or {}
    leads: dict[str, np.ndarray] = {}
    shape = {"pr": pr / 1000, "qrs": qrs / 1000, "qt": qt / 1000, "p_wave": p_waves}
    for name, k in projection.items():
        y = np.zeros(n)
        for onset in onsets:
            y += _beat(t - onset, p_amp=0.15 * k, q=0.1 * k, r=1.2 * k, s=0.25 * k,
                       t_amp=0.3 * k, st=st_elevation.get(name, 0.0), **shape)  # fmt: skip
        leads[name] = y
    for i, ((r, s), t_amp) in enumerate(zip(_PRECORDIAL_RS, _PRECORDIAL_T, strict=True)):
        name = f"V{i + 1}"
        y = np.zeros(n)
        for onset in onsets:
            y += _beat(t - onset, p_amp=0.08, q=0.05 if i >= 4 else 0.0, r=r, s=s, t_amp=t_amp,
                       st=st_elevation.get(name, 0.0), **shape)  # fmt: skip
        leads[name] = y
    wander = wander_uv / 1000 * np.sin(2 * math.pi * 0.25 * t + rng.uniform(0, 6))
    out = {}
    for name, y in leads.items():
        uv = (y + wander) * 1000 + rng.normal(0, noise_uv, n) if noise_uv else (y + wander) * 1000
        out[name] = np.round(uv / resolution_uv) * resolution_uv
    signal = EcgSignal(
        leads=out,
        sample_rate=float(sample_rate),
        resolution_uv=resolution_uv,
        patient=patient or PatientData(name="Synthetic^Test", patient_id="SYN", sex="F"),
    )
    return signal, Truth(heart_rate=heart_rate, pr=pr, qrs=qrs, qt=qt, axis=axis)


# Rate-dependent intervals of the accuracy grid: (bpm, PR, QRS, QT) in ms, none overlapping.
ACCURACY_GRID = (
    (40, 180, 100, 480),
    (50, 170, 90, 440),
    (60, 160, 90, 410),
    (75, 160, 90, 380),
    (90, 150, 85, 360),
    (100, 150, 80, 340),
    (120, 140, 80, 310),
    (150, 120, 80, 260),
    (180, 100, 80, 220),
)
