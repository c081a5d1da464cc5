"""Writers of ECG files for the tests: SCP-ECG (sections 0–6 per EN 1064, with switches for
common vendor deviations), HL7 aECG XML, and the simple CSV and JSON formats."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
from scipy.signal import find_peaks

from imaging.ecg.scp_ecg import LEAD_IDS, _reverse, crc_ccitt
from imaging.ecg.signal import STANDARD_LEADS, EcgSignal

EIGHT = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


# --- SCP-ECG ----------------------------------------------------------------------------------


def _huffman_default(values: np.ndarray) -> bytes:
    """Encode with the default Huffman table (0, ±1..±8, 8-bit and 16-bit escapes)."""
    parts = []
    for v in values.tolist():
        if v == 0:
            parts.append("0")
        elif -8 <= v <= 8:
            n = abs(v)
            parts.append("1" * n + "0" + ("0" if v > 0 else "1"))
        elif -128 <= v <= 127:
            parts.append("1111111110" + format(v & 0xFF, "08b"))
        else:
            if not -32768 <= v <= 32767:
                raise ValueError("value does not fit 16 bits")
            parts.append("1111111111" + format(v & 0xFFFF, "016b"))
    bits = "".join(parts)
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))


def _difference(values: np.ndarray, mode: int) -> np.ndarray:
    if mode == 0:
        return values.copy()
    if mode == 1:
        return np.concatenate([[values[0]], np.diff(values)])
    out = values.copy()
    out[2:] = values[2:] - 2 * values[1:-1] + values[:-2]
    return out


def _section(ident: int, body: bytes, *, version: int = 20, bad_crc: bool = False) -> bytes:
    body = body + b"\0" * (len(body) % 2)
    length = 16 + len(body)
    reserved = b"SCPECG" if ident == 0 else b"\0" * 6
    head = struct.pack("<HI", ident, length) + bytes([version, version]) + reserved
    crc = crc_ccitt(head + body) ^ (0xFFFF if bad_crc else 0)
    return struct.pack("<H", crc) + head + body


def _tag(tag: int, value: bytes) -> bytes:
    return struct.pack("<BH", tag, len(value)) + value


def _header_section(signal: EcgSignal, encoding: str) -> bytes:
    p = signal.patient
    last, _, first = p.name.partition("^")
    out = _tag(0, last.encode(encoding) + b"\0")
    if first:
        out += _tag(1, first.encode(encoding) + b"\0")
    out += _tag(2, p.patient_id.encode() + b"\0")
    if p.birth_date:
        out += _tag(5, struct.pack("<HBB", p.birth_date.year, p.birth_date.month, p.birth_date.day))
    out += _tag(8, bytes([{"M": 1, "F": 2}.get(p.sex, 0)]))
    machine = b"\0" * 36 + b"Huizhen\0Test cart\0"
    out += _tag(14, machine)
    if signal.acquired_at:
        a = signal.acquired_at
        out += _tag(25, struct.pack("<HBB", a.year, a.month, a.day))
        out += _tag(26, bytes([a.hour, a.minute, a.second]))
    return out + _tag(255, b"")


def write_scp(
    signal: EcgSignal,
    *,
    leads: tuple[str, ...] = EIGHT,
    avm_nv: int = 5000,
    huffman: bool = True,
    difference: int = 2,
    reference_beats: bool = False,
    interleaved: bool = False,
    zero_based_index: bool = False,
    bad_crc: bool = False,
    huffman_declared_but_plain: bool = False,
    wrong_lead_lengths: bool = False,
    encoding: str = "utf-8",
) -> bytes:
    """An SCP-ECG record of ``signal`` (µV quantised to ``avm_nv``). The switches after
    ``reference_beats`` produce files as some carts write them, against the standard."""
    n = signal.n_samples
    fs = signal.sample_rate
    ints = {
        name: np.round(np.asarray(signal.leads[name]) * 1000 / avm_nv).astype(np.int64)
        for name in leads
    }
    s3 = bytes([len(leads), (0x01 if reference_beats else 0) | 0x04 | (len(leads) << 3)])
    for name in leads:
        s3 += struct.pack("<IIB", 1, n, LEAD_IDS[name])
    sections: dict[int, bytes] = {1: _header_section(signal, encoding), 3: s3}
    if huffman or huffman_declared_but_plain:
        sections[2] = struct.pack("<H", 19999)
    interval = int(round(1e6 / fs))

    residual = {k: v.copy() for k, v in ints.items()}
    if reference_beats:
        ref_len, fc = int(0.6 * fs), int(0.25 * fs)
        peaks, _ = find_peaks(np.abs(ints["II"]), distance=int(0.3 * fs))
        top = np.abs(ints["II"][peaks])
        peaks = peaks[top > 0.6 * top.max()]
        peaks = [p for p in peaks if p - fc >= 0 and p - fc + ref_len <= n]
        refs = {
            k: np.median(np.stack([v[p - fc : p - fc + ref_len] for p in peaks]), axis=0).astype(
                np.int64
            )
            for k, v in ints.items()
        }
        s4 = struct.pack("<HHH", ref_len, fc + 1, len(peaks))
        zones = []
        for p in peaks:
            sb, se = p - fc + int(0.15 * fs) + 1, p - fc + int(0.45 * fs)  # 1-based
            s4 += struct.pack("<HIII", 0, sb, p + 1, se)
            zones.append((sb, se, p + 1))
            for k in residual:
                for s in range(sb, se + 1):
                    residual[k][s - 1] -= refs[k][s - (p + 1) + fc]
        for _ in peaks:
            s4 += struct.pack("<II", 0, 0)
        sections[4] = s4
        ref_blocks = [_difference(refs[k], difference) for k in leads]
        ref_data = [
            _huffman_default(b) if huffman else b.astype("<i2").tobytes() for b in ref_blocks
        ]
        s5 = struct.pack("<HHBB", avm_nv, interval, difference, 0)
        s5 += b"".join(struct.pack("<H", len(d)) for d in ref_data) + b"".join(ref_data)
        sections[5] = s5

    blocks = [_difference(residual[k], difference) for k in leads]
    if huffman and not huffman_declared_but_plain:
        data = [_huffman_default(b) for b in blocks]
        payload = b"".join(data)
        lengths = [len(d) for d in data]
    else:
        matrix = np.stack(blocks).astype("<i2")
        payload = (matrix.T if interleaved else matrix).tobytes()
        lengths = [0 if wrong_lead_lengths else 2 * n] * len(leads)
    s6 = struct.pack("<HHBB", avm_nv, interval, difference, 0)
    s6 += b"".join(struct.pack("<H", x) for x in lengths) + payload
    sections[6] = s6

    # Section 0 points at sections 0–11; absent ones have length 0 and index 0.
    order = [1, 2, 3, 4, 5, 6]
    encoded = {k: _section(k, v, bad_crc=bad_crc and k == 6) for k, v in sections.items()}
    s0_len = 16 + 12 * 10
    position = 6 + s0_len + 1  # 1-based index of the first byte after section 0
    pointers = struct.pack("<HII", 0, s0_len, 7 - (1 if zero_based_index else 0))
    index = {}
    for k in order:
        if k in encoded:
            index[k] = position
            position += len(encoded[k])
    for k in range(1, 12):
        if k in encoded:
            at = index[k] - (1 if zero_based_index else 0)
            pointers += struct.pack("<HII", k, len(encoded[k]), at)
        else:
            pointers += struct.pack("<HII", k, 0, 0)
    body = _section(0, pointers) + b"".join(encoded[k] for k in order if k in encoded)
    record = struct.pack("<I", 6 + len(body)) + body
    crc = crc_ccitt(record) ^ (0xFFFF if bad_crc else 0)
    return struct.pack("<H", crc) + record


# Table-driven check of the default Huffman code table against its bit-reversed storage.
def default_code_prefixes() -> list[str]:
    from imaging.ecg.scp_ecg import DEFAULT_TABLE

    return [
        format(_reverse(c.base_code, c.prefix_bits), f"0{c.prefix_bits}b") for c in DEFAULT_TABLE
    ]


# --- HL7 aECG ---------------------------------------------------------------------------------

_MDC = {name: f"MDC_ECG_LEAD_{name.upper()}" for name in STANDARD_LEADS}


def write_aecg(signal: EcgSignal, *, scale_uv: float = 5.0, leads=STANDARD_LEADS) -> bytes:
    p = signal.patient
    family, _, given = p.name.partition("^")
    when = (signal.acquired_at or __import__("datetime").datetime(2024, 6, 3, 9, 30)).strftime(
        "%Y%m%d%H%M%S"
    )
    seqs = [
        f"""<component><sequence><code code="TIME_ABSOLUTE" codeSystem="2.16.840.1.113883.5.4"/>
<value xsi:type="GLIST_TS"><head value="{when}"/>
<increment value="{1 / signal.sample_rate:.6g}" unit="s"/></value>
</sequence></component>"""
    ]
    for name in leads:
        digits = np.round(np.asarray(signal.leads[name]) / scale_uv).astype(int)
        text = " ".join(map(str, digits.tolist()))
        seqs.append(
            f"""<component><sequence><code code="{_MDC[name]}" codeSystem="2.16.840.1.113883.6.24"/>
<value xsi:type="SLIST_PQ"><origin value="0" unit="uV"/>
<scale value="{scale_uv:g}" unit="uV"/><digits>{text}</digits></value>
</sequence></component>"""
        )
    birth = p.birth_date.strftime("%Y%m%d") if p.birth_date else ""
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<AnnotatedECG xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<id root="1.2.3.4"/><code code="93000" codeSystem="2.16.840.1.113883.6.12"/>
<effectiveTime><low value="{when}"/><high value="{when}"/></effectiveTime>
<componentOf><timepointEvent><componentOf><subjectAssignment><subject><trialSubject>
<id root="1.2.3" extension="{p.patient_id}"/>
<subjectDemographicPerson><name><family>{family}</family><given>{given}</given></name>
<administrativeGenderCode code="{p.sex}" codeSystem="2.16.840.1.113883.5.1"/>
<birthTime value="{birth}"/></subjectDemographicPerson>
</trialSubject></subject></subjectAssignment></componentOf></timepointEvent></componentOf>
<component><series><code code="RHYTHM" codeSystem="2.16.840.1.113883.5.4"/>
<effectiveTime><low value="{when}"/></effectiveTime>
<component><sequenceSet>{"".join(seqs)}</sequenceSet></component>
</series></component>
</AnnotatedECG>"""
    return xml.encode("utf-8")


# --- CSV and JSON -----------------------------------------------------------------------------


def write_csv(signal: EcgSignal, *, leads=STANDARD_LEADS, units: str = "uV") -> bytes:
    factor = 1000.0 if units == "mV" else 1.0
    out = io.StringIO()
    out.write("# huizhen-ecg-csv: 1\n")
    out.write(f"# sample_rate_hz: {signal.sample_rate:g}\n# units: {units}\n")
    if signal.acquired_at:
        out.write(f"# acquired_at: {signal.acquired_at.isoformat()}\n")
    out.write(",".join(leads) + "\n")
    matrix = np.stack([np.asarray(signal.leads[n]) / factor for n in leads]).T
    for row in matrix:
        out.write(",".join(f"{v:g}" for v in row) + "\n")
    return out.getvalue().encode()


def write_json(signal: EcgSignal, *, leads=STANDARD_LEADS) -> bytes:
    doc = {
        "format": "huizhen-ecg",
        "version": 1,
        "sample_rate_hz": signal.sample_rate,
        "units": "uV",
        "leads": {n: [float(v) for v in signal.leads[n]] for n in leads},
    }
    if signal.acquired_at:
        doc["acquired_at"] = signal.acquired_at.isoformat()
    return json.dumps(doc).encode()
