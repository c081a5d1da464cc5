"""Outbound: builders, the queue, and the sender against a real MLLP receiver."""

from __future__ import annotations

import base64
import dataclasses
from datetime import date, datetime, timedelta

import pytest
from django.utils import timezone

from ehr_bridge import builders, mllp, outbound
from ehr_bridge.models import OutboundMessage, OutboundStatus
from registry.errors import ValidationFailed
from registry.models import Notification

NOW = datetime(2024, 3, 1, 9, 30)
PATIENT = builders.PatientData(
    identifiers=(builders.Identifier("H0001", "COUNTY_HOSP"),),
    name="欧阳娜娜",
    sex="female",
    birth_date=date(1956, 3, 14),
    id_number="43122619560314002X",
)
REPORT = builders.ConsultReport(
    report_id="RPT-1",
    order_id="ORD-7",
    service_code="ECG12",
    service_name="十二导联心电图",
    observed_at=datetime(2024, 3, 1, 8, 0),
    signed_at=datetime(2024, 3, 1, 9, 0),
    signer_id="D01",
    signer_name="李医生",
    sections=(
        builders.ReportSection("所见", "窦性心律，心率 72 次/分\nPR 160 ms|QRS 90 ms"),
        builders.ReportSection("结论", "正常心电图"),
    ),
    pdf=b"%PDF-1.4\n%\xe2\xe3\xcf\xd3 report",
)
BOOKING = builders.AppointmentData(
    appointment_id="APT-1",
    start=datetime(2024, 3, 5, 9, 0),
    end=datetime(2024, 3, 5, 9, 20),
    service_code="HTN-FU",
    service_name="高血压复诊",
    location_code="OPD1",
    location_name="心内科门诊",
    resource_id="D01",
    resource_name="李医生",
    notes=("请空腹",),
)


def envelope(control_id: str = "OUT-1", **kw: str) -> builders.Envelope:
    return builders.Envelope("DEMO_HIS", "COUNTY_HOSP", control_id, **kw)


# --- builders (pure) -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1"])
def test_oru_r01_is_valid_for_hl7apy_in_every_supported_version(version):
    text = builders.build_oru_r01(envelope(version=version), PATIENT, REPORT, now=NOW)
    assert builders.validate(text) == []


def test_oru_r01_carries_the_report_sections_and_the_pdf_as_base64_ed():
    text = builders.build_oru_r01(envelope(), PATIENT, REPORT, now=NOW)
    segments = text.split("\r")
    assert segments[0].split("|")[8:12] == ["ORU^R01^ORU_R01", "OUT-1", "P", "2.5"]
    pid = segments[1].split("|")
    assert pid[3] == "H0001^^^COUNTY_HOSP^MR~43122619560314002X^^^^ID"
    assert pid[5].startswith("欧阳娜娜") and pid[7:9] == ["19560314", "F"]
    obx = [s.split("|") for s in segments if s.startswith("OBX|")]
    assert obx[0][2:4] == ["FT", "S1^所见^L"]
    # line break as \.br\, the field separator in the text escaped
    assert obx[0][5] == "窦性心律，心率 72 次/分\\.br\\PR 160 ms\\F\\QRS 90 ms"
    assert obx[2][2] == "ED"
    data = obx[2][5].split("^")
    assert data[1:4] == ["AP", "PDF", "Base64"] and base64.b64decode(data[4]) == REPORT.pdf
    without = builders.build_oru_r01(envelope(), PATIENT, REPORT, now=NOW, include_pdf=False)
    assert "|ED|" not in without


def test_the_parser_reads_back_what_the_builder_wrote():
    from ehr_bridge import adt, parse

    text = builders.build_oru_r01(envelope(), PATIENT, REPORT, now=NOW)
    parsed = parse.parse(text)
    patient = adt.feed_patient(parsed.first("PID"), authority="X")
    assert patient.name == "欧阳娜娜" and patient.id_number == "43122619560314002X"
    obx = parsed.all("OBX")[0]
    assert obx.component(5) == "窦性心律，心率 72 次/分 PR 160 ms|QRS 90 ms"


@pytest.mark.parametrize("trigger", ["S12", "S14", "S15"])
@pytest.mark.parametrize("version", ["2.3.1", "2.4", "2.5", "2.5.1"])
def test_siu_messages_are_valid_for_hl7apy(trigger, version):
    text = builders.build_siu(trigger, envelope(version=version), PATIENT, BOOKING, now=NOW)
    assert builders.validate(text) == []


def test_siu_actions_and_status_follow_the_trigger():
    made = builders.build_siu("S12", envelope(), PATIENT, BOOKING, now=NOW).split("\r")
    cancelled = builders.build_siu("S15", envelope(), PATIENT, BOOKING, now=NOW).split("\r")
    sch = made[1].split("|")
    assert sch[2] == "APT-1^HUIZHEN" and sch[9:11] == ["20", "min"]
    assert sch[11] == "^^20^20240305090000^20240305092000" and sch[25] == "Booked"
    assert cancelled[1].split("|")[25] == "Cancelled"
    assert "RGS|1|A" in made and "RGS|1|D" in cancelled
    assert "TQ1|1||||||20240305090000|20240305092000" in made
    with pytest.raises(ValueError):
        builders.build_siu("S99", envelope(), PATIENT, BOOKING, now=NOW)


def test_builders_flag_an_invalid_message():
    assert builders.validate("MSH|^~\\&|A|B|||20240301||ORU^R01^ORU_R01|X|P|2.5\rPID|1\r")


# --- queue and sender ------------------------------------------------------------------------


@pytest.fixture
def endpoint(partner):
    def configure(port: int, **kw) -> None:
        partner.outbound_enabled = True
        partner.outbound_host = "127.0.0.1"
        partner.outbound_port = port
        partner.outbound_events = ["ORU^R01", "SIU^S12"]
        partner.outbound_ack_timeout = kw.pop("ack_timeout", 5)
        for name, value in kw.items():
            setattr(partner, name, value)
        partner.save()
        return partner

    return configure


def oru(control_id: str, **kw) -> str:
    env = envelope(control_id, **kw)
    return builders.build_oru_r01(env, PATIENT, REPORT, now=NOW)


def test_enqueue_skips_partners_that_do_not_take_the_event(partner, receiver, endpoint):
    endpoint(receiver().port)
    assert outbound.enqueue_outbound(partner, "MDM^T02", "K", oru("X-1")) is None
    partner.outbound_enabled = False
    partner.save()
    assert outbound.enqueue_outbound(partner, "ORU^R01", "K", oru("X-2")) is None
    assert not OutboundMessage.objects.exists()
    assert outbound.partners_for_event("ORU^R01") == []


def test_enqueue_encodes_in_the_partners_charset_and_refuses_what_cannot_be(
    partner, receiver, endpoint, monkeypatch
):
    monkeypatch.setattr(outbound, "outbound_dispatch", lambda message_id: None)
    endpoint(receiver().port, outbound_charset="GB 18030-2000")
    row = outbound.enqueue_outbound(partner, "ORU^R01", "K", oru("GB-1", charset="GB 18030-2000"))
    assert row.codec == "gb18030" and "欧阳娜娜".encode("gb18030") in bytes(row.payload)
    with pytest.raises(ValidationFailed):  # MSH-18 names another set
        outbound.enqueue_outbound(partner, "ORU^R01", "K", oru("GB-2"))
    partner.outbound_charset = "ASCII"
    with pytest.raises(ValidationFailed):  # Chinese does not encode in ASCII
        outbound.enqueue_outbound(partner, "ORU^R01", "K", oru("A-1", charset="ASCII"))
    assert outbound.partners_for_event("ORU^R01") == [partner]


def test_a_queued_message_is_sent_after_commit_and_marked_acked(
    partner, receiver, endpoint, django_capture_on_commit_callbacks
):
    rcv = receiver()
    endpoint(rcv.port)
    with django_capture_on_commit_callbacks(execute=True):
        row = outbound.enqueue_outbound(partner, "ORU^R01", "COUNTY_HOSP|H0001", oru("S-1"))
        assert rcv.received == []  # nothing leaves before the commit
    row.refresh_from_db()
    assert row.status == OutboundStatus.ACKED and row.attempts == 1
    assert row.ack_code == "AA" and b"MSA|AA|S-1" in bytes(row.ack)
    assert rcv.received == [bytes(row.payload)]
    assert "欧阳娜娜" in rcv.received[0].decode("utf-8")


def test_ae_is_retried_with_backoff_until_acked(partner, receiver, endpoint, settings):
    settings.HUIZHEN_MLLP_RETRY_SECONDS = 0
    rcv = receiver(fail_first=2)
    endpoint(rcv.port)
    row = outbound.enqueue_outbound(partner, "ORU^R01", "K1", oru("R-1"))
    first = outbound.outbound_send(message_id=row.id)
    assert (first.acked, first.failed) == (0, 1) and first.retry_at is not None
    row.refresh_from_db()
    assert row.status == OutboundStatus.PENDING and "AE" in row.last_error
    assert "Try again later" in row.last_error
    outbound.outbound_send(message_id=row.id)
    outbound.outbound_send(message_id=row.id)
    row.refresh_from_db()
    assert row.status == OutboundStatus.ACKED and row.attempts == 3
    assert rcv.control_ids == ["R-1", "R-1", "R-1"]  # same bytes, same control ID


def test_backoff_is_exponential_and_bounded(settings):
    settings.HUIZHEN_MLLP_RETRY_SECONDS = 30
    assert [outbound.backoff(n).total_seconds() for n in (1, 2, 3, 10)] == [30, 60, 120, 3600]


def test_no_answer_times_out_then_dead_letters_with_an_alert(
    partner, receiver, endpoint, settings, community
):
    settings.HUIZHEN_MLLP_RETRY_SECONDS = 0
    rcv = receiver(silent=True)
    endpoint(rcv.port, ack_timeout=1, outbound_max_attempts=2)
    row = outbound.enqueue_outbound(partner, "ORU^R01", "K2", oru("T-1"))
    started = timezone.now()
    outbound.outbound_send(message_id=row.id)
    assert timezone.now() - started < timedelta(seconds=4)
    row.refresh_from_db()
    assert (
        row.status == OutboundStatus.PENDING and "No acknowledgement within 1 s" in row.last_error
    )
    outbound.outbound_send(message_id=row.id)
    row.refresh_from_db()
    assert row.status == OutboundStatus.DEAD and row.attempts == 2
    alert = Notification.objects.get(category="hl7_outbound_dead")
    assert alert.user == community.users["county_admin"] and "T-1" in alert.body
    # dead: the sender leaves it alone until an operator replays it
    assert outbound.outbound_send(message_id=row.id).acked == 0


def test_unreachable_endpoint_is_a_failed_attempt(partner, endpoint, settings):
    settings.HUIZHEN_MLLP_RETRY_SECONDS = 30
    from tests.ehr_bridge.conftest import _free_port

    endpoint(_free_port())
    row = outbound.enqueue_outbound(partner, "ORU^R01", "K3", oru("U-1"))
    result = outbound.outbound_send(message_id=row.id)
    row.refresh_from_db()
    assert result.failed == 1 and row.status == OutboundStatus.PENDING
    assert "Cannot connect" in row.last_error
    assert row.next_attempt_at > timezone.now() + timedelta(seconds=20)


def test_replay_of_a_dead_message_sends_it(partner, receiver, endpoint, settings):
    settings.HUIZHEN_MLLP_RETRY_SECONDS = 0
    rcv = receiver(fail_first=1)
    endpoint(rcv.port, outbound_max_attempts=1)
    row = outbound.enqueue_outbound(partner, "ORU^R01", "K4", oru("D-1"))
    outbound.outbound_send(message_id=row.id)
    row.refresh_from_db()
    assert row.status == OutboundStatus.DEAD
    from registry import audit

    outbound.outbound_replay(message_id=str(row.external_id), actor=audit.Actor.system("t"))
    outbound.outbound_send(message_id=row.id)
    row.refresh_from_db()
    assert row.status == OutboundStatus.ACKED


def test_a_later_message_of_the_same_patient_waits_for_the_earlier_one(
    partner, receiver, endpoint, settings
):
    settings.HUIZHEN_MLLP_RETRY_SECONDS = 0
    rcv = receiver(fail_first=1)
    endpoint(rcv.port)
    first = outbound.enqueue_outbound(partner, "ORU^R01", "SAME", oru("P-1"))
    second = outbound.enqueue_outbound(partner, "ORU^R01", "SAME", oru("P-2"))
    other = outbound.enqueue_outbound(partner, "ORU^R01", "OTHER", oru("P-3"))
    outbound.outbound_send(message_id=second.id)  # the head (P-1) gets AE
    assert rcv.control_ids == ["P-1"]
    # another patient is not held back
    outbound.outbound_send(message_id=other.id)
    assert rcv.control_ids == ["P-1", "P-3"]
    # the earlier one is retried first, then the later one goes, in order
    outbound.outbound_send(message_id=second.id)
    assert rcv.control_ids == ["P-1", "P-3", "P-1", "P-2"]
    statuses = OutboundMessage.objects.filter(id__in=[first.id, second.id]).values_list(
        "status", flat=True
    )
    assert set(statuses) == {OutboundStatus.ACKED}


def test_one_connection_carries_a_patients_whole_queue(partner, receiver, endpoint):
    rcv = receiver()
    endpoint(rcv.port)
    for n in range(5):
        outbound.enqueue_outbound(partner, "ORU^R01", "Q", oru(f"C-{n}"))
    result = outbound.outbound_drain(partner_id=partner.pk)
    assert result.acked == 5 and rcv.connections == 1
    assert rcv.control_ids == [f"C-{n}" for n in range(5)]


def test_sweep_recovers_an_abandoned_send(partner, receiver, endpoint):
    rcv = receiver()
    endpoint(rcv.port, ack_timeout=1)
    row = outbound.enqueue_outbound(partner, "ORU^R01", "K5", oru("AB-1"))
    # a sender claimed it and died before writing the outcome
    OutboundMessage.objects.filter(id=row.id).update(
        status=OutboundStatus.SENT, sent_at=timezone.now() - timedelta(minutes=5), attempts=1
    )
    assert outbound.outbound_sweep() == [partner.pk]
    outbound.outbound_drain(partner_id=partner.pk)
    row.refresh_from_db()
    assert row.status == OutboundStatus.ACKED and row.attempts == 2


def test_an_ack_for_another_control_id_is_a_failure():
    ack = b"MSH|^~\\&|A|B|||20240301||ACK|1|P|2.5\rMSA|AA|OTHER\r"
    from ehr_bridge.mllp_client import parse_ack

    assert parse_ack(ack).control_id == "OTHER"
    assert parse_ack(mllp.build_ack(None, code="AE", now=NOW)).code == "AE"


def test_envelopes_are_frozen_plain_data():
    assert dataclasses.is_dataclass(builders.Envelope) and dataclasses.is_dataclass(PATIENT)
