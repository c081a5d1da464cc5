"""Deterministic slides for the pathology tests: pyramidal TIFFs written with tifffile and
DICOM WSI levels written directly, both from the same pixel pattern."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

TILE = 256


def pattern(height: int, width: int, *, step: int = 1) -> np.ndarray:
    """Smooth colour ramps with a coarse checkerboard: JPEG keeps them within a few levels,
    and any misplaced tile shows as a large difference."""
    y, x = np.mgrid[0:height, 0:width] * step
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = (x * 255 // (width * step)).astype(np.uint8)
    image[..., 1] = (y * 255 // (height * step)).astype(np.uint8)
    image[..., 2] = (((x // 512 + y // 512) % 2) * 160 + 40).astype(np.uint8)
    return image


def write_pyramid_tiff(
    path: Path, width: int = 4096, height: int = 3072, levels: int = 3, *, mpp: float = 0.25
) -> np.ndarray:
    """A tiled pyramidal TIFF (JPEG tiles, YCbCr) with ``levels`` levels; returns level 0."""
    base = pattern(height, width)
    resolution = 10_000 / mpp  # pixels per centimetre
    with tifffile.TiffWriter(path) as tif:
        tif.write(
            base,
            tile=(TILE, TILE),
            compression="jpeg",
            compressionargs={"level": 92},
            photometric="rgb",
            subifds=levels - 1,
            resolution=(resolution, resolution),
            resolutionunit="CENTIMETER",
        )
        for n in range(1, levels):
            tif.write(
                pattern(height >> n, width >> n, step=1 << n),
                tile=(TILE, TILE),
                compression="jpeg",
                compressionargs={"level": 92},
                photometric="rgb",
                subfiletype=1,
            )
    return base


def write_svs_like(path: Path, width: int = 2048, height: int = 1536) -> np.ndarray:
    """A TIFF whose description reads as Aperio's (MPP and AppMag), RGB-encoded LZW tiles, so
    conversion decodes and encodes them."""
    base = pattern(height, width)
    description = f"Aperio Image Library v12.0.15\r\n{width}x{height} |AppMag = 20|MPP = 0.5"
    with tifffile.TiffWriter(path) as tif:
        tif.write(
            base, tile=(TILE, TILE), compression="lzw", photometric="rgb", description=description
        )
        tif.write(
            pattern(height // 4, width // 4, step=4),
            tile=(TILE, TILE),
            compression="lzw",
            photometric="rgb",
            subfiletype=1,
        )
    return base


def decode_jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
