"""Reading vendor slides (Aperio SVS, generic tiled pyramidal TIFF) with tifffile and turning
each pyramid level into a DICOM WSI level.

Pure: works on a local file path, no ORM and no storage. JPEG tiles in YCbCr are copied as
they are (their JPEG tables merged in), so conversion neither decodes nor loses quality; other
encodings (RGB JPEG, JPEG 2000, LZW, Deflate, uncompressed) are decoded and encoded as JPEG.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.utils.translation import gettext as _

from .wsi import LevelSpec, SlideIdentity, level_part10

logger = logging.getLogger(__name__)

TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
JPEG_QUALITY = 90
MIN_TILE, MAX_TILE = 16, 4096
SVS_MPP_RE = re.compile(r"\|\s*MPP\s*=\s*([0-9.]+)")
SVS_POWER_RE = re.compile(r"\|\s*AppMag\s*=\s*([0-9.]+)")


class NotASlide(ValueError):
    """An upload that is not a slide this converter reads; the message says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class SourceLevel:
    page: object  # tifffile.TiffPage (the level's key frame)
    spec: LevelSpec
    passthrough: bool


@dataclass(frozen=True)
class SourceSlide:
    file_format: str  # "aperio_svs" or "tiff"
    levels: list[SourceLevel]
    mpp: float | None
    objective_power: float | None

    @property
    def width(self) -> int:
        return self.levels[0].spec.width

    @property
    def height(self) -> int:
        return self.levels[0].spec.height

    @property
    def total_tiles(self) -> int:
        return sum(level.spec.frames for level in self.levels)


def sniff(head: bytes) -> bool:
    """Whether the first bytes of a file are a TIFF (or BigTIFF) header."""
    return head[:4] in TIFF_MAGIC


def _mpp_from_tiff(page: object) -> float | None:
    """Micrometres per pixel from XResolution and ResolutionUnit (centimetre or inch)."""
    try:
        x_resolution = float(page.resolution[0])  # type: ignore[attr-defined]
        unit = int(page.resolutionunit)  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    if x_resolution <= 1:
        return None
    per_unit_um = {3: 10_000.0, 2: 25_400.0}.get(unit)
    if per_unit_um is None:
        return None
    mpp = per_unit_um / x_resolution
    return mpp if 0.01 <= mpp <= 100 else None


def _jpeg_subsampled(stream: bytes) -> bool | None:
    """Whether a baseline JPEG's luma is subsampled (None if no SOF0 was found)."""
    index = stream.find(b"\xff\xc0")
    if index < 0 or len(stream) < index + 13:
        return None
    components = stream[index + 9]
    if components != 3:
        return None
    sampling = stream[index + 11]
    return sampling != 0x11


def _describe(tif: object) -> SourceSlide:
    import tifffile

    assert isinstance(tif, tifffile.TiffFile)
    if not tif.series:
        raise NotASlide(_("The TIFF file holds no image: it is damaged or not a slide."))
    series = tif.series[0]
    if not tif.is_svs and len(tif.series) > 1:
        # The largest series is the slide; the others are labels, macros or thumbnails.
        series = max(tif.series, key=lambda s: int(np.prod(s.shape[:2])))
    description = ""
    mpp = power = None
    if tif.is_svs:
        description = tif.pages.first.description or ""
        if match := SVS_MPP_RE.search(description):
            mpp = float(match.group(1))
        if match := SVS_POWER_RE.search(description):
            power = float(match.group(1))
    levels: list[SourceLevel] = []
    for level in series.levels:
        page = level.keyframe
        if not page.is_tiled:
            if not levels:
                raise NotASlide(
                    _(
                        "The image is not tiled. Save the slide as a tiled pyramidal TIFF "
                        "(for example with vips tiffsave --tile --pyramid) or as Aperio SVS."
                    )
                )
            continue
        if page.samplesperpixel not in (3, 4) or page.bitspersample != 8 or page.imagedepth > 1:
            raise NotASlide(
                _(
                    "Only 8-bit colour slides can be converted; this one has %(n)d samples of "
                    "%(bits)d bits."
                )
                % {"n": page.samplesperpixel, "bits": page.bitspersample}
            )
        if not (MIN_TILE <= page.tilewidth <= MAX_TILE and MIN_TILE <= page.tilelength <= MAX_TILE):
            raise NotASlide(_("The slide's tiles have an unusual size and cannot be converted."))
        width, height = int(page.imagewidth), int(page.imagelength)
        if levels and width >= levels[-1].spec.width:
            continue
        if mpp is None and not levels and not tif.is_svs:
            mpp = _mpp_from_tiff(page)
        base_width = levels[0].spec.width if levels else width
        downsample = base_width / width
        passthrough = (
            int(page.compression) == 7
            and int(page.photometric) == 6
            and page.planarconfig == 1
            and page.samplesperpixel == 3
        )
        photometric = "YBR_FULL_422"
        if passthrough:
            first = _first_tile(tif, page)
            subsampled = _jpeg_subsampled(first) if first else None
            if subsampled is None:
                passthrough = False
            elif not subsampled:
                photometric = "YBR_FULL"
        levels.append(
            SourceLevel(
                page=page,
                passthrough=passthrough,
                spec=LevelSpec(
                    width=width,
                    height=height,
                    tile_width=int(page.tilewidth),
                    tile_height=int(page.tilelength),
                    downsample=downsample,
                    mpp=mpp * downsample if mpp else None,
                    objective_power=power / downsample if power else None,
                    photometric=photometric,
                ),
            )
        )
    if not levels:
        raise NotASlide(_("The TIFF file holds no tiled image."))
    _check_complete(tif, levels)
    return SourceSlide(
        file_format="aperio_svs" if tif.is_svs else "tiff",
        levels=levels,
        mpp=mpp,
        objective_power=power,
    )


def _check_complete(tif: object, levels: list[SourceLevel]) -> None:
    """Refuse a file whose tiles point past its end (a cut-off upload)."""
    size = tif.filehandle.size  # type: ignore[attr-defined]
    for level in levels:
        page = level.page
        offsets = np.asarray(page.dataoffsets, dtype=np.int64)  # type: ignore[attr-defined]
        counts = np.asarray(page.databytecounts, dtype=np.int64)  # type: ignore[attr-defined]
        if len(offsets) < level.spec.frames:
            raise NotASlide(_("The slide's tile index is incomplete: the file is damaged."))
        present = counts > 0
        if present.any() and int((offsets[present] + counts[present]).max()) > size:
            raise NotASlide(
                _("The file ends before its last tile: the upload was cut off. Upload it again.")
            )


def _first_tile(tif: object, page: object) -> bytes:
    counts = page.databytecounts  # type: ignore[attr-defined]
    if not counts or not counts[0]:
        return b""
    return _merge_tables(_read(tif, page.dataoffsets[0], counts[0]), page.jpegtables)  # type: ignore[attr-defined]


def _read(tif: object, offset: int, count: int) -> bytes:
    handle = tif.filehandle  # type: ignore[attr-defined]
    handle.seek(offset)
    return handle.read(count)


def _merge_tables(tile: bytes, tables: bytes | None) -> bytes:
    """An abbreviated JPEG tile made whole with the TIFF's shared JPEG tables."""
    if not tables or len(tables) < 4:
        return tile
    return tile[:2] + tables[2:-2] + tile[2:]


@contextmanager
def open_slide(path: str | Path) -> Iterator[tuple[object, SourceSlide]]:
    """Open and describe a slide file. Raises NotASlide with a message a person can act on."""
    import tifffile

    with open(path, "rb") as handle:
        head = handle.read(8)
    if not sniff(head):
        raise NotASlide(
            _(
                "This is not a slide file: upload an Aperio SVS or a tiled pyramidal TIFF "
                "(DICOM slides are sent through DICOM or STOW-RS instead)."
            )
        )
    try:
        tif = tifffile.TiffFile(str(path))
    except (tifffile.TiffFileError, ValueError, OSError, IndexError, KeyError) as exc:
        raise NotASlide(
            _("The TIFF file is damaged and cannot be read (%(error)s).")
            % {"error": str(exc)[:120]}
        ) from exc
    try:
        try:
            slide = _describe(tif)
        except (tifffile.TiffFileError, IndexError, KeyError, AttributeError) as exc:
            raise NotASlide(
                _("The TIFF file is damaged and cannot be read (%(error)s).")
                % {"error": str(exc)[:120]}
            ) from exc
        yield tif, slide
    finally:
        tif.close()


def _encode_jpeg(array: np.ndarray) -> bytes:
    import imagecodecs

    if array.shape[-1] == 4:
        array = array[..., :3]
    return bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(array), level=JPEG_QUALITY))


def level_tiles(tif: object, level: SourceLevel, tick: Callable[[], None]) -> Iterator[bytes]:
    """The level's tiles as JPEG bitstreams in TILED_FULL order."""
    page = level.page
    spec = level.spec
    offsets = page.dataoffsets  # type: ignore[attr-defined]
    counts = page.databytecounts  # type: ignore[attr-defined]
    blank: bytes | None = None
    for index in range(spec.frames):
        count = counts[index]
        if not count:  # a tile the scanner left out: background
            if blank is None:
                blank = _encode_jpeg(np.full((spec.tile_height, spec.tile_width, 3), 255, np.uint8))
            yield blank
        elif level.passthrough:
            yield _merge_tables(_read(tif, offsets[index], count), page.jpegtables)  # type: ignore[attr-defined]
        else:
            data = _read(tif, offsets[index], count)
            try:
                decoded, _index, _shape = page.decode(  # type: ignore[attr-defined]
                    data,
                    index,
                    jpegtables=page.jpegtables,  # type: ignore[attr-defined]
                )
            except (ValueError, RuntimeError) as exc:
                raise NotASlide(
                    _("Tile %(n)d of the slide cannot be decoded: the file is damaged.")
                    % {"n": index + 1}
                ) from exc
            if decoded is None:
                raise NotASlide(_("The slide's tiles use an encoding that cannot be read here."))
            tile = np.asarray(decoded).reshape(decoded.shape[-3:])
            yield _encode_jpeg(tile)
        tick()


def convert_levels(
    tif: object,
    slide: SourceSlide,
    identity: SlideIdentity,
    *,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[LevelSpec, bytes]]:
    """Each level as a DICOM WSI Part 10 object, largest first. ``progress`` is called with
    the percentage of tiles done whenever it changes."""
    total = max(1, slide.total_tiles)
    done = 0
    last = -1

    def tick() -> None:
        nonlocal done, last
        done += 1
        percent = done * 100 // total
        if progress is not None and percent != last:
            last = percent
            progress(percent)

    for number, level in enumerate(slide.levels, start=1):
        tiles = level_tiles(tif, level, tick)
        yield level.spec, level_part10(identity, level.spec, tiles, instance_number=number)
