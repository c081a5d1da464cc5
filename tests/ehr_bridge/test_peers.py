"""Real peers against the listener, a malformed corpus, and the worker's parser."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient

from ehr_bridge import builders, mllp, parse
from ehr_bridge.models import InboundMessage, InboundStatus
from registry.models import Patient, PatientIdentifier
from tests.ehr_bridge.conftest import adt, err, frame, msa, read_frame, wait_for
from tests.ehr_bridge.samples import realistic_adt

pytestmark = pytest.mark.django_db(transaction=True)
MLLP_SEND = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "mllp_send"


def test_python_hl7_mllp_send_cli_delivers_a_file_of_messages(start_listener, partner, tmp_path):
    listener = start_listener()
    batch = tmp_path / "adt.hl7"
    batch.write_bytes(
        b"".join(frame(realistic_adt(n, control_prefix="CLI").encode()) for n in range(3))
    )
    result = subprocess.run(
        [str(MLLP_SEND), "--port", str(listener.port), "--file", str(batch), listener.host],
        capture_output=True,
        timeout=60,
        check=True,
    )
    acks = [line for line in result.stdout.split(b"\n") if b"MSA|" in line]
    assert len(acks) == 3 and all(b"MSA|AA|CLI" in a for a in acks)
    assert wait_for(
        lambda: InboundMessage.objects.filter(status=InboundStatus.PROCESSED).count() == 3
    )
    names = set(Patient.objects.values_list("name", flat=True))
    assert names == {"欧阳小明", "李秀兰", "张建国"}


def test_hl7apy_built_message_sent_with_the_python_hl7_client(start_listener, partner):
    # hl7apy 1.3.5 ships an MLLP server but no client: its message goes over python-hl7's.
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.core import Message
    from hl7apy.parser import parse_segment

    message = Message("ADT_A01", version="2.5", validation_level=VALIDATION_LEVEL.TOLERANT)
    message.msh.msh_3 = "DEMO_HIS"
    message.msh.msh_4 = "COUNTY_HOSP"
    message.msh.msh_9 = "ADT^A04^ADT_A01"
    message.msh.msh_10 = "HLAPY-1"
    message.msh.msh_11 = "P"
    message.msh.msh_12 = "2.5"
    message.msh.msh_18 = "UNICODE UTF-8"
    pid = parse_segment("PID|1||APY1^^^COUNTY_HOSP^MR||诸葛^亮^^^^^L||19600101|M", version="2.5")
    text = message.msh.to_er7() + "\r" + pid.to_er7() + "\r"
    listener = start_listener()
    with MLLPClient(listener.host, listener.port, encoding="utf-8") as client:
        ack = client.send_message(text)
        assert msa(ack[1:-2])[1:3] == ["AA", "HLAPY-1"]
        # the same connection carries a second message (hl7apy's own server closes it)
        ack = client.send_message(realistic_adt(7, control_prefix="HLAPY-").encode())
        assert msa(ack[1:-2])[1] == "AA"
    assert wait_for(lambda: PatientIdentifier.objects.filter(value="APY1").exists())
    assert PatientIdentifier.objects.get(value="APY1").patient.name == "诸葛亮"


GOOD = adt("MAL-OK").encode()
CORPUS = {
    "no MSH": (b"PID|1||X^^^A^MR||Wang^Xiaoming\r", "AR", "100^"),
    "wrong field separator": (GOOD.replace(b"|", b"#", 1).replace(b"MSH#", b"MSH1"), "AR", "100^"),
    "unknown type": (
        b"MSH|^~\\&|DEMO_HIS|COUNTY_HOSP|||20240301||ZZZ^Z01|MAL-3|P|2.5\rPID|1||X\r",
        "AR",
        "200^",
    ),
    "invalid encoding": (adt("MAL-4", charset="UNICODE UTF-8").encode("gb18030"), "AE", "102^"),
    "garbage bytes": (bytes(range(0x80, 0x100)) * 4, "AR", "100^"),
    "binary in a message": (GOOD.replace(b"PV1|1|O", b"PV1|1|\x00\x01"), "AR", "102^"),
    "cut-off MSH": (b"MSH|^~\\&|DEMO_HIS|COUNTY_H", "AR", "101^"),
    "missing PID": (GOOD.split(b"\rPID")[0] + b"\r", "AE", "100^"),
}


def test_a_malformed_corpus_gets_ar_or_ae_on_one_connection_that_stays_usable(
    start_listener, partner
):
    listener = start_listener(HUIZHEN_MLLP_MAX_MESSAGE_BYTES=8192)
    sock = listener.connect()
    try:
        for name, (payload, code, error) in CORPUS.items():
            ack = listener.send(payload, sock)
            assert msa(ack, "latin-1")[1] == code, name
            assert error in err(ack, "latin-1"), (name, err(ack, "latin-1"))
        # a frame cut off by the start of the next one
        sock.sendall(b"\x0b" + GOOD[:60] + frame(adt("MAL-NEXT").encode()))
        assert msa(read_frame(sock), "latin-1")[1] == "AR"
        assert msa(read_frame(sock))[1:3] == ["AA", "MAL-NEXT"]
        # bytes outside any frame are ignored
        sock.sendall(b"noise between frames\r\n")
        assert msa(listener.send(GOOD, sock))[1:3] == ["AA", "MAL-OK"]
    finally:
        sock.close()
    # oversized: refused, and only that connection is closed
    big = listener.connect()
    big.sendall(frame(GOOD + b"NTE|1||" + b"x" * 9000 + b"\r"))
    assert msa(read_frame(big), "latin-1")[1] == "AR"
    assert read_frame(big, timeout=5) == b""
    big.close()
    assert msa(listener.send(adt("MAL-LAST").encode()))[1] == "AA"
    # nothing half-stored: exactly the three good messages
    stored = set(InboundMessage.objects.values_list("control_id", flat=True))
    assert stored == {"MAL-NEXT", "MAL-OK", "MAL-LAST"}


# --- the worker's parser ---------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 17, 34, 101])
@pytest.mark.django_db
def test_python_hl7_reads_every_field_as_the_listener_split_does(n):
    text = realistic_adt(n)
    checked = mllp.check(text.encode())
    parsed = parse.parse(checked.text)
    assert [s.name for s in parsed.segments] == [s.name for s in checked.segments]
    for mine, theirs in zip(parsed.segments, checked.segments, strict=True):
        assert mine.fields == theirs.fields
    assert str(hl7.parse(checked.text)).rstrip("\r") == checked.text.rstrip("\r")


@pytest.mark.django_db
def test_the_parser_tolerates_real_world_deviations():
    base = realistic_adt(5)
    trailing = base.replace("PV1|1|O", "PV1|1|O||||||||")
    no_optional = "\r".join(s for s in base.split("\r") if s[:3] not in ("NK1", "PV2", "OBX"))
    zsegment = base + "ZXY|1|自定义|||\r"
    other_separators = base.replace("^", "$").replace("MSH|$~\\&", "MSH|$~\\&")
    for text in (trailing, no_optional, zsegment, other_separators):
        pid = parse.parse(text).first("PID")
        assert pid is not None and pid.component(3) == "H0000005"
        family = pid.component(5)
        assert family and len(parse.describe(text)) == len([s for s in text.split("\r") if s])


@pytest.mark.django_db
def test_not_hl7_is_refused_by_the_parser():
    with pytest.raises(mllp.MessageRejected):
        parse.parse("PID|1||X\r")


def test_builders_output_is_accepted_by_the_listener(start_listener, partner):
    env = builders.Envelope("HUIZHEN", "HUIZHEN", "ORU-IN-1")
    patient = builders.PatientData((builders.Identifier("ORU1", "COUNTY_HOSP"),), "王小明")
    report = builders.ConsultReport(
        "R",
        "O",
        "ECG",
        "心电图",
        datetime(2024, 3, 1),
        datetime(2024, 3, 1),
        "D",
        "李",
        (builders.ReportSection("结论", "正常"),),
    )
    text = builders.build_oru_r01(env, patient, report, now=datetime(2024, 3, 1))
    text = text.replace("MSH|^~\\&|HUIZHEN|HUIZHEN", "MSH|^~\\&|DEMO_HIS|COUNTY_HOSP", 1)
    listener = start_listener()
    assert msa(listener.send(text.encode()))[1:3] == ["AA", "ORU-IN-1"]
