"""External PACS with Debian's Orthanc as the hospital PACS: a consult patient's priors found
by C-FIND, pulled by C-GET into Huizhen's archive, and the signed report stored back as an
Encapsulated PDF by C-STORE."""

from __future__ import annotations

import io

import pydicom
import pytest

from consult.models import ConsultRequest
from ehr_bridge.models import PacsPull, PacsReportSend, RemotePacs
from imaging.models import Study
from registry.models import AuditEvent, PatientIdentifier
from tests.consult.conftest import URL, act, submitted
from tests.consult.conftest import patient as patient  # noqa: F401 - fixture
from tests.ehr_bridge.conftest import wait_for
from tests.imaging.dicom_factory import make_ct_series
from tests.interop import orthanc as orthanc_peer

pytestmark = pytest.mark.django_db(transaction=True)

PACS_URL = "/api/v1/hl7/pacs/consults/"
MRN = "QSX-00917"


@pytest.fixture(scope="module")
def orthanc_server(tmp_path_factory):
    if orthanc_peer.binary() is None or orthanc_peer.dicomweb_plugin() is None:
        orthanc_peer.install()
    if orthanc_peer.binary() is None or orthanc_peer.dicomweb_plugin() is None:
        pytest.skip("Debian's orthanc and orthanc-dicomweb are not installed")
    server = orthanc_peer.start(
        tmp_path_factory.mktemp("orthanc-pacs"),
        extra={
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowStore": True,
        },
    )
    yield server
    server.stop()


@pytest.fixture
def orthanc(orthanc_server):
    orthanc_server.delete_everything()
    yield orthanc_server
    orthanc_server.delete_everything()


@pytest.fixture
def archive(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "archive")},
        },
    }
    return tmp_path / "archive"


@pytest.fixture
def hospital_pacs(community, orthanc):
    return RemotePacs.objects.create(
        name="County PACS",
        organisation=community.county,
        ae_title=orthanc.ae_title,
        host="127.0.0.1",
        port=orthanc.dicom_port,
        calling_ae_title="HUIZHEN",
        report_format="pdf",
    )


@pytest.fixture
def prior(orthanc, patient):  # noqa: F811
    """A prior CT study of the patient at the hospital PACS, under the hospital MRN."""
    PatientIdentifier.objects.create(patient=patient, authority="QSX", kind="MR", value=MRN)
    objects = make_ct_series(
        3, rows=32, cols=32, patient_name="王^小明", patient_id=MRN, charset="ISO_IR 192"
    )
    for raw in objects:
        orthanc.upload(raw)
    return pydicom.dcmread(io.BytesIO(objects[0])).StudyInstanceUID


def test_priors_are_found_pulled_indexed_and_shared_with_the_centre(
    community,
    patient,  # noqa: F811
    archive,
    hospital_pacs,
    prior,
):
    # Given a submitted consult of a patient with a prior CT at the county hospital's PACS
    cid = submitted(community, patient)["id"]
    village = community.client("village_a")

    # When the village doctor lists the priors
    found = village.get(f"{PACS_URL}{cid}/priors/")

    # Then the prior study is listed
    assert found.status_code == 200, found.json()
    [study] = found.json()
    assert study["study_instance_uid"] == prior
    assert study["in_archive"] is False
    assert AuditEvent.objects.filter(action="ehr_bridge.pacs.find").exists()

    # When they pull it
    pulled = village.post(f"{PACS_URL}{cid}/pulls/", {"study_uid": prior}, format="json")

    # Then the pull completes, the study is indexed, linked to the patient, shared with the centre
    assert pulled.status_code == 202, pulled.json()
    pull_id = pulled.json()["id"]
    assert wait_for(
        lambda: PacsPull.objects.filter(external_id=pull_id, status__in=["done", "failed"]).exists()
    )
    status = village.get(f"{PACS_URL}{cid}/pulls/{pull_id}/").json()
    assert status["status"] == "done", status
    assert status["stored"] == 3
    indexed = Study.objects.get(study_instance_uid=prior)
    assert indexed.patient_id == patient.pk
    assert indexed.number_of_instances == 3
    assert status["study"] == str(indexed.external_id)
    seen = community.client("ecg_specialist").get(f"/api/v1/imaging/studies/{prior}/")
    assert seen.status_code == 200, seen.json()
    assert village.get(f"{PACS_URL}{cid}/priors/").json()[0]["in_archive"] is True


def _sign(community, patient):  # noqa: F811
    cid = submitted(community, patient)["id"]
    assert act(community, "ecg_specialist", cid, "accept").status_code == 200
    assert act(community, "ecg_specialist", cid, "start").status_code == 200
    saved = community.client("ecg_specialist").put(
        f"{URL}{cid}/report/",
        {"findings": "窦性心律", "impression": "正常心电图", "recommendations": ""},
        format="json",
    )
    assert saved.status_code == 200
    signed = act(community, "ecg_specialist", cid, "sign", {"password": "pw-ecg_specialist"})
    assert signed.status_code == 200, signed.json()
    return cid


def test_a_signed_report_is_stored_at_the_pacs_as_encapsulated_pdf(
    community,
    patient,  # noqa: F811
    archive,
    hospital_pacs,
    orthanc,
):
    # Given a PACS that takes reports
    PatientIdentifier.objects.create(patient=patient, authority="QSX", kind="MR", value=MRN)

    # When a report is signed
    cid = _sign(community, patient)

    # Then Orthanc receives an Encapsulated PDF with the report's PDF, under the MRN
    assert wait_for(lambda: PacsReportSend.objects.filter(status="done").exists(), timeout=60)
    send = PacsReportSend.objects.get()
    assert send.report.consult == ConsultRequest.objects.get(external_id=cid)
    orthanc_id = orthanc.find_instance(send.sop_instance_uid)
    assert orthanc_id
    ds = pydicom.dcmread(io.BytesIO(orthanc.get(f"/instances/{orthanc_id}/file").content))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert bytes(ds.EncapsulatedDocument).startswith(b"%PDF")
    assert ds.PatientID == MRN
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == patient.name


def test_another_organisation_gets_404_and_nothing_happens(
    community,
    patient,  # noqa: F811
    archive,
    hospital_pacs,
    prior,
):
    cid = submitted(community, patient)["id"]
    other = community.client("other_doctor")
    assert other.get(f"{PACS_URL}{cid}/priors/").status_code == 404
    denied = other.post(f"{PACS_URL}{cid}/pulls/", {"study_uid": prior}, format="json")
    assert denied.status_code == 404
    assert other.get(f"{PACS_URL}{cid}/pulls/").status_code == 404
    assert not PacsPull.objects.exists()
    assert not Study.objects.exists()
    assert AuditEvent.objects.filter(action="ehr_bridge.pacs.find", outcome="denied").exists()
    anonymous = community.client("village_a")
    anonymous.force_authenticate(None)
    assert anonymous.get(f"{PACS_URL}{cid}/priors/").status_code in (401, 403)


def test_bad_input_is_a_4xx(community, patient, archive, hospital_pacs):  # noqa: F811
    cid = submitted(community, patient)["id"]
    village = community.client("village_a")
    assert village.get(f"{PACS_URL}not-a-uuid/priors/").status_code == 404
    bad = village.post(f"{PACS_URL}{cid}/pulls/", {"study_uid": "1.2.x; DROP"}, format="json")
    assert bad.status_code == 400
    assert village.post(f"{PACS_URL}{cid}/pulls/", {}, format="json").status_code == 400
    assert village.get(f"{PACS_URL}{cid}/pulls/nope/").status_code == 404
    assert not PacsPull.objects.exists()


def test_an_unreachable_pacs_is_a_503_not_a_500(community, patient, archive):  # noqa: F811
    RemotePacs.objects.create(
        name="Down PACS",
        organisation=community.county,
        ae_title="DOWN",
        host="127.0.0.1",
        port=orthanc_peer.free_port(),
    )
    PatientIdentifier.objects.create(patient=patient, authority="QSX", kind="MR", value=MRN)
    cid = submitted(community, patient)["id"]
    village = community.client("village_a")
    found = village.get(f"{PACS_URL}{cid}/priors/")
    assert found.status_code == 503
    assert "cannot be reached" in str(found.json())
    pulled = village.post(f"{PACS_URL}{cid}/pulls/", {"study_uid": "1.2.3.4"}, format="json")
    assert pulled.status_code == 503
    assert not PacsPull.objects.exists()


def test_an_unmatched_prior_is_linked_to_the_consult_patient(
    community,
    patient,  # noqa: F811
    archive,
    hospital_pacs,
    orthanc,
):
    # Given a PACS whose Patient IDs are in an authority the ingest cannot match by itself
    hospital_pacs.assigning_authority = "QSX_PACS"
    hospital_pacs.save()
    PatientIdentifier.objects.create(patient=patient, authority="QSX_PACS", kind="MR", value="P77")
    objects = make_ct_series(2, rows=32, cols=32, patient_name="Wang^Xm", patient_id="P77")
    for raw in objects:
        orthanc.upload(raw)
    study_uid = pydicom.dcmread(io.BytesIO(objects[0])).StudyInstanceUID
    cid = submitted(community, patient)["id"]
    village = community.client("village_a")

    # When the prior is found and pulled
    assert [s["study_instance_uid"] for s in village.get(f"{PACS_URL}{cid}/priors/").json()] == [
        study_uid
    ]
    pulled = village.post(f"{PACS_URL}{cid}/pulls/", {"study_uid": study_uid}, format="json")
    assert pulled.status_code == 202

    # Then it is linked to the consult's patient in the requester's name, and shared
    assert wait_for(lambda: PacsPull.objects.filter(status__in=["done", "failed"]).exists())
    pull = PacsPull.objects.get()
    assert pull.status == "done", pull.error
    assert Study.objects.get(study_instance_uid=study_uid).patient_id == patient.pk
    assert AuditEvent.objects.filter(action="imaging.study.reconcile").exists()
    assert (
        community.client("ecg_specialist").get(f"/api/v1/imaging/studies/{study_uid}/").status_code
        == 200
    )


def test_a_study_of_another_patient_cannot_be_pulled(
    community,
    patient,  # noqa: F811
    archive,
    hospital_pacs,
    prior,
    orthanc,
):
    # Given a study at the PACS under someone else's ID
    objects = make_ct_series(1, rows=32, cols=32, patient_name="Li^Si", patient_id="OTHER-1")
    orthanc.upload(objects[0])
    foreign = pydicom.dcmread(io.BytesIO(objects[0])).StudyInstanceUID
    cid = submitted(community, patient)["id"]

    # When the consult's requester asks for it by UID
    response = community.client("village_a").post(
        f"{PACS_URL}{cid}/pulls/", {"study_uid": foreign}, format="json"
    )

    # Then it is not found, and nothing is retrieved
    assert response.status_code == 404
    assert not PacsPull.objects.exists()
    assert not Study.objects.exists()


def test_pull_by_c_move_to_huizhens_dimse_server(
    community,
    patient,  # noqa: F811
    archive,
    hospital_pacs,
    prior,
    orthanc,
):
    from django.db import connection

    from imaging.dicom import scp
    from registry.models import DicomApplicationEntity

    # Given Huizhen's DIMSE server, known to the PACS as the move destination, and the PACS
    # registered as an AE of the county hospital
    port = orthanc_peer.free_port()
    orthanc.add_modality("huizhen", "HUIZHEN", port)
    DicomApplicationEntity.objects.create(
        organisation=community.county,
        ae_title=orthanc.ae_title,
        host="127.0.0.1",
        port=orthanc.dicom_port,
    )
    hospital_pacs.retrieve = "move"
    hospital_pacs.save()
    running = scp.start("127.0.0.1", port, block=False)
    try:
        cid = submitted(community, patient)["id"]
        village = community.client("village_a")

        # When the prior is pulled
        pulled = village.post(f"{PACS_URL}{cid}/pulls/", {"study_uid": prior}, format="json")

        # Then it arrives through the DIMSE server, linked and shared
        assert pulled.status_code == 202
        assert wait_for(lambda: PacsPull.objects.filter(status__in=["done", "failed"]).exists())
        pull = PacsPull.objects.get()
        assert pull.status == "done", pull.error
        assert pull.stored == 3
        study = Study.objects.get(study_instance_uid=prior)
        assert study.patient_id == patient.pk and study.number_of_instances == 3
        seen = community.client("ecg_specialist").get(f"/api/v1/imaging/studies/{prior}/")
        assert seen.status_code == 200
    finally:
        running.shutdown()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


def test_a_report_for_an_unreachable_pacs_is_retried_until_it_is_stored(
    community,
    patient,  # noqa: F811
    archive,
    hospital_pacs,
    orthanc,
):
    from datetime import timedelta

    from django.utils import timezone

    from ehr_bridge import pacs

    # Given the PACS is down when the report is signed
    real_port = hospital_pacs.port
    hospital_pacs.port = orthanc_peer.free_port()
    hospital_pacs.save()
    _sign(community, patient)

    # Then the send waits for a later attempt, with the reason
    assert wait_for(
        lambda: PacsReportSend.objects.filter(status="pending", attempts=1).exists(), timeout=60
    )
    send = PacsReportSend.objects.get()
    assert send.next_attempt_at > timezone.now()
    assert "cannot be reached" in send.error
    assert pacs.report_send(send_id=send.pk).status == ""  # not due yet: nothing to do

    # When the PACS is back and the retry is due
    hospital_pacs.port = real_port
    hospital_pacs.save()
    PacsReportSend.objects.filter(pk=send.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    assert pacs.report_send_due() == [send.pk]

    # Then it is stored, once
    assert pacs.report_send(send_id=send.pk).status == "done"
    assert orthanc.find_instance(send.sop_instance_uid)
    assert pacs.report_send(send_id=send.pk).status == ""
    assert PacsReportSend.objects.get().attempts == 2
