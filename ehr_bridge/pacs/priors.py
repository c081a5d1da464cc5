"""Prior studies of a consult's patient at the hospital PACS: find (C-FIND), pull (C-GET or
C-MOVE) into the archive through imaging's ingest, share with the consult's centre.

Pulled objects are buffered to a temporary folder during the association and ingested after
it is released, so they are indexed, idempotent by SOP Instance UID and matched to the patient
like any other arrival. Every read and write is scoped like reading the consult and audited.
"""

from __future__ import annotations

import logging
import re
import tempfile
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from pydicom.dataset import Dataset

from consult.access import access_consult
from consult.models import ConsultRequest
from imaging.dicom.parse import InvalidDicom
from imaging.models import Study
from imaging.services import Source, study_reconcile, study_share_grant
from imaging.services import store_instance as imaging_store_instance
from registry import audit
from registry.access import Principal, principal_for
from registry.errors import DomainError, NotFound, ValidationFailed
from registry.models import Organisation, Patient, PatientIdentifier

from ..models import (
    PacsJobStatus,
    PacsPull,
    PacsRetrieve,
    RemotePacs,
)
from .client import PacsFailed, PacsUnavailable, find_studies, retrieve

logger = logging.getLogger(__name__)

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class PriorStudy:
    study_instance_uid: str
    study_date: str
    study_time: str
    description: str
    accession_number: str
    modalities: list[str]
    number_of_instances: int | None
    in_archive: bool


# --- configuration --------------------------------------------------------------------------


def pacs_for_organisation(organisation: Organisation) -> RemotePacs | None:
    """The enabled PACS of the nearest organisation at or above ``organisation``."""
    candidates = [
        pacs
        for pacs in RemotePacs.objects.filter(enabled=True).select_related("organisation")
        if organisation.path.startswith(pacs.organisation.path)
    ]
    candidates.sort(key=lambda p: (-len(p.organisation.path), p.pk))
    return candidates[0] if candidates else None


def _pacs_for_consult(consult: ConsultRequest) -> RemotePacs:
    pacs = pacs_for_organisation(consult.requesting_organisation)
    if pacs is None:
        raise NotFound(_("No PACS is configured for this consult's organisation."), code="no_pacs")
    return pacs


def authorities(pacs: RemotePacs) -> list[str]:
    if pacs.assigning_authority:
        return [pacs.assigning_authority]
    return list(pacs.organisation.hl7_facilities.values_list("code", flat=True))


def patient_ids_for(pacs: RemotePacs, patient: Patient) -> list[str]:
    """The Patient IDs the PACS may know the patient by: the hospital MRN(s) in the PACS's
    assigning authority first, then the resident ID number."""
    ids = list(
        PatientIdentifier.objects.filter(patient=patient, authority__in=authorities(pacs))
        .order_by("pk")
        .values_list("value", flat=True)
    )
    if patient.id_number and patient.id_number not in ids:
        ids.append(patient.id_number)
    return ids


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _prior(ds: Dataset, archived: set[str]) -> PriorStudy:
    modalities = ds.get("ModalitiesInStudy", "") or []
    if isinstance(modalities, str):
        modalities = [modalities] if modalities else []
    count = _text(ds, "NumberOfStudyRelatedInstances")
    uid = _text(ds, "StudyInstanceUID")
    return PriorStudy(
        study_instance_uid=uid,
        study_date=_text(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime"),
        description=_text(ds, "StudyDescription"),
        accession_number=_text(ds, "AccessionNumber"),
        modalities=[str(m) for m in modalities],
        number_of_instances=int(count) if count.isdigit() else None,
        in_archive=uid in archived,
    )


def _patient_studies(pacs: RemotePacs, patient: Patient, study_uid: str = "") -> list[Dataset]:
    """The patient's studies at the PACS, by each of their IDs in turn until one matches."""
    for patient_id in patient_ids_for(pacs, patient):
        found = find_studies(pacs, patient_id, study_uid)
        if found:
            return found
    return []


# --- services -------------------------------------------------------------------------------


def _audit(principal: Principal, consult: ConsultRequest, action: str, **detail: Any) -> None:
    audit.record(
        actor=principal.actor,
        action=action,
        object_type="consult",
        object_id=consult.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
        detail=detail,
    )


def priors_find(*, principal: Principal, consult_id: uuid.UUID | str) -> list[PriorStudy]:
    """The consult patient's studies at the PACS configured for the requesting organisation.

    Raises NotFound (consult not visible, or no PACS configured), PacsUnavailable, PacsFailed.
    """
    consult = access_consult(principal, consult_id, action="ehr_bridge.pacs.find")
    pacs = _pacs_for_consult(consult)
    _audit(principal, consult, "ehr_bridge.pacs.find", pacs=str(pacs.external_id))
    found = _patient_studies(pacs, consult.patient)
    uids = [_text(ds, "StudyInstanceUID") for ds in found]
    archived = set(
        Study.objects.filter(study_instance_uid__in=uids).values_list(
            "study_instance_uid", flat=True
        )
    )
    priors = [_prior(ds, archived) for ds in found]
    priors = [p for p in priors if p.study_instance_uid]
    priors.sort(key=lambda p: (p.study_date, p.study_time), reverse=True)
    return priors


def priors_pull(*, principal: Principal, consult_id: uuid.UUID | str, study_uid: str) -> PacsPull:
    """Start retrieving one of the patient's studies from the PACS (a Celery task).

    The study must be the consult patient's at the PACS (checked by C-FIND before anything
    is written). Raises ValidationFailed, NotFound, PacsUnavailable, PacsFailed.
    """
    consult = access_consult(principal, consult_id, action="ehr_bridge.pacs.pull")
    study_uid = (study_uid or "").strip()
    if not UID_RE.match(study_uid) or len(study_uid) > 64:
        raise ValidationFailed(
            _("This is not a Study Instance UID."), fields={"study_uid": _("Invalid UID.")}
        )
    pacs = _pacs_for_consult(consult)
    if not _patient_studies(pacs, consult.patient, study_uid):
        _audit(principal, consult, "ehr_bridge.pacs.pull", study_uid=study_uid, found=False)
        raise NotFound(_("The PACS has no such study for this patient."), code="no_study")
    with transaction.atomic():
        pull = PacsPull.objects.create(
            pacs=pacs,
            consult=consult,
            study_instance_uid=study_uid,
            requested_by=principal.user,
            requested_in=principal.organisation,
        )
        _audit(
            principal,
            consult,
            "ehr_bridge.pacs.pull",
            study_uid=study_uid,
            pull=str(pull.external_id),
        )
        transaction.on_commit(lambda: _dispatch_pull(pull.pk))
    return pull


def _dispatch_pull(pull_id: int) -> None:
    from ..tasks import pacs_pull_run

    try:
        pacs_pull_run.delay(pull_id)
    except Exception:  # noqa: BLE001 - broker down: the beat sweep starts it later
        logger.warning("PACS pull dispatch failed; the sweep will start it", exc_info=True)


def pulls_due(*, older_than: timedelta = timedelta(minutes=2)) -> list[int]:
    """Pending pulls whose dispatch was lost (a running pull is never restarted)."""
    return list(
        PacsPull.objects.filter(
            status=PacsJobStatus.PENDING, created_at__lt=timezone.now() - older_than
        ).values_list("pk", flat=True)[:100]
    )


def pull_status(*, principal: Principal, consult_id: uuid.UUID | str, pull_id: str) -> PacsPull:
    """One pull of the consult, read by whoever may read the consult."""
    consult = access_consult(principal, consult_id, action="ehr_bridge.pacs.pull_status")
    try:
        key = uuid.UUID(str(pull_id))
    except ValueError:
        raise NotFound(_("No such retrieve.")) from None
    pull = PacsPull.objects.select_related("study").filter(consult=consult, external_id=key).first()
    if pull is None:
        raise NotFound(_("No such retrieve."))
    _audit(principal, consult, "ehr_bridge.pacs.pull_status", pull=str(pull.external_id))
    return pull


def pulls_of(*, principal: Principal, consult_id: uuid.UUID | str) -> list[PacsPull]:
    consult = access_consult(principal, consult_id, action="ehr_bridge.pacs.pull_status")
    _audit(principal, consult, "ehr_bridge.pacs.pull_status")
    return list(
        PacsPull.objects.select_related("study").filter(consult=consult).order_by("-created_at")
    )


def pull_run(*, pull_id: int) -> str:
    """Run a pending pull: retrieve, ingest, check the patient, share with the centre.

    Idempotent: only a pending row is claimed; returns the final status (or "" when there
    was nothing to do).
    """
    with transaction.atomic():
        pull = (
            PacsPull.objects.select_for_update(skip_locked=True)
            .filter(pk=pull_id, status=PacsJobStatus.PENDING)
            .first()
        )
        if pull is None:
            return ""
        pull.status = PacsJobStatus.RUNNING
        pull.save(update_fields=["status", "updated_at"])
    pull = PacsPull.objects.select_related(
        "pacs__organisation",
        "consult__patient",
        "consult__centre",
        "requested_by",
        "requested_in",
    ).get(pk=pull_id)
    pacs, consult = pull.pacs, pull.consult
    actor = audit.Actor(user_id=None, username=f"pacs:{pacs.ae_title}")
    stored = failed = 0
    error = ""
    try:
        with tempfile.TemporaryDirectory(prefix="huizhen-pull-") as tmp:
            folder = Path(tmp)
            completed, failed = retrieve(pacs, pull.study_instance_uid, folder)
            if pacs.retrieve == PacsRetrieve.MOVE:
                stored = completed  # stored by our DIMSE server as they arrived
            source = Source(
                organisation=pacs.organisation, calling_ae_title=pacs.ae_title, actor=actor
            )
            for path in sorted(folder.iterdir()):
                try:
                    imaging_store_instance(path.read_bytes(), source=source)
                    stored += 1
                except InvalidDicom as exc:
                    logger.warning("pulled object refused: %s", exc, extra={"pull": pull.pk})
                    failed += 1
    except (PacsUnavailable, PacsFailed) as exc:
        error = exc.message
    except OSError as exc:  # the temporary folder or the archive's storage
        logger.error("PACS pull failed: %s", exc, extra={"pull": pull.pk})
        error = _("The study could not be stored here.")
    study = Study.objects.filter(study_instance_uid=pull.study_instance_uid).first()
    if not error and study is None:
        error = _("The PACS sent nothing for this study.")
    if study is not None and study.patient_id is None and not error:
        error = _link(study, pull)
        study.refresh_from_db()
    if study is not None and study.patient_id not in (None, consult.patient_id):
        error = _("The pulled study belongs to another patient here; it was not shared.")
        study = None
    if study is not None and not error:
        _share(study, consult, actor)
    PacsPull.objects.filter(pk=pull.pk).update(
        status=PacsJobStatus.FAILED if error else PacsJobStatus.DONE,
        error=error[:500],
        stored=stored,
        failed=failed,
        study=study,
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    return PacsJobStatus.FAILED if error else PacsJobStatus.DONE


def _link(study: Study, pull: PacsPull) -> str:
    """Link an unmatched pulled study to the consult's patient in the requester's name (the
    PACS listed it under this patient's ID). Returns an error message, or "" when linked."""
    if pull.requested_by is None or pull.requested_in is None:
        return _("The pulled study could not be linked to the patient.")
    try:
        principal = principal_for(pull.requested_by, str(pull.requested_in.external_id))
        study_reconcile(
            principal=principal, study=study, patient_id=pull.consult.patient.external_id
        )
    except DomainError as exc:
        return _("The pulled study could not be linked to the patient: %(e)s") % {"e": exc.message}
    return ""


def _share(study: Study, consult: ConsultRequest, actor: audit.Actor) -> None:
    """Share the pulled study the way a consult's attached studies are: with the centre (and
    with the requesting organisation, which may sit outside the PACS's tree)."""
    ref = str(consult.external_id)
    for organisation_id in (consult.centre_id, consult.requesting_organisation_id):
        if organisation_id is None:
            continue
        if study.shares.filter(
            organisation_id=organisation_id, source="consult", source_ref=ref
        ).exists():
            continue
        study_share_grant(
            actor=actor,
            study=study,
            source="consult",
            organisation=Organisation.objects.get(pk=organisation_id),
            source_ref=ref,
        )
