"""Huizhen beside Debian's Orthanc: C-MOVE both ways, C-STORE from Orthanc, and the same study's
QIDO-RS and WADO-RS answers compared between the two DICOMweb servers."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from django.core.files.storage import default_storage
from django.db import connections

from imaging.models import Instance, Study
from tests.imaging.dicom_factory import make_ct_series

from .conftest import HUIZHEN_AET, SENDER_AET

pytestmark = pytest.mark.django_db(transaction=True)

NODELAY = {**os.environ, "TCP_NODELAY": "1"}


def run(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, env=NODELAY
    )


def write(directory: Path, objects: list[bytes]) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, raw in enumerate(objects):
        path = directory / f"{n:04d}.dcm"
        path.write_bytes(raw)
        paths.append(str(path))
    return paths


def storescu(port: int, files: list[str]) -> None:
    result = run(
        "storescu", "-aet", SENDER_AET, "-aec", HUIZHEN_AET, "127.0.0.1", str(port), *files
    )
    assert result.returncode == 0, result.stderr


def dataset_bytes(raw: bytes) -> bytes:
    """The encoded data set after the file meta information (the meta group differs by
    implementation: each writes its own Implementation Class UID)."""
    meta_length = int.from_bytes(raw[140:144], "little")
    return raw[144 + meta_length :]


def by_sop(objects: list[bytes]) -> dict[str, bytes]:
    return {pydicom.dcmread(io.BytesIO(raw)).SOPInstanceUID: raw for raw in objects}


def two_series_study(patient_id: str, patient_name: str, charset: str | None) -> list[bytes]:
    kw = {"rows": 32, "cols": 32, "patient_name": patient_name, "patient_id": patient_id}
    first = make_ct_series(3, charset=charset, **kw)
    study_uid = pydicom.dcmread(io.BytesIO(first[0])).StudyInstanceUID
    second = make_ct_series(2, charset=charset, study_uid=study_uid, series_number=2, **kw)
    return first + second


def test_huizhen_moves_a_series_to_orthanc_byte_for_byte(huizhen_scp, orthanc, tmp_path):
    # Given a CT series stored in Huizhen by a township modality
    objects = make_ct_series(8, rows=128, cols=128, patient_name="Li^Si", patient_id="MV001")
    storescu(huizhen_scp, write(tmp_path / "send", objects))
    study_uid = pydicom.dcmread(io.BytesIO(objects[0])).StudyInstanceUID

    # When the modality asks Huizhen to move the study to Orthanc
    result = run(
        "movescu", "-aet", SENDER_AET, "-aec", HUIZHEN_AET, "-aem", orthanc.ae_title, "-S",
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
        "127.0.0.1", str(huizhen_scp),
    )  # fmt: skip

    # Then Orthanc holds every instance, with the same pixel data and the same data set
    assert result.returncode == 0, result.stderr
    assert "Failed" not in result.stderr
    [study] = orthanc.get("/studies").json()
    assert orthanc.get(f"/studies/{study}/statistics").json()["CountInstances"] == 8
    for sop, raw in by_sop(objects).items():
        orthanc_id = orthanc.find_instance(sop)
        assert orthanc_id, sop
        received = orthanc.get(f"/instances/{orthanc_id}/file").content
        assert pydicom.dcmread(io.BytesIO(received)).PixelData == (
            pydicom.dcmread(io.BytesIO(raw)).PixelData
        )
        assert dataset_bytes(received) == dataset_bytes(raw)


def test_orthanc_finds_and_retrieves_from_huizhen_by_c_move(huizhen_scp, orthanc, tmp_path):
    # Given a study in Huizhen that Orthanc (a registered AE of the same centre) may see
    objects = make_ct_series(4, rows=64, cols=64, patient_name="Zhao^Liu", patient_id="QR001")
    storescu(huizhen_scp, write(tmp_path / "send", objects))

    # When Orthanc queries Huizhen with C-FIND and retrieves the answer with C-MOVE to itself
    query = orthanc.post(
        "/modalities/huizhen/query",
        json={"Level": "Study", "Query": {"PatientID": "QR001", "StudyInstanceUID": ""}},
    ).json()
    answers = orthanc.get(f"/queries/{query['ID']}/answers?expand").json()
    assert len(answers) == 1
    orthanc.post(f"/queries/{query['ID']}/retrieve", json={"Synchronous": True})

    # Then Orthanc has the four instances, identical to what was sent
    assert len(orthanc.get("/instances").json()) == 4
    for sop, raw in by_sop(objects).items():
        received = orthanc.get(f"/instances/{orthanc.find_instance(sop)}/file").content
        assert dataset_bytes(received) == dataset_bytes(raw)


def test_orthanc_stores_into_huizhen_as_a_registered_ae(huizhen_scp, orthanc, community):
    # Given a series uploaded to Orthanc
    objects = make_ct_series(5, rows=64, cols=64, patient_name="Sun^Li", patient_id="ST001")
    for raw in objects:
        orthanc.upload(raw)
    [study] = orthanc.get("/studies").json()

    # When Orthanc sends it to Huizhen with C-STORE
    job = orthanc.post(
        "/modalities/huizhen/store", json={"Resources": [study], "Synchronous": True}
    ).json()

    # Then Huizhen indexed it for the organisation that owns Orthanc's AE title, byte-identical
    assert job.get("FailedInstancesCount", 0) == 0, job
    indexed = Study.objects.get()
    assert indexed.organisation == community.township
    assert (indexed.number_of_series, indexed.number_of_instances) == (1, 5)
    assert set(Instance.objects.values_list("calling_ae_title", flat=True)) == {orthanc.ae_title}
    for sop, raw in by_sop(objects).items():
        instance = Instance.objects.get(sop_instance_uid=sop)
        with default_storage.open(instance.storage_key) as handle:
            assert dataset_bytes(handle.read()) == dataset_bytes(raw)


# --- the same study in both DICOMweb servers ------------------------------------------------

STUDY_KEYS = {
    "0020000D": "StudyInstanceUID",
    "00100010": "PatientName",
    "00100020": "PatientID",
    "00080020": "StudyDate",
    "00080061": "ModalitiesInStudy",
    "00201206": "NumberOfStudyRelatedSeries",
    "00201208": "NumberOfStudyRelatedInstances",
}
SERIES_KEYS = {
    "0020000E": "SeriesInstanceUID",
    "00080060": "Modality",
    "00201209": "NumberOfSeriesRelatedInstances",
}
INSTANCE_KEYS = {"00080018": "SOPInstanceUID", "00080016": "SOPClassUID"}


def _values(answer: dict, keys: dict[str, str]) -> dict[str, object]:
    """The compared attributes' values (None when the server left one out)."""
    return {name: answer.get(tag, {}).get("Value") for tag, name in keys.items()}


def _sorted(answers: list[dict], tag: str) -> list[dict]:
    return sorted(answers, key=lambda a: a[tag]["Value"][0])


def _raw_qido(client: DICOMwebClient, path_and_query: str) -> list[dict]:
    response = client._session.get(
        f"{client.base_url}/{path_and_query}", headers={"Accept": "application/dicom+json"}
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def huizhen_web(live_server, monkeypatch, community):
    """A DICOMweb client of Huizhen's /dicomweb/ with the township doctor's bearer token."""
    monkeypatch.setitem(connections.databases["default"], "CONN_MAX_AGE", 0)
    token = httpx.post(
        f"{live_server.url}/api/v1/auth/token/",
        json={"username": "township_doctor", "password": "pw-township_doctor"},
        timeout=30,
    )
    assert token.status_code == 200, token.text
    client = DICOMwebClient(
        url=f"{live_server.url}/dicomweb",
        headers={"Authorization": f"Bearer {token.json()['token']}"},
    )
    yield client
    client._session.close()


@pytest.fixture
def orthanc_web(orthanc):
    client = DICOMwebClient(url=orthanc.dicomweb, headers={"Accept-Encoding": "identity"})
    yield client
    client._session.close()


def test_qido_and_wado_answers_match_orthanc(
    huizhen_scp, orthanc, huizhen_web, orthanc_web, tmp_path
):
    # Given the same two-series study sent to both: to Huizhen by a township modality,
    # to Orthanc through its REST API
    objects = two_series_study("CMP001", "Wang^XiaoMing", None)
    storescu(huizhen_scp, write(tmp_path / "send", objects))
    for raw in objects:
        orthanc.upload(raw)
    first = pydicom.dcmread(io.BytesIO(objects[0]))
    study_uid = first.StudyInstanceUID

    # When both are asked the same QIDO-RS questions, at study, series and instance level
    fields = list(STUDY_KEYS.values())
    ours = huizhen_web.search_for_studies(search_filters={"PatientID": "CMP001"}, fields=fields)
    theirs = orthanc_web.search_for_studies(search_filters={"PatientID": "CMP001"}, fields=fields)

    # Then they agree on every compared attribute
    assert len(ours) == len(theirs) == 1
    assert _values(ours[0], STUDY_KEYS) == _values(theirs[0], STUDY_KEYS)
    assert _values(ours[0], STUDY_KEYS)["NumberOfStudyRelatedInstances"] == [5]

    # (asked with a literal "*": Orthanc 1.10 does not match a percent-encoded one, which
    # is how dicomweb-client sends it)
    wildcard = "studies?PatientName=Wang*&StudyDate=20240101-20241231"
    assert [a["0020000D"]["Value"] for a in _raw_qido(huizhen_web, wildcard)] == [
        a["0020000D"]["Value"] for a in _raw_qido(orthanc_web, wildcard)
    ]

    fields = list(SERIES_KEYS.values())
    ours = _sorted(huizhen_web.search_for_series(study_uid, fields=fields), "0020000E")
    theirs = _sorted(orthanc_web.search_for_series(study_uid, fields=fields), "0020000E")
    assert len(ours) == len(theirs) == 2
    assert [_values(a, SERIES_KEYS) for a in ours] == [_values(a, SERIES_KEYS) for a in theirs]

    series_uid = first.SeriesInstanceUID
    fields = list(INSTANCE_KEYS.values())
    ours = _sorted(
        huizhen_web.search_for_instances(study_uid, series_uid, fields=fields), "00080018"
    )
    theirs = _sorted(
        orthanc_web.search_for_instances(study_uid, series_uid, fields=fields), "00080018"
    )
    assert len(ours) == len(theirs) == 3
    assert [_values(a, INSTANCE_KEYS) for a in ours] == [_values(a, INSTANCE_KEYS) for a in theirs]

    # And WADO-RS gives the same data set for every instance (and the one that was sent)
    for sop, raw in by_sop(objects).items():
        sent = pydicom.dcmread(io.BytesIO(raw))
        ours = huizhen_web.retrieve_instance(study_uid, sent.SeriesInstanceUID, sop)
        theirs = orthanc_web.retrieve_instance(study_uid, sent.SeriesInstanceUID, sop)
        assert ours == theirs == sent
        assert ours.PixelData == theirs.PixelData == sent.PixelData


def test_a_gb18030_name_comes_back_in_its_component_groups(huizhen_scp, huizhen_web, tmp_path):
    """PS3.18 F.2.2: a Person Name's alphabetic, ideographic and phonetic groups are separate
    members of the JSON value. (Orthanc 1.10 is no reference here: its QIDO answer loses the
    ideographic characters of this name, returning {"Ideographic": "^"}.)"""
    # Given a study whose patient name has an ideographic group, sent in GB18030
    storescu(
        huizhen_scp,
        write(tmp_path / "send", two_series_study("CMP002", "Wang^XiaoMing=王^小明", "GB18030")),
    )

    # When it is found by QIDO-RS
    [found] = huizhen_web.search_for_studies(search_filters={"PatientID": "CMP002"})

    # Then the name is split into its groups, in UTF-8
    assert found["00100010"]["Value"] == [{"Alphabetic": "Wang^XiaoMing", "Ideographic": "王^小明"}]
