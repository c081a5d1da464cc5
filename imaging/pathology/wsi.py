"""DICOM VL Whole Slide Microscopy objects (PS3.3 A.32.8): writing one pyramid level from
tiles already compressed, and reading a slide's geometry back from the archive's index.

Pure: no ORM, no storage. Tiles are written as received (a JPEG bitstream per frame), in
TILED_FULL order (row by row, left to right), with a Basic Offset Table so that a reader finds
any frame by one seek.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.sequence import Sequence
from pydicom.uid import UID, JPEGBaseline8Bit, generate_uid

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498.7700"
# A Basic Offset Table holds 32-bit offsets: beyond that, the Extended Offset Table.
BOT_LIMIT = 0xFFFFFFF0


@dataclass(frozen=True)
class SlideIdentity:
    """Patient, study and specimen attributes shared by every level of one slide."""

    study_instance_uid: str
    series_instance_uid: str
    patient_id: str
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    accession_number: str = ""
    study_description: str = ""
    series_description: str = ""
    container_identifier: str = ""
    specimen_description: str = ""
    acquired_at: datetime | None = None
    frame_of_reference_uid: str = field(default_factory=generate_uid)
    pyramid_uid: str = field(default_factory=generate_uid)
    dimension_organization_uid: str = field(default_factory=generate_uid)
    specimen_uid: str = field(default_factory=generate_uid)


@dataclass(frozen=True)
class LevelSpec:
    """One pyramid level: its size, tiling, pixel size and how its tiles are encoded."""

    width: int
    height: int
    tile_width: int
    tile_height: int
    downsample: float = 1.0
    mpp: float | None = None  # micrometres per pixel at this level
    objective_power: float | None = None
    photometric: str = "YBR_FULL_422"
    transfer_syntax: str = JPEGBaseline8Bit

    @property
    def tiles_across(self) -> int:
        return -(-self.width // self.tile_width)

    @property
    def tiles_down(self) -> int:
        return -(-self.height // self.tile_height)

    @property
    def frames(self) -> int:
        return self.tiles_across * self.tiles_down


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def level_dataset(identity: SlideIdentity, level: LevelSpec, *, instance_number: int) -> Dataset:
    """Every attribute of one level except Pixel Data and the offset tables."""
    when = identity.acquired_at or datetime.now().astimezone()
    base = instance_number == 1
    ds = Dataset()
    sop_uid = generate_uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = WSI_SOP_CLASS
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = UID(level.transfer_syntax)
    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_UID
    ds.preamble = b"\0" * 128
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = (
        ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
        if base
        else ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
    )
    ds.SOPClassUID = WSI_SOP_CLASS
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = when.strftime("%Y%m%d")
    ds.StudyTime = when.strftime("%H%M%S")
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.StudyTime
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.AccessionNumber = identity.accession_number[:16]
    ds.Modality = "SM"
    ds.Manufacturer = "Huizhen"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = identity.study_description[:64]
    ds.SeriesDescription = identity.series_description[:64]
    ds.ManufacturerModelName = "Huizhen slide converter"
    ds.DeviceSerialNumber = "1"
    ds.SoftwareVersions = "1"
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id[:64]
    ds.PatientBirthDate = identity.patient_birth_date
    ds.PatientSex = identity.patient_sex
    ds.StudyInstanceUID = identity.study_instance_uid
    ds.SeriesInstanceUID = identity.series_instance_uid
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.FrameOfReferenceUID = identity.frame_of_reference_uid
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    ds.DimensionOrganizationType = "TILED_FULL"
    organisation = Dataset()
    organisation.DimensionOrganizationUID = identity.dimension_organization_uid
    ds.DimensionOrganizationSequence = Sequence([organisation])
    ds.PyramidUID = identity.pyramid_uid
    ds.BurnedInAnnotation = "NO"
    ds.SpecimenLabelInImage = "NO"
    ds.FocusMethod = "AUTO"
    ds.ExtendedDepthOfField = "NO"
    ds.VolumetricProperties = "VOLUME"
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    ds.TotalPixelMatrixColumns = level.width
    ds.TotalPixelMatrixRows = level.height
    ds.TotalPixelMatrixFocalPlanes = 1
    ds.NumberOfOpticalPaths = 1
    ds.NumberOfFocalPlanes = 1
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = 0
    origin.YOffsetInSlideCoordinateSystem = 0
    ds.TotalPixelMatrixOriginSequence = Sequence([origin])
    spacing_mm = (level.mpp or 0) / 1000
    if spacing_mm:
        ds.ImagedVolumeWidth = round(level.width * spacing_mm, 6)
        ds.ImagedVolumeHeight = round(level.height * spacing_mm, 6)
        ds.ImagedVolumeDepth = 0.001
    shared = Dataset()
    if spacing_mm:
        measures = Dataset()
        measures.PixelSpacing = [f"{spacing_mm:.8g}", f"{spacing_mm:.8g}"]
        measures.SliceThickness = 0.001
        shared.PixelMeasuresSequence = Sequence([measures])
    frame_type = Dataset()
    frame_type.FrameType = list(ds.ImageType)
    shared.WholeSlideMicroscopyImageFrameTypeSequence = Sequence([frame_type])
    path_id = Dataset()
    path_id.OpticalPathIdentifier = "1"
    shared.OpticalPathIdentificationSequence = Sequence([path_id])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    optical = Dataset()
    optical.OpticalPathIdentifier = "1"
    optical.IlluminationTypeCodeSequence = Sequence(
        [_code("111744", "DCM", "Brightfield illumination")]
    )
    optical.IlluminationColorCodeSequence = Sequence([_code("11744", "DCM", "Full Spectrum")])
    if level.objective_power:
        optical.ObjectiveLensPower = f"{level.objective_power:g}"
    ds.OpticalPathSequence = Sequence([optical])
    ds.ContainerIdentifier = (identity.container_identifier or identity.series_instance_uid)[:64]
    ds.IssuerOfTheContainerIdentifierSequence = Sequence([])
    ds.ContainerTypeCodeSequence = Sequence([_code("433466003", "SCT", "Microscope slide")])
    ds.AcquisitionContextSequence = Sequence([])
    specimen = Dataset()
    specimen.SpecimenIdentifier = ds.ContainerIdentifier
    specimen.SpecimenUID = identity.specimen_uid
    specimen.IssuerOfTheSpecimenIdentifierSequence = Sequence([])
    specimen.SpecimenShortDescription = identity.specimen_description[:64]
    specimen.SpecimenPreparationSequence = Sequence([])
    ds.SpecimenDescriptionSequence = Sequence([specimen])
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = level.photometric
    ds.PlanarConfiguration = 0
    ds.NumberOfFrames = level.frames
    ds.Rows = level.tile_height
    ds.Columns = level.tile_width
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    return ds


def level_part10(
    identity: SlideIdentity, level: LevelSpec, tiles: Iterable[bytes], *, instance_number: int
) -> bytes:
    """The Part 10 bytes of one level, its frames the given tile bitstreams in TILED_FULL
    order. Raises ValueError if the number of tiles does not match the level's grid."""
    frames = list(tiles)
    if len(frames) != level.frames:
        raise ValueError(f"{len(frames)} tiles for a level of {level.frames}")
    ds = level_dataset(identity, level, instance_number=instance_number)
    total = sum(len(f) + (len(f) & 1) + 8 for f in frames)
    if total < BOT_LIMIT:
        ds.PixelData = encapsulate(frames, has_bot=True)
    else:
        data, offsets, lengths = encapsulate_extended(frames)
        ds.PixelData = data
        ds.ExtendedOffsetTable = offsets
        ds.ExtendedOffsetTableLengths = lengths
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


# --- reading a slide from the index -------------------------------------------------------


def _value(meta: dict[str, Any], tag: str) -> list[Any] | None:
    element = meta.get(tag)
    return element.get("Value") if isinstance(element, dict) else None


def _first(meta: dict[str, Any], tag: str) -> Any:
    values = _value(meta, tag)
    return values[0] if values else None


def _nested(meta: dict[str, Any], *tags: str) -> Any:
    """The first value at a path of (sequence tag, ..., element tag), first items only."""
    current: Any = meta
    for tag in tags[:-1]:
        items = _value(current, tag)
        if not items:
            return None
        current = items[0]
    return _first(current, tags[-1])


@dataclass(frozen=True)
class LevelInfo:
    """One stored pyramid level as read from an instance's indexed metadata."""

    sop_instance_uid: str
    width: int
    height: int
    tile_width: int
    tile_height: int
    frames: int
    sparse: bool
    transfer_syntax: str
    photometric: str
    mpp: float | None
    objective_power: float | None

    @property
    def tiles_across(self) -> int:
        return -(-self.width // self.tile_width)

    @property
    def tiles_down(self) -> int:
        return -(-self.height // self.tile_height)


def level_info(
    sop_instance_uid: str, transfer_syntax: str, meta: dict[str, Any]
) -> LevelInfo | None:
    """The level an instance holds, or None when it is not a single-plane pyramid level
    (a label, an overview, or another kind of object)."""
    if _first(meta, "00080016") != WSI_SOP_CLASS:
        return None
    image_type = [str(v).upper() for v in (_value(meta, "00080008") or [])]
    if len(image_type) > 2 and image_type[2] not in ("VOLUME", "THUMBNAIL"):
        return None
    try:
        width = int(_first(meta, "00480006") or 0)
        height = int(_first(meta, "00480007") or 0)
        tile_height = int(_first(meta, "00280010") or 0)
        tile_width = int(_first(meta, "00280011") or 0)
        frames = int(_first(meta, "00280008") or 1)
    except (TypeError, ValueError):
        return None
    if min(width, height, tile_width, tile_height) <= 0:
        return None
    if int(_first(meta, "00480303") or 1) > 1 or int(_first(meta, "00480302") or 1) > 1:
        return None  # several focal planes or optical paths: not shown as one pyramid
    spacing = _nested(meta, "52009229", "00289110", "00280030")
    try:
        mpp = float(spacing) * 1000 if spacing else None
        power = _nested(meta, "00480105", "00480112")
        power = float(power) if power not in (None, "") else None
    except (TypeError, ValueError):
        mpp, power = None, None
    organisation = str(_first(meta, "00209311") or "").upper()
    full = -(-width // tile_width) * -(-height // tile_height)
    sparse = organisation != "TILED_FULL" or frames != full
    return LevelInfo(
        sop_instance_uid=sop_instance_uid,
        width=width,
        height=height,
        tile_width=tile_width,
        tile_height=tile_height,
        frames=frames,
        sparse=sparse,
        transfer_syntax=transfer_syntax,
        photometric=str(_first(meta, "00280004") or ""),
        mpp=mpp,
        objective_power=power,
    )
