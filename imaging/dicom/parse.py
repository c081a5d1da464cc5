"""Strict, bounded reading of DICOM Part 10 objects. Pure: touches no database or storage.

pydicom reads a truncated value without complaint, so before pydicom sees the bytes,
``check_structure`` walks every element (nested sequences and pixel-data fragments too) and
refuses a length that runs past the end of the object. Then pydicom parses with its reading
validation set to raise, the whole dataset is converted to the DICOM JSON model (which
decodes every value), and the pixel data is checked against Rows × Columns × Frames × Bits.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import pydicom
from django.utils.translation import gettext as _
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from pydicom.uid import UID

pydicom_config.settings.reading_validation_mode = pydicom_config.RAISE

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
DEFLATED = "1.2.840.10008.1.2.1.99"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
PIXEL_DATA = 0x7FE00010
BULK_THRESHOLD = 1024
LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD

# Failure statuses of C-STORE (PS3.4 B.2.3) and what STOW-RS reports for them.
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_DOES_NOT_MATCH_SOP_CLASS = 0xA900
STATUS_CANNOT_UNDERSTAND = 0xC000


class InvalidDicom(ValueError):
    """An object that must not be stored; ``status`` is the DIMSE failure status to send."""

    def __init__(self, message: str, status: int = STATUS_CANNOT_UNDERSTAND) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ParsedInstance:
    raw: bytes
    sha256: str
    dataset: Dataset
    transfer_syntax_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    metadata: dict[str, Any]
    study: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    instance: dict[str, Any] = field(default_factory=dict)


class _Walker:
    def __init__(self, data: bytes, *, explicit: bool, little: bool) -> None:
        self.data = data
        self.explicit = explicit
        self.endian = "<" if little else ">"

    def _unpack(self, fmt: str, offset: int) -> tuple:
        size = struct.calcsize(self.endian + fmt)
        if offset + size > len(self.data):
            raise InvalidDicom(_("The object ends in the middle of an element header."))
        return struct.unpack(self.endian + fmt, self.data[offset : offset + size])

    def _tag(self, offset: int) -> int:
        group, element = self._unpack("HH", offset)
        return (group << 16) | element

    def dataset(self, offset: int, end: int, *, in_item: bool = False) -> int:
        """Walk elements from ``offset``; stop at ``end`` or, in an undefined-length item, at
        its delimiter. Returns the offset after the last byte consumed."""
        while offset < end:
            tag = self._tag(offset)
            if tag == ITEM_END and in_item:
                return offset + 8
            if tag in (ITEM, ITEM_END, SEQ_END):
                raise InvalidDicom(_("An item delimiter appears outside a sequence."))
            group = tag >> 16
            explicit = self.explicit and group != 0xFFFE
            if explicit:
                vr = self.data[offset + 4 : offset + 6]
                if len(vr) < 2 or not vr.isalpha() or not vr.isupper():
                    raise InvalidDicom(_("An element has no valid value representation."))
                if vr in LONG_VRS:
                    (length,) = self._unpack("L", offset + 8)
                    header = 12
                else:
                    (length,) = self._unpack("H", offset + 6)
                    header = 8
            else:
                vr = b""
                (length,) = self._unpack("L", offset + 4)
                header = 8
            offset += header
            if length == UNDEFINED:
                if tag == PIXEL_DATA:
                    offset = self._fragments(offset, end)
                else:
                    offset = self._sequence(offset, end)
                continue
            if offset + length > end:
                raise InvalidDicom(
                    _("Element (%(tag)s) declares %(length)d bytes; the object has %(left)d left.")
                    % {
                        "tag": f"{tag >> 16:04X},{tag & 0xFFFF:04X}",
                        "length": length,
                        "left": end - offset,
                    }
                )
            if vr == b"SQ" or (not explicit and self._looks_like_sequence(offset, length)):
                self._sequence(offset, offset + length, defined=True)
            offset += length
        return offset

    def _looks_like_sequence(self, offset: int, length: int) -> bool:
        # In implicit VR the dictionary says what is a sequence; an item tag first is enough.
        return length >= 8 and self._tag(offset) == ITEM

    def _sequence(self, offset: int, end: int, *, defined: bool = False) -> int:
        while offset < end:
            tag = self._tag(offset)
            (length,) = self._unpack("L", offset + 4)
            offset += 8
            if tag == SEQ_END:
                return offset
            if tag != ITEM:
                if defined:
                    raise InvalidDicom(_("A sequence holds something other than items."))
                raise InvalidDicom(_("A sequence of undefined length is not terminated."))
            if length == UNDEFINED:
                offset = self.dataset(offset, end, in_item=True)
            else:
                if offset + length > end:
                    raise InvalidDicom(_("A sequence item runs past the end of the object."))
                self.dataset(offset, offset + length)
                offset += length
        if not defined:
            raise InvalidDicom(_("A sequence of undefined length is not terminated."))
        return offset

    def _fragments(self, offset: int, end: int) -> int:
        while offset < end:
            tag = self._tag(offset)
            (length,) = self._unpack("L", offset + 4)
            offset += 8
            if tag == SEQ_END:
                return offset
            if tag != ITEM or length == UNDEFINED or offset + length > end:
                raise InvalidDicom(_("The compressed pixel data is cut off or malformed."))
            offset += length
        raise InvalidDicom(_("The compressed pixel data is cut off or malformed."))


def check_structure(raw: bytes, *, max_bytes: int) -> str:
    """Check the Part 10 framing and every element length; return the transfer syntax UID."""
    if len(raw) > max_bytes:
        raise InvalidDicom(
            _("The object is larger than the %(limit)d bytes allowed.") % {"limit": max_bytes},
            STATUS_OUT_OF_RESOURCES,
        )
    if len(raw) < 132 or raw[128:132] != b"DICM":
        raise InvalidDicom(_("Not a DICOM file: the 128-byte preamble and 'DICM' are missing."))
    # File meta information: explicit VR little endian, group 0002 first.
    offset = 132
    meta = _Walker(raw, explicit=True, little=True)
    if meta._tag(offset) != 0x00020000:
        raise InvalidDicom(_("The file meta information has no group length."))
    (group_length,) = struct.unpack("<L", raw[offset + 8 : offset + 12])
    meta_end = offset + 12 + group_length
    if meta_end > len(raw):
        raise InvalidDicom(_("The file meta information runs past the end of the file."))
    meta.dataset(offset, meta_end)
    try:
        meta_ds = pydicom.dcmread(io.BytesIO(raw[:meta_end]), force=True)
        ts = str(meta_ds.file_meta.TransferSyntaxUID)
    except Exception as exc:  # noqa: BLE001 - any failure here means unreadable meta
        raise InvalidDicom(_("The file meta information cannot be read.")) from exc
    if not UID_RE.match(ts):
        raise InvalidDicom(_("The transfer syntax UID is not a valid UID."))
    body = raw[meta_end:]
    if ts == DEFLATED:
        try:
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            body = inflater.decompress(body, max_bytes)
            if inflater.unconsumed_tail:
                raise InvalidDicom(
                    _("The deflated object inflates beyond the size allowed."),
                    STATUS_OUT_OF_RESOURCES,
                )
        except zlib.error as exc:
            raise InvalidDicom(_("The deflated data set is corrupt.")) from exc
    walker = _Walker(body, explicit=ts != IMPLICIT_LE, little=ts != EXPLICIT_BE)
    walker.dataset(0, len(body))
    return ts


def _text(ds: Dataset, keyword: str, limit: int = 324) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    return str(value)[:limit]


def _int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def expected_pixel_bytes(ds: Dataset) -> int | None:
    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    bits = _int(ds, "BitsAllocated")
    if not rows or not columns or not bits:
        return None
    frames = _int(ds, "NumberOfFrames") or 1
    samples = _int(ds, "SamplesPerPixel") or 1
    total_bits = rows * columns * frames * samples * bits
    return (total_bits + 7) // 8


def _check_pixels(ds: Dataset, ts: UID, *, max_pixel_bytes: int) -> None:
    if "PixelData" not in ds:
        return
    element = ds["PixelData"]
    value = element.value
    if value is None or len(value) == 0:
        raise InvalidDicom(_("The pixel data is empty."))
    expected = expected_pixel_bytes(ds)
    if expected is None:
        raise InvalidDicom(_("Pixel data without Rows, Columns and Bits Allocated."))
    frames = _int(ds, "NumberOfFrames") or 1
    # Images are decoded frame by frame (tiled slides: tile by tile), so the bound that
    # protects memory is the size of one decoded frame.
    if expected // frames > max_pixel_bytes:
        raise InvalidDicom(
            _("A frame would decode to %(size)d bytes, more than the %(limit)d allowed.")
            % {"size": expected // frames, "limit": max_pixel_bytes},
            STATUS_OUT_OF_RESOURCES,
        )
    if not ts.is_compressed and len(value) < expected:
        raise InvalidDicom(
            _("The pixel data has %(have)d bytes; Rows × Columns × Frames × Bits needs %(need)d.")
            % {"have": len(value), "need": expected}
        )


def _bulk_placeholder(element: Any) -> str:
    return f"bulkdata:{element.tag:08X}"


def parse_instance(raw: bytes, *, max_bytes: int, max_pixel_bytes: int) -> ParsedInstance:
    """Validate a Part 10 object and extract what the index needs. Raises InvalidDicom."""
    ts = check_structure(raw, max_bytes=max_bytes)
    try:
        ds = pydicom.dcmread(io.BytesIO(raw), force=False)
        metadata = ds.to_json_dict(
            bulk_data_threshold=BULK_THRESHOLD, bulk_data_element_handler=_bulk_placeholder
        )
    except InvalidDicom:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for bad input
        raise InvalidDicom(
            _("The data set cannot be read: %(error)s") % {"error": str(exc)[:200]}
        ) from exc
    uids = {}
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        value = _text(ds, keyword, 100)
        if not value:
            raise InvalidDicom(_("%(name)s is missing.") % {"name": keyword})
        if len(value) > 64 or not UID_RE.match(value):
            raise InvalidDicom(_("%(name)s is not a valid UID.") % {"name": keyword})
        uids[keyword] = value
    media = ds.file_meta.get("MediaStorageSOPInstanceUID")
    if media is not None and str(media) != uids["SOPInstanceUID"]:
        raise InvalidDicom(_("The file meta and the data set name different SOP instances."))
    _check_pixels(ds, UID(ts), max_pixel_bytes=max_pixel_bytes)
    parsed = ParsedInstance(
        raw=raw,
        sha256=hashlib.sha256(raw).hexdigest(),
        dataset=ds,
        transfer_syntax_uid=ts,
        sop_class_uid=uids["SOPClassUID"],
        sop_instance_uid=uids["SOPInstanceUID"],
        study_instance_uid=uids["StudyInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        metadata=metadata,
    )
    parsed.study = {
        "dicom_patient_id": _text(ds, "PatientID", 64),
        "issuer_of_patient_id": _text(ds, "IssuerOfPatientID", 64),
        "dicom_patient_name": _text(ds, "PatientName"),
        "patient_birth_date": _text(ds, "PatientBirthDate", 8),
        "patient_sex": _text(ds, "PatientSex", 16),
        "study_date": _text(ds, "StudyDate", 8),
        "study_time": _text(ds, "StudyTime", 16),
        "accession_number": _text(ds, "AccessionNumber", 16),
        "study_id": _text(ds, "StudyID", 16),
        "referring_physician_name": _text(ds, "ReferringPhysicianName"),
        "study_description": _text(ds, "StudyDescription", 64),
        "specific_character_set": _text(ds, "SpecificCharacterSet", 128),
    }
    parsed.series = {
        "modality": _text(ds, "Modality", 16),
        "series_number": _int(ds, "SeriesNumber"),
        "series_description": _text(ds, "SeriesDescription", 64),
        "body_part_examined": _text(ds, "BodyPartExamined", 16),
        "series_date": _text(ds, "SeriesDate", 8),
        "series_time": _text(ds, "SeriesTime", 16),
    }
    parsed.instance = {
        "sop_class_uid": parsed.sop_class_uid,
        "instance_number": _int(ds, "InstanceNumber"),
        "transfer_syntax_uid": ts,
        "rows": _int(ds, "Rows"),
        "columns": _int(ds, "Columns"),
        "number_of_frames": _int(ds, "NumberOfFrames"),
        "bits_allocated": _int(ds, "BitsAllocated"),
        "size": len(raw),
        "sha256": parsed.sha256,
    }
    return parsed
