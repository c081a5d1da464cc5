"""STOW-RS (PS3.18 10.5): store the application/dicom parts of a multipart/related request
and answer which instances were stored, stored with a warning, or refused."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any

import pydicom
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import translation
from django.utils.http import parse_header_parameters
from django.utils.translation import gettext as _

from imaging.dicom.parse import (
    STATUS_CANNOT_UNDERSTAND,
    STATUS_DOES_NOT_MATCH_SOP_CLASS,
    STATUS_OUT_OF_RESOURCES,
    UID_RE,
    InvalidDicom,
)
from imaging.models import Instance
from imaging.services import Source, StorageFull, StoreResult, store_instance
from registry.access import CLINICAL_ROLES, Principal, require_role

from .http import BadRequest, UnsupportedMediaType, dicom_json
from .multipart import MultipartError, Part, iter_parts

logger = logging.getLogger(__name__)

APPLICATION_DICOM = "application/dicom"


@dataclass(frozen=True)
class Failure:
    status: int
    message: str
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_mismatch: bool = False


@dataclass
class Outcome:
    stored: list[StoreResult] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    storage_full: bool = False


def _boundary(request: HttpRequest) -> bytes:
    content_type = request.headers.get("Content-Type", "")
    main, params = parse_header_parameters(content_type)
    params = {k.lower(): v.strip('"') for k, v in params.items()}
    if main.lower() != "multipart/related":
        raise UnsupportedMediaType(
            _('Send instances as multipart/related; type="application/dicom".')
        )
    part_type = (params.get("type") or APPLICATION_DICOM).lower()
    if part_type != APPLICATION_DICOM:
        raise UnsupportedMediaType(
            _(
                "Only application/dicom parts can be stored; "
                "metadata with bulk data (%(type)s) is not supported."
            )
            % {"type": part_type[:60]}
        )
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise BadRequest(_("The Content-Type names no multipart boundary."))
    return boundary.encode("latin-1", "replace")


def _peek(raw: bytes) -> dict[str, str]:
    """SOP Class, SOP Instance and Study Instance UIDs read leniently, before validation;
    only well-formed UIDs are kept (they are echoed back)."""
    keywords = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID")
    try:
        ds = pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True, specific_tags=keywords)
        found = {k: str(ds.get(k, "")) for k in keywords}
    except Exception:  # noqa: BLE001 - an unreadable object is judged by store_instance
        return {}
    return {k: v for k, v in found.items() if len(v) <= 64 and UID_RE.match(v)}


def _failure(raw: bytes, status: int, message: str, *, mismatch: bool = False) -> Failure:
    uids = _peek(raw) if raw else {}
    return Failure(
        status,
        message,
        uids.get("SOPClassUID", ""),
        uids.get("SOPInstanceUID", ""),
        mismatch,
    )


def _store_part(part: Part, *, source: Source, study_uid: str | None, outcome: Outcome) -> None:
    if part.too_large:
        message = _("The object is larger than the size allowed.")
        outcome.failed.append(Failure(STATUS_OUT_OF_RESOURCES, message))
        return
    declared = parse_header_parameters(part.content_type or APPLICATION_DICOM)[0].lower()
    if declared != APPLICATION_DICOM:
        message = _("A part of type %(type)s was ignored.") % {"type": declared[:60]}
        outcome.failed.append(Failure(STATUS_CANNOT_UNDERSTAND, message))
        return
    if study_uid is not None:
        found = _peek(part.content).get("StudyInstanceUID")
        if found is not None and found != study_uid:
            message = _("Study Instance UID %(uid)s is not the study in the URL.") % {"uid": found}
            outcome.failed.append(
                _failure(part.content, STATUS_DOES_NOT_MATCH_SOP_CLASS, message, mismatch=True)
            )
            return
    try:
        outcome.stored.append(store_instance(part.content, source=source))
    except StorageFull as exc:
        outcome.storage_full = True
        outcome.failed.append(_failure(part.content, exc.status, str(exc)))
    except InvalidDicom as exc:
        outcome.failed.append(_failure(part.content, exc.status, str(exc)))


def store(request: HttpRequest, principal: Principal, study_uid: str | None) -> HttpResponse:
    """Store every part; one failing part does not stop the others."""
    require_role(principal, CLINICAL_ROLES, action="imaging.study.store")
    boundary = _boundary(request)
    source = Source(organisation=principal.organisation, actor=principal.actor)
    outcome = Outcome()
    read = request._request.read if hasattr(request, "_request") else request.read
    broken: MultipartError | None = None
    # Failure texts travel in Warning header fields, which carry ASCII only: English.
    with translation.override("en"):
        try:
            for part in iter_parts(
                read, boundary, max_part_bytes=settings.HUIZHEN_DICOM_MAX_OBJECT_BYTES
            ):
                _store_part(part, source=source, study_uid=study_uid, outcome=outcome)
        except MultipartError as exc:
            broken = exc
            outcome.failed.append(Failure(STATUS_CANNOT_UNDERSTAND, str(exc)))
    if broken is not None and not outcome.stored and len(outcome.failed) == 1:
        raise BadRequest(
            _("The body is not a valid multipart/related message: %(e)s") % {"e": broken}
        )
    if not outcome.stored and not outcome.failed:
        raise BadRequest(_("The request holds no DICOM instances."))
    return _response(request, outcome)


def _element(vr: str, value: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": [value]} if value not in (None, "") else {"vr": vr}


def _response(request: HttpRequest, outcome: Outcome) -> HttpResponse:
    series_of = dict(
        Instance.objects.filter(
            pk__in=[r.instance_id for r in outcome.stored if r.instance_id]
        ).values_list("pk", "series__series_instance_uid")
    )
    body: dict[str, Any] = {}
    referenced, warnings = [], []
    for result in outcome.stored:
        item = {
            "00081150": _element("UI", result.sop_class_uid),
            "00081155": _element("UI", result.sop_instance_uid),
        }
        series_uid = series_of.get(result.instance_id)
        if series_uid:
            url = reverse(
                "dicomweb-instance",
                args=[result.study_instance_uid, series_uid, result.sop_instance_uid],
            )
            item["00081190"] = _element("UR", request.build_absolute_uri(url))
        if result.dimse_status:
            item["00081196"] = _element("US", result.dimse_status)
            warnings.append(
                f"{result.sop_instance_uid}: a different object is already stored "
                "under this SOP Instance UID; this one was not stored."
            )
        referenced.append(item)
    failed = []
    for index, failure in enumerate(outcome.failed):
        failed.append(
            {
                "00081150": _element("UI", failure.sop_class_uid),
                "00081155": _element("UI", failure.sop_instance_uid),
                "00081197": _element("US", failure.status),
            }
        )
        warnings.append(f"failure {index + 1}: {failure.message}")
    studies = {r.study_instance_uid for r in outcome.stored}
    if len(studies) == 1:
        url = reverse("dicomweb-study", args=[next(iter(studies))])
        body["00081190"] = _element("UR", request.build_absolute_uri(url))
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    if not referenced:
        if outcome.storage_full:
            status = 507
        elif any(f.study_mismatch for f in outcome.failed):
            status = 400
        else:
            status = 409
    elif failed or any(r.dimse_status for r in outcome.stored):
        status = 202
    else:
        status = 200
    if failed:
        logger.info("STOW-RS refused objects", extra={"failed": len(failed)})
    return dicom_json(body, status=status, warnings=warnings)
