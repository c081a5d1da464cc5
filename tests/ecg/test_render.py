"""Rendering is to scale: 1 mm grid, 25 mm/s, 10 mm/mV, in the PNG's pixels and the SVG's
millimetres."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from imaging.ecg import render
from imaging.ecg.synthetic import synthetic_ecg


@pytest.fixture(scope="module")
def signal():
    return synthetic_ecg(heart_rate=60, noise_uv=0, wander_uv=0)[0]


def _major_lines(column: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.all(column == np.array(render._rgb(render.MAJOR_COLOUR)), axis=-1))


@pytest.mark.parametrize("dpi", [150, 300])
def test_the_png_grid_is_to_scale(signal, dpi):
    sheet = render.layout(signal)
    image = np.asarray(Image.open(io.BytesIO(render.to_png(sheet, dpi=dpi))).convert("RGB"))
    ppm = dpi / 25.4
    assert image.shape[1] == round(sheet.width * ppm)
    row = image[2]  # a row of paper above the traces
    lines = _major_lines(row)
    starts = lines[np.concatenate([[True], np.diff(lines) > 1])]
    spacing = np.diff(starts)
    # Every 5 mm line within a pixel of where it should be.
    assert np.all(np.abs(spacing - 5 * ppm) <= 1.01)
    assert abs(starts[-1] - starts[0] - 5 * ppm * (len(starts) - 1)) <= 1.01
    # 10 s rhythm strip at 25 mm/s is 250 mm long.
    strip = [t for t in sheet.traces if t.lead == "II"][-1]
    assert strip.xs[-1] - strip.xs[0] == pytest.approx(250, abs=0.1)


def test_the_calibration_pulse_is_10_mm_at_10_mm_per_mv(signal):
    sheet = render.layout(signal, gain=10)
    points = render._cal_points(*sheet.calibrations[0], sheet)
    assert points[1][1] - points[2][1] == 10  # 1 mV tall
    assert points[3][0] - points[2][0] == 5  # 200 ms wide at 25 mm/s
    fast = render.layout(signal, speed=50, gain=20)
    assert fast.width > sheet.width
    qrs = max(abs(t.ys - t.y0).max() for t in fast.traces if t.lead == "V5")
    slow = max(abs(t.ys - t.y0).max() for t in sheet.traces if t.lead == "V5")
    assert qrs == pytest.approx(2 * slow, rel=0.01)


@pytest.mark.parametrize("kind", render.LAYOUTS)
def test_the_svg_is_in_millimetres(signal, kind):
    svg = render.render_svg(signal, kind=kind)
    head = re.search(
        r'<svg[^>]*width="([\d.]+)mm" height="([\d.]+)mm" viewBox="0 0 ([\d.]+) ([\d.]+)"', svg
    )
    assert head and head.group(1) == head.group(3) and head.group(2) == head.group(4)
    assert 'id="ecg-minor" width="1" height="1"' in svg
    assert 'id="ecg-major" width="5" height="5"' in svg
    assert svg.count('class="trace"') == {"3x4": 13, "6x2": 12, "12x1": 12}[kind]
