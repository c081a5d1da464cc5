"""ImagingStudy for studies stored through the archive's own ingest service."""

from __future__ import annotations

import pytest

from imaging import services
from registry.models import AuditEvent
from tests.fhir.conftest import entries, issue_codes, parse
from tests.imaging.dicom_factory import make_ct_series

DICOM_UID = "urn:dicom:uid"


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
def stored(community, archive, patient_factory):
    """A three-slice CT from the township centre for a patient of village A, matched by the
    resident ID number sent as Patient ID; and an unmatched DR-less CT of a stranger."""
    patient = patient_factory(home_organisation=community.village_a, name="王秀英")
    source = services.Source(organisation=community.township, calling_ae_title="TEST_DR")
    for raw in make_ct_series(3, patient_id=patient.id_number, patient_name="Wang^Xiuying"):
        services.store_instance(raw, source=source)
    for raw in make_ct_series(1, patient_id="NOBODY1", accession="A0002", study_date="20230105"):
        services.store_instance(raw, source=source)
    return patient


def test_a_stored_study_reads_as_a_valid_imaging_study(community, stored, fhir_get):
    search = parse(
        fhir_get("village_a", "ImagingStudy", {"patient": f"Patient/{stored.external_id}"})
    )
    assert search.total == 1
    study_id = search.entry[0].resource.id
    response = fhir_get("village_a", f"ImagingStudy/{study_id}")
    assert response.status_code == 200
    study = parse(response)
    assert study.status == "available"
    assert study.subject.reference == f"Patient/{stored.external_id}"
    assert study.started.isoformat() == "2024-06-01T09:30:00+08:00"
    assert [(m.system, m.code) for m in study.modality] == [
        ("http://dicom.nema.org/resources/ontology/DCM", "CT")
    ]
    assert (study.numberOfSeries, study.numberOfInstances) == (1, 3)
    (series,) = study.series
    assert (series.modality.code, series.number, series.numberOfInstances) == ("CT", 1, 3)
    uid = study.identifier[0]
    assert uid.system == DICOM_UID and uid.value.startswith("urn:oid:1.2.826.")
    (endpoint,) = study.contained
    assert endpoint.address == "http://testserver/dicomweb/"
    assert study.endpoint[0].reference == "#dicomweb"
    assert AuditEvent.objects.filter(
        action="imaging.study.view", outcome="success", patient_id=stored.external_id
    ).exists()


def test_an_unmatched_study_has_a_logical_subject(community, stored, fhir_get):
    bundle = parse(fhir_get("township_doctor", "ImagingStudy", {"started": "2023"}))
    (study,) = entries(bundle)
    assert study.subject.reference is None
    assert study.subject.identifier.value == "NOBODY1"
    assert study.identifier[1].value == "A0002"


def test_search_by_identifier_modality_and_started(community, stored, fhir_get):
    def total(params):
        response = fhir_get("township_doctor", "ImagingStudy", params)
        assert response.status_code == 200, response.json()
        return parse(response).total

    uid = parse(fhir_get("village_a", "ImagingStudy")).entry[0].resource.identifier[0].value
    assert total({}) == 2
    assert total({"identifier": f"{DICOM_UID}|{uid}"}) == 1
    assert total({"identifier": "A0002"}) == 1
    assert total({"modality": "http://dicom.nema.org/resources/ontology/DCM|CT"}) == 2
    assert total({"modality": "MR"}) == 0
    assert total({"started": "2024-06-01"}) == 1
    assert total({"started": "lt2024"}) == 1
    assert AuditEvent.objects.filter(
        action="imaging.study.search", detail={"criteria": ["started"]}
    ).exists()


def test_another_organisation_sees_no_study_and_a_refused_read_is_audited(
    community, stored, fhir_get
):
    study_id = parse(fhir_get("village_a", "ImagingStudy")).entry[0].resource.id
    bundle = parse(fhir_get("other_doctor", "ImagingStudy"))
    assert (bundle.total, bundle.entry) == (0, None)
    response = fhir_get("other_doctor", f"ImagingStudy/{study_id}")
    assert response.status_code == 404
    assert issue_codes(response) == ["not-found"]
    assert AuditEvent.objects.filter(
        action="imaging.study.view", outcome="denied", actor_username="other_doctor"
    ).exists()
