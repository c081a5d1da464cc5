"""Rendered frames (PS3.18 8.3.5): decode, apply the Modality LUT and a VOI window, scale to
8 bits, crop and scale to a viewport, and encode as JPEG or PNG. Pure: works on open files.

Decoding goes through pydicom's pixel backends (pylibjpeg and GDCM plugins for compressed
transfer syntaxes).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from django.utils.translation import gettext as _
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, pixel_array

RENDERED_TYPES = ("image/jpeg", "image/png")
WINDOW_FUNCTIONS = ("linear", "linear-exact", "sigmoid")
MAX_VIEWPORT_SIDE = 4096
DEFAULT_QUALITY = 90


class BadRenderParameter(ValueError):
    pass


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "linear"


@dataclass(frozen=True)
class Viewport:
    width: int | None
    height: int | None
    sx: int = 0
    sy: int = 0
    sw: int | None = None
    sh: int | None = None


@dataclass(frozen=True)
class RenderOptions:
    media_type: str = "image/jpeg"
    quality: int = DEFAULT_QUALITY
    window: Window | None = None
    viewport: Viewport | None = None


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadRenderParameter(
            _("%(name)s must be a number, not %(value)s.") % {"name": name, "value": text[:20]}
        ) from None
    if not np.isfinite(value):
        raise BadRenderParameter(_("%(name)s must be a finite number.") % {"name": name})
    return value


def parse_window(value: str) -> Window:
    """``center,width[,function]`` with function linear (default), linear-exact or sigmoid."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) not in (2, 3):
        raise BadRenderParameter(_("window is centre,width,function (e.g. 40,400,linear)."))
    function = parts[2].lower() if len(parts) == 3 and parts[2] else "linear"
    if function not in WINDOW_FUNCTIONS:
        raise BadRenderParameter(_("The window function is linear, linear-exact or sigmoid."))
    width = _number(parts[1], "window width")
    if width <= 0:
        raise BadRenderParameter(_("The window width must be greater than zero."))
    return Window(_number(parts[0], "window centre"), width, function)


def _int_or_none(text: str, name: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise BadRenderParameter(
            _("%(name)s must be a whole number, not %(value)s.")
            % {"name": name, "value": text[:20]}
        ) from None


def parse_viewport(value: str) -> Viewport:
    """``vw,vh[,sx,sy,sw,sh]``: scale into vw × vh (aspect kept) the source region at sx,sy of
    sw × sh (a negative sw or sh flips); an empty vw or vh leaves that side free."""
    parts = value.split(",")
    if len(parts) not in (2, 6):
        raise BadRenderParameter(_("viewport is vw,vh or vw,vh,sx,sy,sw,sh."))
    names = ("vw", "vh", "sx", "sy", "sw", "sh")
    numbers = [_int_or_none(p, n) for p, n in zip(parts, names, strict=False)]
    vw, vh = numbers[0], numbers[1]
    for side in (vw, vh):
        if side is not None and not 1 <= side <= MAX_VIEWPORT_SIDE:
            raise BadRenderParameter(
                _("Viewport sides are 1 to %(max)d pixels.") % {"max": MAX_VIEWPORT_SIDE}
            )
    if len(numbers) == 2:
        return Viewport(vw, vh)
    sx, sy, sw, sh = numbers[2:]
    if (sx or 0) < 0 or (sy or 0) < 0:
        raise BadRenderParameter(_("sx and sy cannot be negative."))
    return Viewport(vw, vh, sx or 0, sy or 0, sw, sh)


def parse_quality(value: str) -> int:
    quality = _int_or_none(value, "quality")
    if quality is None or not 1 <= quality <= 100:
        raise BadRenderParameter(_("quality is a whole number from 1 to 100."))
    return quality


def _first(value: object) -> float:
    if (
        isinstance(value, list | tuple)
        or hasattr(value, "__getitem__")
        and not isinstance(value, str)
    ):
        value = value[0]  # type: ignore[index]
    return float(value)  # type: ignore[arg-type]


def _apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """PS3.3 C.11.2.1.2 (linear), C.11.2.1.3.2 (linear exact), C.11.2.1.3.1 (sigmoid)."""
    c, w = window.center, window.width
    if window.function == "sigmoid":
        return 255.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    if window.function == "linear-exact":
        return np.clip((values - c) / w + 0.5, 0.0, 1.0) * 255.0
    if w <= 1:
        return np.where(values <= c - 0.5, 0.0, 255.0)
    low, high = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    out = ((values - (c - 0.5)) / (w - 1) + 0.5) * 255.0
    return np.where(values <= low, 0.0, np.where(values > high, 255.0, out))


def _min_max(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values, dtype=np.float64)
    return (values - low) * (255.0 / (high - low))


def to_8bit(arr: np.ndarray, ds: Dataset, window: Window | None) -> np.ndarray:
    """Grey levels through the Modality LUT and a VOI (the asked window, else the object's
    first window, else its VOI LUT, else min to max); colour scaled to 8 bits."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.ndim == 3:
        if arr.dtype != np.uint8:
            bits = int(ds.get("BitsStored") or 16)
            if photometric == "PALETTE COLOR":
                bits = 16 if arr.max() > 255 else 8
            arr = np.right_shift(arr.astype(np.uint32), max(0, bits - 8))
        return np.clip(arr, 0, 255).astype(np.uint8)
    values = apply_modality_lut(arr, ds).astype(np.float64)
    if window is None and "WindowCenter" in ds and "WindowWidth" in ds:
        try:
            function = str(ds.get("VOILUTFunction") or "LINEAR").lower().replace("_", "-")
            window = Window(
                _first(ds.WindowCenter),
                max(_first(ds.WindowWidth), 1e-6),
                function if function in WINDOW_FUNCTIONS else "linear",
            )
        except (TypeError, ValueError, IndexError):
            window = None
    if window is not None:
        out = _apply_window(values, window)
    elif "VOILUTSequence" in ds:
        out = _min_max(apply_voi(values, ds).astype(np.float64))
    else:
        out = _min_max(values)
    if photometric == "MONOCHROME1":
        out = 255.0 - out
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def apply_viewport(image: Image.Image, viewport: Viewport | None) -> Image.Image:
    if viewport is None:
        return image
    width, height = image.size
    sw = viewport.sw if viewport.sw not in (None, 0) else width - viewport.sx
    sh = viewport.sh if viewport.sh not in (None, 0) else height - viewport.sy
    left, top = min(viewport.sx, width - 1), min(viewport.sy, height - 1)
    right, bottom = min(width, left + abs(sw)), min(height, top + abs(sh))
    region = image.crop((left, top, max(right, left + 1), max(bottom, top + 1)))
    if sw < 0:
        region = region.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if sh < 0:
        region = region.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    rw, rh = region.size
    if viewport.width and viewport.height:
        scale = min(viewport.width / rw, viewport.height / rh)
    elif viewport.width:
        scale = viewport.width / rw
    elif viewport.height:
        scale = viewport.height / rh
    else:
        return region
    size = (
        max(1, min(MAX_VIEWPORT_SIDE, round(rw * scale))),
        max(1, min(MAX_VIEWPORT_SIDE, round(rh * scale))),
    )
    if size == region.size:
        return region
    return region.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BILINEAR)


def encode(image: Image.Image, options: RenderOptions) -> bytes:
    out = io.BytesIO()
    if options.media_type == "image/png":
        image.save(out, format="PNG")
    else:
        image.save(out, format="JPEG", quality=options.quality)
    return out.getvalue()


def render_frame(fp: BinaryIO, *, index: int, options: RenderOptions) -> bytes:
    """Frame ``index`` (0-based) of the object in ``fp``, rendered. The caller has checked
    that the pixel data may be decoded (size limit) and that the frame exists."""
    fp.seek(0)
    ds = Dataset()
    arr = pixel_array(fp, index=index, ds_out=ds)
    if arr.ndim == 3 and int(ds.get("SamplesPerPixel") or 1) == 1:
        arr = arr[0]  # a single frame asked of an array shaped (frames, rows, columns)
    pixels = to_8bit(arr, ds, options.window)
    image = Image.fromarray(pixels, mode="RGB" if pixels.ndim == 3 else "L")
    return encode(apply_viewport(image, options.viewport), options)
