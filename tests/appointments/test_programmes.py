"""Chronic-disease programmes: each rule table-driven, the referral after two uncontrolled
follow-ups, urgent readings, per-organisation rules and the due list driven by them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from appointments import programmes
from appointments.chronic_models import Enrolment, FollowUp, Reading, ReferralNeed
from appointments.programme_rules import Readings, Rules, assess, decide
from registry.access import principal_for
from registry.models import AuditEvent, DomainEvent, Notification

URL = "/api/v1/appointments/"
HT = Rules(kind="hypertension")
DM = Rules(kind="diabetes")
D = Decimal


@pytest.mark.parametrize(
    ("rules", "readings", "control", "urgent"),
    [
        (HT, Readings(sbp=139, dbp=89), "controlled", False),
        (HT, Readings(sbp=140, dbp=80), "uncontrolled", False),
        (HT, Readings(sbp=130, dbp=90), "uncontrolled", False),
        (HT, Readings(), "unknown", False),
        (HT, Readings(sbp=180, dbp=100), "uncontrolled", True),
        (HT, Readings(sbp=150, dbp=110), "uncontrolled", True),
        (HT, Readings(sbp=179, dbp=109), "uncontrolled", False),
        (DM, Readings(fasting_glucose=D("6.9")), "controlled", False),
        (DM, Readings(fasting_glucose=D("7.0")), "uncontrolled", False),
        (DM, Readings(fasting_glucose=D("16.7")), "uncontrolled", True),
        (DM, Readings(fasting_glucose=D("3.9")), "controlled", True),
        (DM, Readings(fasting_glucose=D("4.0")), "controlled", False),
        (DM, Readings(random_glucose=D("16.7")), "unknown", True),
        (DM, Readings(sbp=185, dbp=95, fasting_glucose=D("6.0")), "controlled", True),
        (Rules(kind="other"), Readings(sbp=150, dbp=95), "unknown", False),
    ],
)
def test_control_and_urgency(rules, readings, control, urgent):
    result = assess(rules, readings)
    assert (result.control, result.urgent) == (control, urgent)


@pytest.mark.parametrize(
    ("control", "urgent", "adverse", "complication", "before", "days", "refer", "streak"),
    [
        ("controlled", False, False, False, 0, 90, None, 0),
        ("controlled", False, False, False, 1, 90, None, 0),  # control resets the streak
        ("uncontrolled", False, False, False, 0, 14, None, 1),
        ("uncontrolled", False, False, False, 1, 14, "uncontrolled", 2),
        ("controlled", False, True, False, 0, 14, None, 0),  # adverse reaction
        ("controlled", False, False, True, 0, 14, "complication", 0),
        ("uncontrolled", True, False, False, 0, 14, "urgent", 1),
        ("unknown", False, False, False, 0, 90, None, 0),
    ],
)
def test_next_follow_up_and_referral(
    control, urgent, adverse, complication, before, days, refer, streak
):
    from appointments.programme_rules import Assessment

    decision = decide(
        HT,
        Assessment(control=control, urgent=urgent, urgent_reasons=("x",) if urgent else ()),
        adverse_reaction=adverse,
        new_complication=complication,
        uncontrolled_before=before,
    )
    assert (decision.next_in_days, decision.refer, decision.uncontrolled_in_a_row) == (
        days,
        refer,
        streak,
    )


def test_rules_are_data():
    strict = Rules(kind="hypertension", sbp_controlled_below=130, dbp_controlled_below=80)
    assert assess(strict, Readings(sbp=135, dbp=79)).control == "uncontrolled"
    three = Rules(kind="diabetes", uncontrolled_in_a_row_to_refer=3, uncontrolled_interval_days=7)
    from appointments.programme_rules import Assessment

    d = decide(
        three,
        Assessment("uncontrolled", False),
        adverse_reaction=False,
        new_complication=False,
        uncontrolled_before=1,
    )
    assert (d.refer, d.next_in_days) == (None, 7)


def _followup(community, enrolment, **kw):
    return community.client("village_a").post(
        f"{URL}enrolments/{enrolment.external_id}/followups/",
        {"visited_on": timezone.localdate().isoformat(), **kw},
        format="json",
    )


@pytest.fixture
def enrolment(community, patient):
    response = community.client("village_a").post(
        f"{URL}enrolments/",
        {"patient": str(patient.external_id), "programme": "hypertension"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return Enrolment.objects.get(external_id=response.json()["id"])


@pytest.mark.django_db
def test_referral_raised_after_two_uncontrolled_follow_ups(community, patient, enrolment):
    first = _followup(community, enrolment, sbp=150, dbp=92)
    assert first.status_code == 201, first.json()
    assert first.json()["control"] == "uncontrolled"
    assert first.json()["next_due"] == (timezone.localdate() + timedelta(days=14)).isoformat()
    assert not ReferralNeed.objects.exists()
    second = _followup(community, enrolment, sbp=152, dbp=95)
    assert second.json()["decision"]["refer"] == "uncontrolled"
    referral = ReferralNeed.objects.get(patient=patient)
    assert referral.reason == "uncontrolled" and not referral.urgent
    assert referral.check_on == timezone.localdate() + timedelta(days=14)
    event = DomainEvent.objects.get(event_type="appointments.referral_needed")
    assert event.payload["patient"] == str(patient.external_id)
    assert event.payload["reason"] == "uncontrolled" and "name" not in str(event.payload)
    assert Reading.objects.filter(patient=patient, kind="blood_pressure").count() == 2
    assert AuditEvent.objects.filter(action="programme.followup", patient_id=patient.external_id)
    # A controlled follow-up goes back to the routine interval.
    third = _followup(community, enrolment, sbp=128, dbp=80)
    assert third.json()["next_due"] == (timezone.localdate() + timedelta(days=90)).isoformat()
    enrolment.refresh_from_db()
    assert enrolment.uncontrolled_in_a_row == 0 and ReferralNeed.objects.count() == 1


@pytest.mark.django_db
def test_new_complication_refers_at_once(community, patient, enrolment):
    response = _followup(community, enrolment, sbp=130, dbp=80, new_complication="视物模糊")
    assert response.json()["decision"]["refer"] == "complication"
    assert ReferralNeed.objects.get(patient=patient).reason == "complication"


@pytest.mark.django_db
def test_urgent_reading_alerts_the_village_doctor(
    community, patient, enrolment, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _followup(community, enrolment, sbp=186, dbp=100)
    assert response.json()["urgent"] is True
    note = Notification.objects.get(category="chronic.urgent_reading")
    assert note.user == community.users["village_a"]
    assert set(note.deliveries.values_list("channel", flat=True)) == {"push", "sms"}
    referral = ReferralNeed.objects.get(patient=patient)
    assert referral.urgent and referral.reason == "urgent"
    assert referral.check_on == timezone.localdate() + timedelta(days=14)
    # A missed check tells the doctor; it is handled once.
    assert programmes.referrals_check_due(today=referral.check_on) == 1
    assert programmes.referrals_check_due(today=referral.check_on) == 0
    assert Notification.objects.filter(category="chronic.referral_missed").count() == 1


@pytest.mark.django_db
def test_follow_up_authorisation(community, patient, enrolment):
    before = FollowUp.objects.count()
    for name, code in [("other_doctor", 404), ("county_admin", 403)]:
        response = community.client(name).post(
            f"{URL}enrolments/{enrolment.external_id}/followups/",
            {"visited_on": timezone.localdate().isoformat(), "sbp": 150, "dbp": 95},
            format="json",
        )
        assert response.status_code == code
    from rest_framework.test import APIClient

    anonymous = APIClient().post(
        f"{URL}enrolments/{enrolment.external_id}/followups/", {}, format="json"
    )
    assert anonymous.status_code in (401, 403)
    assert FollowUp.objects.count() == before


@pytest.mark.django_db
def test_county_rules_override_the_default(community, patient, enrolment):
    admin = community.client("county_admin")
    response = admin.patch(
        f"{URL}programmes/hypertension/rules/",
        {"sbp_controlled_below": 130, "routine_interval_days": 60},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert (
        community.client("other_admin")
        .patch(f"{URL}programmes/hypertension/rules/", {"sbp_controlled_below": 1}, format="json")
        .status_code
        == 200
    )  # their own county only
    programme = programmes.programme_for(code="hypertension", organisation=community.village_a)
    assert programme.sbp_controlled_below == 130 and programme.organisation == community.county
    # The enrolment keeps its programme row; a new one in this county gets the county's.
    enrolment.status = "ended"
    enrolment.save()
    new = programmes.enrol(
        patient=patient,
        code="hypertension",
        actor=principal_for(community.users["village_a"]).actor,
    )
    fu = programmes.followup_apply(
        enrolment=new,
        data=programmes.FollowUpInput(visited_on=timezone.localdate(), sbp=135, dbp=80),
        actor=principal_for(community.users["village_a"]).actor,
    )
    assert fu.control == "uncontrolled"


@pytest.mark.django_db
def test_due_list_follows_the_programme(community, patient, enrolment):
    client = community.client("village_a")
    ids = [
        i["patient"]["id"] if isinstance(i["patient"], dict) else i["patient"]
        for i in client.get(f"{URL}due-list/").json()
    ]
    assert str(patient.external_id) in str(ids)  # enrolled: due at once
    _followup(community, enrolment, sbp=128, dbp=80)  # controlled: due in 90 days
    assert str(patient.external_id) not in str(client.get(f"{URL}due-list/").json())
    Enrolment.objects.filter(pk=enrolment.pk).update(
        next_due=timezone.localdate() + timedelta(days=3)
    )
    assert str(patient.external_id) in str(client.get(f"{URL}due-list/").json())
