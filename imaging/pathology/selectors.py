"""Reads of slides, photos, conversions and annotations, each behind the archive's gate.

A slide is a series holding VL Whole Slide Microscopy levels. Seeing a slide, its tiles, its
photos or its annotations needs exactly what seeing the study needs (``imaging.access``).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, QuerySet
from django.utils.translation import gettext as _

from imaging.access import access_series, access_study
from imaging.models import Instance, Series, Study
from imaging.selectors import studies_visible_to
from registry.access import Principal
from registry.errors import NotFound

from .models import SlideAnnotation, SlideConversion
from .wsi import WSI_SOP_CLASS, LevelInfo, level_info

# Objects shown beside a slide: gross and microscopic photographs and captures.
PHOTO_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image
        "1.2.840.10008.5.1.4.1.1.77.1.2",  # VL Microscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.3",  # VL Slide-Coordinates Microscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color Secondary Capture
    }
)
SLIDE_CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class SlideLevel:
    number: int  # 0 is full resolution
    info: LevelInfo
    instance: Instance


@dataclass(frozen=True)
class Slide:
    study: Study
    series: Series
    levels: tuple[SlideLevel, ...]

    @property
    def width(self) -> int:
        return self.levels[0].info.width

    @property
    def height(self) -> int:
        return self.levels[0].info.height

    @property
    def mpp(self) -> float | None:
        return self.levels[0].info.mpp

    @property
    def objective_power(self) -> float | None:
        """The scanner's objective, else the usual equivalent of the pixel size (10 µm / mpp:
        0.25 µm per pixel is read as 40×)."""
        power = self.levels[0].info.objective_power
        if power:
            return power
        return round(10 / self.mpp, 1) if self.mpp else None


_levels_cache: dict[tuple[int, int], tuple[float, tuple[tuple[LevelInfo, Instance], ...]]] = {}
_levels_lock = threading.Lock()


def _levels(series: Series) -> tuple[tuple[LevelInfo, Instance], ...]:
    """The series' pyramid levels, largest first, one per size (cached briefly per process:
    a viewer asks for many tiles of the same series)."""
    key = (series.pk, series.number_of_instances)
    now = time.monotonic()
    with _levels_lock:
        hit = _levels_cache.get(key)
    if hit is not None and now - hit[0] < SLIDE_CACHE_SECONDS:
        return hit[1]
    found: dict[int, tuple[LevelInfo, Instance]] = {}
    instances = Instance.objects.filter(series=series, sop_class_uid=WSI_SOP_CLASS).only(
        "pk", "sop_instance_uid", "transfer_syntax_uid", "storage_key", "sha256", "metadata"
    )
    for instance in instances:
        info = level_info(
            instance.sop_instance_uid, instance.transfer_syntax_uid, instance.metadata
        )
        if info is None or info.sparse:
            continue
        instance.metadata = {}  # not needed past this point; keep the cache small
        current = found.get(info.width)
        if current is None or info.tile_width > current[0].tile_width:
            found[info.width] = (info, instance)
    levels = tuple(found[w] for w in sorted(found, reverse=True))
    with _levels_lock:
        if len(_levels_cache) > 1024:
            _levels_cache.clear()
        _levels_cache[key] = (now, levels)
    return levels


def slide_get(principal: Principal, study_uid: str, series_uid: str) -> Slide:
    """The slide in this series if the principal may see the study; else NotFound."""
    series = access_series(principal, study_uid, series_uid)
    levels = _levels(series)
    if not levels:
        raise NotFound(_("This series holds no whole-slide image."))
    return Slide(
        study=series.study,
        series=series,
        levels=tuple(
            SlideLevel(number=n, info=info, instance=instance)
            for n, (info, instance) in enumerate(levels)
        ),
    )


@dataclass(frozen=True)
class Photo:
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    modality: str
    description: str
    same_study: bool


def study_slides(principal: Principal, study_uid: str) -> tuple[Study, list[Slide], list[Photo]]:
    """A study's slides, and the photos of the study and of the patient's other studies
    that the principal may see (gross photographs, microscope captures)."""
    study = access_study(principal, study_uid)
    slides = []
    for series in study.series.order_by("series_number", "pk"):
        series.study = study
        levels = _levels(series)
        if levels:
            slides.append(
                Slide(
                    study=study,
                    series=series,
                    levels=tuple(
                        SlideLevel(number=n, info=info, instance=instance)
                        for n, (info, instance) in enumerate(levels)
                    ),
                )
            )
    studies = [study.pk]
    if study.patient_id:
        studies += list(
            studies_visible_to(principal)
            .filter(patient_id=study.patient_id)
            .exclude(pk=study.pk)
            .values_list("pk", flat=True)[:50]
        )
    rows = (
        Instance.objects.filter(series__study_id__in=studies, sop_class_uid__in=PHOTO_SOP_CLASSES)
        .select_related("series__study")
        .order_by("-series__study__received_at", "series__series_number", "instance_number")[:200]
    )
    photos = [
        Photo(
            study_uid=i.series.study.study_instance_uid,
            series_uid=i.series.series_instance_uid,
            sop_instance_uid=i.sop_instance_uid,
            modality=i.series.modality,
            description=i.series.series_description,
            same_study=i.series.study_id == study.pk,
        )
        for i in rows
    ]
    return study, slides, photos


def slide_studies_visible_to(principal: Principal) -> QuerySet[Study]:
    """Studies with slides (modality SM) the principal may see, newest first."""
    slides = Series.objects.filter(study=OuterRef("pk"), modality="SM")
    return (
        studies_visible_to(principal)
        .filter(Exists(slides))
        .select_related("patient", "organisation")
        .order_by("-received_at", "-pk")
    )


def conversion_get(principal: Principal, conversion_id: str | uuid.UUID) -> SlideConversion:
    """A conversion started by the principal's organisation tree, for its patient; else
    NotFound."""
    from registry.access import patients_visible_to

    try:
        key = uuid.UUID(str(conversion_id))
    except ValueError:
        raise NotFound(_("No such slide conversion.")) from None
    conversion = (
        SlideConversion.objects.select_related("study", "patient")
        .filter(external_id=key, patient__in=patients_visible_to(principal))
        .first()
    )
    if conversion is None:
        raise NotFound(_("No such slide conversion."))
    return conversion


def annotation_list(slide: Slide, *, consult_id: uuid.UUID | None = None) -> QuerySet:
    """Annotations of an already-gated slide (of one consult, when given)."""
    rows = SlideAnnotation.objects.filter(study=slide.study, series=slide.series)
    if consult_id is not None:
        rows = rows.filter(consult_id=consult_id)
    return rows.select_related("created_by").order_by("created_at", "pk")


def annotation_get(principal: Principal, annotation_id: str | uuid.UUID) -> SlideAnnotation:
    """One annotation whose study the principal may see; else NotFound (audited by the
    study gate when the study exists)."""
    try:
        key = uuid.UUID(str(annotation_id))
    except ValueError:
        raise NotFound(_("No such annotation.")) from None
    annotation = (
        SlideAnnotation.objects.select_related("study", "series").filter(external_id=key).first()
    )
    if annotation is None:
        raise NotFound(_("No such annotation."))
    try:
        access_series(
            principal, annotation.study.study_instance_uid, annotation.series.series_instance_uid
        )
    except NotFound:
        raise NotFound(_("No such annotation.")) from None
    return annotation
