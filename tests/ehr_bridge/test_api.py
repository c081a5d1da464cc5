"""The HL7 message log API: who sees what, search, raw and parsed views, replay."""

from __future__ import annotations

import pytest
from django.utils import timezone

from ehr_bridge import services
from ehr_bridge.models import (
    Hl7Partner,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
    OutboundStatus,
)
from registry.models import AuditEvent, AuditOutcome
from tests.ehr_bridge.conftest import adt
from tests.factories import make_org, make_staff

pytestmark = pytest.mark.urls("tests.ehr_bridge.urls")
BASE = "/api/v1/hl7"


@pytest.fixture
def log(partner, community):
    """Two processed messages of the county's HIS, one parked, and one message of another
    county's partner; plus a dead outbound message to each partner."""
    other = Hl7Partner.objects.create(
        name="Other HIS",
        organisation=community.other_county,
        sending_application="OTHER_HIS",
        sending_facility="OTHER_HOSP",
    )
    ids = {}
    for control, kwargs in {
        "L-1": {"mrn": "LOG1"},
        "L-2": {"mrn": "LOG2", "trigger": "A08"},
        "L-3": {"mrn": "LOG3", "birth": "", "sex": "U"},  # parks: no birth date
        "L-9": {"mrn": "LOG9", "sender": ("OTHER_HIS", "OTHER_HOSP")},
    }.items():
        result = services.inbound_receive(raw=adt(control, **kwargs).encode(), peer="t")
        services.inbound_process(message_id=result.message_id)
        ids[control] = InboundMessage.objects.get(id=result.message_id)
    for name, p in (("mine", partner), ("theirs", other)):
        ids[f"out-{name}"] = OutboundMessage.objects.create(
            partner=p,
            event_type="ORU^R01",
            patient_key="COUNTY_HOSP|LOG1",
            payload=b"MSH|^~\\&|HUIZHEN|HUIZHEN|||20240301||ORU^R01|O1|P|2.5\r",
            codec="utf-8",
            control_id=f"O-{name}",
            status=OutboundStatus.DEAD,
            attempts=8,
        )
    return ids


@pytest.fixture
def sysadmin(community):
    return make_staff("sysadmin", community.county, "system_admin")


def _ids(response) -> set[str]:
    return {row["control_id"] for row in response.json()["results"]}


@pytest.mark.parametrize(
    ("user", "status", "seen"),
    [
        ("sysadmin", 200, {"L-1", "L-2", "L-3", "L-9"}),
        ("county_admin", 200, {"L-1", "L-2", "L-3"}),
        ("other_admin", 200, {"L-9"}),
        ("county_doctor", 403, None),
        ("coordinator", 403, None),
        ("village_a", 403, None),
    ],
)
def test_search_is_scoped_to_the_admins_organisation_tree(
    log, community, sysadmin, user, status, seen
):
    community.users["sysadmin"] = sysadmin
    response = community.client(user).get(f"{BASE}/messages/")
    assert response.status_code == status
    if seen is not None:
        assert _ids(response) == seen
    else:
        assert AuditEvent.objects.filter(
            action="hl7.message.search", outcome=AuditOutcome.DENIED, actor_username=user
        ).exists()


def test_anonymous_gets_401(log, client):
    assert client.get(f"{BASE}/messages/").status_code in (401, 403)
    assert client.post(f"{BASE}/messages/{log['L-3'].external_id}/replay/").status_code in (
        401,
        403,
    )
    assert InboundMessage.objects.get(id=log["L-3"].id).status == InboundStatus.PARKED


def test_an_admin_of_a_lower_organisation_sees_nothing_of_the_county_partner(log, community):
    community.users["township_admin"] = make_staff(
        "township_admin", community.township, "org_admin"
    )
    response = community.client("township_admin").get(f"{BASE}/messages/")
    assert response.status_code == 200 and _ids(response) == set()


def test_search_filters(log, community):
    client = community.client("county_admin")

    def search(**params):
        response = client.get(f"{BASE}/messages/", params)
        assert response.status_code == 200, response.json()
        return _ids(response)

    patient = log["L-1"].patient
    assert search(control_id="L-2") == {"L-2"}
    assert search(patient=str(patient.external_id)) == {"L-1"}
    assert search(patient="LOG2") == {"L-2"}
    assert search(type="ADT^A08") == {"L-2"}
    assert search(type="ADT") == {"L-1", "L-2", "L-3"}
    assert search(status="parked") == {"L-3"}
    assert search(partner=str(log["L-1"].partner.external_id)) == {"L-1", "L-2", "L-3"}
    assert search(since=timezone.now().isoformat()) == set()
    assert search(until=timezone.now().isoformat()) == {"L-1", "L-2", "L-3"}
    assert client.get(f"{BASE}/messages/", {"status": "nonsense"}).status_code == 400
    assert AuditEvent.objects.filter(action="hl7.message.search").count() == 9


def test_detail_shows_raw_text_parsed_segments_ack_and_history(log, community):
    row = log["L-1"]
    response = community.client("county_admin").get(f"{BASE}/messages/{row.external_id}/")
    assert response.status_code == 200
    body = response.json()
    assert body["raw"] == row.text and "王^小明" in body["raw"]
    pid = next(s for s in body["segments"] if s["segment"] == "PID")
    name = next(f for f in pid["fields"] if f["position"] == 5)
    assert name["value"] == "王^小明^^^^^L" and name["repetitions"][0][:2] == ["王", "小明"]
    assert body["ack"].startswith("MSH|") and "MSA|AA|L-1" in body["ack"]
    assert [e["kind"] for e in body["events"]] == ["received", "processed"]
    assert body["patient"] == str(row.patient.external_id)
    read = AuditEvent.objects.get(action="hl7.message.read")
    assert read.patient_id == row.patient.external_id


def test_detail_of_another_organisations_message_is_404_and_audited(log, community):
    response = community.client("county_admin").get(f"{BASE}/messages/{log['L-9'].external_id}/")
    assert response.status_code == 404
    assert AuditEvent.objects.filter(
        action="hl7.message.read", outcome=AuditOutcome.DENIED
    ).exists()
    assert community.client("county_admin").get(f"{BASE}/messages/nonsense/").status_code == 404


def test_replay_of_a_parked_message(log, community, django_capture_on_commit_callbacks):
    row = log["L-3"]
    # denied for a doctor and for another organisation's admin: nothing changes
    assert (
        community.client("county_doctor")
        .post(f"{BASE}/messages/{row.external_id}/replay/")
        .status_code
        == 403
    )
    assert (
        community.client("other_admin")
        .post(f"{BASE}/messages/{row.external_id}/replay/")
        .status_code
        == 404
    )
    assert InboundMessage.objects.get(id=row.id).status == InboundStatus.PARKED
    with django_capture_on_commit_callbacks(execute=True):
        response = community.client("county_admin").post(
            f"{BASE}/messages/{row.external_id}/replay/"
        )
    assert response.status_code == 202
    row.refresh_from_db()
    # replayed (tasks run inline here) and, the data still lacking a birth date, parked again
    kinds = list(row.events.values_list("kind", flat=True))
    assert kinds[-2:] == ["replayed", "parked"]
    assert row.events.get(kind="replayed").actor == community.users["county_admin"]
    assert AuditEvent.objects.filter(action="hl7.message.replay", outcome="success").count() == 1
    # a processed message cannot be replayed
    done = community.client("county_admin").post(
        f"{BASE}/messages/{log['L-1'].external_id}/replay/"
    )
    assert done.status_code == 409


def test_outbound_log_and_replay_are_scoped_too(log, community, monkeypatch):
    from ehr_bridge import outbound

    monkeypatch.setattr(outbound, "outbound_dispatch", lambda message_id: None)
    client = community.client("county_admin")
    listed = client.get(f"{BASE}/outbound/").json()["results"]
    assert [r["control_id"] for r in listed] == ["O-mine"]
    detail = client.get(f"{BASE}/outbound/{log['out-mine'].external_id}/").json()
    assert detail["payload"].startswith("MSH|") and detail["status"] == "dead"
    theirs = log["out-theirs"].external_id
    assert client.post(f"{BASE}/outbound/{theirs}/replay/").status_code == 404
    response = client.post(f"{BASE}/outbound/{log['out-mine'].external_id}/replay/")
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert OutboundMessage.objects.get(control_id="O-theirs").status == OutboundStatus.DEAD
    assert AuditEvent.objects.filter(action="hl7.outbound.replay", outcome="success").count() == 1
    assert community.client("county_doctor").get(f"{BASE}/outbound/").status_code == 403


def test_org_admin_of_a_parent_sees_its_childs_partner(community, partner):
    child = make_org("青山县第二医院", "county_hospital", community.county)
    Hl7Partner.objects.create(
        name="Second HIS",
        organisation=child,
        sending_application="SECOND_HIS",
        sending_facility="SECOND",
    )
    services.inbound_receive(raw=adt("CH-1", sender=("SECOND_HIS", "SECOND")).encode())
    response = community.client("county_admin").get(f"{BASE}/messages/")
    assert _ids(response) == {"CH-1"}
