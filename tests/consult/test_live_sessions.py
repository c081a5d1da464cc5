"""Live sessions: opening, inviting (six at most), the patient's SMS-confirmed link, removal,
ending, messages kept with the consult, and the TURN credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from django.test import Client

from consult import live, precall, turn
from consult.models import ConsultMessage, LiveParticipant, LiveSession, PatientInvitation
from registry import sms
from registry.errors import Conflict, ValidationFailed
from registry.models import AuditEvent, DomainEvent

from .conftest import act, staff, submitted

API = "/api/v1/consult/"


def accepted(community, patient) -> dict:
    consult = submitted(community, patient)
    assert act(community, "ecg_specialist", consult["id"], "accept").status_code == 200
    return consult


def open_session(community, patient, username: str = "village_a") -> dict:
    consult = accepted(community, patient)
    response = community.client(username).post(f"{API}consults/{consult['id']}/live/")
    assert response.status_code == 201, response.json()
    return response.json()


def test_opening_a_session_admits_requester_and_specialist_and_is_audited(community, patient):
    body = open_session(community, patient)
    assert sorted(p["role"] for p in body["participants"]) == ["requester", "specialist"]
    assert body["socket"] == f"/ws/consult/{body['id']}/"
    again = community.client("ecg_specialist").post(f"{API}consults/{body['consult']}/live/")
    assert again.json()["id"] == body["id"]  # one open session per consult
    assert AuditEvent.objects.filter(action="consult.live.open").count() == 1
    assert DomainEvent.objects.filter(event_type="consult.live.opened").count() == 1


def test_outsiders_cannot_open_or_see_a_session(community, patient):
    body = open_session(community, patient)
    before = LiveSession.objects.count()
    refused = community.client("other_doctor").post(f"{API}consults/{body['consult']}/live/")
    assert refused.status_code == 404
    assert community.client("other_doctor").get(f"{API}live/{body['id']}/").status_code == 404
    assert LiveSession.objects.count() == before


def test_a_multidisciplinary_session_holds_six_people_at_most(community, patient):
    body = open_session(community, patient)
    for n in range(4):
        guest = staff(community, f"mdt{n}", community.ecg, "specialist")
        response = community.client("ecg_specialist").post(
            f"{API}live/{body['id']}/participants/", {"staff": str(guest.staff.external_id)}
        )
        assert response.status_code == 201, response.json()
    seventh = staff(community, "mdt9", community.ecg, "specialist")
    response = community.client("ecg_specialist").post(
        f"{API}live/{body['id']}/participants/", {"staff": str(seventh.staff.external_id)}
    )
    assert response.status_code == 409
    assert LiveParticipant.objects.filter(session__external_id=body["id"]).count() == 6


def test_the_patient_joins_by_a_one_time_link_and_an_sms_code(
    community, patient, django_capture_on_commit_callbacks
):
    patient.mobile = "13800000002"
    patient.save()
    body = open_session(community, patient)
    with django_capture_on_commit_callbacks(execute=True):
        invite = community.client("village_a").post(f"{API}live/{body['id']}/patient-invite/")
    assert invite.status_code == 201, invite.json()
    token = invite.json()["link"].rstrip("/").rsplit("/", 1)[1]
    assert any(token in m.text for m in sms.outbox)
    invitation = PatientInvitation.objects.get()
    assert token not in invitation.link_hash  # only hashes are stored

    anonymous = Client()
    with django_capture_on_commit_callbacks(execute=True):
        assert anonymous.post(f"{API}live/join/{token}/code/").status_code == 204
    code = re.search(r"\b(\d{6})\b", sms.outbox[-1].text).group(1)
    invitation.refresh_from_db()
    assert code not in invitation.code_hash
    wrong = "000000" if code != "000000" else "111111"
    confirm = f"{API}live/join/{token}/confirm/"
    bad = anonymous.post(confirm, {"code": wrong}, content_type="application/json")
    assert bad.status_code == 400
    good = anonymous.post(confirm, {"code": code}, content_type="application/json")
    assert good.status_code == 200, good.json()
    assert live.session_of_token(good.json()["participant_token"]) == body["id"]
    # one-time: the link is used up
    again = anonymous.post(confirm, {"code": code}, content_type="application/json")
    assert again.status_code == 404


def test_the_code_allows_five_attempts(community, patient, django_capture_on_commit_callbacks):
    patient.mobile = "13800000003"
    patient.save()
    body = open_session(community, patient)
    invite = community.client("village_a").post(f"{API}live/{body['id']}/patient-invite/")
    token = invite.json()["link"].rstrip("/").rsplit("/", 1)[1]
    with django_capture_on_commit_callbacks(execute=True):
        live.live_patient_link_send_code(token=token)
    code = re.search(r"\b(\d{6})\b", sms.outbox[-1].text).group(1)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        with pytest.raises(ValidationFailed):
            live.live_patient_link_confirm(token=token, code=wrong)
    with pytest.raises(Conflict) as exhausted:
        live.live_patient_link_confirm(token=token, code=code)
    assert exhausted.value.code == "code_expired"


def test_removing_and_ending_are_audited(community, patient):
    body = open_session(community, patient)
    specialist = next(p for p in body["participants"] if p["role"] == "specialist")
    client = community.client("village_a")
    assert (
        client.delete(f"{API}live/{body['id']}/participants/{specialist['id']}/").status_code == 204
    )
    assert client.post(f"{API}live/{body['id']}/end/").json()["status"] == "ended"
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"consult.live.remove", "consult.live.end"} <= actions


def test_messages_continue_with_the_consult_after_the_call(community, patient):
    body = open_session(community, patient)
    client = community.client("ecg_specialist")
    url = f"{API}consults/{body['consult']}/messages/"
    assert client.post(url, {"body": "请补传12导联"}).status_code == 201
    assert [m["body"] for m in client.get(url).json()] == ["请补传12导联"]
    assert community.client("other_doctor").get(url).status_code == 404
    assert ConsultMessage.objects.count() == 1


def test_turn_credentials_follow_the_coturn_rest_scheme(settings):
    settings.HUIZHEN_TURN_URLS = ["turn:turn.example.org:3478?transport=udp"]
    settings.HUIZHEN_TURN_SECRET = "s3cret"
    settings.HUIZHEN_TURN_TTL_SECONDS = 600
    settings.HUIZHEN_ICE_SERVERS = [{"urls": ["stun:stun.example.org:3478"]}]
    servers = turn.ice_servers_for("participant-1")
    assert servers[0] == {"urls": ["stun:stun.example.org:3478"]}
    entry = servers[1]
    expiry, who = entry["username"].split(":", 1)
    assert who == "participant-1" and int(expiry) > 0
    expected = base64.b64encode(
        hmac.new(b"s3cret", entry["username"].encode(), hashlib.sha1).digest()
    ).decode()
    assert entry["credential"] == expected
    fixed = turn.turn_credentials("p", secret="k", ttl=60, now=1000)
    assert fixed["username"] == "1060:p"


def test_no_turn_entry_without_a_secret(settings):
    settings.HUIZHEN_TURN_URLS = ["turn:turn.example.org"]
    settings.HUIZHEN_TURN_SECRET = ""
    settings.HUIZHEN_ICE_SERVERS = []
    assert turn.ice_servers_for("p") == []


def test_link_classification():
    q = precall.LinkQuality
    assert precall.classify(q(rtt_ms=40, loss=0.0, relayed=False)) == "video_ok"
    assert precall.classify(q(rtt_ms=500, loss=0.05, relayed=True)) == "audio_only"
    assert precall.classify(q(rtt_ms=1500, loss=0.2, relayed=True)) == "store_and_forward"
    assert precall.classify(q(rtt_ms=None, loss=None, relayed=False)) == "store_and_forward"
