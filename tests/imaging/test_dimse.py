"""The DIMSE server against Debian's dcmtk tools (echoscu, storescu, findscu, getscu, movescu)."""

from __future__ import annotations

import hashlib
import socket
import subprocess
from pathlib import Path

import pydicom
import pytest
from django.core.files.storage import default_storage
from django.db import connection

from imaging.dicom import scp
from imaging.models import Instance, Study
from registry.models import AuditEvent, DicomApplicationEntity
from tests.imaging.dicom_factory import make_ct_series

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(community, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "archive")},
        },
    }
    DicomApplicationEntity.objects.create(
        organisation=community.township, ae_title="TEST_DR", host="127.0.0.1"
    )
    DicomApplicationEntity.objects.create(
        organisation=community.other_county, ae_title="OTHER_PACS", host="127.0.0.1"
    )
    port = free_port()
    running = scp.start("127.0.0.1", port, block=False)
    yield port
    running.shutdown()
    # Association threads may still hold their database sessions; end them.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def dcmtk(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def write_series(directory: Path, objects: list[bytes]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, raw in enumerate(objects):
        path = directory / f"{n:04d}.dcm"
        path.write_bytes(raw)
        paths.append(path)
    return paths


def stored_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "archive").rglob("*.dcm"))


def test_echo_known_and_unknown_callers(server):
    assert (
        dcmtk("echoscu", "-aet", "TEST_DR", "-aec", "HUIZHEN", "127.0.0.1", str(server)).returncode
        == 0
    )
    refused = dcmtk("echoscu", "-aet", "STRANGER", "-aec", "HUIZHEN", "127.0.0.1", str(server))
    assert refused.returncode != 0
    assert "Calling AE Title Not Recognized" in refused.stderr


def test_a_known_title_from_another_host_is_refused(server):
    DicomApplicationEntity.objects.filter(ae_title="TEST_DR").update(host="10.9.9.9")
    result = dcmtk("echoscu", "-aet", "TEST_DR", "-aec", "HUIZHEN", "127.0.0.1", str(server))
    assert "Echo Failed" in result.stderr or result.returncode != 0
    assert "aborted" in result.stderr.lower()


def test_storescu_sends_a_series_that_is_indexed_and_stored_once(server, tmp_path, community):
    objects = make_ct_series(12, patient_name="Zhang^San", patient_id="MR0001")
    files = write_series(tmp_path / "send", objects)
    for _ in range(2):  # the second time changes nothing
        result = dcmtk(
            "storescu",
            "-aet",
            "TEST_DR",
            "-aec",
            "HUIZHEN",
            "127.0.0.1",
            str(server),
            *map(str, files),
        )
        assert result.returncode == 0, result.stderr
    study = Study.objects.get()
    assert (study.number_of_series, study.number_of_instances) == (1, 12)
    assert study.organisation == community.township
    assert study.modalities == ["CT"]
    assert len(stored_files(tmp_path)) == 12
    sent = pydicom.dcmread(files[3])
    stored = Instance.objects.get(sop_instance_uid=sent.SOPInstanceUID)
    with default_storage.open(stored.storage_key) as handle:
        data = handle.read()
    assert hashlib.sha256(data).hexdigest() == stored.sha256
    again = pydicom.dcmread(default_storage.path(stored.storage_key))
    assert again.PixelData == sent.PixelData
    assert again.PatientName == "Zhang^San"
    assert AuditEvent.objects.filter(action="imaging.study.create").count() == 1


def test_findscu_matches_wildcards_and_gb18030_names_within_the_organisation(server, tmp_path):
    files = write_series(
        tmp_path / "send",
        make_ct_series(
            2, patient_name="Wang^XiaoMing=王^小明", patient_id="ID9", charset="GB18030"
        ),
    )
    assert (
        dcmtk(
            "storescu",
            "-aet",
            "TEST_DR",
            "-aec",
            "HUIZHEN",
            "127.0.0.1",
            str(server),
            *map(str, files),
        ).returncode
        == 0
    )
    out = tmp_path / "found"
    out.mkdir()
    result = dcmtk(
        "findscu",
        "-aet",
        "TEST_DR",
        "-aec",
        "HUIZHEN",
        "-S",
        "-X",
        "-od",
        str(out),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "PatientName=Wang*",
        "-k",
        "StudyInstanceUID",
        "-k",
        "NumberOfStudyRelatedInstances",
        "-k",
        "ModalitiesInStudy",
        "127.0.0.1",
        str(server),
    )
    assert result.returncode == 0, result.stderr
    answers = [pydicom.dcmread(p, force=True) for p in sorted(out.iterdir())]
    assert len(answers) == 1
    assert str(answers[0].PatientName) == "Wang^XiaoMing=王^小明"
    assert int(answers[0].NumberOfStudyRelatedInstances) == 2
    other = dcmtk(
        "findscu",
        "-aet",
        "OTHER_PACS",
        "-aec",
        "HUIZHEN",
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "PatientName=*",
        "-k",
        "StudyInstanceUID",
        "127.0.0.1",
        str(server),
    )
    assert other.returncode == 0
    assert "StudyInstanceUID" not in other.stderr + other.stdout.replace("Find Request", "")


def test_getscu_and_movescu_retrieve_the_study(server, tmp_path, community):
    objects = make_ct_series(5, patient_name="Li^Si", patient_id="MR0002")
    files = write_series(tmp_path / "send", objects)
    assert (
        dcmtk(
            "storescu",
            "-aet",
            "TEST_DR",
            "-aec",
            "HUIZHEN",
            "127.0.0.1",
            str(server),
            *map(str, files),
        ).returncode
        == 0
    )
    study_uid = pydicom.dcmread(files[0]).StudyInstanceUID
    got = tmp_path / "got"
    got.mkdir()
    result = dcmtk(
        "getscu",
        "-aet",
        "TEST_DR",
        "-aec",
        "HUIZHEN",
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study_uid}",
        "-od",
        str(got),
        "127.0.0.1",
        str(server),
    )
    assert result.returncode == 0, result.stderr
    assert len(list(got.iterdir())) == 5

    dest_port = free_port()
    DicomApplicationEntity.objects.create(
        organisation=community.township, ae_title="VIEWER", host="127.0.0.1", port=dest_port
    )
    moved = tmp_path / "moved"
    moved.mkdir()
    receiver = subprocess.Popen(["storescp", "-aet", "VIEWER", "-od", str(moved), str(dest_port)])
    try:
        result = dcmtk(
            "movescu",
            "-aet",
            "TEST_DR",
            "-aec",
            "HUIZHEN",
            "-aem",
            "VIEWER",
            "-S",
            "-k",
            "QueryRetrieveLevel=SERIES",
            "-k",
            f"StudyInstanceUID={study_uid}",
            "-k",
            f"SeriesInstanceUID={pydicom.dcmread(files[0]).SeriesInstanceUID}",
            "127.0.0.1",
            str(server),
        )
        assert result.returncode == 0, result.stderr
    finally:
        receiver.terminate()
        receiver.wait(10)
    received = sorted(pydicom.dcmread(p).SOPInstanceUID for p in moved.iterdir())
    assert received == sorted(pydicom.dcmread(f).SOPInstanceUID for f in files)
    unknown = dcmtk(
        "movescu",
        "-aet",
        "TEST_DR",
        "-aec",
        "HUIZHEN",
        "-aem",
        "NOWHERE",
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study_uid}",
        "127.0.0.1",
        str(server),
    )
    assert "Move Destination Unknown" in unknown.stderr or unknown.returncode != 0


def test_another_organisation_cannot_retrieve(server, tmp_path):
    files = write_series(tmp_path / "send", make_ct_series(2, patient_name="Zhao^Liu"))
    dcmtk(
        "storescu", "-aet", "TEST_DR", "-aec", "HUIZHEN", "127.0.0.1", str(server), *map(str, files)
    )
    got = tmp_path / "got"
    got.mkdir()
    study_uid = pydicom.dcmread(files[0]).StudyInstanceUID
    dcmtk(
        "getscu",
        "-aet",
        "OTHER_PACS",
        "-aec",
        "HUIZHEN",
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study_uid}",
        "-od",
        str(got),
        "127.0.0.1",
        str(server),
    )
    assert list(got.iterdir()) == []


def test_patient_root_find_lists_each_patient_once(server, tmp_path):
    files = write_series(tmp_path / "a", make_ct_series(2, patient_name="Sun^Li", patient_id="PR1"))
    files += write_series(
        tmp_path / "b",
        make_ct_series(1, patient_name="Sun^Li", patient_id="PR1", study_uid="1.2.826.0.1.9.1"),
    )
    assert (
        dcmtk(
            "storescu",
            "-aet",
            "TEST_DR",
            "-aec",
            "HUIZHEN",
            "127.0.0.1",
            str(server),
            *map(str, files),
        ).returncode
        == 0
    )
    out = tmp_path / "found"
    out.mkdir()
    result = dcmtk(
        "findscu",
        "-aet",
        "TEST_DR",
        "-aec",
        "HUIZHEN",
        "-P",
        "-X",
        "-od",
        str(out),
        "-k",
        "QueryRetrieveLevel=PATIENT",
        "-k",
        "PatientID=PR1",
        "-k",
        "PatientName",
        "127.0.0.1",
        str(server),
    )
    assert result.returncode == 0, result.stderr
    answers = [pydicom.dcmread(p, force=True) for p in out.iterdir()]
    assert [(a.PatientID, str(a.PatientName)) for a in answers] == [("PR1", "Sun^Li")]
