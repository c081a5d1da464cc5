"""Readers: SCP-ECG per EN 1064 and with vendor deviations, aECG, CSV and JSON, and their
round trip to a DICOM 12-lead ECG waveform with leads and sample values preserved."""

from __future__ import annotations

import struct
from datetime import date, datetime

import numpy as np
import pytest

from imaging.ecg.aecg import read_aecg
from imaging.ecg.csvjson import read_csv, read_json
from imaging.ecg.scp_ecg import read_scp
from imaging.ecg.signal import EcgFormatError, PatientData
from imaging.ecg.synthetic import synthetic_ecg
from imaging.ecg.to_dicom import TWELVE_LEAD_ECG, DicomIds, build_ecg_dicom, read_ecg_dicom
from tests.ecg.ecg_factory import (
    EIGHT,
    default_code_prefixes,
    write_aecg,
    write_csv,
    write_json,
    write_scp,
)

IDS = DicomIds(
    "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2", "1.2.826.0.1.3680043.8.498.3"
)


@pytest.fixture(scope="module")
def ecg():
    signal, truth = synthetic_ecg(
        heart_rate=72,
        resolution_uv=5.0,
        patient=PatientData(
            name="王^秀英", patient_id="QS123", birth_date=date(1956, 3, 14), sex="F"
        ),
    )
    signal.acquired_at = datetime(2024, 6, 3, 9, 30, 5)
    return signal


def assert_same_leads(out, signal, leads=EIGHT):
    for name in leads:
        np.testing.assert_array_equal(out.leads[name], signal.leads[name])


def test_the_default_huffman_table_is_the_standard_one():
    assert default_code_prefixes()[:5] == ["0", "100", "101", "1100", "1101"]
    assert default_code_prefixes()[-2:] == ["1111111110", "1111111111"]


@pytest.mark.parametrize(
    "options",
    [
        {"huffman": True, "difference": 2},
        {"huffman": True, "difference": 1},
        {"huffman": False, "difference": 0},
        {"huffman": True, "difference": 2, "reference_beats": True},
    ],
    ids=["huffman-2nd-diff", "huffman-1st-diff", "plain", "reference-beats"],
)
def test_an_scp_ecg_record_with_sections_0_to_6_is_read(ecg, options):
    raw = write_scp(ecg, **options)
    out = read_scp(raw)
    assert out.sample_rate == 500 and out.resolution_uv == 5.0
    assert_same_leads(out, ecg)
    # III, aVR, aVL, aVF derived from I and II (Einthoven, Goldberger).
    np.testing.assert_allclose(out.leads["III"], ecg.leads["II"] - ecg.leads["I"])
    np.testing.assert_allclose(out.leads["aVF"], ecg.leads["II"] - ecg.leads["I"] / 2)
    assert out.patient == ecg.patient
    assert out.acquired_at == ecg.acquired_at
    assert out.device == "Huizhen Test cart"
    assert [w for w in out.warnings if not w.startswith("derived")] == []


@pytest.mark.parametrize(
    ("options", "warning"),
    [
        ({"huffman": False, "interleaved": True}, "interleaved"),
        ({"huffman_declared_but_plain": True}, "declared Huffman-coded"),
        ({"zero_based_index": True, "bad_crc": True}, "counted from 0"),
        ({"huffman": False, "wrong_lead_lengths": True, "interleaved": True}, "byte counts"),
        ({"encoding": "gb18030"}, None),
    ],
    ids=[
        "interleaved",
        "declared-huffman-plain",
        "zero-based-index-bad-crc",
        "bad-lengths",
        "gb18030",
    ],
)
def test_an_scp_ecg_record_with_a_vendor_deviation_is_read(ecg, options, warning):
    out = read_scp(write_scp(ecg, **options))
    assert_same_leads(out, ecg)
    assert out.patient.name == "王^秀英"
    if warning:
        assert any(warning in w for w in out.warnings), out.warnings


def test_what_cannot_be_read_is_refused_with_a_reason(ecg):
    raw = bytearray(write_scp(ecg, huffman=False))
    with pytest.raises(EcgFormatError, match="too short"):
        read_scp(b"\0" * 10)
    with pytest.raises(EcgFormatError, match="section 0"):
        read_scp(b"\0\0" + struct.pack("<I", 40) + b"\0\0\x05\0" + b"\0" * 40)
    # Bimodal compression: the byte after the difference flag in section 6.
    s6 = raw.rfind(struct.pack("<HHBB", 5000, 2000, 2, 0))
    raw[s6 + 5] = 1
    with pytest.raises(EcgFormatError, match="bimodal"):
        read_scp(bytes(raw))
    with pytest.raises(EcgFormatError, match="truncated|bytes"):
        read_scp(write_scp(ecg, huffman=False, wrong_lead_lengths=True)[:-5000])


def test_an_aecg_file_round_trips_to_a_dicom_waveform(ecg):
    signal = read_aecg(write_aecg(ecg))
    assert signal.patient.patient_id == "QS123" and signal.patient.sex == "F"
    assert signal.patient.birth_date == date(1956, 3, 14)
    back = read_ecg_dicom(build_ecg_dicom(signal, IDS))
    assert list(back.leads)[:12] == list(ecg.leads)
    assert back.sample_rate == 500
    for name in ecg.leads:
        np.testing.assert_array_equal(back.leads[name], ecg.leads[name])


@pytest.mark.parametrize("writer,reader", [(write_csv, read_csv), (write_json, read_json)])
def test_csv_and_json_round_trip_to_a_dicom_waveform(ecg, writer, reader):
    import pydicom

    raw = build_ecg_dicom(reader(writer(ecg)), IDS)
    ds = pydicom.dcmread(__import__("io").BytesIO(raw))
    assert ds.SOPClassUID == TWELVE_LEAD_ECG and ds.Modality == "ECG"
    group = ds.WaveformSequence[0]
    assert group.NumberOfWaveformChannels == 12 and group.NumberOfWaveformSamples == 5000
    assert float(group.ChannelDefinitionSequence[0].ChannelSensitivity) == 5.0
    back = read_ecg_dicom(raw)
    for name in ecg.leads:
        np.testing.assert_array_equal(back.leads[name], ecg.leads[name])


def test_csv_in_millivolts_and_bad_input_are_handled(ecg):
    out = read_csv(write_csv(ecg, units="mV"))
    np.testing.assert_allclose(out.leads["V3"], ecg.leads["V3"], atol=1e-6)
    with pytest.raises(EcgFormatError, match="sample_rate_hz"):
        read_csv(b"I,II\n1,2\n3,4\n")
    with pytest.raises(EcgFormatError, match="huizhen-ecg"):
        read_json(b'{"leads": {}}')
    with pytest.raises(EcgFormatError, match="DTD"):
        read_aecg(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>')
