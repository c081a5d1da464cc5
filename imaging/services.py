"""Writes to the archive: ingest of one instance, sharing, reconciliation.

Ingest is idempotent by SOP Instance UID and serialised per UID (an advisory lock in
PostgreSQL, a process lock in embedded SQLite). The file is written before its index row is
committed, so a committed row always has its file; a crash in between leaves at most a file
without a row, which ``manage.py dicom_orphans`` finds and removes. Success is reported only
after the commit.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import audit, events
from registry.access import CLINICAL_ROLES
from registry.errors import Conflict, Forbidden, ValidationFailed
from registry.identity import IdentityError, parse_resident_id
from registry.models import Organisation, Patient, PatientIdentifier

from .dicom.parse import (
    STATUS_DOES_NOT_MATCH_SOP_CLASS,
    STATUS_OUT_OF_RESOURCES,
    InvalidDicom,
    ParsedInstance,
    parse_instance,
)
from .models import Instance, Series, Study, StudyShare

logger = logging.getLogger(__name__)

STORED, DUPLICATE, REPLACED, CONFLICT = "stored", "duplicate", "replaced", "conflict"
# 12-lead ECG and general ECG waveforms: measured by the ECG service when stored.
WAVEFORM_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.9.1.1", "1.2.840.10008.5.1.4.1.1.9.1.2"})
# Warning status for a different object under a known UID that was not stored (PS3.4 B.2.3
# leaves the 0xB000-0xBFFF range to warnings; 0xB006 reads "elements discarded").
STATUS_CONFLICT_WARNING = 0xB006


class StorageFull(InvalidDicom):
    def __init__(self) -> None:
        super().__init__(_("The archive's storage is full."), STATUS_OUT_OF_RESOURCES)


@dataclass(frozen=True)
class StoreResult:
    outcome: str
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    instance_id: int | None

    @property
    def dimse_status(self) -> int:
        return STATUS_CONFLICT_WARNING if self.outcome == CONFLICT else 0x0000


@dataclass(frozen=True)
class Source:
    """Who sent an object: the sending organisation, and the AE title or the user."""

    organisation: Organisation
    calling_ae_title: str = ""
    actor: audit.Actor | None = None


_local_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
_local_locks_guard = threading.Lock()


def _lock_uid(uid: str) -> threading.Lock | None:
    """Serialise work on one SOP Instance UID. Returns a lock to release, or None when the
    database holds the lock until the transaction ends."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", [uid])
        return None
    with _local_locks_guard:
        lock = _local_locks[uid]
    lock.acquire()
    return lock


def storage_key(parsed: ParsedInstance) -> str:
    # UIDs are validated digits and dots, so they are safe path parts.
    return (
        f"dicom/{parsed.study_instance_uid}/{parsed.series_instance_uid}/"
        f"{parsed.sop_instance_uid}-{parsed.sha256[:16]}.dcm"
    )


def _write(key: str, raw: bytes) -> None:
    if default_storage.exists(key):  # left by an interrupted earlier attempt
        default_storage.delete(key)
    try:
        name = default_storage.save(key, ContentFile(raw))
    except OSError as exc:
        _discard(key)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull() from exc
        raise
    if name != key:
        default_storage.delete(name)
        raise OSError(f"storage renamed {key!r} to {name!r}")


def _discard(key: str) -> None:
    try:
        if default_storage.exists(key):
            default_storage.delete(key)
    except OSError:
        logger.warning("could not remove a partial file", extra={"key": key})


def match_patient(parsed: ParsedInstance, organisation: Organisation) -> Patient | None:
    """The registry patient a study belongs to: by Patient ID within its assigning authority
    (Issuer of Patient ID, else the sending organisation's HL7 facility codes), or by a
    resident ID number given as Patient ID or Other Patient IDs."""
    patient_id = parsed.study["dicom_patient_id"].strip()
    if not patient_id:
        return None
    authorities = (
        [parsed.study["issuer_of_patient_id"].strip()]
        if parsed.study["issuer_of_patient_id"].strip()
        else list(organisation.hl7_facilities.values_list("code", flat=True))
    )
    ident = (
        PatientIdentifier.objects.filter(authority__in=authorities, value=patient_id)
        .select_related("patient")
        .first()
    )
    candidates = [ident.patient] if ident else []
    if not candidates:
        numbers = [patient_id]
        other = parsed.dataset.get("OtherPatientIDsSequence") or []
        numbers += [str(item.get("PatientID", "")) for item in other]
        for number in numbers:
            try:
                rid = parse_resident_id(number)
            except IdentityError:
                continue
            found = Patient.objects.filter(id_number=rid.number).first()
            if found:
                candidates.append(found)
                break
    if not candidates:
        return None
    patient = candidates[0]
    while patient.merged_into_id:
        patient = patient.merged_into
    return patient


def store_instance(raw: bytes, *, source: Source) -> StoreResult:
    """Validate, store and index one DICOM Part 10 object. Raises InvalidDicom (with the
    DIMSE failure status) for anything that must not be stored; stores nothing then."""
    parsed = parse_instance(
        raw,
        max_bytes=settings.HUIZHEN_DICOM_MAX_OBJECT_BYTES,
        max_pixel_bytes=settings.HUIZHEN_DICOM_MAX_PIXEL_BYTES,
    )
    key = storage_key(parsed)
    local_lock = None
    written = False
    old_key = ""
    try:
        with transaction.atomic():
            local_lock = _lock_uid(parsed.sop_instance_uid)
            _check_study_owner(parsed, source)
            existing = (
                Instance.objects.filter(sop_instance_uid=parsed.sop_instance_uid)
                .select_related("series__study")
                .first()
            )
            if existing is not None and existing.sha256 == parsed.sha256:
                return _result(DUPLICATE, parsed, existing.pk)
            if existing is not None and settings.HUIZHEN_DICOM_ON_CONFLICT != "replace":
                logger.warning(
                    "different object under a known SOP Instance UID refused",
                    extra={
                        "sop_instance_uid": parsed.sop_instance_uid,
                        "calling_ae": source.calling_ae_title,
                    },
                )
                return _result(CONFLICT, parsed, existing.pk)
            if existing is not None and (
                existing.series.series_instance_uid != parsed.series_instance_uid
                or existing.series.study.study_instance_uid != parsed.study_instance_uid
            ):
                raise InvalidDicom(
                    _("This SOP Instance UID belongs to another series or study here.")
                )
            _write(key, raw)
            written = True
            if existing is None:
                instance = _index_new(parsed, key, source)
                outcome = STORED
            else:
                old_key = existing.storage_key
                _update_existing(existing, parsed, key, source)
                instance = existing
                outcome = REPLACED
            study = instance.series.study
            if outcome in (STORED, REPLACED) and parsed.sop_class_uid in WAVEFORM_SOP_CLASSES:
                events.publish(
                    "imaging.waveform_stored",
                    {"study": str(study.external_id), "instance": instance.pk},
                )
            if outcome == STORED and study.number_of_instances == 1:
                events.publish(
                    "imaging.study_arrived",
                    {"study": str(study.external_id), "organisation": source.organisation.pk},
                )
        result = _result(outcome, parsed, instance.pk)
    except IntegrityError as exc:
        if written:
            _discard(key)
        raise InvalidDicom(_("The object conflicts with the index: %(e)s") % {"e": exc}) from exc
    except BaseException:
        if written:
            _discard(key)
        raise
    finally:
        if local_lock is not None:
            local_lock.release()
    if old_key and old_key != key:
        _discard(old_key)
    return result


def _check_study_owner(parsed: ParsedInstance, source: Source) -> None:
    """An organisation may add to a study only if it may see that study: otherwise a sender
    could not see what it sent, and could probe for studies of other organisations."""
    from .selectors import studies_visible_to_organisations

    study = (
        Study.objects.filter(study_instance_uid=parsed.study_instance_uid)
        .only("pk", "organisation_id")
        .first()
    )
    if study is None or study.organisation_id == source.organisation.pk:
        return  # a new study, or the sender's own: nothing to check
    if not studies_visible_to_organisations([source.organisation]).filter(pk=study.pk).exists():
        raise InvalidDicom(
            _("The object cannot be stored under this Study Instance UID."),
            STATUS_DOES_NOT_MATCH_SOP_CLASS,
        )


def _result(outcome: str, parsed: ParsedInstance, instance_id: int | None) -> StoreResult:
    return StoreResult(
        outcome,
        parsed.sop_class_uid,
        parsed.sop_instance_uid,
        parsed.study_instance_uid,
        instance_id,
    )


def _index_new(parsed: ParsedInstance, key: str, source: Source) -> Instance:
    study = Study.objects.filter(study_instance_uid=parsed.study_instance_uid).first()
    created = False
    if study is None:  # match the patient only for a new study: once per study, not per image
        study, created = Study.objects.get_or_create(
            study_instance_uid=parsed.study_instance_uid,
            defaults={
                **parsed.study,
                "organisation": source.organisation,
                "patient": match_patient(parsed, source.organisation),
            },
        )
    # Lock the study row: counters and the modality list change together.
    study = Study.objects.select_for_update().get(pk=study.pk)
    series, series_created = Series.objects.get_or_create(
        series_instance_uid=parsed.series_instance_uid,
        defaults={**parsed.series, "study": study},
    )
    if series.study_id != study.pk:
        raise InvalidDicom(_("This Series Instance UID belongs to another study here."))
    instance = Instance.objects.create(
        series=series,
        sop_instance_uid=parsed.sop_instance_uid,
        storage_key=key,
        metadata=parsed.metadata,
        calling_ae_title=source.calling_ae_title[:16],
        **parsed.instance,
    )
    Series.objects.filter(pk=series.pk).update(number_of_instances=F("number_of_instances") + 1)
    changes: dict[str, Any] = {"number_of_instances": F("number_of_instances") + 1}
    if series_created:
        changes["number_of_series"] = F("number_of_series") + 1
        modality = parsed.series["modality"]
        if modality and modality not in study.modalities:
            changes["modalities"] = sorted([*study.modalities, modality])
    Study.objects.filter(pk=study.pk).update(**changes)
    instance.series = series
    series.study = study
    study.number_of_instances += 1
    if created:
        actor = source.actor or audit.Actor(
            user_id=None, username=f"dicom:{source.calling_ae_title}"
        )
        audit.record(
            actor=actor,
            action="imaging.study.create",
            object_type="study",
            object_id=study.external_id,
            patient_id=study.patient.external_id if study.patient_id else None,
            subject_organisation_id=source.organisation.pk,
            detail={"matched": bool(study.patient_id)},
        )
    return instance


def _update_existing(existing: Instance, parsed: ParsedInstance, key: str, source: Source) -> None:
    logger.warning(
        "object under a known SOP Instance UID replaced",
        extra={"sop_instance_uid": parsed.sop_instance_uid, "calling_ae": source.calling_ae_title},
    )
    for name, value in parsed.instance.items():
        setattr(existing, name, value)
    existing.storage_key = key
    existing.metadata = parsed.metadata
    existing.calling_ae_title = source.calling_ae_title[:16]
    existing.save()


# --- consistency between the index and storage ------------------------------------------------


@dataclass(frozen=True)
class Orphans:
    files_without_rows: list[str]
    rows_without_files: list[int]


def _walk(directory: str) -> Iterator[str]:
    try:
        dirs, files = default_storage.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in files:
        yield f"{directory}/{name}"
    for name in dirs:
        yield from _walk(f"{directory}/{name}")


def find_orphans(*, min_age: timedelta = timedelta(minutes=10)) -> Orphans:
    """Files no index row points to (older than ``min_age``, so that a write in flight is
    not taken for one) and index rows whose file is missing."""
    known = set(Instance.objects.values_list("storage_key", flat=True))
    cutoff = timezone.now() - min_age
    stray = []
    for key in _walk("dicom"):
        if key in known:
            continue
        try:
            modified = default_storage.get_modified_time(key)
        except (OSError, NotImplementedError):
            modified = None
        if modified is None or modified <= cutoff:
            stray.append(key)
    missing = [
        pk
        for pk, key in Instance.objects.values_list("pk", "storage_key").iterator()
        if not default_storage.exists(key)
    ]
    return Orphans(sorted(stray), missing)


def repair_orphans(orphans: Orphans) -> None:
    """Delete stray files; drop index rows whose file is gone and correct the counts."""
    for key in orphans.files_without_rows:
        _discard(key)
    for pk in orphans.rows_without_files:
        with transaction.atomic():
            instance = Instance.objects.select_related("series__study").filter(pk=pk).first()
            if instance is None:
                continue
            series, study = instance.series, instance.series.study
            logger.error("index row without its file removed", extra={"instance": pk})
            instance.delete()
            Series.objects.filter(pk=series.pk).update(
                number_of_instances=F("number_of_instances") - 1
            )
            Study.objects.filter(pk=study.pk).update(
                number_of_instances=F("number_of_instances") - 1
            )


# --- reconciliation, sharing and export ---------------------------------------------------------


def study_reconcile(*, principal: Any, study: Study, patient_id: Any) -> Study:
    """Link a study that arrived without a matching patient to a registry patient. The
    caller has already passed the study's gate; the patient goes through the registry's."""
    from registry.access import access_patient  # the gate audits the patient read

    if principal.role not in CLINICAL_ROLES:
        raise Forbidden(_("Only clinical staff may do this."), code="role")
    patient = access_patient(principal, patient_id, action="imaging.study.reconcile")
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        if locked.patient_id is not None and locked.patient_id != patient.pk:
            raise Conflict(
                _("This study already belongs to another patient."), code="already_linked"
            )
        locked.patient = patient
        locked.save(update_fields=["patient", "updated_at"])
        audit.record(
            actor=principal.actor,
            action="imaging.study.reconcile",
            object_type="study",
            object_id=locked.external_id,
            patient_id=patient.external_id,
            subject_organisation_id=locked.organisation_id,
        )
        events.publish(
            "imaging.study_reconciled",
            {"study": str(locked.external_id), "patient": str(patient.external_id)},
        )
    return locked


def study_share_grant(
    *,
    actor: audit.Actor,
    study: Study,
    source: str,
    organisation: Organisation | None = None,
    user: Any | None = None,
    source_ref: str = "",
) -> StudyShare:
    """Make a study visible to a centre or a user outside the study's tree (a consult)."""
    with transaction.atomic():
        share = StudyShare.objects.create(
            study=study, organisation=organisation, user=user, source=source, source_ref=source_ref
        )
        audit.record(
            actor=actor,
            action="imaging.study.share",
            object_type="study",
            object_id=study.external_id,
            patient_id=study.patient.external_id if study.patient_id else None,
            subject_organisation_id=study.organisation_id,
            detail={"source": source, "source_ref": source_ref},
        )
    return share


def export_deidentified(
    *, principal: Any, study: Study, date_shift_days: int | None = None
) -> Iterator[tuple[str, bytes]]:
    """(file name, Part 10 bytes) of every instance of the study, de-identified. UIDs map
    the same way on every export (keyed by the deployment's secret key)."""
    from django.conf import settings as django_settings
    from pydicom import dcmread

    from .deidentify import deidentify

    if date_shift_days is not None and not -3650 <= date_shift_days <= 3650:
        raise ValidationFailed(
            _("A date shift is at most ten years either way."),
            fields={"date_shift_days": str(date_shift_days)},
        )
    key = hashlib.sha256(b"huizhen-deidentify:" + django_settings.SECRET_KEY.encode()).digest()
    audit.record(
        actor=principal.actor,
        action="imaging.study.export_deidentified",
        object_type="study",
        object_id=study.external_id,
        patient_id=study.patient.external_id if study.patient_id else None,
        subject_organisation_id=study.organisation_id,
        detail={"date_shift": date_shift_days is not None},
    )
    instances = Instance.objects.filter(series__study=study).order_by(
        "series__series_number", "series_id", "instance_number", "pk"
    )
    for n, instance in enumerate(instances.iterator(), start=1):
        with default_storage.open(instance.storage_key, "rb") as handle:
            ds = dcmread(handle)
        deidentify(ds, key=key, date_shift_days=date_shift_days)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        yield f"{n:05d}.dcm", out.getvalue()
