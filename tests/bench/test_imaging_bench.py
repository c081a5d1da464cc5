"""Huizhen's DICOM archive against Debian's Orthanc on the same machine, in one run.

Both sides run as separate processes, as in production: ``manage.py dicom_scp`` and
``manage.py serve --no-dicom --no-mllp`` (uvicorn) on the test database, and Orthanc with
its DICOMweb plugin (Debian's defaults, ``TCP_NODELAY=1``). Measurements alternate between the
two sides, and each figure is reported as a ratio to Orthanc. The imaging section of
docs/benchmarks.md is rewritten with the results.

Run with ``make bench``. ``HUIZHEN_BENCH_ROUNDS`` (default 3) sets the ingest rounds.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pydicom
import pytest
from django.conf import settings as django_settings
from django.db import connection
from knox.models import AuthToken

from imaging.dicom.parse import parse_instance
from imaging.models import Instance, Series, Study
from registry.models import DicomApplicationEntity
from tests.imaging.dicom_factory import make_ct_series, make_dx, make_ecg, uid, with_changes
from tests.interop import orthanc as orthanc_peer

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = int(os.environ.get("HUIZHEN_BENCH_ROUNDS", "3"))
INDEX_STUDIES = 2000  # x 10 instances: 20,000 instances indexed on each side
INDEX_PER_STUDY = 10
QUERY_REPEATS = 40
RETRIEVE_REPEATS = 5
RENDER_REPEATS = 30
STOW_BATCH = 50
DOC = Path(django_settings.BASE_DIR) / "docs" / "benchmarks.md"
START, END = "<!-- bench:imaging:start -->", "<!-- bench:imaging:end -->"
SURNAMES = [
    "Zhang", "Wang", "Li", "Zhao", "Chen", "Yang", "Huang", "Zhou", "Wu", "Xu",
    "Sun", "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Luo", "Gao", "Liang",
]  # fmt: skip
GIVEN = ["Wei", "Fang", "Min", "Jing", "Li", "Qiang", "Lei", "Jun", "Yang", "Yong"]
NODELAY = {**os.environ, "TCP_NODELAY": "1"}


# --- the corpus ----------------------------------------------------------------------------


@dataclass
class Corpus:
    ct: list[Path]
    dx: list[Path]
    ecg: list[Path]

    @property
    def ct_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.ct)

    def first(self, which: str) -> pydicom.Dataset:
        return pydicom.dcmread(getattr(self, which)[0], stop_before_pixels=True)


def build_corpus(directory: Path) -> Corpus:
    """A 300-slice 512x512 16-bit CT, a 4-image 2500x2048 DX study and 10 ECGs (fixed seed)."""

    def write(name: str, objects: list[bytes]) -> list[Path]:
        (directory / name).mkdir(parents=True)
        paths = [directory / name / f"{n:04d}.dcm" for n in range(len(objects))]
        for path, raw in zip(paths, objects, strict=True):
            path.write_bytes(raw)
        return paths

    ct = make_ct_series(300, rows=512, cols=512, patient_name="Chen^Jing", patient_id="BENCH-CT")
    dx_template = make_dx(patient_name="Liu^Yang", patient_id="BENCH-DX", rows=2500, cols=2048)
    dx = [
        with_changes(
            dx_template, SOPInstanceUID=uid("bench-dx", n), InstanceNumber=n + 1, ViewPosition=view
        )
        for n, view in enumerate(["PA", "LL", "AP", "RL"])
    ]
    ecg = [make_ecg(patient_id=f"BENCH-ECG{n}", seed=n) for n in range(10)]
    return Corpus(write("ct", ct), write("dx", dx), write("ecg", ecg))


@dataclass(frozen=True)
class Indexed:
    """One small instance: its bytes (for Orthanc) and the index fields Huizhen's parser
    extracts from it (for Huizhen's rows)."""

    raw: bytes
    study_uid: str
    series_uid: str
    sop_uid: str
    study: dict
    series: dict
    instance: dict
    metadata: dict


def index_studies(first: int, last: int) -> list[list[Indexed]]:
    """Studies ``first``..``last - 1`` of the query corpus (2,000 studies of 10 small CT
    instances: 20 surnames x 10 given names, dates over 2023-2024). Runs in a worker process."""
    limits = {
        "max_bytes": django_settings.HUIZHEN_DICOM_MAX_OBJECT_BYTES,
        "max_pixel_bytes": django_settings.HUIZHEN_DICOM_MAX_PIXEL_BYTES,
    }
    studies = []
    for n in range(first, last):
        name = f"{SURNAMES[n % 20]}^{GIVEN[(n // 20) % 10]}"
        day = datetime(2023, 1, 1, tzinfo=UTC).toordinal() + (n * 7919) % 730
        objects = make_ct_series(
            INDEX_PER_STUDY,
            rows=8,
            cols=8,
            patient_name=name,
            patient_id=f"IDX{n:05d}",
            study_date=datetime.fromordinal(day).strftime("%Y%m%d"),
            accession=f"ACC{n:06d}",
            seed=n,
        )
        parsed = [parse_instance(raw, **limits) for raw in objects]
        studies.append(
            [
                Indexed(
                    p.raw,
                    p.study_instance_uid,
                    p.series_instance_uid,
                    p.sop_instance_uid,
                    p.study,
                    p.series,
                    p.instance,
                    p.metadata,
                )
                for p in parsed
            ]
        )
    return studies


# --- the two servers -------------------------------------------------------------------------


@dataclass
class Huizhen:
    dicom_port: int
    http_port: int
    token: str
    media: Path
    scp: subprocess.Popen
    web: subprocess.Popen
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.http_port}/dicomweb",
            timeout=300,
            headers={"Authorization": f"Bearer {self.token}", "Accept-Encoding": "identity"},
        )

    def clear(self) -> None:
        Study.objects.all().delete()
        subprocess.run(["rm", "-rf", str(self.media / "dicom")], check=True)

    def stop(self) -> None:
        self.client.close()
        for process in (self.scp, self.web):
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _database_url() -> str:
    name = connection.settings_dict["NAME"]
    if "DATABASE_URL" in os.environ:
        return os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def start_huizhen(tmp_path: Path, token: str) -> Huizhen:
    media = tmp_path / "huizhen-media"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "HUIZHEN_MEDIA_ROOT": str(media),
    }
    dicom_port, http_port = orthanc_peer.free_port(), orthanc_peer.free_port()
    manage = [sys.executable, "manage.py"]
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("scp", "web")}
    scp = subprocess.Popen(
        [*manage, "dicom_scp", "--host", "127.0.0.1", "--port", str(dicom_port)],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=logs["scp"],
        stderr=subprocess.STDOUT,
    )
    web = subprocess.Popen(
        [*manage, "serve", "--no-dicom", "--no-mllp", "--host", "127.0.0.1"]
        + ["--port", str(http_port)],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=logs["web"],
        stderr=subprocess.STDOUT,
    )
    server = Huizhen(dicom_port, http_port, token, media, scp, web)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        echo = subprocess.run(
            ["echoscu", "-aet", "TEST_DR", "-aec", "HUIZHEN", "127.0.0.1", str(dicom_port)],
            capture_output=True,
            check=False,
        )
        try:
            web_up = httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=1).status_code
        except httpx.TransportError:
            web_up = 0
        if echo.returncode == 0 and web_up == 200:
            return server
        if scp.poll() is not None or web.poll() is not None:
            break
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(
        "Huizhen did not start: "
        + " | ".join((tmp_path / f"{n}.log").read_text()[-2000:] for n in ("scp", "web"))
    )


# --- measuring -------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def storescu(port: int, aet: str, called: str, files: list[Path]) -> None:
    result = subprocess.run(
        ["storescu", "-aet", aet, "-aec", called, "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        env=NODELAY,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def stow(client: httpx.Client, path: str, files: list[Path]) -> None:
    for start in range(0, len(files), STOW_BATCH):
        boundary = uuid.uuid4().hex
        body = io.BytesIO()
        for file in files[start : start + STOW_BATCH]:
            body.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
            body.write(file.read_bytes())
            body.write(b"\r\n")
        body.write(f"--{boundary}--\r\n".encode())
        response = client.post(
            path,
            content=body.getvalue(),
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Accept": "application/dicom+json",
            },
        )
        assert response.status_code == 200, response.text[:500]
        # Orthanc sends an empty Failed SOP Sequence when nothing failed
        assert not response.json().get("00081198", {}).get("Value"), response.text[:500]


def get_ok(client: httpx.Client, path: str, accept: str) -> int:
    """GET ``path`` and read the whole body; the number of bytes."""
    size = 0
    with client.stream("GET", path, headers={"Accept": accept}) as response:
        assert response.status_code == 200, (path, response.status_code, response.read()[:300])
        for chunk in response.iter_raw():
            size += len(chunk)
    return size


@dataclass
class Row:
    name: str
    unit: str
    huizhen: float
    orthanc: float
    higher_is_better: bool
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.huizhen / self.orthanc if self.orthanc else float("nan")

    @property
    def meets_goal(self) -> bool:
        return self.ratio >= 1.0 if self.higher_is_better else self.ratio <= 1.0


# --- the benchmark -----------------------------------------------------------------------------


def test_imaging_archive_against_orthanc(community, tmp_path):
    rows: list[Row] = []
    corpus = build_corpus(tmp_path / "corpus")
    mb = corpus.ct_bytes / 1e6
    DicomApplicationEntity.objects.create(
        organisation=community.township, ae_title="TEST_DR", host="127.0.0.1"
    )
    _, token = AuthToken.objects.create(community.users["township_doctor"])
    huizhen = start_huizhen(tmp_path, token)
    try:
        orthanc = orthanc_peer.start(tmp_path / "orthanc")
    except RuntimeError:
        huizhen.stop()
        raise
    orthanc_web = httpx.Client(
        base_url=orthanc.dicomweb, timeout=300, headers={"Accept-Encoding": "identity"}
    )
    load_before = os.getloadavg()
    try:
        rest_scp = orthanc_peer.peak_rss_kib(huizhen.scp.pid, "VmRSS") / 1024
        rest_orthanc = orthanc_peer.peak_rss_kib(orthanc.process.pid, "VmRSS") / 1024
        # C-STORE ingest of the CT with storescu, alternating which side goes first.
        cstore: dict[str, list[float]] = {"huizhen": [], "orthanc": []}
        for n in range(ROUNDS):
            order = ["orthanc", "huizhen"] if n % 2 == 0 else ["huizhen", "orthanc"]
            for side in order:
                if side == "orthanc":
                    orthanc.delete_everything()
                    cstore[side].append(
                        timed(
                            lambda: storescu(
                                orthanc.dicom_port, "TEST_DR", orthanc.ae_title, corpus.ct
                            )
                        )
                    )
                else:
                    huizhen.clear()
                    cstore[side].append(
                        timed(lambda: storescu(huizhen.dicom_port, "TEST_DR", "HUIZHEN", corpus.ct))
                    )
        assert Study.objects.get().number_of_instances == 300
        print(f"C-STORE seconds: {cstore}", flush=True)
        h, o = statistics.median(cstore["huizhen"]), statistics.median(cstore["orthanc"])
        rows.append(Row("C-STORE ingest, 300 CT (storescu)", "instances/s", 300 / h, 300 / o, True))
        rows.append(Row("C-STORE ingest, 300 CT (storescu)", "MB/s", mb / h, mb / o, True))
        rows.append(
            Row(
                "Peak memory (VmHWM) after the CT ingest rounds",
                "MiB",
                orthanc_peer.peak_rss_kib(huizhen.scp.pid) / 1024,
                orthanc.peak_rss_kib() / 1024,
                False,
                f"at rest: {rest_scp:.0f} / {rest_orthanc:.0f} MiB",
            )
        )
        for _side, port, called in (
            ("huizhen", huizhen.dicom_port, "HUIZHEN"),
            ("orthanc", orthanc.dicom_port, orthanc.ae_title),
        ):
            storescu(port, "TEST_DR", called, corpus.dx + corpus.ecg)
        rows.append(
            Row(
                "Peak memory (VmHWM) after 4 DX of 10 MB and 10 ECGs",
                "MiB",
                orthanc_peer.peak_rss_kib(huizhen.scp.pid) / 1024,
                orthanc.peak_rss_kib() / 1024,
                False,
                "dicom_scp process vs the whole Orthanc process",
            )
        )
        web_peak_after_ingest = orthanc_peer.peak_rss_kib(huizhen.web.pid) / 1024

        # STOW-RS ingest of the same CT, in requests of STOW_BATCH instances.
        stowed: dict[str, list[float]] = {"huizhen": [], "orthanc": []}
        for n in range(ROUNDS):
            order = ["orthanc", "huizhen"] if n % 2 == 0 else ["huizhen", "orthanc"]
            for side in order:
                if side == "orthanc":
                    orthanc.delete_everything()
                    stowed[side].append(timed(lambda: stow(orthanc_web, "studies", corpus.ct)))
                else:
                    huizhen.clear()
                    stowed[side].append(timed(lambda: stow(huizhen.client, "studies", corpus.ct)))
        assert Study.objects.get().number_of_instances == 300
        print(f"STOW-RS seconds: {stowed}", flush=True)
        h, o = statistics.median(stowed["huizhen"]), statistics.median(stowed["orthanc"])
        rows.append(
            Row(
                f"STOW-RS ingest, 300 CT ({STOW_BATCH}/request)",
                "instances/s",
                300 / h,
                300 / o,
                True,
            )
        )
        rows.append(
            Row(f"STOW-RS ingest, 300 CT ({STOW_BATCH}/request)", "MB/s", mb / h, mb / o, True)
        )
        for _side, port, called in (
            ("huizhen", huizhen.dicom_port, "HUIZHEN"),
            ("orthanc", orthanc.dicom_port, orthanc.ae_title),
        ):
            storescu(port, "TEST_DR", called, corpus.dx + corpus.ecg)

        # 20,000 more instances indexed on both sides: Orthanc through its REST API (every
        # file stored), Huizhen as index rows made by its own parser (no files: QIDO does not
        # open them), all for the township centre the querying doctor belongs to.
        started = time.perf_counter()
        making = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
        loading = ThreadPoolExecutor(4)
        chunks = [
            making.submit(index_studies, first, min(first + 100, INDEX_STUDIES))
            for first in range(0, INDEX_STUDIES, 100)
        ]
        uploads = []
        for chunk in chunks:
            studies = chunk.result()
            uploads += [loading.submit(orthanc.upload, i.raw) for study in studies for i in study]
            bulk_index(studies, community.township)
        for upload in uploads:
            upload.result()
        making.shutdown()
        loading.shutdown()
        print(f"indexed in {time.perf_counter() - started:.0f} s", flush=True)
        indexed_h = Instance.objects.count()
        indexed_o = int(orthanc.get("/statistics").json()["CountInstances"])
        assert indexed_h == indexed_o == INDEX_STUDIES * INDEX_PER_STUDY + 314

        ct, dx = corpus.first("ct"), corpus.first("dx")
        ct_series = f"studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}"
        middle = pydicom.dcmread(corpus.ct[150], stop_before_pixels=True).SOPInstanceUID
        json_accept = "application/dicom+json"
        queries = [
            ("QIDO-RS studies, exact PatientID", "studies?PatientID=IDX01234", 1),
            ("QIDO-RS studies, wildcard PatientName", "studies?PatientName=Zhao*", 100),
            (
                "QIDO-RS studies, StudyDate range (1 month)",
                "studies?StudyDate=20240301-20240331",
                0,
            ),
            ("QIDO-RS instances of the 300-slice series", f"{ct_series}/instances", 300),
        ]
        for label, query, expected in queries:
            latencies: dict[str, list[float]] = {"huizhen": [], "orthanc": []}
            counts = {}
            for n in range(QUERY_REPEATS + 2):
                order = ["orthanc", "huizhen"] if n % 2 == 0 else ["huizhen", "orthanc"]
                for side in order:
                    client = huizhen.client if side == "huizhen" else orthanc_web
                    started = time.perf_counter()
                    response = client.get(query, headers={"Accept": json_accept})
                    elapsed = time.perf_counter() - started
                    assert response.status_code in (200, 204), (side, query, response.text[:300])
                    counts[side] = len(response.json()) if response.status_code == 200 else 0
                    if n >= 2:  # two warm-up rounds
                        latencies[side].append(elapsed * 1000)
            assert counts["huizhen"] == counts["orthanc"], (query, counts)
            if expected:
                assert counts["huizhen"] == expected, (query, counts)
            found = counts["huizhen"]
            note = f"{found} result{'' if found == 1 else 's'}"
            for p in (50, 95):
                rows.append(
                    Row(
                        f"{label}, p{p}",
                        "ms",
                        percentile(latencies["huizhen"], p),
                        percentile(latencies["orthanc"], p),
                        False,
                        note,
                    )
                )

        # WADO-RS: the whole CT series, as stored (explicit VR little endian).
        dicom_accept = 'multipart/related; type="application/dicom"'
        retrieve: dict[str, list[float]] = {"huizhen": [], "orthanc": []}
        sizes = {}
        for n in range(RETRIEVE_REPEATS + 1):
            for side in ["orthanc", "huizhen"] if n % 2 == 0 else ["huizhen", "orthanc"]:
                client = huizhen.client if side == "huizhen" else orthanc_web
                started = time.perf_counter()
                sizes[side] = get_ok(client, ct_series, dicom_accept)
                if n:
                    retrieve[side].append(time.perf_counter() - started)
        assert sizes["huizhen"] > corpus.ct_bytes * 0.99 and sizes["orthanc"] > corpus.ct_bytes
        rows.append(
            Row(
                "WADO-RS whole CT series (300 x 512 KiB)",
                "MB/s",
                sizes["huizhen"] / 1e6 / statistics.median(retrieve["huizhen"]),
                sizes["orthanc"] / 1e6 / statistics.median(retrieve["orthanc"]),
                True,
            )
        )

        # Rendered frames: a CT slice and a 2500x2048 DX, as JPEG.
        dx_instance = (
            f"studies/{dx.StudyInstanceUID}/series/{dx.SeriesInstanceUID}"
            f"/instances/{dx.SOPInstanceUID}/rendered"
        )
        for label, path in (
            ("Rendered CT frame (512x512 JPEG), p50", f"{ct_series}/instances/{middle}/rendered"),
            ("Rendered DX frame (2500x2048 JPEG), p50", dx_instance),
        ):
            rendered: dict[str, list[float]] = {"huizhen": [], "orthanc": []}
            for n in range(RENDER_REPEATS + 2):
                for side in ["orthanc", "huizhen"] if n % 2 == 0 else ["huizhen", "orthanc"]:
                    client = huizhen.client if side == "huizhen" else orthanc_web
                    elapsed = timed(lambda c=client, p=path: get_ok(c, p, "image/jpeg"))
                    if n >= 2:
                        rendered[side].append(elapsed * 1000)
            rows.append(
                Row(
                    label,
                    "ms",
                    statistics.median(rendered["huizhen"]),
                    statistics.median(rendered["orthanc"]),
                    False,
                )
            )
        web_peak = orthanc_peer.peak_rss_kib(huizhen.web.pid) / 1024
        orthanc_peak = orthanc.peak_rss_kib() / 1024
        orthanc_version = orthanc.version()
        load_after = os.getloadavg()
    finally:
        orthanc_web.close()
        orthanc.stop()
        huizhen.stop()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )

    context = {
        "indexed": (
            f"{indexed_h:,} instances on each side: the 300-slice CT, 4 DX and 10 ECGs sent by "
            f"C-STORE and STOW-RS, plus {INDEX_STUDIES:,} studies x {INDEX_PER_STUDY} small CT "
            "instances (20 surnames x 10 given names, dates over 2023-2024). Orthanc received "
            "the 20,000 through its REST API (files and index); Huizhen's rows were bulk-created "
            "from its own parser's output (index only, no files: QIDO never opens files)."
        ),
        "memory": (
            f"After all tests, Orthanc's peak was {orthanc_peak:.0f} MiB; Huizhen's web "
            f"process (uvicorn) peaked at {web_peak_after_ingest:.0f} MiB after ingest and "
            f"{web_peak:.0f} MiB after all tests."
        ),
        "orthanc_version": orthanc_version,
        "load": f"{load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end",
        "rounds": ROUNDS,
    }
    table = render(rows)
    print("\n" + table)
    write_doc(table, context)


def bulk_index(chunk: list[list[Indexed]], organisation: object) -> None:
    """Index rows for some of the small studies, in bulk."""
    studies = Study.objects.bulk_create(
        Study(
            study_instance_uid=parsed[0].study_uid,
            **parsed[0].study,
            organisation=organisation,
            modalities=["CT"],
            number_of_series=1,
            number_of_instances=len(parsed),
        )
        for parsed in chunk
    )
    series = Series.objects.bulk_create(
        Series(
            series_instance_uid=parsed[0].series_uid,
            **parsed[0].series,
            study=study,
            number_of_instances=len(parsed),
        )
        for parsed, study in zip(chunk, studies, strict=True)
    )
    Instance.objects.bulk_create(
        Instance(
            series=one_series,
            sop_instance_uid=p.sop_uid,
            storage_key=f"bench-index-only/{p.sop_uid}.dcm",
            metadata=p.metadata,
            calling_ae_title="TEST_DR",
            **p.instance,
        )
        for parsed, one_series in zip(chunk, series, strict=True)
        for p in parsed
    )


# --- the report --------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def render(rows: list[Row]) -> str:
    lines = [
        "| measure | unit | Huizhen | Orthanc | Huizhen / Orthanc | goal | met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for row in rows:
        goal = "≥ 1.0" if row.higher_is_better else "≤ 1.0"
        note = f" ({row.note})" if row.note else ""
        lines.append(
            f"| {row.name}{note} | {row.unit} | {_fmt(row.huizhen)} | {_fmt(row.orthanc)} "
            f"| {row.ratio:.2f} | {goal} | {'yes' if row.meets_goal else '**no**'} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    os_name = next(
        (
            line.split("=", 1)[1].strip('"')
            for line in Path("/etc/os-release").read_text().splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        platform.platform(),
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem_kib / 1024 / 1024:.0f} GiB RAM, {os_name}, "
        f"Python {platform.python_version()}, PostgreSQL {postgres}"
    )


def write_doc(table: str, context: dict[str, object]) -> None:
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"""{START}
## Imaging archive: Huizhen beside Orthanc

Measured {today} by `make bench` (`tests/bench/test_imaging_bench.py`).

- Machine: {machine()}.
- Load average {context["load"]}: other work ran beside the benchmark, so compare the
  ratios rather than the absolute figures with other runs.
- Peer: Orthanc {context["orthanc_version"]} (Debian package) with its DICOMweb plugin, on the
  same machine.
- The two sides alternate within the run. Ingest figures are medians of {context["rounds"]}
  rounds; latencies are over {QUERY_REPEATS} (queries) or {RENDER_REPEATS} (rendering)
  requests per side after two warm-up rounds.

{table}

- **Huizhen** runs as in production: `manage.py dicom_scp` and `manage.py serve --no-dicom
  --no-mllp` (uvicorn, one process) as separate processes on PostgreSQL, with durable commits
  (file written, then index row committed, before each success status) and local-disk storage.
  Every DICOMweb request authenticates a bearer token, is scoped to the township doctor's
  organisation and is audited (searches and study views).
- **Orthanc** runs Debian's default configuration (SQLite index, files on disk) with its own
  folders and ports, no authentication and `TCP_NODELAY=1` in its environment (without it,
  Nagle's algorithm holds each DIMSE exchange ~40 ms and it takes ~20 instances/s).
- Clients: DCMTK `storescu` with `TCP_NODELAY=1` (one association, 300 files); `httpx`
  with keep-alive and no gzip (Orthanc gzips DICOM for clients that offer it). STOW-RS sends
  {STOW_BATCH} instances per multipart request.
- Indexed for the queries: {context["indexed"]}
- Memory: {context["memory"]}

The ratio is Huizhen's figure divided by Orthanc's: for throughput higher is better, for
latency and memory lower is better. "met" compares it with the goal of the imaging issue.
{END}"""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)
