"""The access gate for one study, series or instance, and the audit of who viewed a study.

Every interface that hands out images (DICOMweb, WADO-URI, later DIMSE C-GET/C-MOVE) goes
through these functions. Something not visible is answered exactly like something that does
not exist (``NotFound``); a refusal of a study that does exist is audited.
"""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from registry import audit
from registry.access import Principal
from registry.errors import NotFound
from registry.models import AuditOutcome

from .dicom.parse import UID_RE
from .models import Instance, Series, Study, StudyView
from .selectors import studies_visible_to

VIEW_ACTION = "imaging.study.view"


def _is_uid(value: str) -> bool:
    return bool(value) and len(value) <= 64 and bool(UID_RE.match(value))


def _refuse(principal: Principal, study_uid: str) -> NotFound:
    """Audit a refusal when the study exists (a miss on a made-up UID is not a disclosure
    attempt worth a row) and return the error to raise."""
    hidden = (
        Study.objects.filter(study_instance_uid=study_uid)
        .values_list("external_id", "organisation_id", "patient__external_id")
        .first()
        if _is_uid(study_uid)
        else None
    )
    if hidden is not None:
        external_id, organisation_id, patient_id = hidden
        audit.record(
            actor=principal.actor,
            action=VIEW_ACTION,
            outcome=AuditOutcome.DENIED,
            object_type="study",
            object_id=external_id,
            patient_id=patient_id,
            subject_organisation_id=organisation_id,
        )
    return NotFound(_("No such study, series or instance."))


def access_study(principal: Principal, study_uid: str) -> Study:
    """The study with this Study Instance UID if the principal may see it; else NotFound."""
    study = (
        studies_visible_to(principal)
        .select_related("patient")
        .filter(study_instance_uid=study_uid)
        .first()
        if _is_uid(study_uid)
        else None
    )
    if study is None:
        raise _refuse(principal, study_uid)
    return study


def access_series(principal: Principal, study_uid: str, series_uid: str) -> Series:
    """The series if it belongs to that study and the principal may see the study."""
    study = access_study(principal, study_uid)
    series = (
        Series.objects.filter(study=study, series_instance_uid=series_uid).first()
        if _is_uid(series_uid)
        else None
    )
    if series is None:
        raise NotFound(_("No such study, series or instance."))
    series.study = study
    return series


def access_instance(
    principal: Principal, study_uid: str, series_uid: str, sop_instance_uid: str
) -> Instance:
    """The instance if it lies in that series of that study and the study is visible."""
    series = access_series(principal, study_uid, series_uid)
    instance = (
        Instance.objects.filter(series=series, sop_instance_uid=sop_instance_uid).first()
        if _is_uid(sop_instance_uid)
        else None
    )
    if instance is None:
        raise NotFound(_("No such study, series or instance."))
    instance.series = series
    return instance


def instances_of(study: Study, series: Series | None = None) -> list[Instance]:
    """Instances of an already-gated study (or one of its series), in reading order, with
    ``instance.series.study`` set so that building their URLs costs no query."""
    instances = Instance.objects.filter(series__study=study)
    if series is not None:
        instances = instances.filter(series=series)
    rows = list(
        instances.select_related("series").order_by(
            "series__series_number", "series_id", "instance_number", "id"
        )
    )
    for instance in rows:
        if series is not None:
            instance.series = series
        instance.series.study = study
    return rows


def record_study_view(principal: Principal, study: Study, session_key: str) -> bool:
    """Write one audit entry per study per session (not one per frame or request).

    ``session_key`` names the viewing session: the web session, or a token's key prefix for
    DICOMweb clients. Concurrent first requests race on the StudyView unique row; exactly
    one of them creates it and writes the audit entry. Returns True when this call did.
    """
    with transaction.atomic():
        _, created = StudyView.objects.get_or_create(
            study=study, session_key=session_key[:64], user=principal.user
        )
        if created:
            audit.record(
                actor=principal.actor,
                action=VIEW_ACTION,
                object_type="study",
                object_id=study.external_id,
                patient_id=study.patient.external_id if study.patient_id else None,
                subject_organisation_id=study.organisation_id,
            )
    return created


def record_study_search(principal: Principal, *, level: str, keys: list[str]) -> None:
    """Audit a QIDO search: the level and the attribute keys matched on, never values."""
    audit.record(
        actor=principal.actor,
        action="imaging.study.search",
        object_type=level,
        detail={"criteria": sorted(set(keys))},
    )
