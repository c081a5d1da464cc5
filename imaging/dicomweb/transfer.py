"""Transfer syntaxes on the way out: which one to send a stored object in, re-encoding to
Explicit VR Little Endian, and the bytes of single frames. Pure: works on open files.

PS3.18 8.7.3.4: without a transfer-syntax parameter an object is sent in Explicit VR Little
Endian, except that pixel data held only in lossy (or undecodable) form may be sent as
received; ``transfer-syntax=*`` means "as stored". Implicit VR and big endian are never sent.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels import get_decoder, pixel_array
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID, ExplicitVRLittleEndian

from imaging.dicom.parse import expected_pixel_bytes

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
NATIVE = frozenset({EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE, DEFLATED})
# Compressed syntaxes whose decoding gives back the original pixels.
LOSSLESS = frozenset(
    {
        "1.2.840.10008.1.2.5",  # RLE
        "1.2.840.10008.1.2.4.57",  # JPEG lossless
        "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
        "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
        "1.2.840.10008.1.2.4.202",  # HTJ2K lossless RPCL
    }
)
# The media type of a compressed frame (PS3.18 Table 8.7.3-4).
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
}
PIXEL_DATA = 0x7FE00010
DEFER_BYTES = 64 * 1024


class NoPixelData(ValueError):
    pass


class TooLarge(ValueError):
    pass


def can_decode(transfer_syntax: str) -> bool:
    if transfer_syntax in NATIVE:
        return True
    try:
        return bool(get_decoder(UID(transfer_syntax)).is_available)
    except NotImplementedError:
        return False


def default_syntax(stored: str) -> str:
    """What to send without a transfer-syntax parameter (PS3.18 8.7.3.4)."""
    if stored in NATIVE:
        return EXPLICIT_LE
    if stored in LOSSLESS and can_decode(stored):
        return EXPLICIT_LE
    return stored


def choose_syntax(stored: str, requested: str | None) -> str | None:
    """The syntax to send for one requested transfer-syntax parameter, or None if it
    cannot be served (other conversions than to Explicit VR Little Endian are not done)."""
    if requested is None:
        return default_syntax(stored)
    if requested in ("*", stored):
        return stored
    if requested == EXPLICIT_LE and can_decode(stored):
        return EXPLICIT_LE
    return None


def to_explicit_le(fp: BinaryIO, *, max_pixel_bytes: int) -> bytes:
    """The object re-encoded in Explicit VR Little Endian, decompressing its pixel data."""
    fp.seek(0)
    ds = pydicom.dcmread(fp)
    if (expected_pixel_bytes(ds) or 0) > max_pixel_bytes:
        raise TooLarge()
    if ds.file_meta.TransferSyntaxUID.is_compressed and "PixelData" in ds:
        ds.decompress()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@dataclass
class PixelSource:
    """An opened object and where its pixel data value starts."""

    header: Dataset
    file: BinaryIO  # the whole object
    fp: BinaryIO  # where the pixel data value is read from, at ``offset``
    offset: int
    length: int
    transfer_syntax: str

    @property
    def number_of_frames(self) -> int:
        try:
            return max(1, int(self.header.get("NumberOfFrames") or 1))
        except (TypeError, ValueError):
            return 1

    @property
    def encapsulated(self) -> bool:
        return self.transfer_syntax not in NATIVE

    def check_size(self, max_pixel_bytes: int) -> None:
        """Refuse to decode more than Rows × Columns × Frames × Bits allows."""
        if (expected_pixel_bytes(self.header) or 0) > max_pixel_bytes:
            raise TooLarge()


def open_pixels(fp: BinaryIO, *, max_pixel_bytes: int) -> PixelSource:
    """Read the header of a stored object without its large values. Raises NoPixelData."""
    fp.seek(0)
    header = pydicom.dcmread(fp, defer_size=DEFER_BYTES)
    ts = str(header.file_meta.TransferSyntaxUID)
    if ts == DEFLATED:  # offsets into a deflated stream mean nothing: inflate first
        fp = io.BytesIO(to_explicit_le(fp, max_pixel_bytes=max_pixel_bytes))
        header = pydicom.dcmread(fp, defer_size=DEFER_BYTES)
        ts = EXPLICIT_LE
    element = header.get_item(PIXEL_DATA, keep_deferred=True)
    if element is None:
        raise NoPixelData()
    value = getattr(element, "value", None)
    if value is not None:  # small enough to have been read: serve it from memory
        return PixelSource(header, fp, io.BytesIO(bytes(value)), 0, len(value), ts)
    return PixelSource(header, fp, fp, element.value_tell, element.length, ts)


def stored_frame(src: PixelSource, index: int) -> bytes:
    """Frame ``index`` (0-based) as stored: a compressed bitstream for an encapsulated
    syntax, else the native little-endian bytes of the frame."""
    if src.encapsulated:
        src.fp.seek(src.offset)
        extended = None
        if "ExtendedOffsetTable" in src.header and "ExtendedOffsetTableLengths" in src.header:
            extended = (src.header.ExtendedOffsetTable, src.header.ExtendedOffsetTableLengths)
        return get_frame(
            src.fp, index, extended_offsets=extended, number_of_frames=src.number_of_frames
        )
    header = src.header
    bits = int(header.BitsAllocated)
    frames = src.number_of_frames
    if bits == 1:
        per_frame = int(header.Rows) * int(header.Columns) * int(header.SamplesPerPixel)
        first_bit = index * per_frame
        src.fp.seek(src.offset + first_bit // 8)
        raw = src.fp.read((first_bit % 8 + per_frame + 7) // 8)
        bits_array = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")
        start = first_bit % 8
        return np.packbits(bits_array[start : start + per_frame], bitorder="little").tobytes()
    size = get_expected_length(header, "bytes") // frames
    src.fp.seek(src.offset + index * size)
    data = src.fp.read(size)
    if len(data) != size:
        raise NoPixelData()
    if src.transfer_syntax == EXPLICIT_BE and bits > 8:
        data = np.frombuffer(data, dtype=f">u{bits // 8}").astype(f"<u{bits // 8}").tobytes()
    return data


def decoded_frame(src: PixelSource, index: int) -> bytes:
    """Frame ``index`` decompressed to native little-endian bytes (colour as RGB)."""
    src.file.seek(0)
    arr = pixel_array(src.file, index=index)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
