"""Crashes: a worker killed mid-processing, a listener killed while a sender resends."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from config.celery import app
from ehr_bridge import services
from ehr_bridge.models import InboundMessage, InboundStatus
from registry.models import AuditEvent, Patient
from tests.ehr_bridge.conftest import _free_port, frame, msa, read_frame, wait_for
from tests.ehr_bridge.samples import realistic_adt

pytestmark = pytest.mark.django_db(transaction=True)


def _env(queue: str) -> dict[str, str]:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/huizhen")
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": base.rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"],
        "HUIZHEN_CELERY_QUEUE": queue,
        "HUIZHEN_TEST_CELERY_EAGER": "false",
    }


def _end_other_sessions() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def queue():
    name = f"huizhen-test-{uuid.uuid4().hex[:8]}"
    previous = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager, app.conf.task_default_queue = False, name
    try:
        yield name
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = previous
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(name)
        _end_other_sessions()


def _worker(queue: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ],
        cwd=settings.BASE_DIR,
        env=_env(queue),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _waiting_on_the_audit_table() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND wait_event = 'relation'"
        )
        return cursor.fetchone()[0] > 0


@contextlib.contextmanager
def _audit_table_held():
    """Hold a lock on the audit table that lets readers through but makes writers wait."""
    params = connection.settings_dict
    with psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"] or None,
        host=params["HOST"] or None,
        port=params["PORT"] or None,
        password=params["PASSWORD"] or None,
    ) as holder:
        holder.execute("LOCK TABLE registry_auditevent IN SHARE MODE")
        yield
        holder.rollback()


def test_a_worker_killed_after_the_ack_leaves_the_message_to_be_processed_exactly_once(
    partner, queue
):
    """The mechanism relied on: processing is one transaction, so a killed worker's work is
    rolled back and the row stays pending; the periodic sweep dispatches it again (the
    broker's own redelivery of an unacknowledged task comes only after its visibility
    timeout, an hour)."""
    from ehr_bridge.tasks import inbound_process, inbound_sweep

    message_id = services.inbound_receive(raw=realistic_adt(3, control_prefix="KW").encode())
    message_id = message_id.message_id
    # Hold the audit table so that the worker stops in the middle of applying the message.
    with _audit_table_held():
        worker = _worker(queue)
        try:
            inbound_process.delay(message_id)
            assert wait_for(_waiting_on_the_audit_table, timeout=60), "the worker never got there"
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
    row = InboundMessage.objects.get(id=message_id)
    assert row.status == InboundStatus.RECEIVED and row.attempts == 0  # rolled back
    assert not Patient.objects.exists()
    # Restart: the sweep finds the message once its dispatch is overdue.
    InboundMessage.objects.filter(id=message_id).update(
        next_attempt_at=timezone.now() - timedelta(minutes=2)
    )
    worker = _worker(queue)
    try:
        inbound_sweep.delay()
        inbound_sweep.delay()  # a second sweep (or a redelivery) changes nothing
        assert wait_for(
            lambda: InboundMessage.objects.filter(
                id=message_id, status=InboundStatus.PROCESSED
            ).exists(),
            timeout=60,
        )
        time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(20)
    row = InboundMessage.objects.get(id=message_id)
    assert row.attempts == 1
    assert Patient.objects.count() == 1
    assert AuditEvent.objects.filter(action="patient.create.feed").count() == 1
    assert list(row.events.values_list("kind", flat=True)) == ["received", "processed"]


def _listener(port: int, queue: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "mllp_listener", "--port", str(port)],
        cwd=settings.BASE_DIR,
        env=_env(queue),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _connect(port: int, timeout: float = 30.0) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_listener_killed_at_random_moments_loses_no_acknowledged_message(partner, queue):
    count, kills = 120, 3
    port = _free_port()
    process = _listener(port, queue)
    rng = random.Random(7)
    acked: dict[str, int] = {}
    resends = 0
    stop = threading.Event()
    processes = [process]

    def killer() -> None:
        for _ in range(kills):
            if stop.wait(rng.uniform(0.5, 1.5)):
                return
            processes[-1].send_signal(signal.SIGKILL)
            processes[-1].wait(10)
            processes.append(_listener(port, queue))

    thread = threading.Thread(target=killer)
    try:
        sock = _connect(port)
        thread.start()
        for n in range(count):
            raw = realistic_adt(n, control_prefix="LK").encode()
            while True:
                try:
                    sock.sendall(frame(raw))
                    ack = read_frame(sock, timeout=10)
                    if ack and msa(ack)[1] == "AA":
                        acked[msa(ack)[2]] = acked.get(msa(ack)[2], 0) + 1
                        break
                except OSError:
                    pass
                resends += 1  # not acknowledged: reconnect and send the same bytes again
                with contextlib.suppress(OSError):
                    sock.close()
                sock = _connect(port)
        sock.close()
    finally:
        stop.set()
        thread.join(30)
        for p in processes:
            p.kill()
            p.wait(10)
        _end_other_sessions()
    assert len(processes) == kills + 1 and resends >= 1
    assert len(acked) == count
    stored = list(InboundMessage.objects.values_list("control_id", flat=True))
    assert sorted(stored) == sorted(acked)  # every acknowledged ID once, nothing else
    for row in InboundMessage.objects.all():
        assert (
            bytes(row.raw) == realistic_adt(int(row.control_id[2:]), control_prefix="LK").encode()
        )
