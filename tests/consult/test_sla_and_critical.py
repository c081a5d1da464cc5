"""SLA escalation and the critical-value loop, with time moved forward by patching
``django.utils.timezone.now`` (the services read the clock only through it)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from unittest import mock

from django.utils import timezone

from consult import critical, sla, tasks
from consult.models import (
    ConsultRequest,
    CriticalValueAlert,
    CriticalValueEscalation,
    Shift,
    SlaEscalation,
)
from registry.models import AuditEvent, Notification
from tests.factories import make_org

from .conftest import act, staff, submitted


@contextmanager
def frozen(at):
    with mock.patch("django.utils.timezone.now", return_value=at):
        yield


def test_default_deadlines_per_urgency(community, patient):
    for urgency, accept, report in (
        ("emergency", 10, 30),
        ("urgent", 30, 120),
        ("routine", 240, 1440),
    ):
        consult = submitted(community, patient, urgency=urgency)
        row = ConsultRequest.objects.get(external_id=consult["id"])
        assert row.accept_by - row.queued_at == timedelta(minutes=accept)
        assert row.report_by - row.queued_at == timedelta(minutes=report)


def test_a_missed_accept_deadline_goes_to_the_coordinator_then_to_a_fallback_centre(
    community, patient, settings
):
    fallback = make_org("市心电中心", "regional_centre", services=["ecg"])
    settings.HUIZHEN_CONSULT_FALLBACK_CENTRES = [str(fallback.external_id)]
    consult = submitted(community, patient, urgency="emergency")
    row = ConsultRequest.objects.get(external_id=consult["id"])
    start = row.queued_at
    with frozen(start + timedelta(minutes=9)):
        assert tasks.sla_sweep() == 0  # not due yet
    with frozen(start + timedelta(minutes=11)):
        assert tasks.sla_sweep() == 1
        assert tasks.sla_sweep() == 0  # idempotent: the step is never taken twice
    told = Notification.objects.filter(category="consult.sla_missed")
    assert [n.user.username for n in told] == ["coordinator"]
    assert ConsultRequest.objects.get(pk=row.pk).centre == community.ecg
    with frozen(start + timedelta(minutes=21)):
        assert tasks.sla_sweep() == 1
        assert tasks.sla_sweep() == 0
    row.refresh_from_db()
    assert row.centre == fallback and row.state == "queued"
    assert row.transitions.last().action == "reroute"
    assert row.transitions.last().actor_label == "system:sla"
    steps = list(SlaEscalation.objects.filter(consult=row).values_list("step", "centre_id"))
    assert steps == [("coordinator", community.ecg.pk), ("reroute", community.ecg.pk)]
    assert AuditEvent.objects.filter(action="consult.sla.reroute", object_id=consult["id"]).exists()
    # The new centre has fresh deadlines, so nothing more is due right after the move.
    with frozen(start + timedelta(minutes=22)):
        assert tasks.sla_sweep() == 0


def test_a_missed_report_deadline_of_a_started_read_only_alerts(community, patient):
    consult = submitted(community, patient, urgency="urgent")
    act(community, "ecg_specialist", consult["id"], "accept")
    act(community, "ecg_specialist", consult["id"], "start")
    row = ConsultRequest.objects.get(external_id=consult["id"])
    with frozen(row.report_by + timedelta(hours=1)):
        assert sla.sla_escalate_due() == 1
        assert sla.sla_escalate_due() == 0
    row.refresh_from_db()
    assert row.state == "in_progress" and row.centre == community.ecg
    assert SlaEscalation.objects.get(consult=row).kind == "report"


def test_on_duty_specialist_with_the_lightest_load_is_assigned(community, patient):
    busy = community.users["ecg_specialist"]
    idle = staff(community, "idle_reader", community.ecg, "specialist")
    now = timezone.now()
    for user in (busy, idle):
        Shift.objects.create(
            centre=community.ecg,
            user=user,
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(hours=7),
        )
    first = submitted(community, patient)
    assert first["assignee"]["username"] == "ecg_specialist"  # equal load: lowest id
    act(community, "ecg_specialist", first["id"], "accept")
    second = submitted(community, patient)
    assert second["assignee"]["username"] == "idle_reader"
    mine = community.client("idle_reader").get("/api/v1/consult/worklist/").json()["results"]
    assert [c["id"] for c in mine] == [second["id"]]


def _critical(community, patient):
    consult = submitted(community, patient, urgency="emergency")
    act(community, "ecg_specialist", consult["id"], "accept")
    return consult


def test_a_critical_value_alerts_escalates_and_is_acknowledged(
    community, patient, django_capture_on_commit_callbacks
):
    consult = _critical(community, patient)
    village_head = staff(community, "village_head", community.village_a, "org_admin")
    assert village_head
    not_listed = community.client("ecg_specialist").post(
        f"/api/v1/consult/consults/{consult['id']}/critical-values/",
        {"finding_code": "intracranial_haemorrhage"},
        format="json",
    )
    assert not_listed.status_code == 400  # an imaging finding on an ECG read
    with django_capture_on_commit_callbacks(execute=True):
        raised = community.client("ecg_specialist").post(
            f"/api/v1/consult/consults/{consult['id']}/critical-values/",
            {"finding_code": "stemi", "note": "V1-V4"},
            format="json",
        )
    assert raised.status_code == 201, raised.json()
    alert_id = raised.json()["id"]
    # The requesting doctor is alerted at once, by push and by SMS.
    note = Notification.objects.get(category="consult.critical_value")
    assert note.user == community.users["village_a"]
    assert {d.channel for d in note.deliveries.all()} == {"push", "sms"}
    sms_row = note.deliveries.get(channel="sms")
    assert sms_row.address and sms_row.address != "13900000001"  # masked in the log
    alert = CriticalValueAlert.objects.get(external_id=alert_id)
    with frozen(alert.raised_at + timedelta(minutes=9)):
        assert tasks.critical_value_sweep() == 0
    with frozen(alert.raised_at + timedelta(minutes=11)):
        assert tasks.critical_value_sweep() == 1  # step 1: head of the clinic
        assert tasks.critical_value_sweep() == 0
    with frozen(alert.raised_at + timedelta(minutes=21)):
        assert tasks.critical_value_sweep() == 1  # step 2: centre coordinator
        assert tasks.critical_value_sweep() == 0
    steps = list(
        CriticalValueEscalation.objects.filter(alert=alert).values_list("step", "notified")
    )
    assert steps == [(1, ["village_head"]), (2, ["coordinator"])]
    escalated = Notification.objects.filter(category="consult.critical_value_escalated")
    assert {n.user.username for n in escalated} == {"village_head", "coordinator"}
    assert AuditEvent.objects.filter(action="consult.critical.escalate").count() == 2
    # A stranger cannot acknowledge (404 as if it did not exist); the requester can.
    stranger = community.client("village_b").post(
        f"/api/v1/consult/critical-values/{alert_id}/acknowledge/"
    )
    assert stranger.status_code == 404
    acked = community.client("village_a").post(
        f"/api/v1/consult/critical-values/{alert_id}/acknowledge/"
    )
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    assert acked.json()["minutes_to_acknowledge"] is not None
    with frozen(alert.raised_at + timedelta(hours=1)):
        assert critical.critical_values_escalate_due() == 0
    outcome = community.client("village_a").post(
        f"/api/v1/consult/critical-values/{alert_id}/outcome/",
        {"outcome": "已转县医院行PCI"},
        format="json",
    )
    assert outcome.json()["outcome"] == "已转县医院行PCI"
    # The head of the clinic, told by the escalation, sees it in the tracking list.
    listed = community.client("village_head").get("/api/v1/consult/critical-values/").json()
    assert [a["id"] for a in listed["results"]] == [alert_id]


def test_an_acknowledged_alert_never_escalates(community, patient):
    consult = _critical(community, patient)
    alert = critical.critical_value_raise(
        principal=__import__("registry.access", fromlist=["x"]).principal_for(
            community.users["ecg_specialist"]
        ),
        consult_id=consult["id"],
        finding_code="complete_heart_block",
    )
    community.client("village_a").post(
        f"/api/v1/consult/critical-values/{alert.external_id}/acknowledge/"
    )
    with frozen(alert.raised_at + timedelta(hours=2)):
        assert critical.critical_values_escalate_due() == 0
    assert not CriticalValueEscalation.objects.exists()


def test_statistics_and_csv(community, patient):
    consult = submitted(community, patient)
    act(community, "ecg_specialist", consult["id"], "return", {"reason": "缺少病史"})
    other = submitted(community, patient)
    act(community, "ecg_specialist", other["id"], "decline", {"reason": "导联脱落"})
    stats = community.client("coordinator").get("/api/v1/consult/statistics/")
    assert stats.status_code == 200, stats.json()
    body = stats.json()
    assert body["decline_reasons"] == [{"reason": "导联脱落", "count": 1}]
    clinic = next(c for c in body["clinics"] if c["clinic"] == community.village_a.name)
    assert clinic["submitted"] == 2 and clinic["returned"] == 1 and clinic["returned_rate"] == 0.5
    csv = community.client("coordinator").get("/api/v1/consult/statistics.csv")
    assert csv["Content-Type"].startswith("text/csv")
    assert "导联脱落" in csv.content.decode("utf-8-sig")
    assert community.client("village_a").get("/api/v1/consult/statistics/").status_code == 403
