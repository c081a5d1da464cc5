"""ORU^R01 lab results from the HIS attach to the patient; corrections keep history; the
list API is scoped by the patient gate and audited."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from rest_framework.test import APIClient

from ehr_bridge.models import InboundStatus, LabResult
from registry.models import AuditEvent
from tests.ehr_bridge.inbound_samples import admit, oru, send

pytestmark = pytest.mark.django_db(transaction=True)

WBC = ("6690-2", "白细胞计数", "6.5", "10*9/L", "3.5-9.5", "N", "F")
HGB = ("718-7", "血红蛋白", "98", "g/L", "130-175", "L", "F")


def _url(patient) -> str:
    return f"/api/v1/hl7/patients/{patient.external_id}/lab-results/"


@pytest.fixture
def his(start_listener, partner):
    return start_listener()


def test_oru_in_gb18030_stores_each_observation_for_the_patient(his, partner):
    patient = admit(his)
    row = send(his, oru("ORU-1", observations=[WBC, HGB]))
    assert row.status == InboundStatus.PROCESSED, row.error
    assert row.patient == patient
    results = {r.code: r for r in LabResult.objects.all()}
    assert set(results) == {"6690-2", "718-7"}
    hgb = results["718-7"]
    assert (hgb.text, hgb.value, hgb.units) == ("血红蛋白", "98", "g/L")
    assert (hgb.reference_range, hgb.abnormal_flag, hgb.status) == ("130-175", "L", "F")
    assert hgb.observed_at == datetime(2024, 3, 1, 8, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert (hgb.filler_order_number, hgb.placer_order_number) == (
        "LIS20240301-0007",
        "JY20240301007",
    )
    assert hgb.order_text == "血常规" and hgb.coding_system == "LN"
    assert hgb.patient == patient and hgb.organisation == partner.organisation
    assert hgb.is_current and hgb.replaces is None
    assert AuditEvent.objects.filter(
        action="lab_result.create.feed", patient_id=patient.external_id
    ).exists()


def test_a_corrected_result_replaces_the_value_and_keeps_history(his):
    admit(his)
    send(his, oru("ORU-1", observations=[WBC, HGB]))
    corrected = ("718-7", "血红蛋白", "102", "g/L", "130-175", "L", "C")
    row = send(his, oru("ORU-2", observations=[corrected]))
    assert row.status == InboundStatus.PROCESSED, row.error
    current = LabResult.objects.get(code="718-7", is_current=True)
    assert (current.value, current.status) == ("102", "C")
    earlier = current.replaces
    assert (earlier.value, earlier.status, earlier.is_current) == ("98", "F", False)
    assert LabResult.objects.filter(code="6690-2").count() == 1


def test_the_same_result_again_changes_nothing_and_a_final_replaces_a_preliminary(his):
    admit(his)
    send(his, oru("ORU-1", observations=[("718-7", "血红蛋白", "97", "g/L", "", "L", "P")]))
    send(his, oru("ORU-2", observations=[HGB]))
    send(his, oru("ORU-3", observations=[HGB]))
    assert LabResult.objects.count() == 2
    assert LabResult.objects.get(is_current=True).status == "F"


def test_an_unsupported_result_status_is_parked(his):
    admit(his)
    row = send(his, oru("ORU-D", observations=[("718-7", "血红蛋白", "", "", "", "", "D")]))
    assert row.status == InboundStatus.PARKED and "OBX-11" in row.error
    assert not LabResult.objects.exists()


def test_lab_result_api_shows_current_results_and_history_to_the_patients_clinic(his, community):
    patient = admit(his)
    send(his, oru("ORU-1", observations=[WBC, HGB]))
    send(his, oru("ORU-2", observations=[("718-7", "血红蛋白", "102", "g/L", "", "L", "C")]))
    client = community.client("county_doctor")
    response = client.get(_url(patient))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["count"] == 2
    hgb = next(r for r in body["results"] if r["code"] == "718-7")
    assert (hgb["value"], hgb["status"], hgb["text"]) == ("102", "C", "血红蛋白")
    assert hgb["replaces"] is not None and hgb["partner"] == "County HIS"
    history = client.get(_url(patient), {"history": "true"})
    assert history.json()["count"] == 3
    assert AuditEvent.objects.filter(
        action="lab_result.list", patient_id=patient.external_id, outcome="success"
    ).exists()


def test_lab_result_api_authorisation(his, community):
    patient = admit(his)
    send(his, oru("ORU-1", observations=[WBC]))
    assert APIClient().get(_url(patient)).status_code in (401, 403)
    other = community.client("other_doctor").get(_url(patient))
    assert other.status_code == 404
    assert "6.5" not in other.content.decode()
    assert AuditEvent.objects.filter(
        action="lab_result.list", outcome="denied", patient_id=patient.external_id
    ).exists()
    assert (
        community.client("county_doctor")
        .get("/api/v1/hl7/patients/nonsense/lab-results/")
        .status_code
        == 404
    )
    assert community.client("village_a").get(_url(patient)).status_code == 404
    assert LabResult.objects.count() == 1
