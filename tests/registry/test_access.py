from datetime import timedelta

import pytest
from django.utils import timezone

from registry import services
from registry.access import principal_for
from registry.models import AuditEvent, BreakGlassAccess, Notification


@pytest.fixture
def patient(community, patient_factory):
    return patient_factory(home_organisation=community.village_a)


def detail(patient):
    return f"/api/v1/patients/{patient.external_id}/"


def test_another_village_clinic_gets_404_and_the_denial_is_audited(community, patient):
    response = community.client("village_b").get(detail(patient))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    denial = AuditEvent.objects.get(actor_username="village_b", action="patient.read")
    assert denial.outcome == "denied"
    assert denial.patient_id == patient.external_id
    assert denial.subject_organisation_id == community.village_a.pk


def test_a_missing_patient_and_a_hidden_one_look_the_same(community, patient):
    hidden = community.client("village_b").get(detail(patient))
    missing = community.client("village_b").get(
        "/api/v1/patients/00000000-0000-0000-0000-000000000000/"
    )
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


@pytest.mark.parametrize("username", ["village_b", "other_doctor", "ecg_specialist", "other_admin"])
def test_outsiders_find_nothing_by_search(community, patient, username):
    response = community.client(username).get("/api/v1/patients/", {"id_number": patient.id_number})
    assert response.status_code in (200, 403)
    if response.status_code == 200:
        assert response.json()["results"] == []


@pytest.mark.parametrize("username", ["village_a", "township_doctor", "county_doctor"])
def test_the_clinic_and_the_organisations_above_it_see_the_patient(community, patient, username):
    response = community.client(username).get(detail(patient))
    assert response.status_code == 200
    assert response.json()["id"] == str(patient.external_id)


def test_another_organisation_cannot_update_a_patient(community, patient):
    response = community.client("other_doctor").patch(
        detail(patient), {"address": "x"}, format="json"
    )
    assert response.status_code == 404
    patient.refresh_from_db()
    assert patient.address == ""


def test_a_share_through_a_consult_opens_the_record_to_the_centre(community, patient):
    client = community.client("ecg_specialist")
    assert client.get(detail(patient)).status_code == 404
    services.patient_share_grant(
        actor=principal_for(community.users["village_a"]).actor,
        patient=patient,
        source="consult",
        organisation=community.ecg,
        source_ref="C-1",
    )
    assert client.get(detail(patient)).status_code == 200


def test_an_expired_share_no_longer_opens_the_record(community, patient):
    services.patient_share_grant(
        actor=principal_for(community.users["village_a"]).actor,
        patient=patient,
        source="referral",
        organisation=community.ecg,
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    assert community.client("ecg_specialist").get(detail(patient)).status_code == 404


def test_break_the_glass_opens_one_record_for_four_hours_audited_and_reported(community, patient):
    client = community.client("other_doctor")
    refused = client.post(
        "/api/v1/break-glass/",
        {"patient": str(patient.external_id), "reason": "short"},
        format="json",
    )
    assert refused.status_code == 400
    opened = client.post(
        "/api/v1/break-glass/",
        {"patient": str(patient.external_id), "reason": "患者昏迷送急诊，需查看既往病史和过敏史"},
        format="json",
    )
    assert opened.status_code == 201, opened.json()
    grant = BreakGlassAccess.objects.get(patient=patient)
    assert timedelta(hours=3, minutes=59) < grant.expires_at - timezone.now() <= timedelta(hours=4)
    assert AuditEvent.objects.filter(action="patient.break_glass", outcome="emergency").exists()
    read = client.get(detail(patient))
    assert read.status_code == 200
    assert AuditEvent.objects.filter(
        actor_username="other_doctor", action="patient.read", outcome="emergency"
    ).exists()
    # The admins of both organisations are told.
    told = set(
        Notification.objects.filter(category="break_glass").values_list("user__username", flat=True)
    )
    assert told == {"county_admin", "other_admin"}
    # After the window, the record is closed again.
    BreakGlassAccess.objects.filter(pk=grant.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert client.get(detail(patient)).status_code == 404


def test_an_organisation_admin_has_no_clinical_access(community, patient):
    client = community.client("county_admin")
    assert client.get(detail(patient)).status_code == 404
    response = client.post(
        "/api/v1/patients/",
        {"name": "王五", "birth_date": "1970-01-01", "sex": "male"},
        format="json",
    )
    assert response.status_code == 403


def test_anonymous_requests_are_refused(community, patient):
    from rest_framework.test import APIClient

    assert APIClient().get(detail(patient)).status_code == 401
