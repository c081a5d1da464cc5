"""Writes of the pathology room: accepting a slide upload, converting it into DICOM WSI in
the archive, and annotating slides.

An upload is checked while the person waits (is it a tiled slide, is it whole, may they add
images for this patient); the conversion itself runs as a background task that reports its
progress on the SlideConversion row and stores each level through ``store_instance``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from pydicom.uid import generate_uid

from imaging import services as archive
from imaging.dicom.parse import InvalidDicom
from imaging.dicomweb.http import PayloadTooLarge, UnsupportedMediaType
from imaging.models import Study
from registry import audit
from registry.access import CLINICAL_ROLES, Principal, access_patient, require_role
from registry.errors import Forbidden, ValidationFailed
from registry.models import Patient

from . import conversion as slides
from .models import AnnotationShape, ConversionStatus, SlideAnnotation, SlideConversion
from .selectors import Slide
from .wsi import SlideIdentity

logger = logging.getLogger(__name__)

UPLOAD_PREFIX = "pathology/uploads"
MAX_POINTS = 2000
MAX_TEXT = 4000
SEX_CODES = {"male": "M", "female": "F"}


def _max_upload_bytes() -> int:
    return int(getattr(settings, "HUIZHEN_PATHOLOGY_MAX_UPLOAD_BYTES", 8 * 1024**3))


@contextmanager
def _local_path(upload: UploadedFile) -> Iterator[str]:
    """A file path for the upload (Django keeps large uploads in a temporary file)."""
    path = getattr(upload, "temporary_file_path", None)
    if callable(path):
        yield path()
        return
    handle = tempfile.NamedTemporaryFile(suffix=".tif", delete=False)  # noqa: SIM115
    try:
        with handle:
            for chunk in upload.chunks():
                handle.write(chunk)
        yield handle.name
    finally:
        os.unlink(handle.name)


def _check_upload(upload: UploadedFile) -> tuple[str, str, int]:
    """Refuse what cannot become a slide; return (format, extension, largest level bytes)."""
    if not upload.size:
        raise ValidationFailed(_("The file is empty."), fields={"file": _("The file is empty.")})
    if upload.size > _max_upload_bytes():
        raise PayloadTooLarge(
            _("The file is larger than the %(limit)d bytes a slide upload may have.")
            % {"limit": _max_upload_bytes()}
        )
    upload.seek(0)
    head = upload.read(132)
    upload.seek(0)
    if head[128:132] == b"DICM":
        raise UnsupportedMediaType(
            _(
                "This is a DICOM file: send DICOM slides through DICOM (C-STORE) or "
                "STOW-RS at /dicomweb/studies; this upload converts SVS and TIFF slides."
            ),
            code="dicom_upload",
        )
    if not slides.sniff(head):
        raise UnsupportedMediaType(
            _(
                "This is not a slide file: upload an Aperio SVS or a tiled pyramidal TIFF "
                "(DICOM slides are sent through DICOM or STOW-RS instead)."
            ),
            code="not_a_slide",
        )
    with _local_path(upload) as path:
        try:
            with slides.open_slide(path) as (_tif, slide):
                file_format = slide.file_format
                decoded = max(level.spec.width * level.spec.height * 3 for level in slide.levels)
        except slides.NotASlide as exc:
            raise ValidationFailed(
                exc.message, code="not_a_slide", fields={"file": exc.message}
            ) from exc
    if decoded > settings.HUIZHEN_DICOM_MAX_PIXEL_BYTES:
        raise PayloadTooLarge(
            _(
                "The slide's largest level decodes to %(size)d bytes; this archive accepts "
                "images of at most %(limit)d bytes (HUIZHEN_DICOM_MAX_PIXEL_BYTES)."
            )
            % {"size": decoded, "limit": settings.HUIZHEN_DICOM_MAX_PIXEL_BYTES}
        )
    extension = ".svs" if file_format == "aperio_svs" else ".tif"
    return file_format, extension, decoded


def slide_upload(
    *,
    principal: Principal,
    patient_id: uuid.UUID | str,
    upload: UploadedFile,
    specimen_description: str = "",
) -> SlideConversion:
    """Accept a vendor slide for a patient the principal may see and queue its conversion.

    Raises Forbidden (role), NotFound (patient), UnsupportedMediaType (not a TIFF),
    ValidationFailed (not a usable slide), PayloadTooLarge; stores nothing then."""
    require_role(principal, CLINICAL_ROLES, action="pathology.slide.upload")
    patient = access_patient(principal, patient_id, action="pathology.slide.upload")
    file_format, extension, _decoded = _check_upload(upload)
    key = f"{UPLOAD_PREFIX}/{uuid.uuid4().hex}{extension}"
    upload.seek(0)
    saved = default_storage.save(key, upload)
    try:
        with transaction.atomic():
            conversion = SlideConversion.objects.create(
                organisation=principal.organisation,
                patient=patient,
                created_by=principal.user,
                file_name=os.path.basename(upload.name or "")[:255],
                file_format=file_format,
                upload_key=saved,
                upload_size=upload.size or 0,
                study_instance_uid=generate_uid(),
                series_instance_uid=generate_uid(),
                specimen_description=specimen_description[:64],
            )
            audit.record(
                actor=principal.actor,
                action="pathology.slide.upload",
                object_type="slide_conversion",
                object_id=conversion.external_id,
                patient_id=patient.external_id,
                subject_organisation_id=patient.home_organisation_id,
                detail={"format": file_format, "size": upload.size},
            )
            transaction.on_commit(lambda: _enqueue(conversion.pk))
    except BaseException:
        default_storage.delete(saved)
        raise
    return conversion


def _enqueue(conversion_id: int) -> None:
    from .tasks import slide_convert

    slide_convert.delay(conversion_id)


@contextmanager
def _stored_path(key: str) -> Iterator[str]:
    """A local path to a stored upload (a temporary copy for object storage)."""
    try:
        yield default_storage.path(key)
        return
    except NotImplementedError:
        pass
    handle = tempfile.NamedTemporaryFile(suffix=os.path.splitext(key)[1], delete=False)  # noqa: SIM115
    try:
        with handle, default_storage.open(key, "rb") as source:
            shutil.copyfileobj(source, handle, 1 << 20)
        yield handle.name
    finally:
        os.unlink(handle.name)


def _identity(conversion: SlideConversion, patient: Patient) -> SlideIdentity:
    return SlideIdentity(
        study_instance_uid=conversion.study_instance_uid,
        series_instance_uid=conversion.series_instance_uid,
        patient_id=patient.id_number or str(patient.external_id),
        patient_name=patient.name,
        patient_birth_date=patient.birth_date.strftime("%Y%m%d") if patient.birth_date else "",
        patient_sex=SEX_CODES.get(patient.sex, "O" if patient.sex else ""),
        study_description=_("Pathology slide")[:64],
        series_description=(conversion.file_name or "")[:64],
        container_identifier=str(conversion.external_id),
        specimen_description=conversion.specimen_description,
    )


def _progress(conversion_id: int, percent: int) -> None:
    SlideConversion.objects.filter(pk=conversion_id).update(
        progress=min(99, percent), updated_at=timezone.now()
    )


def _fail(conversion_id: int, message: str) -> str:
    SlideConversion.objects.filter(pk=conversion_id).update(
        status=ConversionStatus.FAILED,
        error=message[:2000],
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    return ConversionStatus.FAILED


def slide_conversion_run(*, conversion_id: int) -> str:
    """Convert an accepted upload into DICOM WSI levels in the archive and link the study to
    the patient. Idempotent: a finished conversion is left alone, and a rerun after a crash
    stores the same SOP Instance UIDs again as new objects only if none was stored yet."""
    with transaction.atomic():
        conversion = (
            SlideConversion.objects.select_for_update(of=("self",))
            .select_related("patient", "organisation", "created_by")
            .filter(pk=conversion_id)
            .first()
        )
        if conversion is None or conversion.status in (
            ConversionStatus.DONE,
            ConversionStatus.FAILED,
        ):
            return conversion.status if conversion else "missing"
        conversion.status = ConversionStatus.RUNNING
        conversion.progress = 0
        conversion.save(update_fields=["status", "progress", "updated_at"])
    user = conversion.created_by
    actor = audit.Actor(
        user_id=user.pk if user else None,
        username=user.get_username() if user else "system:pathology",
        organisation_id=conversion.organisation_id,
    )
    source = archive.Source(organisation=conversion.organisation, actor=actor)
    identity = _identity(conversion, conversion.patient)
    levels: list[dict[str, Any]] = []
    last = [0]

    def progress(percent: int) -> None:
        if percent - last[0] >= 5:
            last[0] = percent
            _progress(conversion.pk, percent)

    try:
        with _stored_path(conversion.upload_key) as path, slides.open_slide(path) as (tif, slide):
            for spec, raw in slides.convert_levels(tif, slide, identity, progress=progress):
                archive.store_instance(raw, source=source)
                levels.append(
                    {
                        "width": spec.width,
                        "height": spec.height,
                        "tile_width": spec.tile_width,
                        "tile_height": spec.tile_height,
                        "bytes": len(raw),
                    }
                )
    except slides.NotASlide as exc:
        return _fail(conversion.pk, exc.message)
    except InvalidDicom as exc:
        return _fail(conversion.pk, _("The archive refused the slide: %(e)s") % {"e": exc})
    except (OSError, ValueError) as exc:
        logger.warning("slide conversion failed", exc_info=True, extra={"id": conversion.pk})
        return _fail(
            conversion.pk, _("The slide could not be converted: %(e)s") % {"e": str(exc)[:200]}
        )
    with transaction.atomic():
        study = Study.objects.select_for_update().get(
            study_instance_uid=conversion.study_instance_uid
        )
        if study.patient_id is None:
            study.patient = conversion.patient
            study.save(update_fields=["patient", "updated_at"])
        SlideConversion.objects.filter(pk=conversion.pk).update(
            status=ConversionStatus.DONE,
            progress=100,
            study=study,
            levels=levels,
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )
    try:
        default_storage.delete(conversion.upload_key)
    except OSError:
        logger.warning("could not remove a converted upload", extra={"id": conversion.pk})
    return ConversionStatus.DONE


# --- annotations --------------------------------------------------------------------------------


def _check_shape(shape: str, points: Any, slide: Slide) -> list[list[float]]:
    if shape not in AnnotationShape.values:
        raise ValidationFailed(
            _("The shape is point, rectangle or polygon."), fields={"shape": shape[:32]}
        )
    wanted = {"point": (1, 1), "rectangle": (2, 2), "polygon": (3, MAX_POINTS)}[shape]
    if not isinstance(points, list) or not wanted[0] <= len(points) <= wanted[1]:
        raise ValidationFailed(
            _("A point has one [x, y], a rectangle two corners, a polygon 3 to %(n)d vertices.")
            % {"n": MAX_POINTS},
            fields={"points": _("Wrong number of points.")},
        )
    out = []
    for point in points:
        if (
            not isinstance(point, list | tuple)
            or len(point) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in point)
        ):
            raise ValidationFailed(
                _("Each point is [x, y] in slide pixels."), fields={"points": str(point)[:40]}
            )
        x, y = float(point[0]), float(point[1])
        if not (0 <= x <= slide.width and 0 <= y <= slide.height):
            raise ValidationFailed(
                _("The point (%(x)g, %(y)g) lies outside the slide of %(w)d × %(h)d pixels.")
                % {"x": x, "y": y, "w": slide.width, "h": slide.height},
                fields={"points": _("Outside the slide.")},
            )
        out.append([round(x, 2), round(y, 2)])
    return out


def _check_text(text: str) -> str:
    if len(text) > MAX_TEXT:
        raise ValidationFailed(
            _("The text is at most %(n)d characters.") % {"n": MAX_TEXT},
            fields={"text": _("Too long.")},
        )
    return text


def _audit_annotation(principal: Principal, action: str, annotation: SlideAnnotation) -> None:
    study = annotation.study
    audit.record(
        actor=principal.actor,
        action=action,
        object_type="slide_annotation",
        object_id=annotation.external_id,
        patient_id=study.patient.external_id if study.patient_id else None,
        subject_organisation_id=study.organisation_id,
    )


@transaction.atomic
def annotation_create(
    *,
    principal: Principal,
    slide: Slide,
    shape: str,
    points: Any,
    text: str = "",
    consult_id: uuid.UUID | None = None,
) -> SlideAnnotation:
    """Annotate an already-gated slide. Clinical roles only."""
    require_role(principal, CLINICAL_ROLES, action="pathology.annotation.create")
    clean = _check_shape(shape, points, slide)
    annotation = SlideAnnotation.objects.create(
        study=slide.study,
        series=slide.series,
        consult_id=consult_id,
        shape=shape,
        points=clean,
        text=_check_text(text),
        organisation=principal.organisation,
        created_by=principal.user,
    )
    _audit_annotation(principal, "pathology.annotation.create", annotation)
    return annotation


def _check_author(principal: Principal, annotation: SlideAnnotation, action: str) -> None:
    require_role(principal, CLINICAL_ROLES, action=action)
    if annotation.created_by_id != principal.user.pk:
        raise Forbidden(_("Only the author may change or remove an annotation."), code="author")


@transaction.atomic
def annotation_update(
    *,
    principal: Principal,
    annotation: SlideAnnotation,
    slide: Slide,
    points: Any = None,
    text: str | None = None,
) -> SlideAnnotation:
    """Change the text or the points of one's own annotation (the shape stays)."""
    _check_author(principal, annotation, "pathology.annotation.update")
    locked = SlideAnnotation.objects.select_for_update().get(pk=annotation.pk)
    if points is not None:
        locked.points = _check_shape(locked.shape, points, slide)
    if text is not None:
        locked.text = _check_text(text)
    locked.save(update_fields=["points", "text", "updated_at"])
    locked.study = annotation.study
    _audit_annotation(principal, "pathology.annotation.update", locked)
    return locked


@transaction.atomic
def annotation_delete(*, principal: Principal, annotation: SlideAnnotation) -> None:
    _check_author(principal, annotation, "pathology.annotation.delete")
    _audit_annotation(principal, "pathology.annotation.delete", annotation)
    SlideAnnotation.objects.filter(pk=annotation.pk).delete()
