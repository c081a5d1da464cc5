"""Pure protocol functions: framing, charsets, checks, acknowledgements, ADT mapping."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ehr_bridge import adt, mllp, parse
from registry.feeds import CLEAR
from tests.ehr_bridge.conftest import adt as adt_message

NOW = datetime(2024, 3, 1, 8, 30, tzinfo=UTC)


def test_frames_are_split_across_reads_and_junk_between_frames_is_discarded():
    parser = mllp.FrameParser(max_size=100)
    assert parser.feed(b"noise\x0bMSH|a") == []
    assert parser.in_frame
    assert parser.feed(b"bc\x1c") == [mllp.Frame(b"MSH|abc")]
    assert parser.feed(b"\r\x0bone\x1c\r\x0btwo\x1c\r") == [mllp.Frame(b"one"), mllp.Frame(b"two")]
    assert not parser.in_frame
    assert parser.discarded == 5


def test_a_start_block_inside_a_frame_reports_the_cut_off_frame():
    parser = mllp.FrameParser(max_size=100)
    assert parser.feed(b"\x0bMSH|cut\x0bMSH|whole\x1c\r") == [
        mllp.TruncatedFrame(b"MSH|cut"),
        mllp.Frame(b"MSH|whole"),
    ]


def test_a_frame_over_the_limit_raises_as_soon_as_it_passes_it():
    parser = mllp.FrameParser(max_size=10)
    parser.feed(b"\x0b12345")
    with pytest.raises(mllp.FrameTooLarge) as exc:
        parser.feed(b"678901")
    assert exc.value.head.startswith(b"12345")
    assert not parser.in_frame
    assert parser.feed(b"\x0bok\x1c\r") == [mllp.Frame(b"ok")]


def test_frame_wraps_in_start_and_end_blocks():
    assert mllp.frame(b"MSH") == b"\x0bMSH\x1c\r"


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("GB 18030-2000", "gb18030"),
        ("GB18030", "gb18030"),
        ("GBK", "gbk"),
        ("GB2312", "gbk"),
        ("CHINESE", "gbk"),
        ("UNICODE UTF-8", "utf-8"),
        ("8859/1", "latin-1"),
        ("ASCII", "ascii"),
        ("", "ascii"),
    ],
)
def test_declared_charsets_decode_strictly(label, codec):
    if codec == "ascii":
        names = {"family": "Wang", "given": "Xiaoming", "address": "1 Main St^^Qingshan^HN"}
    elif codec == "latin-1":
        names = {"family": "Müller", "given": "Zoë", "address": "Hauptstraße 1^^Köln"}
    else:
        names = {}
    text = adt_message("X", charset=label, **names)
    checked = mllp.check(text.encode(codec))
    assert checked.codec == codec
    assert checked.text == text


def test_gb2312_label_accepts_gbk_only_name_characters():
    text = adt_message("X", charset="GB2312", family="张", given="堃")
    assert "堃" in mllp.check(text.encode("gbk")).text


def test_unknown_charset_is_rejected_with_table_value_error():
    with pytest.raises(mllp.MessageRejected) as exc:
        mllp.check(adt_message("X", charset="EBCDIC").encode())
    assert (exc.value.error.ack_code, exc.value.error.code) == ("AR", "103")


def test_ack_swaps_sender_and_receiver_and_names_the_control_id():
    header = mllp.check(adt_message("CTRL-9").encode()).header
    ack = mllp.build_ack(header, code="AA", now=NOW, control_id="ACK1").decode()
    msh, msa_segment = ack.rstrip("\r").split("\r")
    fields = msh.split("|")
    assert fields[2:6] == ["HUIZHEN", "HUIZHEN", "DEMO_HIS", "COUNTY_HOSP"]
    assert fields[8:12] == ["ACK^A04^ACK", "ACK1", "P", "2.5"]
    assert fields[17] == "UNICODE UTF-8"
    assert msa_segment == "MSA|AA|CTRL-9"


def test_error_ack_in_v25_layout_escapes_separators():
    header = mllp.check(adt_message("C1").encode()).header
    error = mllp.Hl7Error("AE", "101", "PID-3 | missing", "PID", 1, 3)
    ack = mllp.build_ack(header, code="AE", error=error, now=NOW).decode()
    assert "MSA|AE|C1|PID-3 \\F\\ missing" in ack
    assert "ERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3 \\F\\ missing" in ack


def test_error_ack_in_v23_layout_uses_err_1():
    header = mllp.check(adt_message("C1", version="2.3").encode()).header
    error = mllp.Hl7Error("AR", "207", "down")
    ack = mllp.build_ack(header, code="AR", error=error, now=NOW).decode()
    assert "ACK^A04|" in ack and "MSA|AR|C1|down" in ack
    assert "ERR|^^^207&Application internal error&HL70357" in ack


def test_ack_is_encoded_in_the_messages_charset():
    header = mllp.check(adt_message("C1", charset="GB 18030-2000").encode("gb18030")).header
    error = mllp.Hl7Error("AE", "207", "病人不存在")
    ack = mllp.build_ack(header, code="AE", error=error, now=NOW, codec="gb18030")
    assert "病人不存在".encode("gb18030") in ack


def test_enhanced_mode_turns_codes_into_commit_codes_and_follows_msh15():
    header = mllp.check(adt_message("C1", accept_ack="ER", app_ack="AL").encode()).header
    assert mllp.enhanced_mode(header)
    assert "MSA|CA|C1" in mllp.build_ack(header, code="AA", now=NOW).decode()
    assert not mllp.should_send("ER", "AA") and mllp.should_send("ER", "AE")
    assert mllp.should_send("SU", "CA") and not mllp.should_send("SU", "CR")
    assert not mllp.should_send("NE", "CR") and mllp.should_send("AL", "CE")


def test_unescape_and_escape_round_trip():
    value = "a|b^c&d~e\\f"
    assert mllp.unescape(mllp.escape(value)) == value
    assert mllp.unescape("\\X41\\B\\.br\\C") == "AB C"


def test_patient_key_uses_pid3_with_its_assigning_authority():
    checked = mllp.check(adt_message("C1", mrn="H77").encode())
    assert mllp.patient_key(checked) == "COUNTY_HOSP|H77"


def test_adt_mapping_reads_chinese_his_conventions():
    text = (
        "MSH|^~\\&|HIS|HOSP|||20240301||ADT^A08|C1|P|2.4||||||UNICODE UTF-8\r"
        "PID|1||H1^^^^MR~M2^^^OTHER^INS~X9^^^^NI||张^三^^^^^A~张^小三^^^^^L||19800101|F"
        "|||^^长沙市^湖南省^^^^^430102||0731-8888888~+86 139 0000 1234^PRN^CP|||||||"
        "430102198001010026\r"
    )
    pid = parse.parse(mllp.check(text.encode()).text).first("PID")
    data = adt.feed_patient(pid, authority="HOSP")
    assert data.identifiers == (
        adt.FeedIdentifier("HOSP", "MR", "H1"),
        adt.FeedIdentifier("OTHER", "INS", "M2"),
        adt.FeedIdentifier("HOSP", "OTHER", "X9"),
    )
    assert data.id_number == "430102198001010026"
    assert data.name == "张小三"
    assert (data.sex, data.birth_date) == ("female", date(1980, 1, 1))
    assert data.mobile == "+86 139 0000 1234"
    assert data.address == "湖南省长沙市" and data.address_division_code == "430102"


def test_adt_mapping_treats_hl7_null_as_clear_and_empty_as_keep():
    text = 'MSH|^~\\&|HIS|HOSP|||20240301||ADT^A08|C1|P|2.5\rPID|1||H1^^^HOSP^MR||||||||""||""\r'
    pid = parse.parse(mllp.check(text.encode()).text).first("PID")
    data = adt.feed_patient(pid, authority="HOSP")
    assert data.name is None and data.birth_date is None and data.sex is None
    assert data.mobile is CLEAR and data.address is CLEAR


def test_western_names_keep_a_space():
    text = "MSH|^~\\&|HIS|HOSP|||20240301||ADT^A04|C1|P|2.5\rPID|1||H1||Smith^John||19800101|M\r"
    pid = parse.parse(mllp.check(text.encode()).text).first("PID")
    assert adt.feed_patient(pid, authority="HOSP").name == "Smith John"


@pytest.mark.parametrize(
    ("declared", "family", "given"),
    [("GB 18030-2000", "张", "伟"), ("GBK", "刘", "洋"), ("8859/1", "Mü", "ller")],
)
def test_utf8_bytes_that_happen_to_decode_in_the_declared_set_are_refused(declared, family, given):
    # Given UTF-8 bytes that the declared set would decode without error (as mojibake)
    text = adt_message("X", charset=declared, family=family, given=given, address="1 Main St")
    raw = text.encode("utf-8")
    raw.decode(mllp.codec_for(declared))  # no error: strict decoding alone would accept it
    # Then the check refuses them instead of storing mojibake
    with pytest.raises(mllp.MessageRejected) as exc:
        mllp.check(raw)
    assert (exc.value.error.ack_code, exc.value.error.code) == ("AE", "102")
