"""FHIR ServiceRequest, DiagnosticReport and Appointment: read, search, scoping, audit, and
booking through Appointment create. Every body is parsed with fhir.resources' R4B models."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from appointments.models import Booking, Schedule, Slot
from registry.models import AuditEvent
from tests.appointments.conftest import future_day, local, make_slot
from tests.consult.conftest import act, submitted, with_consent
from tests.fhir.conftest import BASE, entries, issue_codes, parse

OUTSIDER = "other_doctor"


def get(community, username: str, path: str, params: dict | None = None):
    return community.client(username).get(BASE + path, params or {})


def post(community, username: str, path: str, body: dict):
    return community.client(username).post(
        BASE + path, body, format="json", HTTP_ACCEPT="application/fhir+json"
    )


@pytest.fixture
def patient(community, patient_factory):
    p = patient_factory(home_organisation=community.village_a, name="王秀英")
    with_consent(p, community.users["village_a"], community.village_a)
    return p


@pytest.fixture
def signed(community, patient) -> dict:
    """An ECG consult of village A read and signed at the ECG centre."""
    cid = submitted(community, patient)["id"]
    assert act(community, "ecg_specialist", cid, "accept").status_code == 200
    assert act(community, "ecg_specialist", cid, "start").status_code == 200
    saved = community.client("ecg_specialist").put(
        f"/api/v1/consult/consults/{cid}/report/",
        {"impression": "急性前壁心肌梗死", "findings": "V1-V4 ST段抬高", "icd10_codes": ["I21.0"]},
        format="json",
    )
    assert saved.status_code == 200, saved.json()
    report = act(community, "ecg_specialist", cid, "sign", {"password": "pw-ecg_specialist"})
    assert report.status_code == 200, report.json()
    return {"consult": cid, "report": report.json()}


# --- ServiceRequest -------------------------------------------------------------------------


def test_a_consult_reads_and_searches_as_a_service_request(community, patient):
    cid = submitted(community, patient)["id"]
    response = get(community, "village_a", f"ServiceRequest/{cid}")
    assert response.status_code == 200, response.json()
    request = parse(response)
    assert request.status == "active" and request.intent == "order"
    assert request.subject.reference == f"Patient/{patient.external_id}"
    assert request.category[0].coding[0].code == "ecg_read"
    assert request.priority == "urgent"
    assert AuditEvent.objects.filter(
        action="consult.read", object_id=cid, outcome="success"
    ).exists()

    for params in (
        {"patient": f"Patient/{patient.external_id}"},
        {"status": "active"},
        {"category": "ecg_read"},
        {"code": "http://huizhen.example/fhir/CodeSystem/consult-type|ecg_read"},
    ):
        bundle = parse(get(community, "village_a", "ServiceRequest", params))
        assert [r.id for r in entries(bundle)] == [cid], params
    assert parse(get(community, "village_a", "ServiceRequest", {"status": "completed"})).total == 0
    assert parse(get(community, "village_a", "ServiceRequest", {"category": "mdt"})).total == 0
    assert AuditEvent.objects.filter(action="consult.search").exists()


def test_another_organisation_sees_no_service_request(community, patient):
    cid = submitted(community, patient)["id"]
    for outsider in (OUTSIDER, "village_b"):
        assert parse(get(community, outsider, "ServiceRequest")).total == 0
        response = get(community, outsider, f"ServiceRequest/{cid}")
        assert response.status_code == 404
        assert issue_codes(response) == ["not-found"]
    assert AuditEvent.objects.filter(
        action="consult.read", object_id=cid, outcome="denied"
    ).exists()


# --- DiagnosticReport -------------------------------------------------------------------------


def test_a_signed_report_reads_and_searches_as_a_diagnostic_report(community, patient, signed):
    rid, cid = signed["report"]["id"], signed["consult"]
    response = get(community, "village_a", f"DiagnosticReport/{rid}")
    assert response.status_code == 200, response.json()
    report = parse(response)
    assert report.status == "final"
    assert report.conclusion == "急性前壁心肌梗死"
    assert [c.coding[0].code for c in report.conclusionCode] == ["I21.0"]
    assert report.conclusionCode[0].coding[0].system == "http://hl7.org/fhir/sid/icd-10"
    assert report.issued is not None
    assert report.basedOn[0].reference == f"ServiceRequest/{cid}"
    assert report.performer and report.performer[0].reference.startswith("Practitioner/")
    (form,) = report.presentedForm
    assert form.contentType == "application/pdf"
    assert form.url == f"http://testserver/api/v1/consult/consults/{cid}/reports/1.pdf"
    assert AuditEvent.objects.filter(
        action="consult.report.read", object_id=rid, outcome="success"
    ).exists()

    bundle = parse(
        get(
            community,
            "village_a",
            "DiagnosticReport",
            {"patient": f"Patient/{patient.external_id}"},
        )
    )
    assert [r.id for r in entries(bundle)] == [rid]
    bundle = parse(get(community, "ecg_specialist", "DiagnosticReport", {"based-on": cid}))
    assert bundle.total == 1
    # The consult now reads as completed.
    assert parse(get(community, "village_a", f"ServiceRequest/{cid}")).status == "completed"


def test_another_organisation_sees_no_diagnostic_report(community, patient, signed):
    rid = signed["report"]["id"]
    for outsider in (OUTSIDER, "village_b"):
        assert parse(get(community, outsider, "DiagnosticReport")).total == 0
        response = get(community, outsider, f"DiagnosticReport/{rid}")
        assert response.status_code == 404
        assert issue_codes(response) == ["not-found"]
    assert AuditEvent.objects.filter(action="consult.report.read", outcome="denied").exists()


def test_a_draft_report_is_not_served(community, patient):
    cid = submitted(community, patient)["id"]
    assert act(community, "ecg_specialist", cid, "accept").status_code == 200
    assert act(community, "ecg_specialist", cid, "start").status_code == 200
    community.client("ecg_specialist").put(
        f"/api/v1/consult/consults/{cid}/report/", {"impression": "正常"}, format="json"
    )
    assert parse(get(community, "ecg_specialist", "DiagnosticReport")).total == 0


# --- Appointment ------------------------------------------------------------------------------


@pytest.fixture
def slot(community) -> Slot:
    schedule = Schedule.objects.create(
        organisation=community.township, name="慢病门诊", department="全科"
    )
    return make_slot(schedule, local(future_day(), 8, 0), capacity=1)


def _booking_body(slot: Slot, patient) -> dict:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot.external_id}"}],
        "participant": [
            {"actor": {"reference": f"Patient/{patient.external_id}"}, "status": "accepted"}
        ],
        "comment": "复查血压",
    }


def test_appointment_create_books_the_slot_and_a_full_slot_answers_409(
    community, patient, patient_factory, slot
):
    response = post(community, "village_a", "Appointment", _booking_body(slot, patient))
    assert response.status_code == 201, response.json()
    appointment = parse(response)
    assert appointment.status == "booked"
    assert appointment.slot[0].reference == f"Slot/{slot.external_id}"
    assert response["Location"].endswith(f"/fhir/R4/Appointment/{appointment.id}")
    slot.refresh_from_db()
    assert slot.booked == 1
    assert Booking.objects.filter(external_id=appointment.id, patient=patient).exists()

    other = patient_factory(home_organisation=community.village_a)
    second = post(community, "village_a", "Appointment", _booking_body(slot, other))
    assert second.status_code == 409
    assert issue_codes(second) == ["conflict"]
    assert "slot" in parse(second).issue[0].diagnostics
    slot.refresh_from_db()
    assert slot.booked == 1 and Booking.objects.count() == 1


def test_appointment_read_search_and_scoping(community, patient, slot):
    created = parse(post(community, "village_a", "Appointment", _booking_body(slot, patient)))
    response = get(community, "village_a", f"Appointment/{created.id}")
    assert response.status_code == 200
    appointment = parse(response)
    assert appointment.participant[0].actor.reference == f"Patient/{patient.external_id}"
    assert appointment.start is not None and appointment.end is not None
    assert AuditEvent.objects.filter(
        action="booking.read", object_id=created.id, outcome="success"
    ).exists()
    day = future_day().isoformat()
    for params in (
        {"patient": f"Patient/{patient.external_id}"},
        {"date": day},
        {"status": "booked"},
        {"slot": f"Slot/{slot.external_id}"},
    ):
        assert [
            a.id for a in entries(parse(get(community, "village_a", "Appointment", params)))
        ] == [created.id], params
    assert parse(get(community, "village_a", "Appointment", {"status": "cancelled"})).total == 0
    later = (future_day() + timedelta(days=1)).isoformat()
    assert parse(get(community, "village_a", "Appointment", {"date": f"ge{later}"})).total == 0

    assert parse(get(community, OUTSIDER, "Appointment")).total == 0
    assert get(community, OUTSIDER, f"Appointment/{created.id}").status_code == 404


def test_appointment_create_refuses_bad_input_and_outsiders(community, patient, slot):
    bad = post(community, "village_a", "Appointment", {"resourceType": "Appointment"})
    assert bad.status_code == 422
    no_slot = _booking_body(slot, patient) | {"slot": [{"reference": "Slot/nonsense"}]}
    assert post(community, "village_a", "Appointment", no_slot).status_code == 404
    no_patient = _booking_body(slot, patient) | {"participant": []}
    assert post(community, "village_a", "Appointment", no_patient).status_code == 422
    wrong_type = post(community, "village_a", "Appointment", {"resourceType": "Patient"})
    assert wrong_type.status_code == 422
    malformed = _booking_body(slot, patient) | {"slot": "Slot/1", "start": "tomorrow"}
    assert post(community, "village_a", "Appointment", malformed).status_code == 422
    proposed_cancelled = _booking_body(slot, patient) | {"status": "cancelled"}
    assert post(community, "village_a", "Appointment", proposed_cancelled).status_code == 422
    not_json = community.client("village_a").post(
        BASE + "Appointment", b"[1, 2", content_type="application/fhir+json"
    )
    assert not_json.status_code == 400
    assert post(community, "village_a", "ServiceRequest", {}).status_code == 405
    for path in ("ServiceRequest/x", "DiagnosticReport/x", "Appointment/x", "Observation/x"):
        assert get(community, "village_a", path).status_code == 404, path
    for params in ({"date": "2024-13"}, {"status": ""}, {"foo": "bar"}):
        assert get(community, "village_a", "Appointment", params).status_code == 400, params
    outsider = post(community, OUTSIDER, "Appointment", _booking_body(slot, patient))
    assert outsider.status_code == 404
    slot.refresh_from_db()
    assert slot.booked == 0 and not Booking.objects.exists()


# --- across resources -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["ServiceRequest", "DiagnosticReport", "Appointment", "Observation", "Schedule", "Slot"],
)
def test_anonymous_gets_401(db, path):
    response = APIClient().get(BASE + path)
    assert response.status_code == 401
    assert issue_codes(response) == ["login"]
    assert APIClient().get(f"{BASE}{path}/00000000-0000-0000-0000-000000000000").status_code == 401


def test_the_capability_statement_lists_the_new_resources(db):
    statement = parse(APIClient().get(BASE + "metadata"))
    served = {r.type: r for r in statement.rest[0].resource}
    assert {
        "ServiceRequest",
        "DiagnosticReport",
        "Appointment",
        "Observation",
        "Schedule",
        "Slot",
    } <= set(served)
    assert "create" in {i.code for i in served["Appointment"].interaction}
    assert "create" not in {i.code for i in served["DiagnosticReport"].interaction}


# --- Observation --------------------------------------------------------------------------------


@pytest.fixture
def readings(patient):
    from django.utils import timezone

    from appointments.chronic_models import Reading

    taken = timezone.now() - timedelta(days=1)
    bp = Reading.objects.create(
        patient=patient,
        kind="blood_pressure",
        value=152,
        value2=96,
        taken_at=taken,
        source="patient",
    )
    glucose = Reading.objects.create(
        patient=patient, kind="fasting_glucose", value="7.8", taken_at=taken, source="visit"
    )
    Reading.objects.create(patient=patient, kind="weight", value=70, taken_at=taken, source="visit")
    return bp, glucose


def test_blood_pressure_and_glucose_read_and_search_as_observations(community, patient, readings):
    bp, glucose = readings
    response = get(community, "village_a", f"Observation/{bp.external_id}")
    assert response.status_code == 200, response.json()
    panel = parse(response)
    assert panel.code.coding[0].code == "85354-9"
    values = {c.code.coding[0].code: c.valueQuantity for c in panel.component}
    assert float(values["8480-6"].value) == 152 and float(values["8462-4"].value) == 96
    assert values["8480-6"].code == "mm[Hg]"
    assert AuditEvent.objects.filter(
        action="reading.read", patient_id=patient.external_id, outcome="success"
    ).exists()
    sugar = parse(get(community, "village_a", f"Observation/{glucose.external_id}"))
    assert float(sugar.valueQuantity.value) == 7.8 and sugar.valueQuantity.unit == "mmol/L"

    def ids(params):
        response = get(community, "village_a", "Observation", params)
        assert response.status_code == 200, response.json()
        return {r.id for r in entries(parse(response))}

    both = {str(bp.external_id), str(glucose.external_id)}
    assert ids({"patient": f"Patient/{patient.external_id}"}) == both  # weight is not served
    assert ids({"code": "http://loinc.org|85354-9"}) == {str(bp.external_id)}
    assert ids({"code": "8480-6"}) == {str(bp.external_id)}
    assert ids({"code": "14771-0"}) == {str(glucose.external_id)}
    assert ids({"category": "laboratory"}) == {str(glucose.external_id)}
    yesterday = (bp.taken_at.astimezone()).date()
    assert ids({"date": f"ge{(yesterday - timedelta(days=1)).isoformat()}"}) == both
    assert ids({"date": f"gt{(yesterday + timedelta(days=2)).isoformat()}"}) == set()
    assert AuditEvent.objects.filter(action="reading.search").exists()


def test_another_organisation_sees_no_observation(community, patient, readings):
    bp, _glucose = readings
    for outsider in (OUTSIDER, "village_b"):
        assert parse(get(community, outsider, "Observation")).total == 0
        assert get(community, outsider, f"Observation/{bp.external_id}").status_code == 404
    assert get(community, "village_a", "Observation", {"date": "yesterday"}).status_code == 400


# --- Schedule and Slot --------------------------------------------------------------------------


def test_schedules_and_slots_read_and_search(community, slot):
    schedule = slot.schedule
    response = get(community, "village_a", f"Schedule/{schedule.external_id}")
    assert response.status_code == 200, response.json()
    read = parse(response)
    assert read.active is True
    assert read.contained[0].managingOrganization.reference == (
        f"Organization/{community.township.external_id}"
    )
    by_org = parse(
        get(
            community,
            "village_a",
            "Schedule",
            {"actor": f"Organization/{community.township.external_id}"},
        )
    )
    assert [s.id for s in entries(by_org)] == [str(schedule.external_id)]

    found = parse(get(community, "village_a", f"Slot/{slot.external_id}"))
    assert found.status == "free" and found.schedule.reference == f"Schedule/{schedule.external_id}"

    def ids(params):
        response = get(community, "village_a", "Slot", params)
        assert response.status_code == 200, response.json()
        return [s.id for s in entries(parse(response))]

    day = future_day().isoformat()
    assert ids({"schedule": f"Schedule/{schedule.external_id}"}) == [str(slot.external_id)]
    assert ids({"actor": f"Organization/{community.township.external_id}"}) == [
        str(slot.external_id)
    ]
    assert ids({"start": day, "status": "free"}) == [str(slot.external_id)]
    assert ids({"status": "busy"}) == []
    assert ids({"start": f"lt{day}"}) == []
    Slot.objects.filter(pk=slot.pk).update(booked=1)
    assert ids({"status": "busy"}) == [str(slot.external_id)]


def test_another_county_sees_no_schedule_or_slot(community, slot):
    assert parse(get(community, OUTSIDER, "Schedule")).total == 0
    assert parse(get(community, OUTSIDER, "Slot")).total == 0
    assert get(community, OUTSIDER, f"Schedule/{slot.schedule.external_id}").status_code == 404
    assert get(community, OUTSIDER, f"Slot/{slot.external_id}").status_code == 404
    assert get(community, "village_a", "Slot/not-a-uuid").status_code == 404
