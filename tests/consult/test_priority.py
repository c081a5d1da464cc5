"""A machine-flagged emergency ECG pattern makes the consult that carries the ECG an emergency."""

import pytest

from consult.models import ConsultRequest
from imaging import services as imaging
from imaging.ecg.synthetic import synthetic_ecg
from imaging.ecg.to_dicom import DicomIds, build_ecg_dicom
from registry.models import AuditEvent
from tests.consult.conftest import act, draft

pytestmark = pytest.mark.django_db(transaction=True)


def _ecg(study_uid: str, *, st_elevation: dict | None) -> bytes:
    signal, _ = synthetic_ecg(heart_rate=88, st_elevation=st_elevation, seed=5)
    return build_ecg_dicom(
        signal,
        DicomIds(
            study_instance_uid=study_uid,
            series_instance_uid=study_uid + ".1",
            sop_instance_uid=study_uid + ".1.1",
        ),
    )


@pytest.mark.parametrize(
    ("elevation", "expected"), [(None, "urgent"), ({"V2": 0.3, "V3": 0.35, "V4": 0.3}, "emergency")]
)
def test_st_elevation_on_the_attached_ecg_raises_the_consult(
    community, patient, media, elevation, expected
):
    study_uid = "1.2.826.0.1.3680043.10.99.7"
    consult = draft(community, patient, urgency="urgent")
    attached = act(
        community,
        "village_a",
        consult["id"],
        "attachments/study",
        {"study_instance_uid": study_uid},
    )
    assert attached.status_code == 201, attached.json()
    assert act(community, "village_a", consult["id"], "submit").status_code == 200
    source = imaging.Source(organisation=community.village_a, calling_ae_title="ECG")
    imaging.store_instance(_ecg(study_uid, st_elevation=elevation), source=source)
    row = ConsultRequest.objects.get(external_id=consult["id"])
    assert row.urgency == expected
    raised = AuditEvent.objects.filter(action="consult.priority_raised").exists()
    assert raised == (expected == "emergency")
