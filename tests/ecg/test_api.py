"""ECG records through the archive and the API: DICOM waveforms measured on arrival,
uploads converted and stored, access by organisation, confirm or correct, priors."""

from __future__ import annotations

import io
from datetime import datetime

import pydicom
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from imaging import services as imaging_services
from imaging.ecg.models import EcgReading, EcgRecord, EcgStatus
from imaging.ecg.services import EMERGENCY_EVENT
from imaging.ecg.synthetic import synthetic_ecg
from imaging.ecg.to_dicom import DicomIds, build_ecg_dicom
from imaging.models import Instance
from registry.models import AuditEvent, AuditOutcome, DomainEvent
from tests.ecg.ecg_factory import write_csv, write_scp
from tests.imaging.dicom_factory import make_ecg, uid

pytestmark = pytest.mark.django_db

URL = "/api/v1/ecg/records/"


@pytest.fixture
def patient(community, patient_factory):
    return patient_factory(home_organisation=community.village_a, sex="female")


def upload(client, patient, raw, name="ecg.scp"):
    return client.post(
        URL,
        {"file": SimpleUploadedFile(name, raw), "patient": str(patient.external_id)},
        format="multipart",
    )


def test_a_dicom_ecg_arriving_in_the_archive_is_measured(
    community, archive, django_capture_on_commit_callbacks
):
    source = archive_src(community)
    with django_capture_on_commit_callbacks(execute=True):
        imaging_services.store_instance(make_ecg(), source=source)
    record = EcgRecord.objects.get()
    assert record.sample_rate == 500 and record.leads[:3] == ["I", "II", "III"]
    assert "unnamed channels taken in the standard lead order" in record.warnings
    # The same study processed again updates the same record.
    client = community.client("township_doctor")
    study_uid = record.study.study_instance_uid
    response = client.post(f"/api/v1/ecg/studies/{study_uid}/process/")
    assert response.status_code == 200 and len(response.json()) == 1
    assert EcgRecord.objects.count() == 1


def archive_src(community):
    return imaging_services.Source(organisation=community.township, calling_ae_title="TEST_ECG")


def test_an_scp_upload_becomes_a_dicom_waveform_and_a_measured_record(community, archive, patient):
    signal, truth = synthetic_ecg(heart_rate=75, resolution_uv=5.0)
    signal.acquired_at = datetime(2024, 6, 3, 9, 30)
    client = community.client("village_a")
    response = upload(client, patient, write_scp(signal))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["patient"] == str(patient.external_id)
    assert body["source_format"] == "scp" and body["status"] == "suggested"
    assert abs(body["suggested"]["heart_rate"] - 75) <= 2
    instance = Instance.objects.get(sop_instance_uid=body["sop_instance_uid"])
    ds = pydicom.dcmread(default_storage.open(instance.storage_key))
    assert ds.Modality == "ECG" and ds.PatientName == patient.name
    assert ds.WaveformSequence[0].NumberOfWaveformChannels == 12
    assert instance.series.study.patient == patient
    # The same file again: the same record, nothing new.
    again = upload(client, patient, write_scp(signal))
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert EcgRecord.objects.count() == 1
    # Renderings and the waveform for the viewer.
    png = client.get(f"{URL}{body['id']}/render.png?dpi=100")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    svg = client.get(f"{URL}{body['id']}/render.svg?layout=6x2&speed=50&gain=20")
    assert svg.status_code == 200 and b'data-speed="50"' in svg.content
    wave = client.get(f"{URL}{body['id']}/waveform/").json()
    assert len(wave["leads"]["II"]) == 5000


def test_an_unreadable_upload_is_refused_clearly(community, archive, patient):
    client = community.client("village_a")
    response = upload(client, patient, b"\0\0\x10\0\0\0" + b"\0" * 40, name="broken.scp")
    assert response.status_code == 422
    assert "cannot be read" in response.json()["detail"]
    response = upload(client, patient, b"hello", name="notes.bin")
    assert response.status_code == 422
    assert Instance.objects.count() == 0 and EcgRecord.objects.count() == 0


def test_access_by_organisation(community, archive, patient):
    signal, _ = synthetic_ecg()
    record_id = upload(community.client("village_a"), patient, write_csv(signal), "e.csv").json()[
        "id"
    ]
    # Anonymous: refused; another organisation: 404, audited; the county doctor sees it.
    from rest_framework.test import APIClient

    assert APIClient().get(f"{URL}{record_id}/").status_code in (401, 403)
    other = community.client("other_doctor")
    for path in ("", "waveform/", "render.png", "priors/"):
        assert other.get(f"{URL}{record_id}/{path}").status_code == 404
    assert (
        other.post(f"{URL}{record_id}/confirm/", {"values": {}}, format="json").status_code == 404
    )
    denied = AuditEvent.objects.filter(
        action="ecg.record.view", outcome=AuditOutcome.DENIED, object_id=record_id
    )
    assert denied.count() == 5
    assert other.get(URL).json()["count"] == 0
    # Uploading for a patient one cannot see: 404, nothing stored.
    assert upload(other, patient, write_csv(signal), "e.csv").status_code == 404
    assert community.client("county_doctor").get(f"{URL}{record_id}/").status_code == 200
    assert EcgRecord.objects.get().status == EcgStatus.SUGGESTED


def test_confirm_or_correct_and_priors_with_deltas(community, archive, patient):
    client = community.client("village_a")
    older, _ = synthetic_ecg(heart_rate=60, qt=400, seed=3)
    older.acquired_at = datetime(2024, 1, 10, 8, 0)
    newer, _ = synthetic_ecg(heart_rate=90, qt=360, seed=4)
    newer.acquired_at = datetime(2024, 6, 3, 9, 30)
    first = upload(client, patient, write_csv(older), "a.csv").json()
    second = upload(client, patient, write_csv(newer), "b.csv").json()
    # A village doctor may not confirm; nothing changes.
    values = {**second["suggested"]}
    values = {
        k: values[k]
        for k in ("heart_rate", "rr", "pr", "qrs", "qt", "qtc_bazett", "qtc_fridericia", "axis")
    }
    refused = client.post(f"{URL}{second['id']}/confirm/", {"values": values}, format="json")
    assert refused.status_code == 403 and EcgReading.objects.count() == 0
    specialist = community.client("county_doctor")
    corrected = {**values, "qt": 370.0}
    response = specialist.post(
        f"{URL}{second['id']}/confirm/",
        {"values": corrected, "flags": [], "note": "QT read by hand"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "confirmed" and body["confirmed"]["qt"] == 370.0
    assert body["confirmed_by"] == "county_doctor" and body["suggested"]["qt"] == values["qt"]
    assert EcgReading.objects.get().corrected is True
    bad = specialist.post(f"{URL}{second['id']}/confirm/", {"values": {"qt": 5000}}, format="json")
    assert bad.status_code == 400 and "qt" in bad.json()["fields"]
    priors = specialist.get(f"{URL}{second['id']}/priors/").json()
    assert [p["id"] for p in priors] == [first["id"]]
    assert priors[0]["deltas"]["qt"] == pytest.approx(370.0 - first["suggested"]["qt"], abs=0.11)
    assert priors[0]["deltas"]["heart_rate"] == pytest.approx(
        second["suggested"]["heart_rate"] - first["suggested"]["heart_rate"], abs=0.11
    )


def test_an_emergency_pattern_is_published_once(community, archive, patient):
    signal, _ = synthetic_ecg(st_elevation={"V2": 0.3, "V3": 0.3, "V4": 0.3})
    signal.patient.patient_id = "P-STEMI"
    study_uid = uid("stemi-study")
    raw = build_ecg_dicom(signal, DicomIds(study_uid, uid("stemi-series"), uid("stemi-sop")))
    imaging_services.store_instance(raw, source=archive_src(community))
    from imaging.ecg.services import ecg_study_process
    from imaging.models import Study

    study = Study.objects.get(study_instance_uid=study_uid)
    ecg_study_process(study=study)
    ecg_study_process(study=study)
    record = EcgRecord.objects.get()
    assert record.emergency and "possible_st_elevation" in record.flags
    events = DomainEvent.objects.filter(event_type=EMERGENCY_EVENT)
    assert events.count() == 1
    assert events.get().payload["record"] == str(record.external_id)
    assert events.get().payload["study"] == str(study.external_id)


def test_the_viewer_page_and_the_list_page(community, archive, patient, client):
    signal, _ = synthetic_ecg()
    record_id = upload(community.client("village_a"), patient, write_csv(signal), "e.csv").json()[
        "id"
    ]
    client.force_login(community.users["county_doctor"])
    page = client.get(f"/ecg/{record_id}/")
    assert page.status_code == 200 and b'id="paper"' in page.content
    assert client.get("/ecg/").status_code == 200
    client.force_login(community.users["other_doctor"])
    assert client.get(f"/ecg/{record_id}/").status_code == 404
    assert io  # keep the import used
