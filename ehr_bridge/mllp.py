"""HL7 v2 over MLLP: framing, strict decoding, pre-acknowledgement checks and ACK building.

Pure: touches no database, settings or network, so the listener, the services and the tests
share one implementation.

What the listener may read before it answers is deliberately little: the MSH segment (read
from the raw bytes, which is possible because MSH is ASCII in every supported character set),
the declared character set (MSH-18), whether the whole message decodes strictly in that set,
the segment structure, and whether the segments the message type needs are there. Everything
else is parsed after the acknowledgement, in the worker.

Acknowledgement codes (MSA-1) and HL7 error codes (table 0357) returned here:

- ``AA`` / ``CA``: stored; it will be processed.
- ``AR`` / ``CR`` 100: the message is not HL7 (no MSH, bad separators, bad segment IDs).
- ``AR`` / ``CR`` 101: MSH-9, MSH-10 or MSH-12 missing.
- ``AR`` / ``CR`` 103: MSH-18 names a character set not supported.
- ``AR`` / ``CR`` 200 / 201: message type or trigger event not supported.
- ``AR`` / ``CR`` 203: version not in 2.3-2.5.1.
- ``AE`` / ``CE`` 100: a segment the message type needs is missing.
- ``AE`` / ``CE`` 101: a required field (the patient identifiers of an ADT) is empty.
- ``AE`` / ``CE`` 102: the bytes contradict the declared character set.
- ``AE`` / ``CE`` 205: the control ID was used before for a different message.
- ``AR`` / ``CR`` 207: the message could not be stored (database unavailable, oversized frame).

Error texts in ACKs stay in English on purpose: they must encode in the message's own
character set (often ASCII), and the receiving system logs them rather than showing them.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

VT = b"\x0b"
FS = b"\x1c"
CR = b"\r"
START_BLOCK = 0x0B
END_BLOCK = 0x1C

SUPPORTED_VERSIONS = frozenset({"2.3", "2.3.1", "2.4", "2.5", "2.5.1"})
FALLBACK_VERSION = "2.5"

# Message types accepted before the acknowledgement, with the triggers accepted for each
# (None: any trigger) and the segments the type needs.
SUPPORTED_TRIGGERS: dict[str, frozenset[str] | None] = {
    "ADT": None,
    "ORM": frozenset({"O01"}),
    "OMG": frozenset({"O19"}),
    "ORU": frozenset({"R01"}),
    "SIU": frozenset({f"S{n}" for n in range(12, 27)}),
}
REQUIRED_SEGMENTS: dict[str, tuple[str, ...]] = {
    "ADT": ("PID",),
    "ORM": ("ORC", "OBR"),
    "OMG": ("ORC", "OBR"),
    "ORU": ("OBR", "OBX"),
    "SIU": ("SCH",),
}
REQUIRED_BY_TRIGGER: dict[tuple[str, str], tuple[str, ...]] = {("ADT", "A40"): ("PID", "MRG")}

# HL7 table 0357 error codes used here.
ERR_SEGMENT_SEQUENCE = "100"
ERR_REQUIRED_FIELD = "101"
ERR_DATA_TYPE = "102"
ERR_TABLE_VALUE = "103"
ERR_UNSUPPORTED_TYPE = "200"
ERR_UNSUPPORTED_EVENT = "201"
ERR_UNSUPPORTED_VERSION = "203"
ERR_DUPLICATE_KEY = "205"
ERR_INTERNAL = "207"

ERROR_NAMES = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "203": "Unsupported version id",
    "205": "Duplicate key identifier",
    "207": "Application internal error",
}

# MSH-18 labels (HL7 table 0211 and what Chinese HIS send) -> Python codec.
#
# GB2312/GBK/"CHINESE" are decoded as GBK: GBK is a strict superset of GB2312 with the same
# mapping, and systems labelled GB2312 routinely send GBK-only characters found in names
# (e.g. 堃, 喆). GB 18030 is decoded as GB 18030.
CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "US-ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "GB 18030-2000": "gb18030",
    "GB 18030-2005": "gb18030",
    "GB 18030": "gb18030",
    "GB18030": "gb18030",
    "GB18030-2000": "gb18030",
    "GB18030-2005": "gb18030",
    "GBK": "gbk",
    "GB2312": "gbk",
    "GB 2312": "gbk",
    "GB_2312-80": "gbk",
    "CHINESE": "gbk",
    "8859/1": "latin-1",
    "ISO-8859-1": "latin-1",
    "ISO_IR 100": "latin-1",
}

_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_MAX_MSH_PEEK = 4096


class FrameTooLarge(Exception):
    """A frame grew past the size limit; ``head`` holds its first bytes (for the NAK)."""

    def __init__(self, head: bytes) -> None:
        super().__init__("MLLP frame exceeds the size limit")
        self.head = head


@dataclass(frozen=True)
class Frame:
    payload: bytes


@dataclass(frozen=True)
class TruncatedFrame:
    """A start block arrived inside an open frame: what came before it was cut off."""

    payload: bytes


class FrameParser:
    """Incremental MLLP frame parser: ``<VT> payload <FS><CR>``.

    Bytes outside a frame are discarded (counted in ``discarded``). A frame longer than
    ``max_size`` raises FrameTooLarge as soon as the limit is passed, so a sender cannot make
    the listener buffer more than ``max_size`` bytes per connection.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self._in_frame = False
        self._after_end = False  # the CR of an end block may come in the next read
        self.discarded = 0

    @property
    def in_frame(self) -> bool:
        return self._in_frame

    @property
    def pending(self) -> bytes:
        return bytes(self._buffer)

    def feed(self, data: bytes) -> list[Frame | TruncatedFrame]:
        out: list[Frame | TruncatedFrame] = []
        view = memoryview(data)
        pos = 0
        if self._after_end and data[:1] == CR:
            pos = 1
        self._after_end = False
        while pos < len(view):
            if not self._in_frame:
                start = data.find(VT, pos)
                if start < 0:
                    self.discarded += len(view) - pos
                    break
                self.discarded += start - pos
                self._in_frame = True
                self._buffer.clear()
                pos = start + 1
                continue
            end = data.find(FS, pos)
            restart = data.find(VT, pos)
            if restart >= 0 and (end < 0 or restart < end):
                self._append(view[pos:restart])
                out.append(TruncatedFrame(bytes(self._buffer)))
                self._buffer.clear()
                pos = restart + 1
                continue
            if end < 0:
                self._append(view[pos:])
                break
            self._append(view[pos:end])
            out.append(Frame(bytes(self._buffer)))
            self._buffer.clear()
            self._in_frame = False
            pos = end + 1
            if pos < len(view) and data[pos : pos + 1] == CR:
                pos += 1
            elif pos == len(view):
                self._after_end = True
        return out

    def _append(self, chunk: memoryview) -> None:
        if len(self._buffer) + len(chunk) > self.max_size:
            head = bytes(self._buffer[:_MAX_MSH_PEEK]) + bytes(
                chunk[: max(0, _MAX_MSH_PEEK - len(self._buffer))]
            )
            self._buffer.clear()
            self._in_frame = False
            raise FrameTooLarge(head)
        self._buffer += chunk


def frame(payload: bytes) -> bytes:
    return VT + payload + FS + CR


# --- Errors raised by the checks ------------------------------------------------------------


@dataclass(frozen=True)
class Hl7Error:
    """What goes into MSA-1 and the ERR segment."""

    ack_code: str  # "AE" or "AR"
    code: str  # HL7 table 0357
    text: str
    segment: str = ""
    sequence: int = 1
    field_no: int = 0


class MessageRejected(Exception):
    def __init__(self, error: Hl7Error) -> None:
        super().__init__(error.text)
        self.error = error


def _reject(code: str, text: str, segment: str = "", field_no: int = 0) -> MessageRejected:
    return MessageRejected(Hl7Error("AR", code, text, segment, 1, field_no))


def _error(code: str, text: str, segment: str = "", field_no: int = 0) -> MessageRejected:
    return MessageRejected(Hl7Error("AE", code, text, segment, 1, field_no))


# --- MSH from raw bytes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """The MSH fields the listener needs (first components, separators undone)."""

    field_sep: str
    encoding_chars: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str
    trigger_event: str
    message_structure: str
    control_id: str
    processing_id: str
    version: str
    accept_ack_type: str
    application_ack_type: str
    charset: str

    @property
    def component_sep(self) -> str:
        return self.encoding_chars[0] if self.encoding_chars else "^"


def _msh_fields(segment: str) -> tuple[str, list[str]]:
    if not segment.startswith("MSH") or len(segment) < 8:
        raise _reject(ERR_SEGMENT_SEQUENCE, "The message does not start with an MSH segment.")
    sep = segment[3]
    if sep.isalnum() or sep in " \r\n":
        raise _reject(ERR_SEGMENT_SEQUENCE, "MSH-1 is not a valid field separator.", "MSH", 1)
    fields = segment.split(sep)
    enc = fields[1] if len(fields) > 1 else ""
    if (
        len(enc) not in (4, 5)
        or len(set(enc)) != len(enc)
        or sep in enc
        or any(c.isalnum() or c in " \r\n" for c in enc)
    ):
        raise _reject(ERR_SEGMENT_SEQUENCE, "MSH-2 encoding characters are invalid.", "MSH", 2)
    return sep, fields


def _header(segment: str) -> Header:
    sep, fields = _msh_fields(segment)
    enc = fields[1]
    comp, rep = enc[0], enc[1]

    def get(n: int) -> str:
        # MSH-n is fields[n - 1] (MSH-1 is the separator itself).
        return fields[n - 1] if len(fields) >= n else ""

    def first(n: int) -> str:
        return unescape(get(n).split(rep)[0].split(comp)[0], sep, enc).strip()

    msh9 = [unescape(p, sep, enc).strip() for p in get(9).split(rep)[0].split(comp)]
    msh9 += ["", "", ""]
    return Header(
        field_sep=sep,
        encoding_chars=enc,
        sending_application=first(3),
        sending_facility=first(4),
        receiving_application=first(5),
        receiving_facility=first(6),
        message_type=msh9[0].upper(),
        trigger_event=msh9[1].upper(),
        message_structure=msh9[2].upper(),
        control_id=unescape(get(10), sep, enc).strip(),
        processing_id=first(11),
        version=first(12),
        accept_ack_type=first(15).upper(),
        application_ack_type=first(16).upper(),
        charset=first(18).upper(),
    )


def peek_header(raw: bytes) -> Header:
    """Read MSH from raw bytes before decoding: MSH is ASCII whatever MSH-18 says.

    Raises MessageRejected (AR) when there is no readable MSH.
    """
    start = len(raw) - len(raw.lstrip(b" \t\r\n"))
    head = raw[start : start + _MAX_MSH_PEEK]
    end = min((i for i in (head.find(b"\r"), head.find(b"\n")) if i >= 0), default=len(head))
    return _header(head[:end].decode("latin-1"))


# --- Character sets --------------------------------------------------------------------------


def codec_for(label: str) -> str | None:
    """The Python codec for an MSH-18 label, or None if unsupported."""
    return CHARSETS.get(" ".join(label.upper().split()))


def _looks_like_utf8(raw: bytes) -> bool:
    if raw.isascii():
        return False
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode(raw: bytes, label: str, *, default_label: str = "ASCII") -> tuple[str, str]:
    """Decode strictly in the declared set; return (text, codec).

    An empty MSH-18 means ``default_label`` (HL7's default is ASCII). A message in a
    single-byte or GB set whose non-ASCII bytes form valid UTF-8 is refused too: such bytes
    decode without error in those sets but would be stored as mojibake, and real text in
    those sets is practically never valid UTF-8.
    """
    effective = label or default_label
    codec = codec_for(effective)
    if codec is None:
        raise _reject(
            ERR_TABLE_VALUE,
            f"Character set {effective!r} (MSH-18) is not supported.",
            "MSH",
            18,
        )
    try:
        text = raw.decode(codec, errors="strict")
    except UnicodeDecodeError as exc:
        raise _error(
            ERR_DATA_TYPE,
            f"Byte {exc.start} does not decode in the declared character set {effective}.",
            "MSH",
            18,
        ) from None
    if codec != "utf-8" and _looks_like_utf8(raw):
        raise _error(
            ERR_DATA_TYPE,
            f"The bytes are UTF-8, not the declared character set {effective}.",
            "MSH",
            18,
        )
    if any(ord(c) < 0x20 and c not in "\r\n\t" for c in text):
        raise _reject(ERR_DATA_TYPE, "The message holds control characters.")
    return text, codec


# --- Structure -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One segment split with the message's separators; values are escaped until asked."""

    name: str
    fields: tuple[str, ...]  # fields[n] is field n (fields[0] is the segment ID)
    field_sep: str
    encoding_chars: str

    def raw(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""

    def repetitions(self, n: int) -> list[list[list[str]]]:
        """Field n as repetitions → components → subcomponents, unescaped."""
        value = self.raw(n)
        if self.name == "MSH" and n in (1, 2):
            return [[[value]]]
        comp, rep, _esc, sub = self.encoding_chars[:4]
        result = []
        for repetition in value.split(rep) if value else []:
            result.append(
                [
                    [unescape(s, self.field_sep, self.encoding_chars) for s in c.split(sub)]
                    for c in repetition.split(comp)
                ]
            )
        return result

    def component(self, n: int, c: int = 1, s: int = 1, rep: int = 0) -> str:
        reps = self.repetitions(n)
        try:
            return reps[rep][c - 1][s - 1].strip()
        except IndexError:
            return ""


@dataclass(frozen=True)
class Checked:
    """A message that passed the checks before the acknowledgement."""

    header: Header
    text: str
    codec: str
    segments: tuple[Segment, ...] = field(repr=False)

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> Iterator[Segment]:
        return (s for s in self.segments if s.name == name)


def normalise_separators(text: str) -> str:
    """CR is the segment separator; CRLF and LF (common deviations) become CR."""
    return text.replace("\r\n", "\r").replace("\n", "\r")


def split_segments(text: str, header: Header) -> tuple[Segment, ...]:
    segments = []
    for line in text.split("\r"):
        if not line.strip():
            continue
        name = line[:3]
        if not _SEGMENT_ID.match(name) or (len(line) > 3 and line[3] != header.field_sep):
            raise _reject(
                ERR_SEGMENT_SEQUENCE,
                f"Segment {len(segments) + 1} does not start with a segment ID.",
            )
        fields = line.split(header.field_sep)
        if name == "MSH":
            fields = ["MSH", header.field_sep, *fields[1:]]
        segments.append(Segment(name, tuple(fields), header.field_sep, header.encoding_chars))
    return tuple(segments)


def check(raw: bytes, *, default_charset: str = "ASCII") -> Checked:
    """Everything verified before the acknowledgement. Raises MessageRejected."""
    declared = peek_header(raw)
    text, codec = decode(raw, declared.charset, default_label=default_charset)
    text = normalise_separators(text.lstrip(" \t\r\n"))
    header = _header(text.split("\r", 1)[0])
    if header.charset != declared.charset:
        raise _reject(ERR_DATA_TYPE, "MSH-18 reads differently once decoded.", "MSH", 18)
    if not header.message_type or not header.trigger_event:
        raise _reject(ERR_REQUIRED_FIELD, "MSH-9 (message type) is missing.", "MSH", 9)
    if not header.control_id:
        raise _reject(ERR_REQUIRED_FIELD, "MSH-10 (message control ID) is missing.", "MSH", 10)
    if len(header.control_id) > 199:
        raise _reject(ERR_DATA_TYPE, "MSH-10 is longer than 199 characters.", "MSH", 10)
    if not header.version:
        raise _reject(ERR_REQUIRED_FIELD, "MSH-12 (version ID) is missing.", "MSH", 12)
    if header.version not in SUPPORTED_VERSIONS:
        raise _reject(
            ERR_UNSUPPORTED_VERSION,
            f"HL7 version {header.version} is not supported (2.3 to 2.5.1).",
            "MSH",
            12,
        )
    if header.message_type not in SUPPORTED_TRIGGERS:
        raise _reject(
            ERR_UNSUPPORTED_TYPE,
            f"Message type {header.message_type} is not supported.",
            "MSH",
            9,
        )
    triggers = SUPPORTED_TRIGGERS[header.message_type]
    if triggers is not None and header.trigger_event not in triggers:
        raise _reject(
            ERR_UNSUPPORTED_EVENT,
            f"{header.message_type}^{header.trigger_event} is not supported.",
            "MSH",
            9,
        )
    segments = split_segments(text, header)
    if segments[0].name != "MSH" or any(s.name == "MSH" for s in segments[1:]):
        raise _reject(ERR_SEGMENT_SEQUENCE, "MSH must be the first segment, once.")
    names = {s.name for s in segments}
    needed = REQUIRED_BY_TRIGGER.get(
        (header.message_type, header.trigger_event), REQUIRED_SEGMENTS[header.message_type]
    )
    for name in needed:
        if name not in names:
            raise _error(
                ERR_SEGMENT_SEQUENCE,
                f"{header.message_type}^{header.trigger_event} needs a {name} segment.",
                name,
            )
    checked = Checked(header=header, text=text, codec=codec, segments=segments)
    if header.message_type == "ADT":
        pid = checked.first("PID")
        assert pid is not None
        if not (pid.raw(3).strip() or pid.raw(2).strip() or pid.raw(19).strip()):
            raise _error(ERR_REQUIRED_FIELD, "PID-3 (patient identifier list) is empty.", "PID", 3)
    return checked


def patient_key(checked: Checked) -> str:
    """The key that orders processing per patient: the first identifier in PID-3 with its
    assigning authority (else the sending facility), else PID-2, else PID-19. Empty when
    the message names no patient (it is then ordered by nothing)."""
    pid = checked.first("PID")
    if pid is None:
        return ""
    facility = checked.header.sending_facility
    value = pid.component(3)
    if value:
        authority = pid.component(3, 4) or facility
        return f"{authority}|{value}"[:255]
    if pid.component(2):
        return f"{pid.component(2, 4) or facility}|{pid.component(2)}"[:255]
    if pid.component(19):
        return f"ID|{pid.component(19)}"[:255]
    return ""


# --- Escaping --------------------------------------------------------------------------------


def unescape(value: str, field_sep: str = "|", encoding_chars: str = "^~\\&") -> str:
    """Undo HL7 escape sequences \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ and \\Xhh\\ (ASCII only);
    formatting sequences (\\.br\\ and the like) become a space."""
    esc = encoding_chars[2] if len(encoding_chars) > 2 else "\\"
    if esc not in value:
        return value
    comp, rep, _e, sub = (encoding_chars + "^~\\&")[:4]
    table = {"F": field_sep, "S": comp, "T": sub, "R": rep, "E": esc}
    out = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == esc:
            j = value.find(esc, i + 1)
            if j < 0:
                out.append(value[i:])
                break
            seq = value[i + 1 : j]
            if seq in table:
                out.append(table[seq])
            elif seq.startswith("X") and re.fullmatch(r"X(?:[0-9A-Fa-f]{2})+", seq):
                raw = bytes.fromhex(seq[1:])
                out.append(raw.decode("ascii", errors="replace"))
            else:
                out.append(" ")
            i = j + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def escape(value: str, field_sep: str = "|", encoding_chars: str = "^~\\&") -> str:
    comp, rep, esc, sub = encoding_chars[:4]
    replacements = [(esc, "E"), (field_sep, "F"), (comp, "S"), (sub, "T"), (rep, "R")]
    out = []
    for ch in value.replace("\r", " ").replace("\n", " "):
        code = next((c for s, c in replacements if s == ch), None)
        out.append(f"{esc}{code}{esc}" if code else ch)
    return "".join(out)


# --- Acknowledgements ------------------------------------------------------------------------

COMMIT_CODES = {"AA": "CA", "AE": "CE", "AR": "CR"}


def enhanced_mode(header: Header | None) -> bool:
    """Enhanced acknowledgement mode: MSH-15 (accept acknowledgement type) is valued."""
    return bool(header and header.accept_ack_type)


def should_send(condition: str, code: str) -> bool:
    """Whether an acknowledgement with ``code`` goes out under an MSH-15/MSH-16 condition
    (table 0155: AL always, NE never, ER on error or reject only, SU on success only)."""
    success = code in ("AA", "CA")
    if condition == "NE":
        return False
    if condition == "ER":
        return not success
    if condition == "SU":
        return success
    return True


def new_control_id() -> str:
    return secrets.token_hex(10)  # 20 characters: MSH-10 is ST(20) up to 2.5.1


def build_ack(
    header: Header | None,
    *,
    code: str,
    error: Hl7Error | None = None,
    now: datetime,
    codec: str = "ascii",
    control_id: str | None = None,
    commit: bool | None = None,
) -> bytes:
    """Build an ACK (without MLLP framing) to ``header``'s message, encoded in ``codec``.

    ``code`` is AA/AE/AR; with ``commit`` (default: the message asked for enhanced mode) it
    is sent as the commit acknowledgement CA/CE/CR. MSH swaps sender and receiver; MSA-2 is
    the control ID; an ERR segment carries the error in the layout of the message's version
    (ERR-1 up to 2.4, ERR-2/3/4/8 from 2.5).
    """
    sep, enc = ("|", "^~\\&") if header is None else (header.field_sep, header.encoding_chars[:4])
    comp = enc[0]

    def esc(value: str) -> str:
        return escape(value, sep, enc)

    version = header.version if header and header.version in SUPPORTED_VERSIONS else None
    version = version or FALLBACK_VERSION
    is_commit = enhanced_mode(header) if commit is None else commit
    msa_code = COMMIT_CODES.get(code, code) if is_commit else code
    trigger = header.trigger_event if header else ""
    msg_type = f"ACK{comp}{esc(trigger)}" + (f"{comp}ACK" if version != "2.3" else "")
    msh = [
        "MSH",
        enc,
        esc(header.receiving_application if header else "") or "HUIZHEN",
        esc(header.receiving_facility if header else "") or "HUIZHEN",
        esc(header.sending_application if header else ""),
        esc(header.sending_facility if header else ""),
        now.strftime("%Y%m%d%H%M%S"),
        "",
        msg_type,
        control_id or new_control_id(),
        esc(header.processing_id if header and header.processing_id else "P"),
        version,
    ]
    if header and header.charset:
        msh += ["", "", "", "", "", esc(header.charset)]
    text_msg = esc(error.text)[:80] if error else ""
    segments = [
        sep.join(msh),
        sep.join(["MSA", msa_code, esc(header.control_id if header else ""), text_msg]),
    ]
    if error is not None:
        name = ERROR_NAMES.get(error.code, "")
        location = ""
        if error.segment:
            location = comp.join(
                [error.segment, str(error.sequence), str(error.field_no) if error.field_no else ""]
            ).rstrip(comp)
        if version in ("2.3", "2.3.1", "2.4"):
            sub = enc[3]
            coded = sub.join([error.code, name, "HL70357"])
            loc = (location + comp) if location else comp * 3
            segments.append(sep.join(["ERR", loc + comp * (3 - loc.count(comp)) + coded]))
        else:
            severity = "E"
            segments.append(
                sep.join(
                    [
                        "ERR",
                        "",
                        location,
                        comp.join([error.code, name, "HL70357"]),
                        severity,
                        "",
                        "",
                        "",
                        esc(error.text),
                    ]
                )
            )
    text = "\r".join(segment.rstrip(sep) for segment in segments) + "\r"
    return text.encode(codec, errors="replace")
