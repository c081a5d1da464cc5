"""Pathology tiles: latency p50/p95, cold and warm, on a generated 100,000 × 80,000 slide,
served by Huizhen's tile endpoint and by Orthanc's WSI plugin, side by side in one run.

Run with ``scripts/with-test-services .venv/bin/python -m pytest -q -s
tests/bench/bench_pathology.py -o python_files=bench_*.py``. The slide (five DICOM WSI levels,
256-pixel JPEG tiles, mostly repeated tiles so that it compresses to ~150 MB) is generated
once and kept under ``var/bench/wsi-100k/``. Results go to docs/benchmarks.md between the
pathology markers.
"""

from __future__ import annotations

import io
import os
import platform
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from django.conf import settings as django_settings
from knox.models import AuthToken
from PIL import Image
from pydicom.uid import generate_uid

from imaging import services
from imaging.pathology.wsi import LevelSpec, SlideIdentity, level_part10
from tests.bench.test_imaging_bench import _database_url
from tests.interop import orthanc as orthanc_peer

pytestmark = pytest.mark.django_db(transaction=True)

WIDTH, HEIGHT, TILE = 100_000, 80_000, 256
LEVELS = 5  # downsample 1, 4, 16, 64, 256
CACHE = Path(django_settings.BASE_DIR) / "var" / "bench" / "wsi-100k"
DOC = Path(django_settings.BASE_DIR) / "docs" / "benchmarks.md"
START, END = "<!-- bench:pathology:start -->", "<!-- bench:pathology:end -->"
WSI_PLUGIN = "/usr/share/orthanc/plugins/libOrthancWSI.so"
SAMPLE = 300
WARM_ROUNDS = 3


def _tile_variants() -> list[bytes]:
    rng = np.random.default_rng(7)
    variants = []
    for n in range(16):
        base = np.full((TILE, TILE, 3), (240, 228, 236), np.uint8)
        if n:  # smooth tissue-like blobs on pink-purple (compress like stained tissue)
            coarse = rng.integers(0, 120, (8, 8), dtype=np.uint8)
            blobs = np.asarray(Image.fromarray(coarse).resize((TILE, TILE), Image.BICUBIC))
            shade = blobs[..., None] * np.array([0.3, 1.0, 0.4])
            base = (base - shade).clip(0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(base).save(out, "JPEG", quality=85)
        variants.append(out.getvalue())
    return variants


def generate_slide() -> list[Path]:
    """The five levels as Part 10 files (cached); tissue in a central ellipse."""
    paths = [CACHE / f"level-{n}.dcm" for n in range(LEVELS)]
    if all(p.exists() for p in paths):
        return paths
    CACHE.mkdir(parents=True, exist_ok=True)
    variants = _tile_variants()
    identity = SlideIdentity(
        study_instance_uid=generate_uid(entropy_srcs=["bench-wsi-study"]),
        series_instance_uid=generate_uid(entropy_srcs=["bench-wsi-series"]),
        patient_id="BENCH-WSI",
        patient_name="Bench^Slide",
    )
    for n, path in enumerate(paths):
        down = 4**n
        spec = LevelSpec(
            width=-(-WIDTH // down),
            height=-(-HEIGHT // down),
            tile_width=TILE,
            tile_height=TILE,
            mpp=0.25 * down,
            objective_power=40 / down,
        )
        across, rows = spec.tiles_across, spec.tiles_down

        def tiles(across: int = across, rows: int = rows) -> list[bytes]:
            out = []
            for r in range(rows):
                for c in range(across):
                    dx, dy = (c + 0.5) / across - 0.5, (r + 0.5) / rows - 0.5
                    inside = dx * dx + dy * dy < 0.16
                    out.append(variants[1 + (r * 7 + c * 3) % 15] if inside else variants[0])
            return out

        raw = level_part10(identity, spec, tiles(), instance_number=n + 1)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(raw)
        tmp.rename(path)
    return paths


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _start_web(media: Path, log: Path) -> tuple[subprocess.Popen, int]:
    port = orthanc_peer.free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "HUIZHEN_MEDIA_ROOT": str(media),
        "HUIZHEN_DICOM_MAX_PIXEL_BYTES": str(64 * 1024**3),
        "HUIZHEN_DICOM_MAX_OBJECT_BYTES": str(4 * 1024**3),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "serve",
            "--no-dicom",
            "--no-mllp",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, port
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise RuntimeError("Huizhen did not start: " + log.read_text()[-2000:])


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def _sample(levels: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """Tiles a viewer would ask for while panning: mostly full resolution, some overview."""
    rng = random.Random(11)
    picks = []
    for _ in range(SAMPLE):
        level = 0 if rng.random() < 0.7 else rng.randrange(1, len(levels))
        across, down = levels[level]
        picks.append((level, rng.randrange(across), rng.randrange(down)))
    return list(dict.fromkeys(picks))


def _timed(client: httpx.Client, url: str) -> float:
    start = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - start) * 1000
    assert response.status_code == 200 and response.content[:2] == b"\xff\xd8", url
    return elapsed


def test_tile_latency_against_orthanc_wsi(community, settings, tmp_path):
    started = time.monotonic()
    paths = generate_slide()
    generated_in = time.monotonic() - started
    media = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(media)},
        },
    }
    settings.HUIZHEN_DICOM_MAX_PIXEL_BYTES = 64 * 1024**3
    settings.HUIZHEN_DICOM_MAX_OBJECT_BYTES = 4 * 1024**3
    source = services.Source(organisation=community.township, calling_ae_title="SCANNER")
    for path in paths:
        services.store_instance(path.read_bytes(), source=source)
    from imaging.models import Series

    series = Series.objects.get()
    study_uid, series_uid = series.study.study_instance_uid, series.series_instance_uid
    _, token = AuthToken.objects.create(community.users["township_doctor"])
    web, port = _start_web(media, tmp_path / "web.log")
    orthanc = None
    results: dict[str, dict[str, list[float]]] = {}
    gap = ""
    try:
        huizhen = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/v1/pathology/slides/{study_uid}/{series_uid}/",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        slide = huizhen.get("").json()
        grid = [(lv["tiles_across"], lv["tiles_down"]) for lv in slide["levels"]]
        picks = _sample(grid)
        urls = {"huizhen": [f"tiles/{lv}/{c}_{r}.jpg" for lv, c, r in picks]}
        clients = {"huizhen": huizhen}
        if os.path.exists(WSI_PLUGIN) and orthanc_peer.dicomweb_plugin():
            orthanc = orthanc_peer.start(
                tmp_path / "orthanc",
                extra={"Plugins": [orthanc_peer.dicomweb_plugin(), WSI_PLUGIN]},
            )
            for path in paths:
                orthanc_series = orthanc.upload(path.read_bytes())["ParentSeries"]
            pyramid = orthanc.get(f"/wsi/pyramids/{orthanc_series}").json()
            sizes = [tuple(s) for s in pyramid["Sizes"]]
            order = [sizes.index((lv["width"], lv["height"])) for lv in slide["levels"]]
            urls["orthanc"] = [
                f"/wsi/tiles/{orthanc_series}/{order[lv]}/{c}/{r}" for lv, c, r in picks
            ]
            clients["orthanc"] = orthanc.client
        else:
            gap = "Orthanc's WSI plugin is not installed (apt-get install orthanc-wsi)."
        for side in clients:
            results[side] = {"cold": [], "warm": []}
        # Cold: the first request of each tile; sides alternate tile by tile.
        for n in range(len(picks)):
            for side in sorted(clients, reverse=n % 2 == 1):
                results[side]["cold"].append(_timed(clients[side], urls[side][n]))
        for _ in range(WARM_ROUNDS):
            for n in range(len(picks)):
                for side in sorted(clients, reverse=n % 2 == 1):
                    results[side]["warm"].append(_timed(clients[side], urls[side][n]))
        orthanc_version = orthanc.version() if orthanc else ""
    finally:
        _stop(web)
        if orthanc:
            orthanc.stop()
    write_doc(
        results,
        len(picks),
        generated_in,
        sum(p.stat().st_size for p in paths),
        orthanc_version,
        gap,
    )
    warm = results["huizhen"]["warm"]
    assert percentile(warm, 50) < 100  # panning stays smooth on a shared two-core machine


def write_doc(results, tiles, generated_in, size, orthanc_version, gap) -> None:
    rows = []
    for kind in ("cold", "warm"):
        h = results["huizhen"][kind]
        o = results.get("orthanc", {}).get(kind)
        for p in (50, 95):
            hv = percentile(h, p)
            ov = percentile(o, p) if o else None
            ratio = f"{hv / ov:.2f}" if ov else "–"
            rows.append(
                f"| {kind} tile p{p} | {hv:.1f} ms | {f'{ov:.1f} ms' if ov else '–'} | {ratio} |"
            )
    table = "\n".join(
        ["| measure | Huizhen | Orthanc WSI | Huizhen / Orthanc |", "|---|---|---|---|", *rows]
    )
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = os.cpu_count()
    section = f"""{START}
## Pathology: slide tiles, Huizhen beside Orthanc WSI

Measured {today} on {platform.machine()} ({cpu} cores, Python {platform.python_version()}),
by `tests/bench/bench_pathology.py`, against Orthanc {orthanc_version or "(not run)"} with its
WSI plugin (Debian packages) on the same machine. The slide is {WIDTH:,} × {HEIGHT:,} pixels
in five DICOM WSI levels (downsample 1, 4, 16, 64, 256; 256-pixel JPEG tiles, TILED_FULL,
{size / 1e6:.0f} MB; generated in {generated_in:.0f} s, or read from `var/bench/`), stored once
in each server. {tiles} distinct tiles (70% at full resolution, the rest spread over the
overview levels, at random positions) are fetched one at a time over HTTP keep-alive,
alternating between the two servers tile by tile. *Cold* is the first request of a tile (in
Huizhen: no hot-tile entry; the level's offset table is read on the first tile of each
level); *warm* is {WARM_ROUNDS} more rounds of the same tiles. Both servers read from the
operating system's page cache (the files were just written).

{table}

- Huizhen: `manage.py serve --no-dicom --no-mllp` (uvicorn, one process) on PostgreSQL, knox
  bearer token; each tile request passes the study access gate (3 queries) and the audit
  check, then sends the stored JPEG frame as it is, read at its offset from the Basic Offset
  Table (never the whole level), with `ETag` and `Cache-Control: private, max-age=3600`;
  hot tiles come from an in-process LRU (64 MiB, `HUIZHEN_PATHOLOGY_TILE_CACHE_BYTES`).
- Orthanc: `/wsi/tiles/{{series}}/{{level}}/{{x}}/{{y}}`, no authentication.
{f"- Not compared: {gap}" if gap else ""}
{END}"""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)
