"""Measurements against ECGs of known truth: rate within ±2 bpm, QRS and QT within ±10 ms
from 40 to 180 bpm; flags for the patterns they name."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from imaging.ecg import measure as m
from imaging.ecg.signal import EcgSignal
from imaging.ecg.synthetic import ACCURACY_GRID, synthetic_ecg


@pytest.mark.parametrize(
    ("hr", "pr", "qrs", "qt"), ACCURACY_GRID, ids=[f"{g[0]}bpm" for g in ACCURACY_GRID]
)
@pytest.mark.parametrize("seed", [1, 2])
def test_rate_and_intervals_of_a_synthetic_12_lead_ecg(hr, pr, qrs, qt, seed):
    axis = (60, -30, 100)[seed % 3]
    signal, truth = synthetic_ecg(heart_rate=hr, pr=pr, qrs=qrs, qt=qt, axis=axis, seed=seed)
    result = m.measure(signal)
    assert abs(result.heart_rate - truth.heart_rate) <= 2
    assert abs(result.qrs - truth.qrs) <= 10
    assert abs(result.qt - truth.qt) <= 10
    assert abs(result.pr - truth.pr) <= 20
    assert abs(result.axis - truth.axis) <= 5
    assert result.qtc_bazett == pytest.approx(result.qt / np.sqrt(result.rr / 1000))
    assert result.qtc_fridericia == pytest.approx(result.qt / np.cbrt(result.rr / 1000))


@pytest.mark.parametrize("hr", [40, 90, 180])
def test_rate_of_a_neurokit2_ecgsyn_signal(hr):
    import neurokit2 as nk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = nk.ecg_simulate(
            duration=10, sampling_rate=500, heart_rate=hr, method="ecgsyn", random_state=hr
        )
    result = m.measure(EcgSignal(leads={"II": np.asarray(x) * 1000}, sample_rate=500))
    assert abs(result.heart_rate - hr) <= 2


def test_flags():
    slow = m.measure(synthetic_ecg(heart_rate=42, qt=460, pr=180, qrs=90)[0])
    assert m.FLAG_BRADYCARDIA in slow.flags and not slow.emergency
    fast = m.measure(synthetic_ecg(heart_rate=130, pr=120, qrs=150, qt=300)[0])
    assert {m.FLAG_TACHYCARDIA, m.FLAG_FAST_WIDE} <= set(fast.flags) and fast.emergency
    stemi = m.measure(synthetic_ecg(st_elevation={"II": 0.25, "III": 0.25, "aVF": 0.25})[0])
    assert m.FLAG_ST_ELEVATION in stemi.flags and stemi.emergency
    assert stemi.st_level["II"] > 0.1
    af = m.measure(synthetic_ecg(heart_rate=95, irregular=0.2, p_waves=False)[0])
    assert m.FLAG_IRREGULAR in af.flags and not af.p_waves
    long_qt = m.measure(synthetic_ecg(heart_rate=70, qt=500)[0], sex="F")
    assert m.FLAG_LONG_QTC in long_qt.flags
    normal = m.measure(synthetic_ecg(heart_rate=70)[0])
    assert normal.flags == []


def test_a_flat_line_is_not_measured():
    with pytest.raises(m.MeasurementError):
        m.measure(EcgSignal(leads={"II": np.zeros(5000)}, sample_rate=500))
