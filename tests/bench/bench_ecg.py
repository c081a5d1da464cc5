"""ECG benchmark: measurement and 12-lead rendering time per ECG (p50/p95), on synthetic
10 s, 500 Hz, 12-lead ECGs across rates. Writes its section of docs/benchmarks.md.

Run: ``python tests/bench/bench_ecg.py`` or through pytest (``make bench`` collects
``bench_*.py`` when its python_files includes that pattern)."""

from __future__ import annotations

import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

START, END = "<!-- bench:ecg:start -->", "<!-- bench:ecg:end -->"
RATES = (40, 60, 75, 90, 120, 150, 180)
ROUNDS = 3


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run() -> dict[str, list[float]]:
    from imaging.ecg import render
    from imaging.ecg.measure import measure
    from imaging.ecg.synthetic import synthetic_ecg

    signals = [synthetic_ecg(heart_rate=hr, seed=hr)[0] for hr in RATES]
    measure(signals[0])  # warm up: imports neurokit2
    render.render_png(signals[0], dpi=200)
    times: dict[str, list[float]] = {"measure": [], "svg": [], "png150": [], "png300": []}
    for _ in range(ROUNDS):
        for signal in signals:
            for name, call in (
                ("measure", lambda s=signal: measure(s)),
                ("svg", lambda s=signal: render.render_svg(s)),
                ("png150", lambda s=signal: render.render_png(s, dpi=150)),
                ("png300", lambda s=signal: render.render_png(s, dpi=300)),
            ):
                t0 = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - t0) * 1000)
    return times


def section(times: dict[str, list[float]]) -> str:
    labels = {
        "measure": "measurements (neurokit2 peaks + median-beat intervals)",
        "svg": "12-lead 3×4 + rhythm, SVG",
        "png150": "12-lead 3×4 + rhythm, PNG 150 dpi",
        "png300": "12-lead 3×4 + rhythm, PNG 300 dpi",
    }
    rows = "\n".join(
        f"| {labels[k]} | {len(v)} | {statistics.median(v):.0f} | {_p(v, 0.95):.0f} |"
        for k, v in times.items()
    )
    render_p50 = max(statistics.median(times["svg"]), statistics.median(times["png150"]))
    verdict = "met" if render_p50 < 300 else "NOT met"
    return (
        f"{START}\n## ECG\n\n"
        f"`tests/bench/bench_ecg.py`: synthetic 12-lead ECGs, 10 s at 500 Hz, rates "
        f"{', '.join(map(str, RATES))}/min, {ROUNDS} rounds; {platform.python_version()}, "
        f"{os.cpu_count()} CPUs.\n\n"
        "| operation | n | p50 ms | p95 ms |\n|---|---|---|---|\n"
        f"{rows}\n\nGoal 12-lead render p50 < 300 ms: {verdict}.\n{END}"
    )


def write_section(text: str, path: Path = ROOT / "docs" / "benchmarks.md") -> None:
    """Replace only the text between this bench's markers (other benches own theirs)."""
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + text + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(updated, encoding="utf-8")


def test_bench_ecg() -> None:
    times = run()
    write_section(section(times))
    assert statistics.median(times["png150"]) < 300
    assert statistics.median(times["svg"]) < 300


if __name__ == "__main__":
    result = run()
    text = section(result)
    write_section(text)
    print(text)
