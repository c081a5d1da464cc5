"""Live-consult signalling relay and the specialist worklist at scale.

Run with ``make bench`` (or ``scripts/with-test-services .venv/bin/python -m pytest -q -s
tests/bench/bench_signalling.py -p no:cacheprovider -o python_files="test_*.py bench_*.py"``).
Writes docs/benchmarks.md between the signalling markers.

- Relay: ``manage.py serve --no-dicom --no-mllp`` (uvicorn, one process, the Redis channel
  layer of the settings, a psycopg pool of 16) as a subprocess on the test database, and beside
  it, in the same run, a minimal relay written directly on ``websockets`` (one process that
  pairs the two peers of a room and forwards their frames). 50 and 200 two-peer rooms; in
  Huizhen each room is a live session opened by ``live.live_session_open`` whose requester and
  specialist connect with knox tokens. The peers exchange ``ice`` frames (directed,
  relayed peer to peer, no database write per frame) that carry the sender's clock; the
  load comes from client subprocesses that each drive a share of the rooms.
  *Latency*: 200 frames/s in all, round robin over every peer, for ``RATE_SECONDS``.
  *Saturation*: every peer keeps ``WINDOW`` frames in flight (closed loop); frames delivered per
  second over ``SATURATE_SECONDS`` after a second of warm-up. The flood throttle stays on,
  its rate raised for the run (``HUIZHEN_LIVE_RATE``), so that it costs what it costs but does
  not cap the measurement.
- Worklist: ``WORKLIST_CONSULTS`` consults inserted in bulk (``INSERT … SELECT
  generate_series``) across centres, specialties, urgencies and states, then
  ``GET /api/v1/consult/worklist/`` (``which=mine`` and ``which=unassigned``) over HTTP from
  the same server, for specialists of every centre.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parents[2]
DOCS = BASE_DIR / "docs" / "benchmarks.md"
START, END = "<!-- bench:signalling:start -->", "<!-- bench:signalling:end -->"
ROOMS = [int(n) for n in os.environ.get("HUIZHEN_BENCH_ROOMS", "50,200").split(",")]
RATE = 200  # frames per second, all rooms together
RATE_SECONDS = float(os.environ.get("HUIZHEN_BENCH_RATE_SECONDS", "10"))
SATURATE_SECONDS = float(os.environ.get("HUIZHEN_BENCH_SATURATE_SECONDS", "6"))
WINDOW = 4  # frames in flight per peer while saturating
CLIENT_PROCESSES = int(os.environ.get("HUIZHEN_BENCH_CLIENT_PROCESSES", "2"))
WORKLIST_CONSULTS = int(os.environ.get("HUIZHEN_BENCH_WORKLIST_CONSULTS", "100000"))
WORKLIST_REQUESTS = 300
CENTRES = 10
SPECIALISTS_PER_CENTRE = 6
VILLAGES = 40
PATIENTS = 1000
CANDIDATE = (
    "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.5 "
    "rport 46154 generation 0 ufrag sK2v network-cost 999"
)
RESULTS: dict[str, Any] = {}


# --- the load client and the bare relay (run as subprocesses) ------------------------------------


def _frame(seq: int, to: str, phase: str) -> str:
    return json.dumps(
        {
            "type": "ice",
            "seq": seq,
            "to": to,
            "payload": {
                "candidate": {"candidate": CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0},
                "t": time.perf_counter_ns(),
                "k": phase,
            },
        }
    )


class _Peer:
    def __init__(self, url: str, me: str, other_id: str, seq: int) -> None:
        self.url, self.me, self.other_id, self.seq = url, me, other_id, seq
        self.ws: Any = None
        self.other: _Peer | None = None
        self.window = asyncio.Semaphore(WINDOW)
        self.welcomed = asyncio.Event()

    async def send(self, phase: str) -> None:
        self.seq += 1
        await self.ws.send(_frame(self.seq, self.other_id, phase))


class _Client:
    """One client process: its rooms, the frames they receive, the phases' counters."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.peers: list[_Peer] = []
        for room in spec["rooms"]:
            a = _Peer(room["a_url"], room["a_id"], room["b_id"], spec["seq"])
            b = _Peer(room["b_url"], room["b_id"], room["a_id"], spec["seq"])
            a.other, b.other = b, a
            self.peers += [a, b]
        self.latencies: list[float] = []
        self.delivered = 0
        self.window_from = self.window_to = 0
        self.received = 0
        self.errors: list[str] = []

    async def _read(self, peer: _Peer) -> None:
        with contextlib.suppress(Exception):  # the socket closes at the end of the run
            async for raw in peer.ws:
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "welcome":
                    peer.welcomed.set()
                    continue
                if kind == "error":
                    self.errors.append(frame.get("code", "?"))
                    continue
                if kind != "ice":
                    continue
                now = time.perf_counter_ns()
                payload = frame["payload"]
                self.received += 1
                if payload["k"] == "rate":
                    self.latencies.append((now - payload["t"]) / 1e6)
                else:
                    if self.window_from <= now <= self.window_to:
                        self.delivered += 1
                    assert peer.other is not None
                    peer.other.window.release()

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        gate = asyncio.Semaphore(16)
        origin = self.spec["origin"]

        async def one(peer: _Peer) -> None:
            async with gate:
                peer.ws = await connect(
                    peer.url, origin=origin, max_size=2**20, open_timeout=60, ping_interval=None
                )
            asyncio.get_running_loop().create_task(self._read(peer))
            if self.spec["welcome"]:
                await asyncio.wait_for(peer.welcomed.wait(), 60)

        await asyncio.gather(*(one(p) for p in self.peers))

    async def rate(self, rate: float, seconds: float, start_at: float) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        total = int(rate * seconds)
        started = time.perf_counter()
        for n in range(total):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.peers[n % len(self.peers)].send("rate")
        deadline = time.perf_counter() + 5
        while len(self.latencies) < total and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        return {"sent": total, "latencies": self.latencies}

    async def saturate(self, seconds: float, warmup: float, start_at: float) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        begin = time.perf_counter_ns()
        self.window_from = begin + int(warmup * 1e9)
        self.window_to = self.window_from + int(seconds * 1e9)
        stop = time.perf_counter() + warmup + seconds
        sent = 0

        async def pump(peer: _Peer) -> None:
            nonlocal sent
            while time.perf_counter() < stop:
                try:
                    await asyncio.wait_for(peer.window.acquire(), 5)
                except TimeoutError:
                    continue
                await peer.send("saturate")
                sent += 1

        await asyncio.gather(*(pump(p) for p in self.peers))
        await asyncio.sleep(1)
        return {"delivered": self.delivered, "seconds": seconds, "sent": sent}

    async def close(self) -> None:
        for peer in self.peers:
            with contextlib.suppress(Exception):
                await peer.ws.close()


async def _client(spec: dict[str, Any]) -> None:
    """Lines on stdin: the phases to run; one JSON line on stdout for each."""
    loop = asyncio.get_running_loop()
    client = _Client(spec)
    await client.connect()
    print(json.dumps({"ready": True}), flush=True)
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        order = json.loads(line)
        if order["phase"] == "rate":
            result = await client.rate(order["rate"], order["seconds"], order["start_at"])
        elif order["phase"] == "saturate":
            result = await client.saturate(order["seconds"], order["warmup"], order["start_at"])
        else:
            break
        result["errors"] = client.errors
        print(json.dumps(result), flush=True)
    await client.close()


def client_main() -> None:
    spec = json.loads(sys.stdin.readline())
    asyncio.run(_client(spec))


async def _relay(port: int) -> None:
    """The bare relay: the two sockets of a room (its path) forward each other's frames."""
    from websockets.asyncio.server import serve

    rooms: dict[str, list[Any]] = {}

    async def handler(ws: Any) -> None:
        peers = rooms.setdefault(ws.request.path, [])
        peers.append(ws)
        try:
            async for message in ws:
                for peer in peers:
                    if peer is not ws:
                        await peer.send(message)
        finally:
            peers.remove(ws)

    async with serve(handler, "127.0.0.1", port, max_size=2**20, ping_interval=None):
        await asyncio.Future()


def relay_main() -> None:
    asyncio.run(_relay(int(sys.argv[1])))


# --- orchestration -----------------------------------------------------------------------------

_BOOT = (
    "import sys, django; sys.path.insert(0, {base!r}); django.setup(); "
    "from tests.bench.bench_signalling import {main}; {main}()"
)


def _python(main: str, *args: str, **popen: Any) -> subprocess.Popen:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    code = _BOOT.format(base=str(BASE_DIR), main=main)
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=BASE_DIR, env=env, text=True, **popen
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}")


def _database_url() -> str:
    from django.db import connection

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/huizhen")
    return base.rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]


@contextlib.contextmanager
def _server() -> Iterator[int]:
    """Huizhen as production runs it: ``manage.py serve``, uvicorn, Redis layer, pool of 16."""
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "HUIZHEN_TEST_CELERY_EAGER": "true",
        "HUIZHEN_DB_POOL_MAX": "16",  # as in production
        # The throttle runs on every frame; raised so that it does not cap the saturation run.
        "HUIZHEN_LIVE_RATE": "1000000",
        "HUIZHEN_LIVE_BURST": "1000000",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--no-dicom", "--no-mllp", "--port", str(port)],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        with httpx.Client(timeout=5) as http:
            deadline = time.monotonic() + 60
            while http.get(f"http://127.0.0.1:{port}/healthz").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        yield port
    finally:
        _stop(process)


@contextlib.contextmanager
def _bare_relay() -> Iterator[int]:
    port = _free_port()
    process = _python("relay_main", str(port))
    try:
        _wait_port(port)
        yield port
    finally:
        _stop(process)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _read_line(process: subprocess.Popen, timeout: float) -> dict[str, Any]:
    """One JSON line from a client; the clients print nothing else."""
    import selectors as select

    assert process.stdout is not None
    poll = select.DefaultSelector()
    poll.register(process.stdout, select.EVENT_READ)
    if not poll.select(timeout):
        raise AssertionError("a load client did not answer in time")
    line = process.stdout.readline()
    if not line:
        raise AssertionError(f"a load client ended (exit {process.wait(5)})")
    return json.loads(line)


def _drive(rooms: list[dict[str, Any]], *, origin: str, welcome: bool, seq: int) -> dict:
    """Split the rooms over the client processes, run both phases, merge their figures."""
    count = max(1, min(CLIENT_PROCESSES, len(rooms)))
    clients = [
        _python("client_main", stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(count)
    ]
    try:
        for k, client in enumerate(clients):
            spec = {"rooms": rooms[k::count], "origin": origin, "welcome": welcome, "seq": seq}
            assert client.stdin is not None
            client.stdin.write(json.dumps(spec) + "\n")
            client.stdin.flush()
        for client in clients:
            assert _read_line(client, 180)["ready"]

        def phase(order: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
            order = {**order, "start_at": time.time() + 1.0}
            for client in clients:
                assert client.stdin is not None
                client.stdin.write(json.dumps(order) + "\n")
                client.stdin.flush()
            return [_read_line(client, timeout) for client in clients]

        rate = phase(
            {"phase": "rate", "rate": RATE / count, "seconds": RATE_SECONDS}, RATE_SECONDS + 30
        )
        saturate = phase(
            {"phase": "saturate", "seconds": SATURATE_SECONDS, "warmup": 1.0},
            SATURATE_SECONDS + 30,
        )
        for client in clients:
            assert client.stdin is not None
            client.stdin.write(json.dumps({"phase": "quit"}) + "\n")
            client.stdin.flush()
    finally:
        for client in clients:
            try:
                client.wait(30)
            except subprocess.TimeoutExpired:
                _stop(client)
    latencies = [x for r in rate for x in r["latencies"]]
    sent = sum(r["sent"] for r in rate)
    errors = sorted({e for r in rate + saturate for e in r["errors"]})
    assert not errors, errors
    return {
        "rooms": len(rooms),
        "p50": statistics.median(latencies),
        "p99": _pct(latencies, 0.99),
        "lost": sent - len(latencies),
        "saturation": sum(r["delivered"] for r in saturate) / SATURATE_SECONDS,
    }


# --- data ---------------------------------------------------------------------------------------


def _world() -> dict[str, Any]:
    """A county with consult centres (each with specialists), villages and their doctors."""
    from tests.factories import PatientFactory, make_org, make_staff

    specialties = ["ecg", "imaging", "pathology", "lab", "cardiology"]
    county = make_org("县医院", "county_hospital", services=["cardiology"])
    centres = [
        make_org(f"会诊中心{c}", "regional_centre", county, services=[specialties[c % 5]])
        for c in range(CENTRES)
    ]
    townships = [make_org(f"第{t}镇卫生院", "township_centre", county) for t in range(8)]
    villages = [
        make_org(f"第{v}村卫生室", "village_clinic", townships[v % 8]) for v in range(VILLAGES)
    ]
    requesters = [
        make_staff(f"bench.village{v}", villages[v], "village_doctor") for v in range(VILLAGES)
    ]
    specialists = [
        make_staff(f"bench.spec{c}.{s}", centres[c], "specialist")
        for c in range(CENTRES)
        for s in range(SPECIALISTS_PER_CENTRE)
    ]
    first = date(1940, 1, 1)
    patients = [  # one birth date each: the resident ID number is unique
        PatientFactory(
            home_organisation=villages[k % VILLAGES], birth_date=first + timedelta(11 * k)
        )
        for k in range(PATIENTS)
    ]
    return {
        "centres": centres,
        "villages": villages,
        "requesters": requesters,
        "specialists": specialists,
        "patients": patients,
    }


# Consult states by share (percent), the shape of a few years of a county's consults.
_STATES = [
    ("closed", 68),
    ("cancelled", 5),
    ("declined", 3),
    ("delivered", 3),
    ("signed", 3),
    ("reported", 3),
    ("in_progress", 3),
    ("accepted", 3),
    ("queued", 5),
    ("submitted", 2),
    ("returned", 1),
    ("draft", 1),
]
_TYPES = ["ecg_read", "imaging_read", "pathology_read", "lab_review", "specialist_video", "mdt"]


def _insert_consults(world: dict[str, Any], count: int, *, room_consults: int = 0) -> float:
    """``count`` consults in one statement; the first ``room_consults`` are in progress between
    the first village doctor and the first specialist (rooms for the relay bench)."""
    from django.db import connection

    by_share = [state for state, share in _STATES for _ in range(share)]
    assert len(by_share) == 100
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH g AS (
                SELECT i,
                       abs(hashint4(i)::bigint) %% 100 AS h,
                       abs(hashint4(i + 1000003)::bigint) %% 100 AS u,
                       i %% %(centres)s AS c,
                       abs(hashint4(i + 2000003)::bigint) %% %(per_centre)s AS s,
                       CASE WHEN i < %(rooms)s THEN 0 ELSE (i * 31) %% %(villages)s END AS v,
                       (i * 13) %% %(patients)s AS p,
                       now() - (i * interval '15 minutes') AS at
                FROM generate_series(0, %(n)s - 1) i
            ), r AS (
                SELECT g.*,
                       CASE WHEN i < %(rooms)s THEN 'in_progress'
                            ELSE (%(states)s::text[])[h + 1] END AS st,
                       CASE WHEN u < 5 THEN 'emergency' WHEN u < 30 THEN 'urgent'
                            ELSE 'routine' END AS urg
                FROM g
            )
            INSERT INTO consult_consultrequest
                (external_id, created_at, updated_at, requester_id, requesting_organisation_id,
                 patient_id, consult_type, reason, record_summary, wanted_specialty,
                 minimum_title, clinical_question, vital_signs, urgency, urgency_rank, centre_id,
                 queue, assignee_id, tried_centres, state, accept_by, report_by, submitted_at,
                 queued_at, accepted_at, closed_at, decline_reason, return_reason,
                 cancel_reason, version)
            SELECT gen_random_uuid(), at, at,
                   (%(req)s::bigint[])[v + 1],
                   (%(vil)s::bigint[])[v + 1],
                   (%(pat)s::bigint[])[p + 1], (%(types)s::text[])[i %% 6 + 1],
                   '胸痛两小时', '', '', '',
                   'ST段改变?', '{"bp": "150/95", "hr": 96}'::jsonb, urg,
                   CASE urg WHEN 'emergency' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END,
                   CASE WHEN st IN ('draft', 'submitted', 'returned') THEN NULL
                        ELSE (%(cen)s::bigint[])[c + 1] END,
                   CASE WHEN st IN ('draft', 'submitted', 'returned') THEN ''
                        ELSE (%(queues)s::text[])[c %% 5 + 1] END,
                   CASE WHEN i < %(rooms)s THEN (%(spec)s::bigint[])[1]
                        WHEN st IN ('accepted', 'in_progress', 'reported', 'signed', 'delivered',
                                    'closed')
                        THEN (%(spec)s::bigint[])[c * %(per_centre)s + s + 1] END,
                   '[]'::jsonb, st,
                   CASE WHEN st = 'queued' THEN at + CASE urg WHEN 'emergency'
                        THEN interval '30 minutes' WHEN 'urgent' THEN interval '4 hours'
                        ELSE interval '24 hours' END END,
                   CASE WHEN st IN ('accepted', 'in_progress', 'reported') THEN at + CASE urg
                        WHEN 'emergency' THEN interval '1 hour' WHEN 'urgent'
                        THEN interval '8 hours' ELSE interval '72 hours' END END,
                   CASE WHEN st NOT IN ('draft') THEN at END,
                   CASE WHEN st NOT IN ('draft', 'submitted', 'returned') THEN at END,
                   CASE WHEN st IN ('accepted', 'in_progress', 'reported', 'signed', 'delivered',
                                    'closed') THEN at + interval '10 minutes' END,
                   CASE WHEN st = 'closed' THEN at + interval '2 days' END,
                   '', '', '', 1
            FROM r
            """,
            {
                "n": count,
                "centres": CENTRES,
                "per_centre": SPECIALISTS_PER_CENTRE,
                "villages": VILLAGES,
                "patients": PATIENTS,
                "states": by_share,
                "rooms": room_consults,
                "req": [u.pk for u in world["requesters"]],
                "vil": [o.pk for o in world["villages"]],
                "pat": [p.pk for p in world["patients"]],
                "cen": [o.pk for o in world["centres"]],
                "spec": [u.pk for u in world["specialists"]],
                "types": _TYPES,
                "queues": ["ecg", "imaging", "pathology", "lab", "cardiology"],
            },
        )
        cursor.execute("ANALYZE consult_consultrequest")
    return time.perf_counter() - started


def _rooms(world: dict[str, Any], count: int) -> list[dict[str, str]]:
    """``count`` live sessions opened through the service, with their two participants."""
    from consult import live
    from consult.models import ConsultRequest, LiveParticipant
    from registry.access import principal_for

    requester, specialist = world["requesters"][0], world["specialists"][0]
    principal = principal_for(requester)
    consults = ConsultRequest.objects.filter(
        state="in_progress", requester=requester, assignee=specialist
    ).order_by("id")[:count]
    rooms = []
    for consult in consults:
        session = live.live_session_open(principal=principal, consult_id=consult.external_id)
        ids = dict(
            LiveParticipant.objects.filter(session=session).values_list("user_id", "external_id")
        )
        rooms.append(
            {
                "session": str(session.external_id),
                "a_id": str(ids[requester.pk]),
                "b_id": str(ids[specialist.pk]),
            }
        )
    assert len(rooms) == count
    return rooms


# --- the benchmarks ------------------------------------------------------------------------------


def test_signalling_relay_against_a_bare_relay():
    from knox.models import AuthToken

    world = _world()
    largest = max(ROOMS)
    _insert_consults(world, largest, room_consults=largest)
    rooms = _rooms(world, largest)
    _i, token_a = AuthToken.objects.create(world["requesters"][0])
    _i, token_b = AuthToken.objects.create(world["specialists"][0])
    RESULTS["load_start"] = os.getloadavg()[0]
    runs: list[dict[str, Any]] = []
    seq = 0
    with _server() as port, _bare_relay() as bare_port:
        for n in ROOMS:
            seq += 10_000_000  # a reconnect resumes the sequence: start above the last run
            bare = [
                {
                    "a_url": f"ws://127.0.0.1:{bare_port}/room/{k}",
                    "b_url": f"ws://127.0.0.1:{bare_port}/room/{k}",
                    "a_id": "a",
                    "b_id": "b",
                }
                for k in range(n)
            ]
            huizhen = [
                {
                    "a_url": f"ws://127.0.0.1:{port}/ws/consult/{r['session']}/?token={token_a}",
                    "b_url": f"ws://127.0.0.1:{port}/ws/consult/{r['session']}/?token={token_b}",
                    "a_id": r["a_id"],
                    "b_id": r["b_id"],
                }
                for r in rooms[:n]
            ]
            bare_result = _drive(bare, origin="http://127.0.0.1", welcome=False, seq=seq)
            huizhen_result = _drive(huizhen, origin="http://127.0.0.1", welcome=True, seq=seq)
            runs.append({"rooms": n, "bare": bare_result, "huizhen": huizhen_result})
            print(f"\n{n} rooms: bare {bare_result}\n{n} rooms: huizhen {huizhen_result}")
    RESULTS["load_end"] = os.getloadavg()[0]
    RESULTS["relay"] = runs
    _write_results()


def test_worklist_with_a_hundred_thousand_consults():
    from knox.models import AuthToken

    world = _world()
    seconds = _insert_consults(world, WORKLIST_CONSULTS)
    specialists = world["specialists"]
    tokens = [AuthToken.objects.create(s)[1] for s in specialists]
    timings: dict[str, list[float]] = {"mine": [], "unassigned": []}
    sizes: dict[str, list[int]] = {"mine": [], "unassigned": []}
    with _server() as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for n in range(WORKLIST_REQUESTS + 20):
            which = "mine" if n % 2 == 0 else "unassigned"
            token = tokens[(n * 7) % len(tokens)]
            started = time.perf_counter()
            response = http.get(
                "/api/v1/consult/worklist/",
                params={"which": which},
                headers={"Authorization": f"Bearer {token}"},
            )
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.text[:500]
            body = response.json()
            assert body["results"], body
            if n >= 20:  # warm-up
                timings[which].append(elapsed)
                sizes[which].append(body["count"])
    RESULTS["worklist"] = {
        "consults": WORKLIST_CONSULTS,
        "generate_s": seconds,
        **{
            which: {
                "p50": statistics.median(values),
                "p95": _pct(values, 0.95),
                "n": len(values),
                "rows": statistics.median(sizes[which]),
            }
            for which, values in timings.items()
        },
    }
    _write_results()


# --- the report ---------------------------------------------------------------------------------


def _machine() -> str:
    import redis
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0].split()[0]
    redis_version = "?"
    with contextlib.suppress(Exception):
        url = os.environ.get("REDIS_URL") or settings.REDIS_URL
        redis_version = redis.Redis.from_url(url).info("server")["redis_version"]
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
        f"PostgreSQL {pg}, Redis {redis_version}, all on the same machine"
    )


def _write_results() -> None:
    from django.conf import settings
    from django.utils import timezone

    lines = [START, "", "## Live-consult signalling and the specialist worklist", ""]
    lines.append(
        f"Measured {timezone.now():%Y-%m-%d %H:%M} UTC by `tests/bench/bench_signalling.py`; "
        f"{_machine()}."
    )
    load = (
        f" (load average {RESULTS['load_start']:.1f} at the start of the relay runs, "
        f"{RESULTS['load_end']:.1f} at their end)"
        if "load_start" in RESULTS
        else ""
    )
    lines.append(
        f"The machine was shared with other work during the run{load}: absolute figures are "
        "noisy; the ratios from the same run are what counts."
    )
    lines.append("")
    runs = RESULTS.get("relay")
    if runs:
        layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
        lines += [
            "Relay: Huizhen (`manage.py serve`: uvicorn, one process, the settings' channel "
            f"layer `{layer}`, a psycopg pool of 16) against a minimal relay written on "
            "`websockets`, one after the other in the same run. Two-peer rooms (live sessions "
            "opened by the service, peers signed in with knox tokens) exchange `ice` frames; "
            f"latency at {RATE} frames/s in all for {RATE_SECONDS:.0f} s, saturation with "
            f"{WINDOW} frames in flight per peer for {SATURATE_SECONDS:.0f} s after 1 s of "
            f"warm-up, from {CLIENT_PROCESSES} client processes on the same machine. Each "
            "Huizhen socket re-checks its admission every "
            f"{settings.HUIZHEN_LIVE_RECHECK_SECONDS} s as in production; the flood throttle "
            "runs on every frame, its rate raised for the run so that it does not cap it.",
            "",
            "| rooms | relay | saturation (frames/s) | p50 / p99 at 200 frames/s | lost |",
            "|---|---|---|---|---|",
        ]
        for run in runs:
            for name, key in (("bare `websockets`", "bare"), ("Huizhen", "huizhen")):
                r = run[key]
                lines.append(
                    f"| {run['rooms']} | {name} | {r['saturation']:,.0f} | "
                    f"{r['p50']:.1f} / {r['p99']:.1f} ms | {r['lost']} |"
                )
        lines += [
            "",
            "| rooms | saturation, Huizhen ÷ bare | p99, Huizhen ÷ bare |",
            "|---|---|---|",
        ]
        for run in runs:
            h, b = run["huizhen"], run["bare"]
            lines.append(
                f"| {run['rooms']} | **{h['saturation'] / b['saturation']:.2f}×** "
                f"(goal ≥ 0.2×) | **{h['p99'] / b['p99']:.1f}×** (goal ≤ 3×) |"
            )
        lines.append("")
    worklist = RESULTS.get("worklist")
    if worklist:
        lines += [
            f"Worklist: {worklist['consults']:,} consults (inserted in "
            f"{worklist['generate_s']:.1f} s) over {CENTRES} centres × "
            f"{SPECIALISTS_PER_CENTRE} specialists, {VILLAGES} villages, six consult types, "
            "three urgencies and every state (68 % closed, 13 % open at a centre); "
            "`GET /api/v1/consult/worklist/` over HTTP from the same server, first page of 50, "
            "rotating over the specialists.",
            "",
            "| list | consults in the list (median) | requests | p50 | p95 | goal |",
            "|---|---|---|---|---|---|",
        ]
        for which in ("mine", "unassigned"):
            w = worklist[which]
            lines.append(
                f"| `which={which}` | {w['rows']:.0f} | {w['n']} | {w['p50']:.1f} ms | "
                f"**{w['p95']:.1f} ms** | p95 < 100 ms |"
            )
        lines.append("")
    lines.append(END)
    section = "\n".join(lines)
    current = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if pattern.search(current):
        updated = pattern.sub(lambda _m: section, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(updated)
    print("\n" + section)
