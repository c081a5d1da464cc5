"""Booking under contention and slot search at county scale.

Run with ``make bench`` (or ``scripts/with-test-services .venv/bin/python -m pytest -q -s
tests/bench/bench_booking.py -o python_files=bench_*.py``). Writes docs/benchmarks.md between
the booking markers.

- Booking over HTTP: ``manage.py serve --no-dicom --no-mllp`` (uvicorn, one process) as a
  subprocess on the test database; 200 client threads, each with its own keep-alive
  connection, all released at once against 50 single-seat slots, every round on a new day;
  each request is ``POST /api/v1/appointments/bookings/`` with a bearer token and an
  ``Idempotency-Key``. Zero overbooking is checked in the database after every round.
- Booking at the service level: ``services.booking_create`` from 16 threads with their own
  database connections, same contention, to separate the service and database cost from the
  web server's.
- Slot search: 300 clinicians (one schedule each, in 30 township centres), a year of
  weekday-morning slots inserted in bulk (``INSERT … SELECT generate_series``), then the
  portal's search (one clinic, one visit type, 14 days, first 200) through the selector and
  ``GET /api/v1/appointments/slots/`` (first page of 50).
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone
from knox.models import AuthToken

from appointments import selectors, services
from appointments.models import Booking, Schedule, Slot
from registry.errors import DomainError
from tests.factories import PatientFactory, make_org, make_staff

pytestmark = pytest.mark.django_db(transaction=True)

DOCS = Path(settings.BASE_DIR) / "docs" / "benchmarks.md"
START, END = "<!-- bench:booking:start -->", "<!-- bench:booking:end -->"
CLIENTS = int(os.environ.get("HUIZHEN_BENCH_BOOKING_CLIENTS", "200"))
SLOTS = int(os.environ.get("HUIZHEN_BENCH_BOOKING_SLOTS", "50"))
ROUNDS = int(os.environ.get("HUIZHEN_BENCH_BOOKING_ROUNDS", "5"))
SERVICE_THREADS = 16
CLINICIANS = int(os.environ.get("HUIZHEN_BENCH_CLINICIANS", "300"))
SEARCHES = 400
RESULTS: dict[str, Any] = {}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _database_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/huizhen")
    return base.rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]


def _wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


@contextlib.contextmanager
def _server() -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "HUIZHEN_TEST_CELERY_EAGER": "true",
        "HUIZHEN_DB_POOL_MAX": "16",  # as in production
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--no-dicom", "--no-mllp", "--port", str(port)],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/healthz")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _local(day, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, dtime(hour, minute), tzinfo=timezone.get_default_timezone())


def _contention_slots(schedule: Schedule, day) -> list[Slot]:
    return Slot.objects.bulk_create(
        [
            Slot(
                schedule=schedule,
                starts_at=_local(day, 8) + timedelta(minutes=5 * i),
                ends_at=_local(day, 8) + timedelta(minutes=5 * i + 5),
                visit_type="chronic_followup",
                capacity=1,
            )
            for i in range(SLOTS)
        ]
    )


@pytest.fixture
def county():
    county = make_org("县医院", "county_hospital")
    township = make_org("东山镇卫生院", "township_centre", county)
    village = make_org("东山村卫生室", "village_clinic", township)
    doctor = make_staff("bench.village", village, "village_doctor")
    patients = PatientFactory.create_batch(
        CLIENTS, home_organisation=village, chronic_conditions=["I10"]
    )
    schedule = Schedule.objects.create(organisation=township, name="慢病门诊")
    return township, doctor, patients, schedule


def _check_no_overbooking(slots: list[Slot]) -> int:
    ids = [s.pk for s in slots]
    over = Slot.objects.filter(pk__in=ids).extra(where=["booked > capacity"]).count()
    assert over == 0
    per_slot = {}
    for slot_id in Booking.objects.filter(slot_id__in=ids, status="confirmed").values_list(
        "slot_id", flat=True
    ):
        per_slot[slot_id] = per_slot.get(slot_id, 0) + 1
    assert all(n <= 1 for n in per_slot.values()), "overbooked"
    booked = sum(per_slot.values())
    assert booked == sum(Slot.objects.filter(pk__in=ids).values_list("booked", flat=True))
    return booked


def test_booking_over_http(county):
    township, doctor, patients, schedule = county
    _instance, token = AuthToken.objects.create(doctor)
    rounds = []
    with _server() as base:
        for r in range(ROUNDS):
            slots = _contention_slots(schedule, timezone.localdate() + timedelta(days=10 + r))
            results: list[tuple[int, float]] = [(0, 0.0)] * CLIENTS
            barrier = threading.Barrier(CLIENTS + 1)

            def client(
                n: int, slots: list[Slot] = slots, results: list = results, barrier=barrier
            ) -> None:
                rng = random.Random(n)
                slot = slots[rng.randrange(len(slots))]
                body = {"patient": str(patients[n].external_id), "slot": str(slot.external_id)}
                headers = {
                    "Authorization": f"Bearer {token}",
                    "Idempotency-Key": str(uuid.uuid4()),
                }
                with httpx.Client(base_url=base, timeout=60) as http:
                    http.get("/healthz")  # open the connection before the start
                    barrier.wait()
                    started = time.perf_counter()
                    try:
                        response = http.post(
                            "/api/v1/appointments/bookings/", json=body, headers=headers
                        )
                        code = response.status_code
                    except httpx.HTTPError:
                        code = -1  # no answer within the timeout
                    results[n] = (code, time.perf_counter() - started)

            threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
            for thread in threads:
                thread.start()
            barrier.wait()
            started = time.perf_counter()
            for thread in threads:
                thread.join(300)
            elapsed = time.perf_counter() - started
            codes = [c for c, _t in results]
            assert set(codes) <= {201, 409, -1}, sorted(set(codes))
            booked = _check_no_overbooking(slots)
            assert booked >= codes.count(201)  # a timed-out request may still have booked
            rounds.append(
                {
                    "elapsed": elapsed,
                    "requests": CLIENTS,
                    "booked": booked,
                    "timeouts": codes.count(-1),
                    "latencies": [t * 1000 for _c, t in results],
                }
            )
            Booking.objects.filter(slot__in=slots).update(status="cancelled")
    total = sum(r["elapsed"] for r in rounds)
    lat = [x for r in rounds for x in r["latencies"]]
    RESULTS["http_done"] = True
    RESULTS["http"] = {
        "requests_per_s": sum(r["requests"] for r in rounds) / total,
        "bookings_per_s": sum(r["booked"] for r in rounds) / total,
        "booked": sum(r["booked"] for r in rounds),
        "timeouts": sum(r["timeouts"] for r in rounds),
        "requests": sum(r["requests"] for r in rounds),
        "p50": statistics.median(lat),
        "p99": _pct(lat, 0.99),
    }


def test_booking_at_the_service_level(county):
    township, doctor, patients, schedule = county
    from registry.access import principal_for

    principal = principal_for(doctor)
    actor = services.BookingActor.staff(principal)
    rounds = []
    for r in range(ROUNDS):
        slots = _contention_slots(schedule, timezone.localdate() + timedelta(days=40 + r))
        latencies: list[float] = []
        outcomes: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(SERVICE_THREADS + 1)

        def worker(
            k: int,
            slots: list[Slot] = slots,
            barrier=barrier,
            lock=lock,
            latencies: list = latencies,
            outcomes: list = outcomes,
        ) -> None:
            try:
                barrier.wait()
                for n in range(k, CLIENTS, SERVICE_THREADS):
                    slot = slots[random.Random(n).randrange(len(slots))]
                    started = time.perf_counter()
                    try:
                        services.booking_create(
                            actor=actor, patient=patients[n], slot_id=slot.external_id
                        )
                        outcome = "booked"
                    except DomainError as exc:
                        outcome = exc.code
                    with lock:
                        latencies.append((time.perf_counter() - started) * 1000)
                        outcomes.append(outcome)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(SERVICE_THREADS)]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join(300)
        elapsed = time.perf_counter() - started
        booked = _check_no_overbooking(slots)
        assert booked == outcomes.count("booked") and len(outcomes) == CLIENTS
        rounds.append({"elapsed": elapsed, "booked": booked, "latencies": latencies})
    total = sum(r["elapsed"] for r in rounds)
    lat = [x for r in rounds for x in r["latencies"]]
    RESULTS["service"] = {
        "requests_per_s": CLIENTS * ROUNDS / total,
        "bookings_per_s": sum(r["booked"] for r in rounds) / total,
        "p50": statistics.median(lat),
        "p99": _pct(lat, 0.99),
    }
    # One audit row alone: every booking writes one inside its transaction.
    from registry import audit

    started = time.perf_counter()
    for _ in range(200):
        audit.record(actor=audit.Actor.system("bench"), action="bench.audit")
    RESULTS["audit_ms"] = (time.perf_counter() - started) / 200 * 1000


def _generate_county() -> tuple[list[Any], int, float]:
    county = make_org("县医院", "county_hospital")
    townships = [make_org(f"第{i}镇卫生院", "township_centre", county) for i in range(30)]
    schedules = Schedule.objects.bulk_create(
        [
            Schedule(organisation=townships[i % 30], name=f"医生{i}", department="全科")
            for i in range(CLINICIANS)
        ]
    )
    first = timezone.localdate() + timedelta(days=1)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO appointments_slot
                (external_id, created_at, updated_at, schedule_id, starts_at, ends_at,
                 visit_type, capacity, booked, status)
            SELECT gen_random_uuid(), now(), now(), s.id, t, t + interval '15 minutes',
                   'chronic_followup', 1, 0, 'open'
            FROM appointments_schedule s
            CROSS JOIN generate_series(%s::timestamptz, %s::timestamptz, interval '1 day') d
            CROSS JOIN generate_series(0, 15) k
            CROSS JOIN LATERAL (SELECT d + k * interval '15 minutes' AS t) x
            WHERE s.id = ANY(%s) AND extract(isodow FROM d AT TIME ZONE %s) < 6
            """,
            [
                _local(first, 8),
                _local(first + timedelta(days=365), 8),
                [s.pk for s in schedules],
                settings.TIME_ZONE,
            ],
        )
        count = cursor.rowcount
        cursor.execute("ANALYZE appointments_slot")
    return townships, count, time.perf_counter() - started


def test_slot_search_at_county_scale():
    townships, count, seconds = _generate_county()
    rng = random.Random(7)
    today = timezone.localdate()
    durations = []
    for _ in range(SEARCHES):
        org = townships[rng.randrange(len(townships))]
        first = today + timedelta(days=rng.randrange(1, 340))
        started = time.perf_counter()
        found = list(
            selectors.slot_search(
                organisation_id=org.external_id,
                visit_type="chronic_followup",
                date_from=first,
                date_to=first + timedelta(days=14),
            )[:200]
        )
        durations.append((time.perf_counter() - started) * 1000)
        assert found
    doctor = make_staff("bench.search", townships[0], "doctor")
    _instance, token = AuthToken.objects.create(doctor)
    http_durations = []
    with _server() as base, httpx.Client(base_url=base, timeout=30) as http:
        headers = {"Authorization": f"Bearer {token}"}
        for i in range(SEARCHES // 2 + 20):
            org = townships[rng.randrange(len(townships))]
            first = today + timedelta(days=rng.randrange(1, 340))
            params = {
                "organisation": str(org.external_id),
                "visit_type": "chronic_followup",
                "date_from": first.isoformat(),
                "date_to": (first + timedelta(days=14)).isoformat(),
                "limit": 50,
            }
            started = time.perf_counter()
            response = http.get("/api/v1/appointments/slots/", params=params, headers=headers)
            if i >= 20:  # warm-up
                http_durations.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and response.json()["results"]
    RESULTS["search"] = {
        "slots": count,
        "generate_s": seconds,
        "p50": statistics.median(durations),
        "p95": _pct(durations, 0.95),
        "http_p50": statistics.median(http_durations),
        "http_p95": _pct(http_durations, 0.95),
    }


def _machine() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    return (
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"PostgreSQL {version.split()[0]} on the same machine"
    )


@pytest.fixture(autouse=True)
def _machine_noted(db):
    yield
    RESULTS.setdefault("machine", _machine())


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if "machine" in RESULTS:
        _write_results()


def _write_results() -> None:
    lines = [START, "", "## Booking and slot search", ""]
    lines.append(
        f"Measured {timezone.now():%Y-%m-%d %H:%M} UTC by `tests/bench/bench_booking.py`; "
        f"{RESULTS['machine']}."
    )
    lines.append("")
    lines += ["| measure | figure | goal |", "|---|---|---|"]
    http = RESULTS.get("http")
    if http:
        lines.append(
            f"| HTTP: {CLIENTS} clients × {ROUNDS} rounds for {SLOTS} slots, bookings/s "
            f"| **{http['bookings_per_s']:.0f}** ({http['requests_per_s']:.0f} requests/s; "
            f"{http['booked']} booked of {http['requests']}) | ≥ 500 |"
        )
        lines.append(
            f"| HTTP: latency p50 / p99 | {http['p50']:.0f} ms / **{http['p99']:.0f} ms** | |"
        )
        lines.append(f"| HTTP: requests with no answer within 60 s | {http['timeouts']} | 0 |")
    service = RESULTS.get("service")
    if service:
        lines.append(
            f"| service level ({SERVICE_THREADS} threads): bookings/s "
            f"| {service['bookings_per_s']:.0f} ({service['requests_per_s']:.0f} attempts/s) | |"
        )
        lines.append(
            f"| service level: latency p50 / p99 | {service['p50']:.1f} ms / "
            f"{service['p99']:.1f} ms | |"
        )
    lines.append("| overbooked slots | **0** (checked after every round) | 0 |")
    search = RESULTS.get("search")
    if search:
        lines.append(
            f"| slot search, selector, p50 / p95 ({search['slots']:,} slots, {CLINICIANS} "
            f"clinicians) | {search['p50']:.1f} ms / **{search['p95']:.1f} ms** | p95 < 50 ms |"
        )
        lines.append(
            f"| slot search over HTTP (first page of 50), p50 / p95 | {search['http_p50']:.1f} ms "
            f"/ {search['http_p95']:.1f} ms | |"
        )
    lines.append("")
    if "audit_ms" in RESULTS:
        lines.append(
            f"One audit row alone takes {RESULTS['audit_ms']:.2f} ms (written without a shared "
            "lock, sealed into the hash chain afterwards); every booking writes one inside its "
            "transaction."
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
