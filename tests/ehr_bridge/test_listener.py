"""The MLLP listener over real TCP sockets, with PostgreSQL behind it."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from ehr_bridge import services
from ehr_bridge.models import InboundMessage, InboundStatus
from registry.models import Notification, Patient, PatientIdentifier
from tests.ehr_bridge.conftest import adt, err, frame, msa, read_frame, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_aa_is_sent_only_after_the_message_is_committed(start_listener, partner, monkeypatch):
    # Given a listener whose worker hand-off records whether the row was already committed
    seen_at_ack: list[bool] = []
    original = services.inbound_receive

    def spy(**kwargs):
        result = original(**kwargs)
        seen_at_ack.append(InboundMessage.objects.filter(id=result.message_id).exists())
        return result

    monkeypatch.setattr(services, "inbound_receive", spy)
    listener = start_listener()
    # When a HIS sends an ADT^A04
    ack = listener.send(adt("C-AA-1").encode())
    # Then it gets AA for its control ID, and the row existed (committed) before the ACK
    assert msa(ack)[1:3] == ["AA", "C-AA-1"]
    assert seen_at_ack == [True]
    row = InboundMessage.objects.get(control_id="C-AA-1")
    assert row.partner == partner
    assert bytes(row.raw) == adt("C-AA-1").encode()
    assert bytes(row.ack) == ack
    assert row.sha256 and row.message_type == "ADT" and row.trigger_event == "A04"


def test_a04_in_gb18030_puts_the_chinese_name_into_the_patient_index(start_listener, partner):
    listener = start_listener()
    raw = adt("C-GB-1", charset="GB 18030-2000", family="王", given="小明").encode("gb18030")
    ack = listener.send(raw)
    assert msa(ack, "gb18030")[1] == "AA"
    assert "GB 18030-2000" in ack.decode("gb18030").split("\r")[0]
    assert wait_for(
        lambda: InboundMessage.objects.filter(
            control_id="C-GB-1", status=InboundStatus.PROCESSED
        ).exists()
    )
    patient = PatientIdentifier.objects.get(authority="COUNTY_HOSP", value="MRN001").patient
    assert patient.name == "王小明"
    assert patient.home_organisation == partner.organisation
    row = InboundMessage.objects.get(control_id="C-GB-1")
    assert row.codec == "gb18030" and "王^小明" in row.text and row.patient == patient


def test_utf8_message_is_stored_and_decoded(start_listener, partner):
    listener = start_listener()
    ack = listener.send(adt("C-U8-1", family="欧阳", given="娜娜", mrn="U8").encode("utf-8"))
    assert msa(ack)[1] == "AA"
    assert wait_for(lambda: PatientIdentifier.objects.filter(value="U8").exists())
    assert PatientIdentifier.objects.get(value="U8").patient.name == "欧阳娜娜"


@pytest.mark.parametrize(
    ("declared", "encoding"),
    [("GB 18030-2000", "utf-8"), ("UNICODE UTF-8", "gb18030"), ("ASCII", "utf-8")],
)
def test_bytes_that_contradict_the_declared_charset_get_ae_and_are_not_stored(
    start_listener, partner, declared, encoding
):
    listener = start_listener()
    raw = adt("C-CS-1", charset=declared, family="王", given="小明").encode(encoding)
    ack = listener.send(raw)
    assert msa(ack, "latin-1")[1] == "AE"
    assert "102^" in err(ack, "latin-1")
    assert not InboundMessage.objects.exists()
    assert not Patient.objects.exists()


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"this is not HL7 at all", "AR"),
        (b"MSH|^~\\&|DEMO_HIS|COUNTY_HOSP|||20240301||ADT^A04|C1|P|2.6\rPID|1||X\r", "AR"),
        (b"MSH|^~\\&|DEMO_HIS|COUNTY_HOSP|||20240301||ADT^A04||P|2.5\rPID|1||X\r", "AR"),
        (b"MSH|^~\\&|DEMO_HIS|COUNTY_HOSP|||20240301||MFN^M02|C2|P|2.5\rMFI|1\r", "AR"),
        (b"MSH|^~\\&|DEMO_HIS|COUNTY_HOSP|||20240301||ADT^A04|C3|P|2.5\rPV1|1|O\r", "AE"),
        (b"MSH|^~\\&|DEMO_HIS|COUNTY_HOSP|||20240301||ORU^R01|C4|P|2.5\rPID|1||X\rOBR|1\r", "AE"),
        (b"MSH|^~\\&|DEMO_HIS|COUNTY_HOSP|||20240301||ADT^A04|C5|P|2.5\rpid|1||X\r", "AR"),
    ],
)
def test_malformed_messages_get_ar_or_ae_with_err_and_nothing_is_stored(
    start_listener, partner, payload, code
):
    listener = start_listener()
    sock = listener.connect()
    try:
        ack = listener.send(payload, sock)
        assert msa(ack, "latin-1")[1] == code
        assert err(ack, "latin-1").startswith("ERR|")
        # the connection stays usable
        good = listener.send(adt("C-AFTER").encode(), sock)
        assert msa(good)[1:3] == ["AA", "C-AFTER"]
    finally:
        sock.close()
    assert list(InboundMessage.objects.values_list("control_id", flat=True)) == ["C-AFTER"]


def test_duplicate_control_id_with_same_bytes_gets_the_same_ack_and_is_processed_once(
    start_listener, partner
):
    listener = start_listener()
    raw = adt("C-DUP-1", mrn="DUP").encode()
    first = listener.send(raw)
    assert wait_for(
        lambda: InboundMessage.objects.filter(status=InboundStatus.PROCESSED).count() == 1
    )
    second = listener.send(raw)
    assert second == first
    time.sleep(0.3)
    row = InboundMessage.objects.get()
    assert row.attempts == 1 and row.status == InboundStatus.PROCESSED
    assert Patient.objects.count() == 1
    assert list(row.events.values_list("kind", flat=True)) == [
        "received",
        "processed",
        "duplicate",
    ]


def test_same_control_id_with_other_content_gets_ae_alerts_and_keeps_the_original(
    start_listener, partner, community
):
    listener = start_listener()
    original = adt("C-CONF-1", mrn="ORIG").encode()
    assert msa(listener.send(original))[1] == "AA"
    assert wait_for(lambda: PatientIdentifier.objects.filter(value="ORIG").exists())
    ack = listener.send(adt("C-CONF-1", mrn="OTHER", given="大明").encode())
    assert msa(ack)[1] == "AE" and "205^" in err(ack)
    kept = InboundMessage.objects.exclude(status=InboundStatus.DUPLICATE_CONFLICT).get()
    assert bytes(kept.raw) == original and kept.status == InboundStatus.PROCESSED
    conflict = InboundMessage.objects.get(status=InboundStatus.DUPLICATE_CONFLICT)
    assert conflict.control_id == "C-CONF-1" and bytes(conflict.ack) == ack
    assert not PatientIdentifier.objects.filter(value="OTHER").exists()
    assert Notification.objects.filter(
        user=community.users["county_admin"], category="hl7_duplicate_conflict"
    ).exists()
    # sending the conflicting copy again stores nothing more
    assert msa(listener.send(adt("C-CONF-1", mrn="OTHER", given="大明").encode()))[1] == "AE"
    assert InboundMessage.objects.count() == 2


def test_oversize_frame_is_refused_and_closes_only_its_own_connection(start_listener, partner):
    listener = start_listener(HUIZHEN_MLLP_MAX_MESSAGE_BYTES=4096)
    other = listener.connect()
    big = listener.connect()
    try:
        body = adt("C-BIG-1").encode() + b"NTE|1||" + b"x" * 10_000 + b"\r"
        big.sendall(frame(body))
        nak = read_frame(big)
        assert msa(nak)[1:3] == ["AR", "C-BIG-1"]
        assert read_frame(big, timeout=5) == b""  # closed
        ack = listener.send(adt("C-SMALL-1").encode(), other)
        assert msa(ack)[1] == "AA"
    finally:
        other.close()
        big.close()
    assert list(InboundMessage.objects.values_list("control_id", flat=True)) == ["C-SMALL-1"]


def test_frame_without_end_block_times_out(start_listener, partner):
    listener = start_listener(HUIZHEN_MLLP_FRAME_TIMEOUT=1.0)
    sock = listener.connect()
    try:
        started = time.monotonic()
        sock.sendall(b"\x0b" + adt("C-SLOW-1").encode())  # no end block
        nak = read_frame(sock, timeout=10)
        assert msa(nak)[1] == "AR"
        assert read_frame(sock, timeout=5) == b""
        assert time.monotonic() - started < 5
    finally:
        sock.close()
    assert not InboundMessage.objects.exists()


def test_twenty_connections_of_ten_messages_are_all_acknowledged_and_stored(
    start_listener, partner, monkeypatch
):
    # Processing is not under test here: keep the hand-off to the worker out of the way.
    monkeypatch.setattr(services, "inbound_dispatch", lambda message_id: None)
    listener = start_listener()
    acks: dict[str, str] = {}
    failures: list[BaseException] = []
    lock = threading.Lock()

    def sender(n: int) -> None:
        try:
            with listener.connect() as sock:
                for i in range(10):
                    control = f"C-{n:02d}-{i:02d}"
                    ack = listener.send(adt(control, mrn=f"M{n}").encode(), sock)
                    with lock:
                        acks[control] = msa(ack)[1] + "|" + msa(ack)[2]
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures
    assert len(acks) == 200
    assert all(value == f"AA|{control}" for control, value in acks.items())
    assert InboundMessage.objects.count() == 200
    assert set(InboundMessage.objects.values_list("control_id", flat=True)) == set(acks)


def test_unknown_sender_is_refused_when_known_senders_are_required(start_listener, partner):
    listener = start_listener(HUIZHEN_MLLP_REQUIRE_KNOWN_SENDER=True)
    ack = listener.send(adt("C-UNK-1", sender=("ROGUE", "NOWHERE")).encode())
    assert msa(ack)[1] == "AR"
    assert not InboundMessage.objects.exists()
    assert msa(listener.send(adt("C-KNOWN-1").encode()))[1] == "AA"


def test_enhanced_mode_sends_a_commit_ack_and_stores_the_application_ack(start_listener, partner):
    listener = start_listener()
    ack = listener.send(adt("C-ENH-1", accept_ack="AL", app_ack="AL", mrn="ENH").encode())
    assert msa(ack)[1:3] == ["CA", "C-ENH-1"]
    assert wait_for(lambda: InboundMessage.objects.filter(status=InboundStatus.PROCESSED).exists())
    app_ack = bytes(InboundMessage.objects.get().application_ack)
    assert msa(app_ack)[1:3] == ["AA", "C-ENH-1"]


def test_enhanced_mode_ne_sends_no_commit_ack(start_listener, partner):
    listener = start_listener()
    with listener.connect() as sock:
        sock.sendall(frame(adt("C-NE-1", accept_ack="NE", app_ack="NE").encode()))
        sock.settimeout(1.0)
        with pytest.raises(socket.timeout):
            sock.recv(100)
    assert InboundMessage.objects.filter(control_id="C-NE-1").exists()


def test_database_failure_answers_ar_never_aa(start_listener, partner, monkeypatch):
    def broken(**kwargs):
        from django.db import OperationalError

        raise OperationalError("database is down")

    monkeypatch.setattr(services, "inbound_receive", broken)
    listener = start_listener()
    ack = listener.send(adt("C-DOWN-1").encode())
    assert msa(ack)[1:3] == ["AR", "C-DOWN-1"]
