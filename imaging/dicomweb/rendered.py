"""Rendered images (PS3.18 10.4, rendered resources), thumbnails and WADO-URI (PS3.18 9)."""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

from imaging.models import Instance

from .http import BadRequest, NotAcceptable, PayloadTooLarge, parse_accept, type_matches
from .render import (
    DEFAULT_QUALITY,
    RENDERED_TYPES,
    BadRenderParameter,
    RenderOptions,
    Viewport,
    parse_quality,
    parse_viewport,
    parse_window,
    render_frame,
)
from .transfer import TooLarge
from .wado import check_frames, open_source, parse_frame_list

THUMBNAIL_SIDE = 128


def _media_type(request: HttpRequest, query_accept: str | None) -> str:
    """image/jpeg unless PNG is preferred; the ``accept`` query parameter wins over the
    Accept header (PS3.18 8.3.3.1)."""
    header = query_accept if query_accept else request.headers.get("Accept")
    ranges = parse_accept(header)
    if not ranges:
        return "image/jpeg"
    for r in ranges:
        media = r.single_or_part_type() if r.is_multipart else r.media_type
        for candidate in RENDERED_TYPES:
            if type_matches(media or "", candidate):
                return candidate
    raise NotAcceptable(_("Rendered images are available as image/jpeg or image/png."))


def render_options(
    request: HttpRequest, params: Mapping[str, str], *, thumbnail: bool = False
) -> RenderOptions:
    try:
        window = parse_window(params["window"]) if params.get("window") else None
        viewport = parse_viewport(params["viewport"]) if params.get("viewport") else None
        quality = parse_quality(params["quality"]) if params.get("quality") else DEFAULT_QUALITY
    except BadRenderParameter as exc:
        raise BadRequest(str(exc)) from exc
    if thumbnail and viewport is None:
        viewport = Viewport(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    return RenderOptions(
        media_type=_media_type(request, params.get("accept")),
        quality=quality,
        window=window,
        viewport=viewport,
    )


def rendered(
    request: HttpRequest, instance: Instance, options: RenderOptions, frame_number: int = 1
) -> HttpResponse:
    """One frame rendered (a multi-frame instance renders its first frame unless a frame
    is named)."""
    fp, src = open_source(instance)
    try:
        check_frames(src, [frame_number])
        try:
            src.check_size(settings.HUIZHEN_DICOM_MAX_PIXEL_BYTES)
        except TooLarge:
            raise PayloadTooLarge(_("The image is too large to decode here.")) from None
        data = render_frame(src.file, index=frame_number - 1, options=options)
    finally:
        fp.close()
    response = HttpResponse(data, content_type=options.media_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


def single_frame(frame_list: str) -> int:
    numbers = parse_frame_list(frame_list)
    if len(numbers) != 1:
        raise BadRequest(_("Name one frame to render."))
    return numbers[0]


def middle_image(instances: list[Instance]) -> Instance | None:
    """The middle image of the first series that has images (for thumbnails)."""
    images = [i for i in instances if i.rows]
    if not images:
        return None
    first_series = images[0].series_id
    in_series = [i for i in images if i.series_id == first_series]
    return in_series[len(in_series) // 2]


# --- WADO-URI ---------------------------------------------------------------------------------


def wado_uri_options(params: Mapping[str, str], *, media_type: str) -> tuple[RenderOptions, int]:
    """Rendering parameters of WADO-URI (PS3.18 9.1.2): rows, columns, windowCenter,
    windowWidth, imageQuality, frameNumber."""
    try:
        window = None
        if params.get("windowCenter") or params.get("windowWidth"):
            if not (params.get("windowCenter") and params.get("windowWidth")):
                raise BadRenderParameter(_("windowCenter and windowWidth go together."))
            window = parse_window(f"{params['windowCenter']},{params['windowWidth']}")
        viewport = None
        if params.get("rows") or params.get("columns"):
            viewport = parse_viewport(f"{params.get('columns', '')},{params.get('rows', '')}")
        quality = (
            parse_quality(params["imageQuality"]) if params.get("imageQuality") else DEFAULT_QUALITY
        )
        frame = int(params.get("frameNumber") or 1)
    except BadRenderParameter as exc:
        raise BadRequest(str(exc)) from exc
    except ValueError:
        raise BadRequest(_("frameNumber is a whole number from 1.")) from None
    if frame < 1:
        raise BadRequest(_("frameNumber is a whole number from 1."))
    options = RenderOptions(
        media_type=media_type, quality=quality, window=window, viewport=viewport
    )
    return options, frame
