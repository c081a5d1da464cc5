"""Reading one tile of a stored slide level at its offset, and the in-process caches that
make panning fast: the frame offset table of each level (read once) and an LRU of hot tiles.

A tile is the level's frame at (column, row) of a TILED_FULL matrix. For JPEG baseline the
stored bitstream is sent as it is; other syntaxes are decoded and encoded as JPEG.
"""

from __future__ import annotations

import io
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Generic, TypeVar

import numpy as np
import pydicom
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image

from imaging.dicomweb.transfer import NATIVE, PIXEL_DATA
from imaging.models import Instance

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
ITEM, SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
HEADER_DEFER = 64 * 1024
TILE_JPEG_QUALITY = 90

K = TypeVar("K")
V = TypeVar("V")


class TileNotFound(LookupError):
    pass


class LRU(Generic[K, V]):
    """A thread-safe LRU bounded by the summed ``weight`` of its values."""

    def __init__(self, capacity: Callable[[], int], weight: Callable[[V], int]) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._capacity = capacity
        self._weight = weight
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        weight = self._weight(value)
        capacity = self._capacity()
        if weight > capacity:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= self._weight(old)
            self._items[key] = value
            self._size += weight
            while self._size > capacity and self._items:
                _key, dropped = self._items.popitem(last=False)
                self._size -= self._weight(dropped)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


@dataclass(frozen=True)
class FrameIndex:
    """Where each frame's fragments lie: ``starts[i]`` is the file offset of the first item
    header of frame i, ``starts[i + 1]`` the end (for native data: the frame's bytes)."""

    starts: np.ndarray
    native: bool
    transfer_syntax: str
    rows: int
    columns: int
    samples: int
    photometric: str

    @property
    def weight(self) -> int:
        return int(self.starts.nbytes) + 256


def _tile_cache_bytes() -> int:
    return int(getattr(settings, "HUIZHEN_PATHOLOGY_TILE_CACHE_BYTES", 64 * 1024 * 1024))


_indexes: LRU[str, FrameIndex] = LRU(lambda: 64 * 1024 * 1024, lambda v: v.weight)
_tiles: LRU[tuple[str, int], bytes] = LRU(_tile_cache_bytes, len)


def clear_caches() -> None:
    _indexes.clear()
    _tiles.clear()


def _fragment_starts(fp: BinaryIO, first_item: int, end: int | None, frames: int) -> list[int]:
    """Item offsets of every fragment, walking the item headers (no Basic Offset Table)."""
    starts = []
    position = first_item
    fp.seek(position)
    while True:
        header = fp.read(8)
        if len(header) < 8:
            break
        tag = (struct.unpack("<H", header[:2])[0] << 16) | struct.unpack("<H", header[2:4])[0]
        length = struct.unpack("<L", header[4:])[0]
        if tag != ITEM:
            break
        starts.append(position)
        position += 8 + length
        if end is not None and position >= end:
            break
        fp.seek(position)
    starts.append(position)
    if len(starts) - 1 != frames:
        raise TileNotFound("fragments do not map one to one onto frames")
    return starts


def build_index(fp: BinaryIO) -> FrameIndex:
    """Read a stored level's header and offset table; never its pixel data."""
    fp.seek(0)
    header = pydicom.dcmread(fp, defer_size=HEADER_DEFER)
    ts = str(header.file_meta.TransferSyntaxUID)
    element = header.get_item(PIXEL_DATA, keep_deferred=True)
    if element is None:
        raise TileNotFound("no pixel data")
    frames = max(1, int(header.get("NumberOfFrames") or 1))
    rows, columns = int(header.Rows), int(header.Columns)
    samples = int(header.get("SamplesPerPixel") or 1)
    photometric = str(header.get("PhotometricInterpretation") or "")
    offset = element.value_tell
    if ts in NATIVE:
        size = rows * columns * samples * int(header.BitsAllocated) // 8
        starts = offset + size * np.arange(frames + 1, dtype=np.int64)
        return FrameIndex(starts, True, ts, rows, columns, samples, photometric)
    fp.seek(offset)
    tag_bytes = fp.read(8)
    bot_length = struct.unpack("<L", tag_bytes[4:])[0]
    first_item = offset + 8 + bot_length
    extended = header.get("ExtendedOffsetTable")
    if extended is not None:
        table = np.frombuffer(bytes(extended), dtype="<u8").astype(np.int64)
        starts = np.append(first_item + table, _end_of_items(fp, first_item + int(table[-1])))
    elif bot_length >= 4 * frames:
        table = np.frombuffer(fp.read(bot_length), dtype="<u4").astype(np.int64)[:frames]
        starts = np.append(first_item + table, _end_of_items(fp, first_item + int(table[-1])))
    else:
        starts = np.asarray(_fragment_starts(fp, first_item, None, frames), dtype=np.int64)
    return FrameIndex(starts, False, ts, rows, columns, samples, photometric)


def _end_of_items(fp: BinaryIO, position: int) -> int:
    """The offset just past the items that start at ``position`` (up to the delimiter)."""
    fp.seek(position)
    while True:
        header = fp.read(8)
        if len(header) < 8:
            return position
        group, element, length = struct.unpack("<HHL", header)
        if ((group << 16) | element) != ITEM:
            return position
        position += 8 + length
        fp.seek(position)


def _frame_bytes(fp: BinaryIO, index: FrameIndex, frame: int) -> bytes:
    start, end = int(index.starts[frame]), int(index.starts[frame + 1])
    fp.seek(start)
    raw = fp.read(end - start)
    if index.native:
        return raw
    parts = []
    position = 0
    while position + 8 <= len(raw):
        _g, _e, length = struct.unpack("<HHL", raw[position : position + 8])
        parts.append(raw[position + 8 : position + 8 + length])
        position += 8 + length
    return b"".join(parts)


def _as_jpeg(data: bytes, index: FrameIndex) -> bytes:
    """A frame in another syntax than JPEG baseline, encoded as JPEG for the browser."""
    if index.native:
        shape = (
            (index.rows, index.columns, index.samples)
            if index.samples > 1
            else (
                index.rows,
                index.columns,
            )
        )
        array = np.frombuffer(data, dtype=np.uint8).reshape(shape)
        image = Image.fromarray(array, "RGB" if index.samples == 3 else "L")
        if index.photometric.startswith("YBR"):
            image = Image.fromarray(array, "YCbCr").convert("RGB")
    else:
        image = Image.open(io.BytesIO(data))
        image.load()
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=TILE_JPEG_QUALITY)
    return out.getvalue()


def read_tile(instance: Instance, frame: int) -> bytes:
    """Frame ``frame`` (0-based) of a stored level as a JPEG image, from the caches when hot.
    Raises TileNotFound for a frame the level does not have."""
    key = (instance.storage_key, frame)
    cached = _tiles.get(key)
    if cached is not None:
        return cached
    with default_storage.open(instance.storage_key, "rb") as fp:
        index = _indexes.get(instance.storage_key)
        if index is None:
            index = build_index(fp)
            _indexes.put(instance.storage_key, index)
        if not 0 <= frame < len(index.starts) - 1:
            raise TileNotFound(f"frame {frame}")
        data = _frame_bytes(fp, index, frame)
    if index.transfer_syntax != JPEG_BASELINE:
        data = _as_jpeg(data, index)
    _tiles.put(key, data)
    return data
