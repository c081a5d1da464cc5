"""HL7 v2 over MLLP: inbound durable acknowledgement, full processing, outbound sending.

Run with ``make bench`` (or ``scripts/with-test-services .venv/bin/python -m pytest -q -s
tests/bench/bench_mllp.py -o python_files=bench_*.py``). Every figure is measured in one run,
side by side, on this machine, and written to docs/benchmarks.md between the HL7 markers.

- Inbound ACK: ``manage.py mllp_listener`` in its own process (check, commit, then ACK)
  against a minimal asyncio listener in its own process that reads only MSH, inserts one row
  with psycopg, commits and ACKs (the practical limit), over 1 and over 4 connections.
- Processing: stored ADT^A04 messages applied to the patient index by a real Celery worker
  (prefork, as many processes as cores) fed over the Redis broker.
- Outbound: ORU^R01 messages built by ``ehr_bridge.builders``, queued with
  ``enqueue_outbound`` and sent by the sender to a local MLLP receiver that answers AA.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app
from ehr_bridge import services
from ehr_bridge.models import Hl7Partner, InboundMessage, InboundStatus
from tests.ehr_bridge.samples import realistic_adt

pytestmark = pytest.mark.django_db(transaction=True)

DOCS = Path(settings.BASE_DIR) / "docs" / "benchmarks.md"
START, END = "<!-- bench:hl7:start -->", "<!-- bench:hl7:end -->"
VT, FS, CR = b"\x0b", b"\x1c", b"\r"
ACK_MESSAGES = int(os.environ.get("HUIZHEN_BENCH_HL7_MESSAGES", "2000"))
PROCESS_MESSAGES = int(os.environ.get("HUIZHEN_BENCH_HL7_PROCESS", "2000"))
OUTBOUND_MESSAGES = int(os.environ.get("HUIZHEN_BENCH_HL7_OUTBOUND", "1000"))
RESULTS: dict[str, Any] = {}


# --- helpers ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _database_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/huizhen")
    return base.rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "HUIZHEN_TEST_CELERY_EAGER": "false",
        **extra,
    }


def _end_other_sessions() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def _read_frame(sock: socket.socket, buffer: bytearray) -> bytes:
    while True:
        end = buffer.find(FS)
        if end >= 0:
            start = buffer.find(VT)
            payload = bytes(buffer[start + 1 : end])
            del buffer[: end + 2]
            return payload
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer += chunk


def _drive(port: int, messages: list[bytes], connections: int) -> dict[str, float]:
    """Send ``messages`` over ``connections`` sockets, each waiting for its ACK; return
    messages/s and the ACK latency percentiles (ms)."""
    shares = [messages[i::connections] for i in range(connections)]
    latencies: list[list[float]] = [[] for _ in range(connections)]
    codes: list[list[str]] = [[] for _ in range(connections)]
    barrier = threading.Barrier(connections + 1)

    def run(n: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = bytearray()
            barrier.wait()
            for raw in shares[n]:
                started = time.perf_counter()
                sock.sendall(VT + raw + FS + CR)
                ack = _read_frame(sock, buffer)
                latencies[n].append((time.perf_counter() - started) * 1000)
                codes[n].append(ack.split(b"\rMSA|", 1)[1][:2].decode())

    threads = [threading.Thread(target=run, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(600)
    elapsed = time.perf_counter() - started
    flat = sorted(x for part in latencies for x in part)
    assert all(c == "AA" for part in codes for c in part), {c for p in codes for c in p}
    assert len(flat) == len(messages)
    return {
        "rate": len(messages) / elapsed,
        "p50": statistics.median(flat),
        "p99": flat[min(len(flat) - 1, int(len(flat) * 0.99))],
    }


MINIMAL_LISTENER = textwrap.dedent(
    """
    import asyncio, sys, psycopg
    from datetime import datetime

    DSN, PORT = sys.argv[1], int(sys.argv[2])

    async def handle(reader, writer):
        conn = await psycopg.AsyncConnection.connect(DSN)
        try:
            while True:
                await reader.readuntil(b"\\x0b")
                payload = (await reader.readuntil(b"\\x1c\\r"))[:-2]
                msh = payload.split(b"\\r", 1)[0].decode("latin-1").split("|")
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO bench_minimal (sender, control_id, raw) VALUES (%s, %s, %s)",
                        (msh[2] + "|" + msh[3], msh[9], payload),
                    )
                now = datetime.now().strftime("%Y%m%d%H%M%S")
                ack = (
                    f"MSH|^~\\\\&|{msh[4]}|{msh[5]}|{msh[2]}|{msh[3]}|{now}||ACK^{msh[8]}|"
                    f"A{msh[9]}|P|{msh[11]}\\rMSA|AA|{msh[9]}\\r"
                )
                writer.write(b"\\x0b" + ack.encode("latin-1") + b"\\x1c\\r")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            await conn.close()
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", PORT)
        async with server:
            await server.serve_forever()

    asyncio.run(main())
    """
)


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        args, cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def partner(community) -> Hl7Partner:
    return Hl7Partner.objects.create(
        name="County HIS",
        organisation=community.county,
        sending_application="DEMO_HIS",
        sending_facility="COUNTY_HOSP",
        assigning_authority="COUNTY_HOSP",
    )


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"huizhen-bench-{uuid.uuid4().hex[:8]}"
    previous = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager = False
    app.conf.task_default_queue = name
    try:
        yield name
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = previous
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(name)
            conn.default_channel.queue_delete(name)


# --- inbound acknowledgement -----------------------------------------------------------------


def test_inbound_durable_ack_against_the_minimal_listener(partner, queue):
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_minimal (id bigserial PRIMARY KEY, sender text, "
            "control_id text, raw bytea, received_at timestamptz DEFAULT now())"
        )
    env = _env(HUIZHEN_CELERY_QUEUE=queue)
    huizhen_port, minimal_port = _free_port(), _free_port()
    dsn = _database_url().replace("postgres://", "postgresql://", 1)
    runs: dict[str, dict[str, float]] = {}
    try:
        with (
            _process(
                [sys.executable, "manage.py", "mllp_listener", "--port", str(huizhen_port)], env
            ),
            _process([sys.executable, "-c", MINIMAL_LISTENER, dsn, str(minimal_port)], env),
        ):
            _wait_port(huizhen_port)
            _wait_port(minimal_port)
            for conns in (1, 4):
                for name, port in (("huizhen", huizhen_port), ("minimal", minimal_port)):
                    prefix = f"K{name[0]}{conns}-"
                    warm = [
                        realistic_adt(i, control_prefix=prefix + "W").encode() for i in range(100)
                    ]
                    _drive(port, warm, conns)
                    batch = [
                        realistic_adt(i, control_prefix=prefix).encode()
                        for i in range(ACK_MESSAGES)
                    ]
                    runs[f"{name}-{conns}"] = _drive(port, batch, conns)
    finally:
        _end_other_sessions()
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS bench_minimal")
    stored = InboundMessage.objects.filter(control_id__startswith="Kh").count()
    assert stored == 2 * (ACK_MESSAGES + 100)
    RESULTS["ack"] = runs
    _write_results()


# --- full processing -------------------------------------------------------------------------


def _store(count: int, prefix: str) -> list[int]:
    ids = []
    for i in range(count):
        raw = realistic_adt(i, control_prefix=prefix, mrn_prefix=prefix).encode()
        result = services.inbound_receive(raw=raw, peer="bench")
        assert result.code == "AA"
        ids.append(result.message_id)
    return ids


@pytest.mark.parametrize("concurrency", [os.cpu_count() or 2])
def test_processing_by_a_celery_worker(partner, queue, concurrency):
    from ehr_bridge.tasks import inbound_process

    warm = _store(20, "PW")
    ids = _store(PROCESS_MESSAGES, "PB")
    env = _env(HUIZHEN_CELERY_QUEUE=queue)
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=WARNING",
    ]
    try:
        with _process(args, env) as worker:
            for message_id in warm:
                inbound_process.delay(message_id)
            processed = InboundMessage.objects.filter(status=InboundStatus.PROCESSED)
            deadline = time.monotonic() + 60
            while processed.count() < len(warm):
                assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "the worker did not start"
                time.sleep(0.1)
            started = time.perf_counter()
            for message_id in ids:
                inbound_process.delay(message_id)
            enqueued = time.perf_counter() - started
            deadline = time.monotonic() + 600
            while processed.count() < len(warm) + len(ids):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
    finally:
        _end_other_sessions()
    statuses = set(InboundMessage.objects.values_list("status", flat=True))
    assert statuses == {InboundStatus.PROCESSED}
    RESULTS.setdefault("processing", {})[concurrency] = {
        "rate": len(ids) / elapsed,
        "enqueue_rate": len(ids) / enqueued,
    }
    _write_results()


# --- parsing and outbound ------------------------------------------------------------------


def test_parsing_python_hl7_against_hl7apy():
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    from ehr_bridge import parse

    texts = [realistic_adt(n) for n in range(400)]
    started = time.perf_counter()
    for text in texts:
        parse.parse(text).first("PID")
    ours = len(texts) / (time.perf_counter() - started)
    started = time.perf_counter()
    for text in texts[:60]:
        parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)
    theirs = 60 / (time.perf_counter() - started)
    RESULTS["parse"] = {"python-hl7": ours, "hl7apy": theirs}
    _write_results()


RECEIVER = textwrap.dedent(
    """
    import asyncio, sys

    async def handle(reader, writer):
        try:
            while True:
                await reader.readuntil(b"\\x0b")
                payload = (await reader.readuntil(b"\\x1c\\r"))[:-2]
                msh = payload.split(b"\\r", 1)[0].decode("latin-1").split("|")
                ack = f"MSH|^~\\\\&|R|R|||20240301||ACK|A{msh[9]}|P|2.5\\rMSA|AA|{msh[9]}\\r"
                writer.write(b"\\x0b" + ack.encode() + b"\\x1c\\r")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
        async with server:
            await server.serve_forever()

    asyncio.run(main())
    """
)


def test_outbound_oru_r01_to_a_local_receiver(partner, monkeypatch):
    from datetime import datetime

    from ehr_bridge import builders, outbound
    from ehr_bridge.models import OutboundMessage, OutboundStatus

    monkeypatch.setattr(outbound, "outbound_dispatch", lambda message_id: None)
    port = _free_port()
    partner.outbound_enabled, partner.outbound_host, partner.outbound_port = (
        True,
        "127.0.0.1",
        port,
    )
    partner.outbound_events = ["ORU^R01"]
    partner.save()
    report = builders.ConsultReport(
        "R",
        "O",
        "ECG12",
        "十二导联心电图",
        datetime(2024, 3, 1, 8),
        datetime(2024, 3, 1, 9),
        "D01",
        "李医生",
        (
            builders.ReportSection("所见", "窦性心律，心率 72 次/分\nPR 160 ms，QRS 90 ms"),
            builders.ReportSection("结论", "正常心电图"),
        ),
    )
    patients = 100
    started = time.perf_counter()
    texts = []
    for n in range(OUTBOUND_MESSAGES):
        patient = builders.PatientData(
            (builders.Identifier(f"H{n % patients:07d}", "COUNTY_HOSP"),), "王小明", "male"
        )
        env = builders.Envelope("DEMO_HIS", "COUNTY_HOSP", f"OUT{n:08d}")
        texts.append(
            (
                builders.patient_key(patient),
                builders.build_oru_r01(env, patient, report, now=datetime(2024, 3, 1, 9)),
            )
        )
    build_rate = OUTBOUND_MESSAGES / (time.perf_counter() - started)
    for key, text in texts:
        outbound.enqueue_outbound(partner, "ORU^R01", key, text)
    with _process([sys.executable, "-c", RECEIVER, str(port)], _env()):
        _wait_port(port)
        started = time.perf_counter()
        result = outbound.outbound_drain(partner_id=partner.pk, limit=OUTBOUND_MESSAGES)
        elapsed = time.perf_counter() - started
    assert result.acked == OUTBOUND_MESSAGES
    assert OutboundMessage.objects.filter(status=OutboundStatus.ACKED).count() == result.acked
    RESULTS["outbound"] = {
        "rate": result.acked / elapsed,
        "patients": patients,
        "build_rate": build_rate,
    }
    _write_results()


# --- results ---------------------------------------------------------------------------------


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
        cursor.execute("SHOW synchronous_commit")
        sync = cursor.fetchone()[0]
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, PostgreSQL {pg} (synchronous_commit={sync}) "
        "and Redis on the same machine"
    )


def _write_results() -> None:
    lines = [START, "", "## HL7 v2 over MLLP", "", f"Machine: {_machine()}.", ""]
    if "ack" in RESULTS:
        runs = RESULTS["ack"]
        lines += [
            f"Inbound ADT^A04 (realistic: Chinese names, 6 OBX, ~1.5 kB), "
            f"{ACK_MESSAGES} messages per run, each connection waiting for its ACK:",
            "",
            "| listener | connections | messages/s | ACK p50 ms | ACK p99 ms |",
            "|---|---|---|---|---|",
        ]
        for conns in (1, 4):
            for name, label in (
                ("huizhen", "`mllp_listener` (check, commit, ACK)"),
                ("minimal", "minimal asyncio + psycopg (MSH only)"),
            ):
                r = runs[f"{name}-{conns}"]
                lines.append(
                    f"| {label} | {conns} | {r['rate']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} |"
                )
        ratios = ", ".join(
            f"{runs[f'huizhen-{c}']['rate'] / runs[f'minimal-{c}']['rate']:.2f}× over {c}"
            for c in (1, 4)
        )
        lines += ["", f"Ratio to the minimal listener: {ratios}.", ""]
    if "processing" in RESULTS:
        for concurrency, r in RESULTS["processing"].items():
            lines.append(
                f"Fully processed (python-hl7 parse, patient created in the index, audited, "
                f"event published): **{r['rate']:.0f} ADT^A04/s** with a Celery worker of "
                f"{concurrency} prefork processes ({PROCESS_MESSAGES} messages, each a new "
                "patient)."
            )
        lines.append("")
    if "parse" in RESULTS:
        r = RESULTS["parse"]
        lines.append(
            f"Parsing alone, same messages: python-hl7 {r['python-hl7']:.0f}/s, hl7apy "
            f"{r['hl7apy']:.0f}/s (tolerant, no group finding)."
        )
        lines.append("")
    if "outbound" in RESULTS:
        r = RESULTS["outbound"]
        lines.append(
            "Outbound ORU^R01 (built by `ehr_bridge.builders`, queued, sent over one "
            "connection, AA awaited, outcome committed): "
            f"**{r['rate']:.0f} messages/s** to a local receiver ({OUTBOUND_MESSAGES} messages, "
            f"{r['patients']} patients; building alone {r['build_rate']:.0f}/s)."
        )
        lines.append("")
    lines.append(END)
    section = "\n".join(lines)
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    # Read-modify-write of this section only: another benchmark may write its own section.
    current = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if pattern.search(current):
        updated = pattern.sub(lambda _m: section, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(updated, encoding="utf-8")
