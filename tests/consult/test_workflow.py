"""The consult from request to signed report through the API, routing, scoping, reports."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from consult.models import ConsultRequest, Report, SignedReportImmutable
from imaging.models import StudyShare
from registry.models import AuditEvent, PatientShare
from tests.factories import PatientFactory, make_org

from .conftest import URL, act, draft, staff, submitted, with_consent


def test_a_request_travels_from_village_to_signed_and_delivered_report(community, patient):
    consult = submitted(community, patient)
    assert consult["state"] == "queued"
    assert consult["centre"]["id"] == str(community.ecg.external_id)
    assert consult["queue"] == "ecg" and consult["accept_by"] and consult["report_by"]
    assert [t["to_state"] for t in consult["transitions"]] == ["submitted", "queued"]
    # The centre now sees the patient through a consult share.
    assert PatientShare.objects.filter(
        patient=patient, organisation=community.ecg, source="consult", source_ref=consult["id"]
    ).exists()
    cid = consult["id"]
    worklist = community.client("ecg_specialist").get(
        "/api/v1/consult/worklist/", {"which": "unassigned"}
    )
    assert [c["id"] for c in worklist.json()["results"]] == [cid]
    assert act(community, "ecg_specialist", cid, "accept").status_code == 200
    assert act(community, "ecg_specialist", cid, "start").status_code == 200
    specialist = community.client("ecg_specialist")
    saved = specialist.put(
        f"{URL}{cid}/report/",
        {
            "findings": "窦性心律,V1-V4 ST段抬高",
            "impression": "急性前壁心梗",
            "recommendations": "立即转诊",
        },
        format="json",
    )
    assert saved.status_code == 200 and saved.json()["status"] == "draft"
    wrong = act(community, "ecg_specialist", cid, "sign", {"password": "wrong"})
    assert wrong.status_code == 403
    signed = act(community, "ecg_specialist", cid, "sign", {"password": "pw-ecg_specialist"})
    assert signed.status_code == 200 and signed.json()["status"] == "signed"
    assert len(signed.json()["content_hash"]) == 64
    delivered = act(community, "ecg_specialist", cid, "deliver")
    assert delivered.json()["state"] == "delivered"
    closed = act(community, "village_a", cid, "close")
    assert closed.json()["state"] == "closed"
    actions = set(
        AuditEvent.objects.filter(object_id=cid, action__startswith="consult.").values_list(
            "action", flat=True
        )
    )
    assert {"consult.submit", "consult.accept", "consult.sign", "consult.close"} <= actions


def test_submit_needs_an_active_teleconsult_consent(community):
    patient = PatientFactory(home_organisation=community.village_a)
    consult = draft(community, patient)
    refused = act(community, "village_a", consult["id"], "submit")
    assert refused.status_code == 400 and "consent" in refused.json()["fields"]
    assert ConsultRequest.objects.get(external_id=consult["id"]).state == "draft"
    with_consent(patient, community.users["village_a"], community.village_a)
    assert act(community, "village_a", consult["id"], "submit").json()["state"] == "queued"


def test_routing_finds_the_specialty_in_the_county_then_the_fallback(community, patient, settings):
    video = submitted(
        community, patient, consult_type="specialist_video", wanted_specialty="cardiology"
    )
    assert video["centre"]["id"] == str(community.county.external_id)
    # No imaging centre in this county: the configured fallback centre gets it.
    city = make_org("市影像中心", "regional_centre", services=["imaging"])
    settings.HUIZHEN_CONSULT_FALLBACK_CENTRES = [str(city.external_id)]
    imaging = submitted(community, patient, consult_type="imaging_read")
    assert imaging["centre"]["id"] == str(city.external_id)
    settings.HUIZHEN_CONSULT_FALLBACK_CENTRES = []
    nowhere = draft(community, patient, consult_type="pathology_read")
    refused = act(community, "village_a", nowhere["id"], "submit")
    assert refused.status_code == 400 and refused.json()["code"] == "no_centre"


def test_a_decline_reroutes_to_the_next_centre_then_back_to_the_requester(
    community, patient, settings
):
    second = make_org("市心电中心", "regional_centre", services=["ecg"])
    staff(community, "city_reader", second, "specialist")
    settings.HUIZHEN_CONSULT_FALLBACK_CENTRES = [str(second.external_id)]
    consult = submitted(community, patient)
    no_reason = act(community, "ecg_specialist", consult["id"], "decline", {"reason": ""})
    assert no_reason.status_code == 400
    moved = act(community, "ecg_specialist", consult["id"], "decline", {"reason": "设备维护"})
    assert moved.json() == {"id": consult["id"], "state": "queued"}  # not where it went
    assert ConsultRequest.objects.get(external_id=consult["id"]).centre == second
    # The first centre no longer sees it; the second declines too: back to the requester.
    assert community.client("ecg_specialist").get(f"{URL}{consult['id']}/").status_code == 404
    last = act(community, "city_reader", consult["id"], "decline", {"reason": "超出范围"})
    assert last.status_code == 200, last.json()
    row = ConsultRequest.objects.get(external_id=consult["id"])
    assert row.state == "declined" and row.centre is None
    mine = community.client("village_a").get(f"{URL}{consult['id']}/").json()
    assert mine["decline_reason"] == "超出范围"
    # The requester may resubmit; routing starts afresh.
    again = act(community, "village_a", consult["id"], "resubmit")
    assert again.json()["state"] == "queued"


def test_returned_for_information_then_resubmitted(community, patient):
    consult = submitted(community, patient)
    returned = act(community, "ecg_specialist", consult["id"], "return", {"reason": "请补充用药史"})
    assert returned.json()["state"] == "returned"
    edit = community.client("village_a").patch(
        f"{URL}{consult['id']}/",
        {"record_summary": "服用阿司匹林", "version": returned.json()["version"]},
        format="json",
    )
    assert edit.status_code == 200
    stale = community.client("village_a").patch(
        f"{URL}{consult['id']}/", {"record_summary": "x", "version": 1}, format="json"
    )
    assert stale.status_code == 409
    assert act(community, "village_a", consult["id"], "resubmit").json()["state"] == "queued"


def test_only_a_qualified_specialist_may_accept(community, patient):
    consult = submitted(community, patient, minimum_title="associate_chief")
    refused = act(community, "ecg_specialist", consult["id"], "accept")
    assert refused.status_code == 403
    senior = staff(
        community,
        "senior",
        community.ecg,
        "specialist",
        professional_title="chief",
        specialties=["ecg"],
    )
    assert senior
    assert act(community, "senior", consult["id"], "accept").json()["state"] == "accepted"


def test_a_coordinator_reassigns_to_a_qualified_specialist(community, patient):
    consult = submitted(community, patient)
    other = staff(community, "reader2", community.ecg, "specialist")
    staff_id = str(other.staff.external_id)
    refused = act(community, "ecg_specialist", consult["id"], "reassign", {"assignee": staff_id})
    assert refused.status_code == 403
    done = act(community, "coordinator", consult["id"], "reassign", {"assignee": staff_id})
    assert done.status_code == 200, done.json()
    assert done.json()["assignee"]["username"] == "reader2"
    assert act(community, "ecg_specialist", consult["id"], "accept").status_code == 409
    assert act(community, "reader2", consult["id"], "accept").status_code == 200


@pytest.mark.parametrize("outsider", ["other_doctor", "village_b", "other_admin"])
def test_outsiders_get_404_like_a_missing_consult_and_the_refusal_is_audited(
    community, patient, outsider
):
    consult = submitted(community, patient)
    client = community.client(outsider)
    hidden = client.get(f"{URL}{consult['id']}/")
    missing = client.get(f"{URL}00000000-0000-4000-8000-000000000000/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    assert AuditEvent.objects.filter(
        action="consult.read", outcome="denied", object_id=consult["id"], actor_username=outsider
    ).exists()
    assert act(community, outsider, consult["id"], "accept").status_code == 404
    assert client.get("/api/v1/consult/worklist/", {"which": "unassigned"}).json()["results"] == []


def test_a_specialist_of_another_centre_sees_nothing(community, patient):
    other_centre = make_org(
        "外县心电中心", "regional_centre", community.other_county, services=["ecg"]
    )
    staff(community, "other_reader", other_centre, "specialist")
    consult = submitted(community, patient)
    client = community.client("other_reader")
    assert client.get(f"{URL}{consult['id']}/").status_code == 404
    assert client.get("/api/v1/consult/worklist/", {"which": "unassigned"}).json()["results"] == []
    assert AuditEvent.objects.filter(
        action="consult.read", outcome="denied", actor_username="other_reader"
    ).exists()


def test_a_signed_report_is_immutable_and_an_amendment_is_a_new_version(community, patient):
    consult = submitted(community, patient)
    cid = consult["id"]
    for step in ("accept", "start"):
        act(community, "ecg_specialist", cid, step)
    specialist = community.client("ecg_specialist")
    specialist.put(f"{URL}{cid}/report/", {"impression": "正常心电图"}, format="json")
    act(community, "ecg_specialist", cid, "sign", {"password": "pw-ecg_specialist"})
    signed = Report.objects.get(consult__external_id=cid)
    # The model refuses, and so does the database when the model is bypassed.
    signed.impression = "篡改"
    with pytest.raises(SignedReportImmutable):
        signed.save()
    with pytest.raises(IntegrityError), transaction.atomic():
        Report.objects.filter(pk=signed.pk).update(impression="篡改")
    with pytest.raises(IntegrityError), transaction.atomic():
        Report.objects.filter(pk=signed.pk).delete()
    assert Report.objects.get(pk=signed.pk).impression == "正常心电图"
    # Editing the signed report through the API is refused; an amendment is a new version.
    assert (
        specialist.put(f"{URL}{cid}/report/", {"impression": "x"}, format="json").status_code == 409
    )
    opened = act(community, "ecg_specialist", cid, "amend", {"reason": "补充QT间期"})
    assert opened.status_code == 201 and opened.json()["version"] == 2
    assert opened.json()["previous"] == str(signed.external_id)
    specialist.put(f"{URL}{cid}/report/", {"impression": "正常心电图,QTc 480ms"}, format="json")
    amended = act(community, "ecg_specialist", cid, "sign", {"password": "pw-ecg_specialist"})
    assert amended.json()["status"] == "signed" and amended.json()["version"] == 2
    detail = community.client("village_a").get(f"{URL}{cid}/").json()
    assert [r["version"] for r in detail["reports"]] == [1, 2]
    assert detail["reports"][0]["impression"] == "正常心电图"
    assert detail["state"] == "signed"
    from registry.models import Notification

    assert Notification.objects.filter(
        user=community.users["village_a"], category="consult.report_amended"
    ).exists()


def test_attached_studies_are_shared_with_the_centre_even_when_they_arrive_later(
    community, patient, media
):
    from imaging import services as imaging_services
    from imaging.models import Study
    from tests.imaging.dicom_factory import make_ct_series

    consult = draft(community, patient)
    raws = make_ct_series(1, patient_name="Wang^Xiu", patient_id="P1")
    import io

    from pydicom import dcmread

    uid = dcmread(io.BytesIO(raws[0])).StudyInstanceUID
    attached = community.client("village_a").post(
        f"{URL}{consult['id']}/attachments/study/", {"study_instance_uid": uid}, format="json"
    )
    assert attached.status_code == 201 and attached.json()["study_resolved"] is False
    act(community, "village_a", consult["id"], "submit")
    source = imaging_services.Source(organisation=community.village_a, calling_ae_title="X")
    imaging_services.store_instance(raws[0], source=source)
    from registry import events

    events.deliver_due()
    study = Study.objects.get(study_instance_uid=uid)
    assert StudyShare.objects.filter(
        study=study, organisation=community.ecg, source_ref=consult["id"]
    ).exists()
    detail = community.client("ecg_specialist").get(f"{URL}{consult['id']}/").json()
    assert detail["attachments"][0]["study_resolved"] is True
