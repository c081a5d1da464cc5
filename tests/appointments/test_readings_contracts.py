"""Readings (staff API, portal, SVG trends, urgent alerts) and family-doctor contracts
(signing with an SMS code, renewal reminders once per contract-year, coverage and CSV)."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from appointments import charts, contracts
from appointments.chronic_models import (
    Contract,
    DoctorTeam,
    Reading,
    ReferralNeed,
    ServicePackage,
)
from registry import sms
from registry.models import AuditEvent, Notification
from tests.appointments.test_portal import _signed_in

URL = "/api/v1/appointments/"


def _post_reading(client, patient, **body):
    return client.post(f"{URL}patients/{patient.external_id}/readings/", body, format="json")


@pytest.mark.django_db
def test_staff_reading_authorisation_matrix(community, patient):
    body = {"kind": "blood_pressure", "value": "132", "value2": "84"}
    assert _post_reading(APIClient(), patient, **body).status_code in (401, 403)
    assert _post_reading(community.client("county_admin"), patient, **body).status_code == 403
    assert _post_reading(community.client("other_doctor"), patient, **body).status_code == 404
    assert not Reading.objects.exists()
    assert AuditEvent.objects.filter(action="reading.create", outcome="denied").count() == 2
    response = _post_reading(community.client("village_a"), patient, **body)
    assert response.status_code == 201, response.json()
    assert response.json()["source"] == "visit"
    assert AuditEvent.objects.filter(
        action="reading.create", outcome="success", patient_id=patient.external_id
    ).exists()
    listed = community.client("township_doctor").get(
        f"{URL}patients/{patient.external_id}/readings/?kind=blood_pressure"
    )
    assert [r["value"] for r in listed.json()] == ["132.0"]
    assert (
        community.client("other_doctor")
        .get(f"{URL}patients/{patient.external_id}/readings/")
        .status_code
        == 404
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "blood_pressure", "value": "132"}, "value2"),
        ({"kind": "blood_pressure", "value": "80", "value2": "90"}, "value2"),
        ({"kind": "fasting_glucose", "value": "95"}, "value"),
        ({"kind": "weight", "value": "0.5"}, "value"),
    ],
)
def test_implausible_readings_are_refused(community, patient, body, field):
    response = _post_reading(community.client("village_a"), patient, **body)
    assert response.status_code == 400 and not Reading.objects.exists()


@pytest.mark.django_db
def test_chart_svg_for_the_doctor(community, patient):
    client = community.client("village_a")
    for sbp, dbp in [(150, 95), (142, 88), (128, 80)]:
        _post_reading(client, patient, kind="blood_pressure", value=sbp, value2=dbp)
    _post_reading(client, patient, kind="weight", value="68.5")
    response = client.get(f"{URL}patients/{patient.external_id}/readings/chart.svg")
    assert response.status_code == 200 and response["Content-Type"].startswith("image/svg+xml")
    svg = response.content.decode()
    assert svg.count("<polyline") == 3 and 'class="target"' in svg
    assert (
        community.client("other_doctor")
        .get(f"{URL}patients/{patient.external_id}/readings/chart.svg")
        .status_code
        == 404
    )


def test_chart_escapes_labels_and_handles_one_point():
    now = timezone.now()
    svg = charts.render_svg(
        charts.Chart("<b>x</b>", "kg", [charts.Series("a&b", [(now, 70)])], [(65.0, "t")])
    )
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "a&amp;b" in svg
    assert "<circle" in svg
    assert "<polyline" not in charts.render_svg(charts.Chart("empty", "", []))


@pytest.mark.django_db
def test_patient_records_a_home_reading_and_sees_the_trend(patient, community):
    client = _signed_in(patient)
    response = client.post(
        "/portal/readings/", {"kind": "blood_pressure", "value": "186", "value2": "100"}
    )
    assert response.status_code == 302
    reading = Reading.objects.get(patient=patient)
    assert reading.source == "patient" and reading.created_by is None
    page = client.get("/portal/readings/").content.decode()
    assert "<svg" in page and "<polyline" in page
    # An urgent home reading alerts the village doctor and calls for urgent referral.
    assert Notification.objects.filter(
        category="chronic.urgent_reading", user=community.users["village_a"]
    ).exists()
    assert ReferralNeed.objects.get(patient=patient).urgent
    # Staff-only kinds are refused in the portal.
    client.post("/portal/readings/", {"kind": "hba1c", "value": "7.1"})
    assert Reading.objects.filter(patient=patient).count() == 1


@pytest.fixture
def team(community):
    return DoctorTeam.objects.create(
        organisation=community.township,
        name="东山一队",
        village_doctor=community.users["village_a"],
        township_doctor=community.users["township_doctor"],
        specialist=community.users["county_doctor"],
    )


@pytest.fixture
def package(community):
    return ServicePackage.objects.create(
        code="basic", name="基础包", services=["健康评估", "慢病随访", "用药指导"]
    )


def _contract_code() -> str:
    return re.search(r"\b(\d{6})\b", sms.outbox[-1].text).group(1)


@pytest.mark.django_db
def test_patient_signs_a_contract_with_an_sms_code(
    patient, team, package, django_capture_on_commit_callbacks
):
    client = _signed_in(patient)
    page = client.get("/portal/contract/").content.decode()
    assert team.name in page and package.name in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/portal/contract/",
            {"action": "start", "team": str(team.external_id), "package": str(package.external_id)},
        )
    assert response.status_code == 200
    pending = Contract.objects.get(patient=patient)
    assert pending.status == "pending" and _contract_code() not in pending.code_hash
    wrong = client.post(
        "/portal/contract/",
        {
            "action": "confirm",
            "contract": str(pending.external_id),
            "code": "000000" if _contract_code() != "000000" else "111111",
        },
    )
    assert wrong.status_code == 200 and Contract.objects.get(pk=pending.pk).status == "pending"
    ok = client.post(
        "/portal/contract/",
        {"action": "confirm", "contract": str(pending.external_id), "code": _contract_code()},
    )
    assert ok.status_code == 302
    signed = Contract.objects.get(pk=pending.pk)
    assert signed.status == "active" and signed.signed_at is not None
    assert signed.ends_on == date(
        signed.starts_on.year + 1,
        signed.starts_on.month,
        min(signed.starts_on.day, 28 if signed.starts_on.month == 2 else 31),
    )
    assert AuditEvent.objects.filter(action="contract.sign", outcome="success").exists()
    assert AuditEvent.objects.filter(action="contract.sign", outcome="denied").exists()


@pytest.mark.django_db
def test_renewal_reminder_once_per_contract_year(patient, team, package):
    today = timezone.localdate()
    contract = Contract.objects.create(
        patient=patient,
        team=team,
        package=package,
        status="active",
        starts_on=today - timedelta(days=350),
        ends_on=today + timedelta(days=15),
    )
    assert contracts.contracts_remind_renewal(today=today) == 1
    assert contracts.contracts_remind_renewal(today=today) == 0  # a retried task
    assert contracts.contracts_remind_renewal(today=today + timedelta(days=1)) == 0
    assert Notification.objects.filter(category="contract.renewal", patient=patient).count() == 1
    # Next contract-year: reminded again.
    Contract.objects.filter(pk=contract.pk).update(ends_on=today + timedelta(days=380))
    assert contracts.contracts_remind_renewal(today=today + timedelta(days=360)) == 1


@pytest.mark.django_db
def test_coverage_against_target_and_csv(community, patient_factory, team, package):
    old = date(timezone.localdate().year - 70, 1, 1)
    a = patient_factory(
        home_organisation=community.village_a, birth_date=old, chronic_conditions=["I10"]
    )
    patient_factory(
        home_organisation=community.village_a, birth_date=old, chronic_conditions=["E11.9"]
    )
    patient_factory(
        home_organisation=community.village_b,
        birth_date=date(1990, 1, 1),
        chronic_conditions=["I10"],
    )
    patient_factory(home_organisation=community.other_county, birth_date=old)
    today = timezone.localdate()
    Contract.objects.create(
        patient=a,
        team=team,
        package=package,
        status="active",
        starts_on=today,
        ends_on=today + timedelta(days=365),
    )
    response = community.client("county_admin").get(f"{URL}contracts/coverage/")
    assert response.status_code == 200
    rows = {(r["organisation"], r["group"]): r for r in response.json()}
    county = rows[(str(community.county.external_id), "aged_65_plus")]
    assert (county["people"], county["contracted"], county["target_percent"]) == (2, 1, 70)
    assert county["percent"] == 50.0 and county["meets_target"] is False
    village = rows[(str(community.village_a.external_id), "hypertension")]
    assert (village["people"], village["contracted"], village["meets_target"]) == (1, 1, True)
    assert rows[(str(community.county.external_id), "diabetes")]["people"] == 1
    assert not any(k[0] == str(community.other_county.external_id) for k in rows)
    csv = community.client("county_admin").get(f"{URL}contracts/coverage.csv")
    assert csv["Content-Type"].startswith("text/csv")
    lines = csv.content.decode().splitlines()
    assert lines[0].startswith("organisation_id,organisation,group")
    assert len(lines) == 1 + len(rows)
    assert APIClient().get(f"{URL}contracts/coverage/").status_code in (401, 403)
    assert Client().get(f"{URL}contracts/coverage.csv").status_code in (401, 403)
