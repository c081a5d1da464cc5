"""The ECG on paper: the standard layouts on a 1 mm / 5 mm grid, as SVG (in millimetres) and
as PNG (drawn with Pillow at a given resolution).

Layouts: ``3x4`` (I, II, III | aVR, aVL, aVF | V1–V3 | V4–V6, 2.5 s each, plus a 10 s lead II
rhythm strip), ``6x2`` (limb leads left, chest leads right, 5 s each) and ``12x1`` (every
lead over the whole recording). Paper speed 25 or 50 mm/s and gain 5, 10 or 20 mm/mV; every
row starts with a 1 mV calibration pulse. Time and amplitude map to millimetres exactly, so a
printout at 100 % has the right scale.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .signal import EcgSignal

LAYOUTS = ("3x4", "6x2", "12x1")
SPEEDS = (25, 50)
GAINS = (5, 10, 20)
MARGIN = 5.0  # mm
CAL_WIDTH = 10.0  # mm reserved for the calibration pulse
MINOR_COLOUR = "#f6c6c6"
MAJOR_COLOUR = "#e58f8f"
TRACE_COLOUR = "#000000"
_TWELVE = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
_GRID = {
    "3x4": ([["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]], 4),
    "6x2": ([[_TWELVE[k], _TWELVE[k + 6]] for k in range(6)], 2),
    "12x1": ([[n] for n in _TWELVE], 1),
}


@dataclass(frozen=True)
class Trace:
    lead: str
    x0: float  # mm, left end
    y0: float  # mm, baseline
    xs: np.ndarray  # mm
    ys: np.ndarray  # mm (down is positive, as on screen)


@dataclass(frozen=True)
class Sheet:
    width: float  # mm
    height: float  # mm
    traces: list[Trace]
    calibrations: list[tuple[float, float]]  # (x, baseline y) of each pulse, mm
    speed: float
    gain: float
    layout: str


def _decimate(xs: np.ndarray, ys: np.ndarray, step_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep the min and max of every ``step_mm`` column when samples are denser than that
    (a high sampling rate at 25 mm/s), so that no spike is lost while points stay few."""
    per_bin = int(step_mm / max(1e-9, (xs[-1] - xs[0]) / max(1, len(xs) - 1))) if len(xs) > 1 else 0
    if per_bin < 4:
        return xs, ys
    n = len(ys) // per_bin * per_bin
    blocks = ys[:n].reshape(-1, per_bin)
    lo, hi = blocks.argmin(axis=1), blocks.argmax(axis=1)
    base = np.arange(0, n, per_bin)
    index = np.sort(np.concatenate([base + np.minimum(lo, hi), base + np.maximum(lo, hi)]))
    index = np.concatenate([index, np.arange(n, len(ys))])
    return xs[index], ys[index]


def layout(
    signal: EcgSignal, *, kind: str = "3x4", speed: float = 25, gain: float = 10,
    rhythm_lead: str = "II", resolution_mm: float = 0.1,
) -> Sheet:  # fmt: skip
    """Place the leads on paper. Leads the recording lacks are left blank."""
    if kind not in _GRID:
        raise ValueError(f"unknown layout {kind!r}")
    rows, cols = _GRID[kind]
    fs = signal.sample_rate
    total = signal.duration
    seconds = {"3x4": min(2.5, total / 4), "6x2": min(5.0, total / 2), "12x1": total}[kind]
    row_h = {"3x4": 4.0, "6x2": 3.0, "12x1": 2.2}[kind] * gain
    strip = kind == "3x4" and rhythm_lead in signal.leads
    n_rows = len(rows) + (1 if strip else 0)
    col_w = seconds * speed
    width = 2 * MARGIN + CAL_WIDTH + col_w * cols
    if strip:
        width = max(width, 2 * MARGIN + CAL_WIDTH + total * speed)
    height = 2 * MARGIN + row_h * n_rows
    width, height = float(np.ceil(width / 5) * 5), float(np.ceil(height / 5) * 5)
    traces, cals = [], []
    n_seg = int(round(seconds * fs))

    def place(lead: str, start: int, count: int, x0: float, y0: float) -> None:
        values = signal.leads.get(lead)
        if values is None:
            return
        seg = np.asarray(values[start : start + count], dtype=np.float64)
        if not len(seg):
            return
        seg = seg - float(np.median(values))
        xs = x0 + np.arange(len(seg)) / fs * speed
        ys = y0 - seg / 1000.0 * gain
        xs, ys = _decimate(xs, ys, resolution_mm)
        traces.append(Trace(lead, x0, y0, xs, ys))

    for r, row in enumerate(rows):
        y0 = MARGIN + row_h * (r + 0.6)
        cals.append((MARGIN, y0))
        for c, lead in enumerate(row):
            place(lead, c * n_seg, n_seg, MARGIN + CAL_WIDTH + c * col_w, y0)
    if strip:
        y0 = MARGIN + row_h * (len(rows) + 0.6)
        cals.append((MARGIN, y0))
        place(rhythm_lead, 0, signal.n_samples, MARGIN + CAL_WIDTH, y0)
    return Sheet(width, height, traces, cals, float(speed), float(gain), kind)


def _cal_points(x: float, y: float, sheet: Sheet) -> list[tuple[float, float]]:
    """A 1 mV, 200 ms calibration pulse."""
    h, w = sheet.gain, 0.2 * sheet.speed
    return [(x, y), (x + 1, y), (x + 1, y - h), (x + 1 + w, y - h), (x + 1 + w, y), (x + 9, y)]


def to_svg(sheet: Sheet, *, title: str = "") -> str:
    """An SVG whose user unit is 1 mm (``viewBox`` in mm, ``width``/``height`` in mm)."""
    w, h = sheet.width, sheet.height
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:g}mm" height="{h:g}mm" '
        f'viewBox="0 0 {w:g} {h:g}" data-speed="{sheet.speed:g}" data-gain="{sheet.gain:g}" '
        f'data-layout="{sheet.layout}">',
        f"<title>{_escape(title)}</title>" if title else "",
        "<defs>"
        '<pattern id="ecg-minor" width="1" height="1" patternUnits="userSpaceOnUse">'
        f'<path d="M1 0V1H0" fill="none" stroke="{MINOR_COLOUR}" stroke-width="0.05"/></pattern>'
        '<pattern id="ecg-major" width="5" height="5" patternUnits="userSpaceOnUse">'
        f'<path d="M5 0V5H0" fill="none" stroke="{MAJOR_COLOUR}" stroke-width="0.12"/></pattern>'
        "</defs>",
        f'<rect class="paper" width="{w:g}" height="{h:g}" fill="#fff"/>',
        f'<rect class="grid-minor" width="{w:g}" height="{h:g}" fill="url(#ecg-minor)"/>',
        f'<rect class="grid-major" width="{w:g}" height="{h:g}" fill="url(#ecg-major)"/>',
        f'<g fill="none" stroke="{TRACE_COLOUR}" stroke-width="0.25" stroke-linejoin="round">',
    ]
    for x, y in sheet.calibrations:
        pts = " ".join(f"{px:.2f},{py:.2f}" for px, py in _cal_points(x, y, sheet))
        parts.append(f'<polyline class="cal" points="{pts}"/>')
    for t in sheet.traces:
        coords = np.column_stack([t.xs, t.ys]).round(2).ravel().tolist()
        d = "M" + " ".join(map(str, coords))
        parts.append(f'<path class="trace" data-lead="{t.lead}" d="{d}"/>')
    parts.append('</g><g font-family="sans-serif" font-size="3" fill="#000">')
    for t in sheet.traces:
        parts.append(f'<text x="{t.x0 + 1:.2f}" y="{t.y0 - sheet.gain * 1.1:.2f}">{t.lead}</text>')
    parts.append(
        f'<text x="{MARGIN:g}" y="{h - 1.5:g}">{sheet.speed:g} mm/s  {sheet.gain:g} mm/mV</text>'
    )
    parts.append("</g></svg>")
    return "".join(parts)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_png(sheet: Sheet, *, dpi: float = 200) -> bytes:
    """The sheet drawn at ``dpi`` (dots per inch); 1 mm is ``dpi / 25.4`` pixels."""
    ppm = dpi / 25.4
    size = (int(round(sheet.width * ppm)), int(round(sheet.height * ppm)))
    # A four-colour palette image: a quarter of the bytes of RGB to draw and to compress.
    image = Image.new("P", size, 0)
    image.putpalette([255, 255, 255, *_rgb(MINOR_COLOUR), *_rgb(MAJOR_COLOUR), 0, 0, 0])
    draw = ImageDraw.Draw(image)
    minor, major, ink = 1, 2, 3
    for i in range(int(sheet.width) + 1):
        if i % 5:
            x = round(i * ppm)
            draw.line([(x, 0), (x, size[1])], fill=minor)
    for j in range(int(sheet.height) + 1):
        if j % 5:
            y = round(j * ppm)
            draw.line([(0, y), (size[0], y)], fill=minor)
    thick = max(1, round(ppm * 0.12))
    for i in range(0, int(sheet.width) + 1, 5):
        x = round(i * ppm)
        draw.line([(x, 0), (x, size[1])], fill=major, width=thick)
    for j in range(0, int(sheet.height) + 1, 5):
        y = round(j * ppm)
        draw.line([(0, y), (size[0], y)], fill=major, width=thick)
    trace_w = max(1, round(ppm * 0.25))
    for x, y in sheet.calibrations:
        draw.line(
            [(px * ppm, py * ppm) for px, py in _cal_points(x, y, sheet)], fill=ink, width=trace_w
        )
    font = ImageFont.load_default()
    for t in sheet.traces:
        points = np.column_stack([t.xs * ppm, t.ys * ppm]).ravel().tolist()
        draw.line(points, fill=ink, width=trace_w)
        draw.text(((t.x0 + 1) * ppm, (t.y0 - sheet.gain * 1.4) * ppm), t.lead, fill=ink, font=font)
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(dpi, dpi), compress_level=1)
    return out.getvalue()


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def render_svg(signal: EcgSignal, **options: object) -> str:
    title = str(options.pop("title", ""))
    return to_svg(layout(signal, **options), title=title)  # type: ignore[arg-type]


def render_png(signal: EcgSignal, *, dpi: float = 200, **options: object) -> bytes:
    return to_png(layout(signal, **options), dpi=dpi)  # type: ignore[arg-type]
