"""WADO-RS (PS3.18 10.4): instances, metadata, bulk data and frames of what a principal may
see, streamed from storage. Rendered images and thumbnails are in ``rendered.py``."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import pydicom
from django.conf import settings
from django.core.files.storage import default_storage
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _

from imaging.models import Instance
from registry.errors import NotFound

from . import multipart
from .http import (
    BadRequest,
    MediaRange,
    NotAcceptable,
    PayloadTooLarge,
    parse_accept,
    streaming,
    type_matches,
)
from .transfer import (
    EXPLICIT_LE,
    FRAME_MEDIA_TYPES,
    NATIVE,
    NoPixelData,
    PixelSource,
    TooLarge,
    can_decode,
    choose_syntax,
    decoded_frame,
    open_pixels,
    stored_frame,
    to_explicit_le,
)

logger = logging.getLogger(__name__)

APPLICATION_DICOM = "application/dicom"
OCTET = "application/octet-stream"
FILE_CHUNK = 1 << 20
UTF8 = "ISO_IR 192"
BULK_PATH_RE = re.compile(r"^[0-9A-Fa-f]{8}(/[0-9]{1,6}/[0-9A-Fa-f]{8})*$")


def instance_url(request: HttpRequest, instance: Instance) -> str:
    series = instance.series
    return request.build_absolute_uri(
        reverse(
            "dicomweb-instance",
            args=[
                series.study.study_instance_uid,
                series.series_instance_uid,
                instance.sop_instance_uid,
            ],
        )
    )


def open_stored(instance: Instance) -> BinaryIO:
    return default_storage.open(instance.storage_key, "rb")


def decoded_size(instance: Instance) -> int:
    """Bytes of the decoded pixel data, from the index (0 for an object without pixels)."""
    if not (instance.rows and instance.columns and instance.bits_allocated):
        return 0
    samples = (instance.metadata.get("00280002", {}).get("Value") or [1])[0]
    bits = instance.rows * instance.columns * (instance.number_of_frames or 1)
    return (bits * int(samples or 1) * instance.bits_allocated + 7) // 8


def _file_chunks(instance: Instance) -> Iterator[bytes]:
    with open_stored(instance) as fp:
        while chunk := fp.read(FILE_CHUNK):
            yield chunk


def _transcoded(instance: Instance) -> Iterator[bytes]:
    with open_stored(instance) as fp:
        yield to_explicit_le(fp, max_pixel_bytes=settings.HUIZHEN_DICOM_MAX_PIXEL_BYTES)


# --- retrieve instances -----------------------------------------------------------------------


def _dicom_ranges(request: HttpRequest) -> list[MediaRange]:
    ranges = parse_accept(request.headers.get("Accept"))
    if not ranges:
        return [MediaRange("multipart/related", APPLICATION_DICOM, None, 1.0)]
    usable = []
    for r in ranges:
        if r.media_type in ("*/*", "multipart/*"):
            usable.append(MediaRange("multipart/related", APPLICATION_DICOM, None, r.q))
        elif r.is_multipart and type_matches(r.part_type or APPLICATION_DICOM, APPLICATION_DICOM):
            usable.append(r)
        elif r.media_type == APPLICATION_DICOM:
            usable.append(r)
    if not usable:
        raise NotAcceptable(_('Instances are sent as multipart/related; type="application/dicom".'))
    return usable


def _syntax_for(stored: str, ranges: list[MediaRange]) -> tuple[str, MediaRange]:
    for r in ranges:
        syntax = choose_syntax(stored, r.transfer_syntax)
        if syntax is not None:
            return syntax, r
    raise NotAcceptable(
        _("The instance is stored as %(ts)s and cannot be sent in the transfer syntax asked.")
        % {"ts": stored}
    )


def retrieve(
    request: HttpRequest, instances: list[Instance], *, single_allowed: bool = False
) -> HttpResponse:
    """The instances as multipart/related; type="application/dicom" (or, for one instance
    asked as plain application/dicom, the object alone)."""
    ranges = _dicom_ranges(request)
    plan = []
    for instance in instances:
        syntax, chosen = _syntax_for(instance.transfer_syntax_uid, ranges)
        if syntax != instance.transfer_syntax_uid and decoded_size(instance) > (
            settings.HUIZHEN_DICOM_MAX_PIXEL_BYTES
        ):
            raise PayloadTooLarge(_("The image is too large to decode here."))
        plan.append((instance, syntax, chosen))
    if single_allowed and len(plan) == 1 and not plan[0][2].is_multipart:
        instance, syntax, _chosen = plan[0]
        chunks = _file_chunks(instance) if syntax == instance.transfer_syntax_uid else None
        response = streaming(
            request,
            chunks or _transcoded(instance),
            content_type=f"{APPLICATION_DICOM}; transfer-syntax={syntax}",
        )
        return response
    boundary = multipart.new_boundary()

    def parts() -> Iterator[tuple[list[tuple[str, str]], Iterator[bytes]]]:
        for instance, syntax, _chosen in plan:
            headers = [
                ("Content-Type", f"{APPLICATION_DICOM}; transfer-syntax={syntax}"),
                ("Content-Location", instance_url(request, instance)),
            ]
            as_stored = syntax == instance.transfer_syntax_uid
            yield headers, _file_chunks(instance) if as_stored else _transcoded(instance)

    return streaming(
        request,
        multipart.write_parts(boundary, parts()),
        content_type=multipart.content_type(APPLICATION_DICOM, boundary),
    )


def single_object(request: HttpRequest, instance: Instance, requested: str | None) -> HttpResponse:
    """The object alone as application/dicom (WADO-URI), in the transfer syntax asked."""
    syntax = choose_syntax(instance.transfer_syntax_uid, requested)
    if syntax is None:
        raise NotAcceptable(_("The object cannot be sent in that transfer syntax."))
    as_stored = syntax == instance.transfer_syntax_uid
    return streaming(
        request,
        _file_chunks(instance) if as_stored else _transcoded(instance),
        content_type=APPLICATION_DICOM,
    )


# --- metadata ---------------------------------------------------------------------------------


def _rewrite(elements: dict[str, Any], base: str, path: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag, element in elements.items():
        uri = element.get("BulkDataURI")
        if isinstance(uri, str) and uri.startswith("bulkdata:"):
            element = {**element, "BulkDataURI": f"{base}/bulkdata/{'/'.join([*path, tag])}"}
        elif element.get("vr") == "SQ" and element.get("Value"):
            element = {
                **element,
                "Value": [
                    _rewrite(item, base, [*path, tag, str(index)])
                    for index, item in enumerate(element["Value"])
                ],
            }
        out[tag] = element
    return out


def metadata_json(request: HttpRequest, instance: Instance) -> dict[str, Any]:
    """Instance.metadata with bulk data placeholders made into absolute bulk data URLs and
    the character set given as UTF-8 (JSON text is Unicode, PS3.18 F.2)."""
    out = _rewrite(instance.metadata, instance_url(request, instance), [])
    if "00080005" in out:
        out["00080005"] = {"vr": "CS", "Value": [UTF8]}
    return out


# --- bulk data --------------------------------------------------------------------------------


def _bulk_ranges(request: HttpRequest) -> list[MediaRange]:
    ranges = parse_accept(request.headers.get("Accept"))
    return ranges or [MediaRange("multipart/related", OCTET, None, 1.0)]


def bulkdata(request: HttpRequest, instance: Instance, path: str) -> HttpResponse:
    """One bulk data value: top-level or inside sequence items (``tag/item/tag``)."""
    if not BULK_PATH_RE.match(path):
        raise BadRequest(_("The bulk data path is tag[/item/tag...]."))
    steps = path.upper().split("/")
    if steps == ["7FE00010"]:
        return frames(request, instance, None)
    with open_stored(instance) as fp:
        ds = pydicom.dcmread(fp, stop_before_pixels=False)
        value: Any = ds
        try:
            for position, step in enumerate(steps):
                value = value[int(step, 16)].value if position % 2 == 0 else value[int(step)]
        except (KeyError, IndexError, TypeError):
            value = None
    if not isinstance(value, bytes | bytearray):
        raise NotFound(_("This instance has no bulk data at that path."))
    ranges = _bulk_ranges(request)
    if any(not r.is_multipart and type_matches(r.media_type, OCTET) for r in ranges[:1]):
        return HttpResponse(bytes(value), content_type=OCTET)
    boundary = multipart.new_boundary()
    body = multipart.write_parts(boundary, [([("Content-Type", OCTET)], [bytes(value)])])
    return HttpResponse(b"".join(body), content_type=multipart.content_type(OCTET, boundary))


# --- frames -----------------------------------------------------------------------------------

STORED, DECODE = "stored", "decode"


@dataclass(frozen=True)
class FramePlan:
    mode: str  # STORED (the bitstream or native bytes as kept) or DECODE (decompress)
    content_type: str


def plan_frames(stored: str, ranges: list[MediaRange]) -> FramePlan:
    """Pick how to send frames of an object stored in ``stored`` (PS3.18 8.7.3.3 and
    8.7.3.5: native bytes as application/octet-stream, compressed frames in their own
    media type, or as application/octet-stream when ``transfer-syntax=*`` allows it)."""
    media = FRAME_MEDIA_TYPES.get(stored)
    for r in ranges:
        part = r.single_or_part_type() or OCTET
        if r.media_type in ("*/*", "multipart/*"):
            part = "*/*"
        ts = r.transfer_syntax
        if stored in NATIVE:
            if ts in (None, "*", EXPLICIT_LE) and type_matches(part, OCTET):
                return FramePlan(STORED, f"{OCTET}; transfer-syntax={EXPLICIT_LE}")
            continue
        if ts in ("*", stored) or (ts is None and part != OCTET):
            if part == OCTET:
                return FramePlan(STORED, f"{OCTET}; transfer-syntax={stored}")
            if media and type_matches(part, media):
                chosen = media if "*" in part else part
                return FramePlan(STORED, f"{chosen}; transfer-syntax={stored}")
            continue
        if ts in (None, EXPLICIT_LE) and type_matches(part, OCTET) and can_decode(stored):
            return FramePlan(DECODE, f"{OCTET}; transfer-syntax={EXPLICIT_LE}")
    raise NotAcceptable(
        _("The frames are stored as %(ts)s and cannot be sent in the media type asked.")
        % {"ts": stored}
    )


def parse_frame_list(value: str) -> list[int]:
    try:
        numbers = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        numbers = []
    if not numbers or any(n < 1 for n in numbers) or len(numbers) > 10000:
        raise BadRequest(_("Frames are numbered from 1, as a comma-separated list."))
    return numbers


def open_source(instance: Instance) -> tuple[BinaryIO, PixelSource]:
    """The stored file and its pixel data. Raises NotFound (no pixel data) or 413."""
    fp = open_stored(instance)
    try:
        src = open_pixels(fp, max_pixel_bytes=settings.HUIZHEN_DICOM_MAX_PIXEL_BYTES)
    except NoPixelData:
        fp.close()
        raise NotFound(_("This instance has no pixel data.")) from None
    except TooLarge:
        fp.close()
        raise PayloadTooLarge(_("The image is too large to decode here.")) from None
    except BaseException:
        fp.close()
        raise
    return fp, src


def check_frames(src: PixelSource, numbers: list[int]) -> None:
    last = src.number_of_frames
    beyond = [n for n in numbers if n > last]
    if beyond:
        raise BadRequest(
            _("Frame %(n)d does not exist; the instance has %(count)d.")
            % {"n": beyond[0], "count": last}
        )


def frames(request: HttpRequest, instance: Instance, frame_list: str | None) -> HttpResponse:
    """Frames (all of them when ``frame_list`` is None: the pixel data bulk data)."""
    fp, src = open_source(instance)
    try:
        numbers = (
            parse_frame_list(frame_list)
            if frame_list is not None
            else list(range(1, src.number_of_frames + 1))
        )
        check_frames(src, numbers)
        plan = plan_frames(src.transfer_syntax, _bulk_ranges(request))
        if plan.mode == DECODE:
            try:
                src.check_size(settings.HUIZHEN_DICOM_MAX_PIXEL_BYTES)
            except TooLarge:
                raise PayloadTooLarge(_("The image is too large to decode here.")) from None
    except BaseException:
        fp.close()
        raise
    base = instance_url(request, instance)
    boundary = multipart.new_boundary()

    def parts() -> Iterator[tuple[list[tuple[str, str]], list[bytes]]]:
        try:
            for n in numbers:
                data = (
                    stored_frame(src, n - 1) if plan.mode == STORED else decoded_frame(src, n - 1)
                )
                headers = [
                    ("Content-Type", plan.content_type),
                    ("Content-Location", f"{base}/frames/{n}"),
                ]
                yield headers, [data]
        finally:
            fp.close()

    part_type = plan.content_type.split(";")[0]
    return streaming(
        request,
        multipart.write_parts(boundary, parts()),
        content_type=multipart.content_type(part_type, boundary),
    )
