"""Reader of SCP-ECG files (EN 1064, ISO 11073-91064), the format most ECG carts write.

Sections read: 0 (pointers), 1 (patient and acquisition tags), 2 (Huffman tables: the
default table when the table count is 19999, or tables stored in the file), 3 (lead
definition), 4 (QRS locations), 5 (reference beats) and 6 (rhythm data), with first or
second differences and reference-beat subtraction; bimodal compression is refused.

Tolerated vendor deviations (each noted in ``EcgSignal.warnings``): wrong CRCs, section
indexes counted from 0 instead of 1, rhythm data declared Huffman-coded but stored as plain
16-bit samples, missing or wrong per-lead byte counts for plain samples, samples interleaved
across leads instead of stored lead after lead, and only the eight independent leads stored
(III, aVR, aVL and aVF are then derived).
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from .signal import EcgFormatError, EcgSignal, PatientData, complete_limb_leads, lead_name

DEFAULT_TABLE_MARK = 19999
MAX_BYTES = 20 * 1024 * 1024

# Lead identifiers of section 3 (EN 1064 table of lead codes; the common ones).
LEAD_CODES = {
    1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6", 9: "V7",
    10: "V2R", 11: "V3R", 12: "V4R", 13: "V5R", 14: "V6R", 15: "V7R", 16: "X", 17: "Y",
    18: "Z", 61: "III", 62: "aVR", 63: "aVL", 64: "aVF", 65: "-aVR", 66: "V8", 67: "V9",
}  # fmt: skip
LEAD_IDS = {name: code for code, name in LEAD_CODES.items()}


@dataclass(frozen=True)
class HuffmanCode:
    prefix_bits: int
    total_bits: int
    mode: int  # 1: a value; 0: switch to table ``base_value``
    base_value: int
    base_code: int  # as stored: the prefix bit-reversed


def _reverse(value: int, bits: int) -> int:
    out = 0
    for _ in range(bits):
        out = (out << 1) | (value & 1)
        value >>= 1
    return out


# The default table (EN 1064 Annex): 0, ±1..±8, then 8-bit and 16-bit escapes.
DEFAULT_TABLE = (
    [HuffmanCode(1, 1, 1, 0, 0)]
    + [
        HuffmanCode(n + 3, n + 3, 1, sign * (n + 1), _reverse(int("1" * (n + 1) + tail, 2), n + 3))
        for n in range(8)
        for sign, tail in ((1, "00"), (-1, "01"))
    ]
    + [
        HuffmanCode(10, 18, 1, 0, _reverse(0b1111111110, 10)),
        HuffmanCode(10, 26, 1, 0, _reverse(0b1111111111, 10)),
    ]
)


def crc_ccitt(data: bytes) -> int:
    """CRC-CCITT (polynomial 0x1021, initial 0xFFFF) as SCP-ECG uses it."""
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass
class _Section:
    ident: int
    body: bytes  # after the 16-byte section header
    version: int


def _u16(b: bytes, o: int) -> int:
    return struct.unpack_from("<H", b, o)[0]


def _i16(b: bytes, o: int) -> int:
    return struct.unpack_from("<h", b, o)[0]


def _u32(b: bytes, o: int) -> int:
    return struct.unpack_from("<I", b, o)[0]


def _sections(raw: bytes, warnings: list[str]) -> dict[int, _Section]:
    if len(raw) < 6 + 16:
        raise EcgFormatError("The file is too short to be an SCP-ECG record.")
    if crc_ccitt(raw[2:]) != _u16(raw, 0):
        warnings.append("record CRC does not match")
    declared = _u32(raw, 2)
    if declared != len(raw):
        warnings.append(f"record length {declared} differs from file size {len(raw)}")
    if _u16(raw, 6 + 2) != 0:
        raise EcgFormatError("Not an SCP-ECG record: section 0 (pointers) is missing.")
    s0_len = _u32(raw, 6 + 4)
    if s0_len < 16 or 6 + s0_len > len(raw):
        raise EcgFormatError("The SCP-ECG pointer section is damaged.")
    pointers = raw[6 + 16 : 6 + s0_len]
    found: dict[int, _Section] = {}
    for o in range(0, len(pointers) - 9, 10):
        ident, length, index = _u16(pointers, o), _u32(pointers, o + 2), _u32(pointers, o + 6)
        if length == 0 or ident in found:
            continue
        start = None
        for candidate, note in ((index - 1, ""), (index, "section indexes counted from 0")):
            if 0 <= candidate and candidate + 16 <= len(raw) and _u16(raw, candidate + 2) == ident:
                start = candidate
                if note and note not in warnings:
                    warnings.append(note)
                break
        if start is None:
            if ident <= 6:
                warnings.append(f"section {ident} not found where its pointer says")
            continue
        length = _u32(raw, start + 4) or length
        end = min(len(raw), start + length)
        section = raw[start:end]
        if len(section) >= 16 and crc_ccitt(section[2:]) != _u16(section, 0):
            warnings.append(f"section {ident} CRC does not match")
        found[ident] = _Section(ident, section[16:], section[8] if len(section) > 8 else 0)
    return found


def _text(value: bytes) -> str:
    value = value.split(b"\0", 1)[0].strip()
    for encoding in ("utf-8", "gb18030"):
        try:
            return value.decode(encoding)
        except UnicodeDecodeError:
            continue
    return value.decode("latin-1")


def _header(body: bytes, signal_patient: PatientData) -> tuple[datetime | None, str]:
    tags: dict[int, bytes] = {}
    o = 0
    while o + 3 <= len(body):
        tag, length = body[o], _u16(body, o + 1)
        if tag == 255:
            break
        tags.setdefault(tag, body[o + 3 : o + 3 + length])
        o += 3 + length
    last, first = _text(tags.get(0, b"")), _text(tags.get(1, b""))
    signal_patient.name = "^".join(p for p in (last, first) if p) if first else last
    signal_patient.patient_id = _text(tags.get(2, b""))
    dob = tags.get(5, b"")
    if len(dob) >= 4 and _u16(dob, 0):
        try:
            signal_patient.birth_date = date(_u16(dob, 0), dob[2], dob[3])
        except ValueError:
            pass
    sex = tags.get(8, b"")
    if sex:
        signal_patient.sex = {1: "M", 2: "F"}.get(sex[0], "")
    acquired = None
    day, clock = tags.get(25, b""), tags.get(26, b"")
    if len(day) >= 4:
        try:
            h, m, s = (clock[0], clock[1], clock[2]) if len(clock) >= 3 else (0, 0, 0)
            acquired = datetime(_u16(day, 0), day[2], day[3], h, m, s)
        except ValueError:
            acquired = None
    device = ""
    machine = tags.get(14, b"")
    if len(machine) > 36:  # fixed part, then manufacturer strings (model name at the end)
        parts = [p for p in machine[36:].split(b"\0") if p.strip()]
        device = " ".join(_text(p) for p in parts)[:64]
    return acquired, device


def _tables(section: _Section | None) -> list[list[HuffmanCode]] | None:
    """None: no Huffman coding (section 2 absent)."""
    if section is None:
        return None
    body = section.body
    count = _u16(body, 0)
    if count == DEFAULT_TABLE_MARK:
        return [DEFAULT_TABLE]
    tables, o = [], 2
    for _ in range(count):
        n = _u16(body, o)
        o += 2
        codes = []
        for _ in range(n):
            if o + 9 > len(body):
                raise EcgFormatError("The SCP-ECG Huffman table section is truncated.")
            p, t, m = body[o], body[o + 1], body[o + 2]
            codes.append(HuffmanCode(p, t, m, _i16(body, o + 3), _u32(body, o + 5)))
            o += 9
        tables.append(codes)
    if not tables:
        raise EcgFormatError("The SCP-ECG Huffman table section holds no table.")
    return tables


def _huffman_decode(
    data: bytes, tables: list[list[HuffmanCode]], count: int
) -> tuple[np.ndarray, int]:
    """Decode ``count`` values; returns them and the number of bits used."""
    bits = "".join(f"{b:08b}" for b in data)
    lookups = []
    for table in tables:
        by_len: dict[int, dict[str, HuffmanCode]] = {}
        for code in table:
            prefix = format(_reverse(code.base_code, code.prefix_bits), f"0{code.prefix_bits}b")
            by_len.setdefault(code.prefix_bits, {})[prefix] = code
        lookups.append(sorted(by_len.items()))
    current = lookups[0]
    out = np.empty(count, dtype=np.int64)
    i, n, total = 0, 0, len(bits)
    while n < count:
        for length, codes in current:
            code = codes.get(bits[i : i + length])
            if code is not None:
                break
        else:
            raise EcgFormatError("The SCP-ECG rhythm data do not decode with the Huffman table.")
        i += length
        if code.mode == 0:
            if not 1 <= code.base_value <= len(lookups):
                raise EcgFormatError("The SCP-ECG Huffman data switch to a missing table.")
            current = lookups[code.base_value - 1]
            continue
        extra = code.total_bits - code.prefix_bits
        if extra:
            if i + extra > total:
                raise EcgFormatError("The SCP-ECG rhythm data end in the middle of a value.")
            value = int(bits[i : i + extra], 2)
            if value >= 1 << (extra - 1):
                value -= 1 << extra
            i += extra
        else:
            value = code.base_value
        out[n] = value
        n += 1
        if i > total:
            raise EcgFormatError("The SCP-ECG rhythm data are shorter than the lead definition.")
    return out, i


def _undifference(values: np.ndarray, mode: int) -> np.ndarray:
    if mode == 0:
        return values.astype(np.int64)
    if mode == 1:
        return np.cumsum(values, dtype=np.int64)
    if mode == 2:
        if len(values) < 2:
            return values.astype(np.int64)
        first_diff = np.empty(len(values) - 1, dtype=np.int64)
        first_diff[0] = values[1] - values[0]
        first_diff[1:] = values[2:]
        first_diff = np.cumsum(first_diff)  # x[n] - x[n-1]
        return np.concatenate([[values[0]], values[0] + np.cumsum(first_diff)]).astype(np.int64)
    raise EcgFormatError(f"Unknown SCP-ECG difference encoding {mode}.")


def _roughness(leads: np.ndarray) -> float:
    return float(np.mean(np.abs(np.diff(leads.astype(np.float64), axis=1))))


def _decode_block(
    body: bytes,
    offset: int,
    n_leads: int,
    samples: int,
    tables: list[list[HuffmanCode]] | None,
    diff: int,
    warnings: list[str],
    what: str,
) -> np.ndarray:
    """The leads × samples values of section 5 or 6, after the lead byte counts."""
    lengths = [_u16(body, offset + 2 * k) for k in range(n_leads)]
    data = body[offset + 2 * n_leads :]
    out = np.zeros((n_leads, samples), dtype=np.int64)
    plain = tables is None
    if not plain and all(length == 2 * samples for length in lengths):
        try:
            _, used = _huffman_decode(data[: lengths[0]], tables, samples)
        except EcgFormatError:
            used = 0
        if used < 0.9 * 8 * lengths[0]:
            warnings.append(f"{what} declared Huffman-coded but stored as plain samples")
            plain = True
    if plain:
        need = n_leads * samples * 2
        if sum(lengths) != need:
            if len(data) < need:
                raise EcgFormatError(
                    f"The SCP-ECG {what} hold {len(data)} bytes; {need} are needed for "
                    f"{n_leads} leads of {samples} samples."
                )
            warnings.append(f"{what} per-lead byte counts are wrong; equal leads assumed")
            lengths = [2 * samples] * n_leads
        values = np.frombuffer(data[:need], dtype="<i2").astype(np.int64)
        sequential = values.reshape(n_leads, samples)
        sequential = np.stack([_undifference(block, diff) for block in sequential])
        if n_leads == 1:
            return sequential
        interleaved = values.reshape(samples, n_leads).T
        interleaved = np.stack([_undifference(block, diff) for block in interleaved])
        # Stored lead after lead, each lead is smooth; read the wrong way, it jumps between
        # leads at every sample (or, with differences, drifts away).
        if _roughness(interleaved) < 0.5 * _roughness(sequential):
            warnings.append(f"{what} samples interleaved across leads")
            return interleaved
        return sequential
    o = 0
    for k, length in enumerate(lengths):
        chunk = data[o : o + length]
        if len(chunk) < length:
            raise EcgFormatError(f"The SCP-ECG {what} of lead {k + 1} are truncated.")
        values, _ = _huffman_decode(chunk, tables, samples)
        out[k] = _undifference(values, diff)
        o += length
    return out


def read_scp(raw: bytes) -> EcgSignal:
    """An EcgSignal from an SCP-ECG record; EcgFormatError says what cannot be read."""
    if len(raw) > MAX_BYTES:
        raise EcgFormatError("The SCP-ECG file is larger than 20 MB.")
    warnings: list[str] = []
    sections = _sections(raw, warnings)
    if 3 not in sections:
        raise EcgFormatError("The SCP-ECG record has no lead definition (section 3).")
    if 6 not in sections:
        raise EcgFormatError(
            "The SCP-ECG record has no rhythm data (section 6); files with only reference "
            "beats cannot be shown."
        )
    s3 = sections[3].body
    n_leads, flags = s3[0], s3[1]
    if n_leads == 0 or len(s3) < 2 + 9 * n_leads:
        raise EcgFormatError("The SCP-ECG lead definition is empty or truncated.")
    leads_def = []
    for k in range(n_leads):
        o = 2 + 9 * k
        start, end, code = _u32(s3, o), _u32(s3, o + 4), s3[o + 8]
        leads_def.append((start, end, LEAD_CODES.get(code, f"lead{code}")))
    spans = {end - start + 1 for start, end, _ in leads_def}
    if len(spans) != 1 or min(spans) < 2:
        raise EcgFormatError("The SCP-ECG leads have different or empty sample ranges.")
    samples = spans.pop()
    tables = _tables(sections.get(2))

    s6 = sections[6].body
    avm, interval, diff, bimodal = _u16(s6, 0), _u16(s6, 2), s6[4], s6[5]
    if bimodal:
        raise EcgFormatError("SCP-ECG bimodal compression is not supported; export without it.")
    if avm == 0 or interval == 0:
        raise EcgFormatError("The SCP-ECG rhythm data give no amplitude unit or sample interval.")
    rhythm = _decode_block(s6, 6, n_leads, samples, tables, diff, warnings, "rhythm data")
    uv = rhythm.astype(np.float64) * (avm / 1000.0)

    if flags & 0x01:  # reference beat subtraction: add the reference beat back
        if 4 not in sections or 5 not in sections:
            raise EcgFormatError(
                "The SCP-ECG record uses reference-beat subtraction but lacks section 4 or 5."
            )
        s4, s5 = sections[4].body, sections[5].body
        ref_len, fiducial, n_qrs = _u16(s4, 0), _u16(s4, 2), _u16(s4, 4)
        avm5, interval5, diff5 = _u16(s5, 0), _u16(s5, 2), s5[4]
        if interval5 != interval:
            raise EcgFormatError(
                "Reference beats at a sampling rate other than the rhythm data's are not supported."
            )
        ref = _decode_block(s5, 6, n_leads, ref_len, tables, diff5, warnings, "reference beats")
        ref_uv = ref.astype(np.float64) * (avm5 / 1000.0)
        for q in range(n_qrs):
            o = 6 + 14 * q
            kind, sb, fc, se = _u16(s4, o), _u32(s4, o + 2), _u32(s4, o + 6), _u32(s4, o + 10)
            if kind != 0 or sb == 0:
                continue
            for s in range(sb, se + 1):
                k = s - fc + fiducial - 1
                if 0 <= s - 1 < samples and 0 <= k < ref_len:
                    uv[:, s - 1] += ref_uv[:, k]

    patient = PatientData()
    acquired, device = _header(sections[1].body, patient) if 1 in sections else (None, "")
    leads = {}
    for k, (_, _, name) in enumerate(leads_def):
        leads[lead_name(name)] = uv[k]
    signal = EcgSignal(
        leads=leads,
        sample_rate=1e6 / interval,
        resolution_uv=avm / 1000.0,
        patient=patient,
        acquired_at=acquired,
        device=device,
        warnings=warnings,
    )
    return complete_limb_leads(signal)
