"""What a signed report's recommendation starts: a referral up to the centre that is
accepted and handed back down with a care plan, or a follow-up falling due."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from appointments.chronic_models import Enrolment
from appointments.programmes import enrol
from consult.models import Referral
from registry import audit
from registry.models import AuditEvent, Notification
from tests.consult.conftest import URL, act, submitted

REFERRALS = "/api/v1/consult/referrals/"


def _signed(community, patient, report: dict) -> str:
    cid = submitted(community, patient)["id"]
    assert act(community, "ecg_specialist", cid, "accept").status_code == 200
    assert act(community, "ecg_specialist", cid, "start").status_code == 200
    saved = community.client("ecg_specialist").put(f"{URL}{cid}/report/", report, format="json")
    assert saved.status_code == 200, saved.json()
    signed = act(community, "ecg_specialist", cid, "sign", {"password": "pw-ecg_specialist"})
    assert signed.status_code == 200, signed.json()
    return cid


REFER_UP = {
    "impression": "急性前壁心肌梗死",
    "icd10_codes": ["I21.0"],
    "recommendation_kind": "refer_up",
    "recommendations": "立即转县医院心内科行介入治疗",
}


@pytest.fixture
def referral(community, patient) -> dict:
    cid = _signed(community, patient, REFER_UP)
    rows = community.client("village_a").get(REFERRALS, {"side": "outgoing"}).json()["results"]
    assert len(rows) == 1 and rows[0]["consult"] == cid
    return rows[0]


def test_signing_refer_up_opens_a_referral_to_the_centre_and_tells_the_requester(
    community, patient, referral
):
    assert referral["state"] == "requested"
    assert referral["from_organisation"]["id"] == str(community.village_a.external_id)
    assert referral["to_organisation"]["id"] == str(community.ecg.external_id)
    assert referral["reason"] == REFER_UP["recommendations"]
    assert referral["patient"]["name"] == patient.name
    assert Notification.objects.filter(
        user=community.users["village_a"], category="referral.requested"
    ).exists()
    incoming = community.client("ecg_specialist").get(REFERRALS, {"side": "incoming"}).json()
    assert [r["id"] for r in incoming["results"]] == [referral["id"]]
    assert AuditEvent.objects.filter(
        action="referral.request", object_id=referral["id"], patient_id=patient.external_id
    ).exists()


def test_the_centre_accepts_and_hands_back_down_with_a_care_plan(community, patient, referral):
    rid = referral["id"]
    centre = community.client("ecg_specialist")
    early = centre.post(f"{REFERRALS}{rid}/hand-back/", {"care_plan": "继续观察"}, format="json")
    assert early.status_code == 409

    accepted = centre.post(f"{REFERRALS}{rid}/accept/", format="json")

    assert accepted.status_code == 200, accepted.json()
    assert accepted.json()["state"] == "accepted"
    assert accepted.json()["accepted_by"]["username"] == "ecg_specialist"
    assert Notification.objects.filter(
        user=community.users["village_a"], category="referral.accepted"
    ).exists()
    again = centre.post(f"{REFERRALS}{rid}/accept/", format="json")
    assert again.status_code == 409
    empty = centre.post(f"{REFERRALS}{rid}/hand-back/", {"care_plan": "  "}, format="json")
    assert empty.status_code == 400
    elsewhere = centre.post(
        f"{REFERRALS}{rid}/hand-back/",
        {"care_plan": "阿司匹林", "back_to": str(community.other_county.external_id)},
        format="json",
    )
    assert elsewhere.status_code == 400 and "back_to" in elsewhere.json()["fields"]

    plan = "阿司匹林100mg qd,阿托伐他汀20mg qn;两周后乡镇卫生院复查心电图"
    handed = centre.post(
        f"{REFERRALS}{rid}/hand-back/",
        {"care_plan": plan, "back_to": str(community.township.external_id)},
        format="json",
    )

    assert handed.status_code == 200, handed.json()
    body = handed.json()
    assert body["state"] == "handed_back" and body["care_plan"] == plan
    assert body["back_to_organisation"]["id"] == str(community.township.external_id)
    told = Notification.objects.get(
        user=community.users["village_a"], category="referral.handed_back"
    )
    assert "阿司匹林" in told.body
    actions = set(
        AuditEvent.objects.filter(object_id=rid).values_list("action", flat=True).distinct()
    )
    assert {"referral.request", "referral.accept", "referral.hand_back"} <= actions
    # The township sees the handed-back referral as one of its clinic's.
    seen = community.client("township_doctor").get(f"{REFERRALS}{rid}/")
    assert seen.status_code == 200 and seen.json()["care_plan"] == plan


def test_the_referring_side_may_not_accept_its_own_referral(community, patient, referral):
    refused = community.client("village_a").post(f"{REFERRALS}{referral['id']}/accept/")
    assert refused.status_code == 403
    assert Referral.objects.get(external_id=referral["id"]).state == "requested"
    assert AuditEvent.objects.filter(
        action="referral.accept", object_id=referral["id"], outcome="denied"
    ).exists()


@pytest.mark.parametrize("outsider", ["other_doctor", "village_b"])
def test_another_organisation_gets_404_and_nothing_changes(community, patient, referral, outsider):
    rid = referral["id"]
    client = community.client(outsider)
    assert client.get(f"{REFERRALS}{rid}/").status_code == 404
    assert client.post(f"{REFERRALS}{rid}/accept/").status_code == 404
    handed = client.post(f"{REFERRALS}{rid}/hand-back/", {"care_plan": "x"}, format="json")
    assert handed.status_code == 404
    assert client.get(REFERRALS).json()["results"] == []
    assert Referral.objects.get(external_id=rid).state == "requested"
    assert AuditEvent.objects.filter(object_id=rid, outcome="denied").count() == 3
    assert client.get(f"{REFERRALS}not-a-uuid/").status_code == 404


def test_an_anonymous_caller_gets_nothing(community, patient, referral):
    from rest_framework.test import APIClient

    response = APIClient().get(f"{REFERRALS}{referral['id']}/")
    assert response.status_code in (401, 403)


def test_an_amendment_that_still_refers_keeps_the_one_referral(community, patient, referral):
    cid = referral["consult"]
    assert act(community, "ecg_specialist", cid, "amend", {"reason": "补充诊断"}).status_code == 201
    saved = community.client("ecg_specialist").put(
        f"{URL}{cid}/report/", {**REFER_UP, "impression": "急性前壁心梗,室早"}, format="json"
    )
    assert saved.status_code == 200
    assert (
        act(community, "ecg_specialist", cid, "sign", {"password": "pw-ecg_specialist"}).status_code
        == 200
    )
    assert Referral.objects.filter(consult__external_id=cid).count() == 1


def test_follow_up_in_n_days_makes_the_enrolled_patient_due_then(community, patient):
    patient.chronic_conditions = ["I10"]
    patient.save(update_fields=["chronic_conditions"])
    enrolment = enrol(patient=patient, code="hypertension", actor=audit.Actor.system("test"))
    Enrolment.objects.filter(pk=enrolment.pk).update(
        next_due=timezone.localdate() + timedelta(days=90)
    )

    _signed(
        community,
        patient,
        {"impression": "窦性心律", "recommendation_kind": "follow_up", "follow_up_days": 14},
    )

    enrolment.refresh_from_db()
    assert enrolment.next_due == timezone.localdate() + timedelta(days=14)
    assert AuditEvent.objects.filter(
        action="programme.followup_due", object_id=str(enrolment.external_id)
    ).exists()
    assert Notification.objects.filter(
        user=community.users["village_a"], category="consult.followup_due"
    ).exists()
    assert not Referral.objects.exists()


def test_follow_up_needs_its_days(community, patient):
    cid = submitted(community, patient)["id"]
    act(community, "ecg_specialist", cid, "accept")
    act(community, "ecg_specialist", cid, "start")
    client = community.client("ecg_specialist")
    for days in (None, 0, 400):
        bad = client.put(
            f"{URL}{cid}/report/",
            {"impression": "x", "recommendation_kind": "follow_up", "follow_up_days": days},
            format="json",
        )
        assert bad.status_code == 400 and "follow_up_days" in bad.json()["fields"], days


def test_the_consult_page_links_the_pdf_and_offers_the_referral_actions(
    community, patient, referral
):
    from django.test import Client

    def page(username: str) -> str:
        client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
        client.force_login(community.users[username])
        response = client.get(f"/consult/{referral['consult']}/")
        assert response.status_code == 200
        return response.content.decode()

    pdf_link = f"/api/v1/consult/consults/{referral['consult']}/reports/1.pdf"
    centre, clinic = page("ecg_specialist"), page("village_a")
    assert pdf_link in centre and pdf_link in clinic
    assert 'data-referral="accept"' in centre
    assert 'data-referral="accept"' not in clinic and 'id="referral"' in clinic
    assert "I21.0" in clinic


def test_the_report_editor_offers_the_sections_of_the_consult_type(community, patient):
    from django.test import Client

    cid = submitted(community, patient)["id"]
    act(community, "ecg_specialist", cid, "accept")
    act(community, "ecg_specialist", cid, "start")
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(community.users["ecg_specialist"])
    html = client.get(f"/consult/{cid}/").content.decode()
    for name in ("s.rhythm", "s.rate", "s.qtc_ms", "s.st_t", "icd10_codes", "follow_up_days"):
        assert f'name="{name}"' in html, name
    assert 'value="refer_up"' in html
