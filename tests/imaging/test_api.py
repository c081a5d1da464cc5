"""The clinicians' archive API: new studies, arrival push, reconciliation, de-identified export."""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest
from asgiref.sync import async_to_sync
from channels.testing.websocket import WebsocketCommunicator

from config.asgi import application
from imaging import services
from imaging.models import Study
from registry.models import AuditEvent, Notification
from tests.imaging.dicom_factory import make_ct_series

URL = "/api/v1/imaging/studies/"


@pytest.fixture
def archive(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "archive")},
        },
    }


def _store(community, objects, org=None):
    source = services.Source(organisation=org or community.village_a, calling_ae_title="X")
    return [services.store_instance(raw, source=source) for raw in objects]


def test_a_new_study_is_listed_for_the_clinic_and_hidden_from_others(db, archive, community):
    _store(community, make_ct_series(3, patient_id="NEW1"))
    mine = community.client("village_a").get(URL).json()
    assert [s["dicom_patient_id"] for s in mine["results"]] == ["NEW1"]
    assert mine["results"][0]["number_of_instances"] == 3
    assert mine["results"][0]["patient"] is None
    assert community.client("village_b").get(URL).json()["results"] == []
    assert community.client("other_doctor").get(URL).json()["results"] == []
    uid = mine["results"][0]["study_instance_uid"]
    assert community.client("other_doctor").get(f"{URL}{uid}/").status_code == 404


def test_the_clinic_is_told_of_an_arrival(
    db, archive, community, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _store(community, make_ct_series(2, patient_id="PUSH1"))
    told = Notification.objects.filter(category="imaging.study_arrived")
    assert {n.user.username for n in told} == {"village_a"}
    assert told.get().data["matched"] is False


@pytest.mark.django_db(transaction=True)
def test_the_arrival_is_pushed_over_the_websocket(archive, community):
    from django.test import Client

    browser = Client()
    browser.force_login(community.users["village_a"])
    cookie = browser.cookies["sessionid"].value

    async def scenario():
        socket = WebsocketCommunicator(
            application,
            "/ws/notifications/",
            headers=[(b"cookie", f"sessionid={cookie}".encode()), (b"origin", b"http://localhost")],
        )
        connected, _ = await socket.connect()
        assert connected
        from channels.db import database_sync_to_async

        await database_sync_to_async(_store)(community, make_ct_series(1, patient_id="WS1"))
        message = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return message

    message = async_to_sync(scenario)()
    assert message["type"] == "notification"
    assert message["notification"]["category"] == "imaging.study_arrived"


def test_an_unmatched_study_is_reconciled_to_a_patient(db, archive, community, patient_factory):
    _store(community, make_ct_series(1, patient_id="LOST1"))
    patient = patient_factory(home_organisation=community.village_a)
    client = community.client("village_a")
    waiting = client.get(URL, {"unmatched": "true"}).json()["results"]
    uid = waiting[0]["study_instance_uid"]
    linked = client.post(
        f"{URL}{uid}/reconcile/", {"patient": str(patient.external_id)}, format="json"
    )
    assert linked.status_code == 200, linked.json()
    assert linked.json()["patient"]["id"] == str(patient.external_id)
    assert client.get(URL, {"unmatched": "true"}).json()["results"] == []
    assert AuditEvent.objects.filter(action="imaging.study.reconcile").exists()
    # A patient of another clinic cannot be chosen: the registry gate answers 404.
    other = patient_factory(home_organisation=community.village_b)
    Study.objects.update(patient=None)
    refused = client.post(
        f"{URL}{uid}/reconcile/", {"patient": str(other.external_id)}, format="json"
    )
    assert refused.status_code == 404
    assert Study.objects.get().patient is None


def test_export_is_deidentified_with_consistent_uids(db, archive, community):
    objects = make_ct_series(3, patient_name="Zhang^San", patient_id="SECRET-ID")
    _store(community, objects)
    uid = Study.objects.get().study_instance_uid
    response = community.client("village_a").get(
        f"{URL}{uid}/deidentified.zip", {"date_shift_days": "-30"}
    )
    assert response.status_code == 200
    data = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(data)) as archive_zip:
        datasets = [
            pydicom.dcmread(io.BytesIO(archive_zip.read(n))) for n in archive_zip.namelist()
        ]
    assert len(datasets) == 3
    originals = [pydicom.dcmread(io.BytesIO(raw)) for raw in objects]
    for ds in datasets:
        assert str(ds.PatientName) == "ANONYMOUS" and ds.PatientID == "ANON"
        assert ds.PatientIdentityRemoved == "YES"
        assert b"SECRET-ID" not in data and b"Zhang" not in data
        assert ds.StudyInstanceUID != originals[0].StudyInstanceUID
        assert ds.StudyDate == "20240502"  # 2024-06-01 shifted by 30 days
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1  # still one study
    assert len({ds.SOPInstanceUID for ds in datasets}) == 3
    again = community.client("village_a").get(f"{URL}{uid}/deidentified.zip")
    with zipfile.ZipFile(io.BytesIO(b"".join(again.streaming_content))) as second:
        first_again = pydicom.dcmread(io.BytesIO(second.read(second.namelist()[0])))
    assert first_again.StudyInstanceUID == datasets[0].StudyInstanceUID  # same mapping
    assert AuditEvent.objects.filter(action="imaging.study.export_deidentified").count() == 2
    assert community.client("other_doctor").get(f"{URL}{uid}/deidentified.zip").status_code == 404
