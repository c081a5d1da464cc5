"""Every action from every state: allowed exactly when the transition table says so; a
refused one answers 409 naming the allowed transitions and changes nothing."""

from __future__ import annotations

import pytest
from django.utils import timezone

from consult.models import ConsultRequest, ConsultTransition, Report
from consult.states import TRANSITIONS, ConsultState

from .conftest import URL, act

S = ConsultState

# action -> (actor, body, target state)
ACTIONS = {
    "submit": ("village_a", {}, S.SUBMITTED),
    "accept": ("ecg_specialist", {}, S.ACCEPTED),
    "decline": ("ecg_specialist", {"reason": "导联脱落"}, S.DECLINED),
    "return": ("ecg_specialist", {"reason": "请补充病史"}, S.RETURNED),
    "start": ("ecg_specialist", {}, S.IN_PROGRESS),
    "report": ("ecg_specialist", {"impression": "窦性心律"}, S.REPORTED),
    "sign": ("ecg_specialist", {"password": "pw-ecg_specialist"}, S.SIGNED),
    "deliver": ("ecg_specialist", {}, S.DELIVERED),
    "close": ("village_a", {}, S.CLOSED),
    "cancel": ("village_a", {"reason": "患者已转院"}, S.CANCELLED),
}

WITH_REPORT = {S.REPORTED: "draft", S.SIGNED: "signed", S.DELIVERED: "signed", S.CLOSED: "signed"}


def consult_in(community, patient, state: str) -> ConsultRequest:
    """A consult put straight into ``state`` at the ECG centre, assigned to its specialist."""
    now = timezone.now()
    consult = ConsultRequest.objects.create(
        requester=community.users["village_a"],
        requesting_organisation=community.village_a,
        patient=patient,
        consult_type="ecg_read",
        urgency="urgent",
        urgency_rank=1,
        reason="胸痛",
        clinical_question="ST?",
        centre=community.ecg,
        queue="ecg",
        assignee=community.users["ecg_specialist"],
        state=state,
        accept_by=now + timezone.timedelta(minutes=30),
        report_by=now + timezone.timedelta(hours=2),
        submitted_at=now,
    )
    kind = WITH_REPORT.get(state)
    if kind:
        report = Report.objects.create(
            consult=consult, impression="窦性心律", author=community.users["ecg_specialist"]
        )
        if kind == "signed":
            Report.objects.filter(pk=report.pk).update(
                status="signed",
                signed_by=community.users["ecg_specialist"],
                signed_at=now,
                content_hash="0" * 64,
            )
    return consult


def _call(community, consult, action):
    actor, body, _target = ACTIONS[action]
    if action == "report":
        return community.client(actor).put(
            f"{URL}{consult.external_id}/report/", body, format="json"
        )
    return act(community, actor, str(consult.external_id), action, body)


@pytest.mark.parametrize("state", list(S.values))
def test_each_action_from_each_state_follows_the_table(community, patient, state):
    for action, (_actor, _body, target) in ACTIONS.items():
        consult = consult_in(community, patient, state)
        history = ConsultTransition.objects.filter(consult=consult).count()
        response = _call(community, consult, action)
        consult.refresh_from_db()
        allowed = target in TRANSITIONS[state]
        if action == "report" and state == S.REPORTED:
            # Saving the draft again is an edit, not a transition.
            assert response.status_code == 200, response.json()
            assert consult.state == S.REPORTED
            continue
        if allowed:
            assert response.status_code == 200, (state, action, response.json())
            moved = ConsultTransition.objects.filter(consult=consult).order_by("id")[history:]
            assert moved[0].from_state == state and moved[0].to_state == target
            assert moved[0].actor == community.users[ACTIONS[action][0]]
        else:
            assert response.status_code == 409, (state, action, response.json())
            body = response.json()
            if body["code"] == "illegal_transition":
                for name in sorted(TRANSITIONS[state]):
                    assert name in body["detail"]
            assert consult.state == state
            assert ConsultTransition.objects.filter(consult=consult).count() == history


def test_the_table_has_no_exit_from_closed_or_cancelled():
    assert TRANSITIONS[S.CLOSED] == frozenset()
    assert TRANSITIONS[S.CANCELLED] == frozenset()
    # every target is itself a known state
    assert all(t in S.values for targets in TRANSITIONS.values() for t in targets)
