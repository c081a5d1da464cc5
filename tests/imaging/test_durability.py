"""Concurrent senders and a crash in the middle of a send: nothing lost, nothing doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pydicom
import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.db import connection
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE

from imaging import services
from imaging.dicom import scp
from imaging.models import Instance, Study
from registry.models import DicomApplicationEntity
from tests.imaging.dicom_factory import make_ct_series
from tests.imaging.test_dimse import free_port, write_series

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def archive(settings, tmp_path):
    location = tmp_path / "archive"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location)},
        },
    }
    return location


def _end_other_sessions():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def test_twenty_concurrent_senders_five_times_each_make_one_study(community, archive, tmp_path):
    DicomApplicationEntity.objects.create(
        organisation=community.township, ae_title="TEST_DR", host="127.0.0.1"
    )
    files = write_series(tmp_path / "send", make_ct_series(50, patient_id="CONC1"))
    port = free_port()
    server = scp.start("127.0.0.1", port, block=False)
    try:
        senders = [
            subprocess.Popen(
                [
                    "storescu",
                    "-aet",
                    "TEST_DR",
                    "-aec",
                    "HUIZHEN",
                    "--repeat",
                    "5",
                    "127.0.0.1",
                    str(port),
                    *map(str, files),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(20)
        ]
        results = [(p.wait(timeout=300), p.stderr.read()) for p in senders]
    finally:
        server.shutdown()
        _end_other_sessions()
    assert [code for code, _err in results] == [0] * 20, results[0][1]
    study = Study.objects.get()
    assert (study.number_of_series, study.number_of_instances) == (1, 50)
    assert Instance.objects.count() == 50
    stored = sorted(p for p in archive.rglob("*") if p.is_file())
    assert len(stored) == 50
    assert {p.name.split("-")[0] for p in stored} == {
        pydicom.dcmread(f).SOPInstanceUID for f in files
    }
    assert services.find_orphans() == services.Orphans([], [])


def _dataset_bytes(raw: bytes) -> bytes:
    """The encoded data set after the file meta information."""
    meta_length = int.from_bytes(raw[140:144], "little")
    return raw[144 + meta_length :]


def test_a_killed_server_loses_no_acknowledged_instance(community, archive, tmp_path):
    DicomApplicationEntity.objects.create(
        organisation=community.township, ae_title="TEST_DR", host="127.0.0.1"
    )
    objects = make_ct_series(60, rows=128, cols=128, patient_id="KILL1")
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}"
        if "DATABASE_URL" not in os.environ
        else os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"],
        "HUIZHEN_MEDIA_ROOT": str(archive),
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "dicom_scp", "--port", str(port)],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        ae = AE(ae_title="TEST_DR")
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", ExplicitVRLittleEndian)
        for _ in range(300):  # the server process needs a moment to start
            assoc = ae.associate("127.0.0.1", port, ae_title="HUIZHEN")
            if assoc.is_established:
                break
            time.sleep(0.1)
        assert assoc.is_established
        acknowledged: list[bytes] = []
        killer = threading.Timer(0.0, lambda: None)
        for n, raw in enumerate(objects):
            if n == 25:  # kill while the next send is in flight
                killer = threading.Timer(0.002, process.send_signal, [signal.SIGKILL])
                killer.start()
            try:
                status = assoc.send_c_store(pydicom.dcmread(_as_file(tmp_path, n, raw)))
            except RuntimeError:  # the association died with the server between two sends
                break
            if status and getattr(status, "Status", None) == 0x0000:
                acknowledged.append(raw)
            if not assoc.is_established:
                break
        killer.join()
    finally:
        process.kill()
        process.wait(10)
        _end_other_sessions()
    assert 25 <= len(acknowledged) < 60
    for raw in acknowledged:
        uid = pydicom.dcmread(_as_file(tmp_path, "check", raw)).SOPInstanceUID
        instance = Instance.objects.get(sop_instance_uid=uid)
        with default_storage.open(instance.storage_key) as handle:
            assert _dataset_bytes(handle.read()) == _dataset_bytes(raw)
    orphans = services.find_orphans(min_age=__import__("datetime").timedelta(0))
    assert orphans.rows_without_files == []
    services.repair_orphans(orphans)
    assert Instance.objects.count() >= len(acknowledged)


def _as_file(tmp_path: Path, n: object, raw: bytes) -> Path:
    path = tmp_path / f"obj-{n}.dcm"
    path.write_bytes(raw)
    return path
