"""Writes for ECGs: a record per ECG waveform in the archive (measured on arrival), uploads
of cart files converted to DICOM, and the specialist's confirmation or correction.

A record is keyed by SOP Instance UID, so processing an instance again updates the same
record (machine suggestions are refreshed; a confirmation is kept). An emergency pattern
publishes ``ecg.emergency_pattern`` once per record, in the transaction that found it.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from pydicom import dcmread

from registry import audit, events
from registry.access import Principal, access_patient, require_role
from registry.errors import Conflict, ValidationFailed
from registry.models import Patient, Role

from .. import services as archive
from ..dicom.parse import InvalidDicom
from ..models import Instance, Study
from . import aecg, csvjson, measure, scp_ecg, to_dicom
from .models import EcgReading, EcgRecord, EcgSourceFormat, EcgStatus
from .signal import EcgFormatError, EcgSignal, PatientData, validate

logger = logging.getLogger(__name__)

EMERGENCY_EVENT = "ecg.emergency_pattern"
CONFIRMING_ROLES = frozenset({Role.SPECIALIST, Role.DOCTOR})
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
_READERS = {
    EcgSourceFormat.SCP: scp_ecg.read_scp,
    EcgSourceFormat.AECG: aecg.read_aecg,
    EcgSourceFormat.CSV: csvjson.read_csv,
    EcgSourceFormat.JSON: csvjson.read_json,
    EcgSourceFormat.DICOM: to_dicom.read_ecg_dicom,
}
# Plausible ranges for confirmed values (a typo guard, not a clinical rule).
_RANGES = {
    "heart_rate": (10, 350), "rr": (150, 6000), "pr": (40, 600), "qrs": (30, 300),
    "qt": (100, 800), "qtc_bazett": (150, 900), "qtc_fridericia": (150, 900), "axis": (-180, 180),
}  # fmt: skip


class UnreadableEcg(ValidationFailed):
    """The upload is not an ECG this archive can read; the message says why."""

    status_code = 422
    default_code = "unreadable_ecg"


def detect_format(raw: bytes, filename: str = "") -> str:
    """The source format from the content (and the file name as a hint)."""
    name = filename.lower()
    head = raw[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if len(raw) > 132 and raw[128:132] == b"DICM":
        return EcgSourceFormat.DICOM
    if head.startswith(b"<") and b"AnnotatedECG" in raw[:4096]:
        return EcgSourceFormat.AECG
    if head.startswith(b"{"):
        return EcgSourceFormat.JSON
    if name.endswith(".scp") or (len(raw) > 22 and raw[8:10] == b"\0\0" and b"SCPECG" in raw[:32]):
        return EcgSourceFormat.SCP
    if name.endswith((".csv", ".txt")) or head.startswith(b"#") or b"," in head.split(b"\n")[0]:
        return EcgSourceFormat.CSV
    raise UnreadableEcg(
        _("The file is not in a known ECG format (SCP-ECG, HL7 aECG, DICOM, CSV or JSON).")
    )


def read_upload(raw: bytes, *, filename: str = "", file_format: str | None = None) -> EcgSignal:
    if not raw:
        raise UnreadableEcg(_("The file is empty."))
    if len(raw) > MAX_UPLOAD_BYTES:
        raise UnreadableEcg(_("The file is larger than 50 MB."))
    fmt = file_format or detect_format(raw, filename)
    reader = _READERS.get(fmt)
    if reader is None:
        raise UnreadableEcg(_("Unknown ECG format: %(f)s.") % {"f": fmt})
    try:
        return validate(reader(raw))
    except EcgFormatError as exc:
        raise UnreadableEcg(
            _("The ECG file cannot be read: %(reason)s") % {"reason": str(exc)},
            fields={"file": str(exc)},
        ) from exc
    except (ValueError, IndexError, KeyError, OverflowError) as exc:
        # A reader tripping over damaged content: refuse it the same way.
        raise UnreadableEcg(
            _("The ECG file is damaged or not in the format it claims."),
            fields={"file": f"{type(exc).__name__}: {exc}"[:200]},
        ) from exc


def _patient_sex(patient: Patient | None, signal: EcgSignal | None) -> str:
    if patient is not None:
        return {"male": "M", "female": "F"}.get(patient.sex, "")
    return signal.patient.sex if signal is not None else ""


def _measure(signal: EcgSignal, sex: str) -> tuple[dict[str, Any], list[str], bool, str]:
    try:
        result = measure.measure(signal, sex=sex)
    except measure.MeasurementError as exc:
        return {}, [], False, str(exc)
    return result.as_dict(), list(result.flags), result.emergency, ""


def _load_signal(instance: Instance) -> EcgSignal:
    with default_storage.open(instance.storage_key, "rb") as handle:
        ds = dcmread(handle)
    return validate(to_dicom.read_ecg_dataset(ds))


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return timezone.make_aware(value) if timezone.is_naive(value) else value


@transaction.atomic
def ecg_record_from_instance(
    *,
    instance: Instance,
    source_format: str = EcgSourceFormat.DICOM,
    patient: Patient | None = None,
    signal: EcgSignal | None = None,
    actor: audit.Actor | None = None,
) -> EcgRecord:
    """Create or refresh the ECG record of one waveform instance and measure it.

    ``signal`` may be passed when the caller already decoded it (an upload); otherwise the
    stored DICOM object is read. Raises UnreadableEcg when the waveform cannot be decoded."""
    if signal is None:
        try:
            signal = _load_signal(instance)
        except EcgFormatError as exc:
            raise UnreadableEcg(str(exc)) from exc
    study = Study.objects.select_related("patient").get(pk=instance.series.study_id)
    patient = patient or study.patient
    suggested, flags, emergency, error = _measure(signal, _patient_sex(patient, signal))
    fields = {
        "instance": instance,
        "study": study,
        "patient": patient,
        "organisation_id": study.organisation_id,
        "sample_rate": signal.sample_rate,
        "duration": signal.duration,
        "leads": list(signal.leads),
        "acquired_at": _aware(signal.acquired_at),
        "suggested": suggested,
        "flags": flags,
        "emergency": emergency,
        "warnings": list(signal.warnings),
        "error": error,
    }
    record = (
        EcgRecord.objects.select_for_update()
        .filter(sop_instance_uid=instance.sop_instance_uid)
        .first()
    )
    created = False
    if record is None:
        try:
            with transaction.atomic():
                record = EcgRecord.objects.create(
                    sop_instance_uid=instance.sop_instance_uid,
                    source_format=source_format,
                    status=EcgStatus.UNMEASURABLE if error else EcgStatus.SUGGESTED,
                    created_by_id=actor.user_id if actor else None,
                    **fields,
                )
                created = True
        except IntegrityError:  # created concurrently: update that one
            record = EcgRecord.objects.select_for_update().get(
                sop_instance_uid=instance.sop_instance_uid
            )
    if not created:
        for name, value in fields.items():
            setattr(record, name, value)
        if source_format != EcgSourceFormat.DICOM:
            record.source_format = source_format
        if record.status != EcgStatus.CONFIRMED:
            record.status = EcgStatus.UNMEASURABLE if error else EcgStatus.SUGGESTED
        record.save()
    if emergency:
        _publish_emergency(record, flags)
    return record


def _publish_emergency(record: EcgRecord, flags: list[str]) -> None:
    """Publish the emergency pattern once per record (the consult raises its priority)."""
    if record.emergency_published_at is not None:
        return
    patterns = sorted(set(flags) & measure.EMERGENCY_FLAGS)
    events.publish(
        EMERGENCY_EVENT,
        {
            "record": str(record.external_id),
            "study": str(record.study.external_id),
            "study_instance_uid": record.study.study_instance_uid,
            "patient": str(record.patient.external_id) if record.patient_id else None,
            "organisation": record.organisation_id,
            "patterns": patterns,
        },
    )
    record.emergency_published_at = timezone.now()
    record.save(update_fields=["emergency_published_at", "updated_at"])


def ecg_study_process(*, study: Study, actor: audit.Actor | None = None) -> list[EcgRecord]:
    """(Re)process every ECG waveform instance of a study; unreadable ones are logged and
    skipped so that one damaged object does not hide the others."""
    records = []
    instances = Instance.objects.filter(
        series__study=study, sop_class_uid__in=to_dicom.ECG_SOP_CLASSES
    ).select_related("series")
    for instance in instances.order_by("pk"):
        try:
            records.append(ecg_record_from_instance(instance=instance, actor=actor))
        except UnreadableEcg as exc:
            logger.warning(
                "ECG waveform not readable", extra={"sop": instance.sop_instance_uid, "e": str(exc)}
            )
    return records


@dataclass(frozen=True)
class UploadResult:
    record: EcgRecord
    created: bool


_UID_NAMESPACE = uuid.UUID("6f1c1f1e-3b1a-5e55-9a7e-6875697a6865")


def _uid(*parts: object) -> str:
    """A UUID-derived UID (PS3.5 B.2) that depends only on ``parts``."""
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, '|'.join(map(str, parts))).int}"


def ecg_upload(
    *,
    principal: Principal,
    patient_id: Any,
    raw: bytes,
    filename: str = "",
    file_format: str | None = None,
) -> UploadResult:
    """Read a cart file, store it as a DICOM 12-lead ECG of the chosen patient, measure it.

    The patient goes through the registry's gate (NotFound, audited, when not visible). The
    DICOM UIDs derive from the file's hash and the patient, so uploading the same file again
    changes nothing and answers the same record."""
    signal = read_upload(raw, filename=filename, file_format=file_format)
    fmt = file_format or detect_format(raw, filename)
    patient = access_patient(principal, patient_id, action="ecg.upload")
    digest = hashlib.sha256(raw).hexdigest()
    signal.patient = PatientData(
        name=patient.name,
        patient_id=patient.id_number or str(patient.external_id),
        birth_date=patient.birth_date,
        sex={"male": "M", "female": "F"}.get(patient.sex, ""),
    )
    study_uid = _uid("study", digest, patient.external_id)
    series_uid = _uid("series", study_uid)
    ids = to_dicom.DicomIds(
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        sop_instance_uid=_uid("sop", series_uid),
        institution_name=principal.organisation.name,
        study_description="ECG",
    )
    if signal.acquired_at is None:
        signal.acquired_at = datetime.now(UTC).astimezone(timezone.get_current_timezone())
    dicom = to_dicom.build_ecg_dicom(signal, ids)
    source = archive.Source(organisation=principal.organisation, actor=principal.actor)
    try:
        stored = archive.store_instance(dicom, source=source)
    except InvalidDicom as exc:
        message = _("The converted ECG was refused by the archive: %(e)s") % {"e": exc}
        raise UnreadableEcg(message) from exc
    if stored.outcome == archive.CONFLICT:
        raise Conflict(_("A different ECG is stored under the same identifiers."))
    with transaction.atomic():
        instance = Instance.objects.select_related("series").get(pk=stored.instance_id)
        study = Study.objects.select_for_update().get(pk=instance.series.study_id)
        if study.patient_id is None:
            study.patient = patient
            study.save(update_fields=["patient", "updated_at"])
        elif study.patient_id != patient.pk:
            raise Conflict(_("This ECG's study already belongs to another patient."))
        created = not EcgRecord.objects.filter(sop_instance_uid=instance.sop_instance_uid).exists()
        record = ecg_record_from_instance(
            instance=instance,
            source_format=fmt,
            patient=patient,
            signal=signal,
            actor=principal.actor,
        )
        audit.record(
            actor=principal.actor,
            action="ecg.upload",
            object_type="ecg_record",
            object_id=record.external_id,
            patient_id=patient.external_id,
            subject_organisation_id=study.organisation_id,
            detail={"format": fmt, "created": created, "warnings": len(signal.warnings)},
        )
    return UploadResult(record, created)


def ecg_confirm(
    *,
    principal: Principal,
    record: EcgRecord,
    values: dict[str, float | None],
    flags: list[str],
    note: str = "",
) -> EcgRecord:
    """The specialist confirms the suggested measurements or corrects them. Each reading is
    kept (EcgReading); the record shows the latest. The caller has passed the record's gate."""
    require_role(principal, CONFIRMING_ROLES, action="ecg.confirm")
    errors = {}
    clean: dict[str, float | None] = {}
    for name in measure.MEASUREMENT_FIELDS:
        value = values.get(name)
        if value is None:
            clean[name] = None
            continue
        low, high = _RANGES[name]
        if not low <= float(value) <= high:
            errors[name] = _("Expected between %(low)s and %(high)s.") % {"low": low, "high": high}
        clean[name] = round(float(value), 1)
    known = {
        measure.FLAG_BRADYCARDIA, measure.FLAG_TACHYCARDIA, measure.FLAG_IRREGULAR,
        measure.FLAG_LONG_QTC, *measure.EMERGENCY_FLAGS,
    }  # fmt: skip
    unknown = [f for f in flags if f not in known]
    if unknown:
        errors["flags"] = _("Unknown flags: %(f)s.") % {"f": ", ".join(unknown)}
    if errors:
        raise ValidationFailed(_("Some measurements are not plausible."), fields=errors)
    with transaction.atomic():
        locked = EcgRecord.objects.select_for_update(of=("self",)).select_related(
            "study", "patient"
        )
        locked = locked.get(pk=record.pk)
        suggested = {n: locked.suggested.get(n) for n in measure.MEASUREMENT_FIELDS}
        corrected = clean != suggested or sorted(flags) != sorted(locked.flags)
        reading = EcgReading.objects.create(
            record=locked,
            values=clean,
            flags=sorted(set(flags)),
            note=note[:2000],
            corrected=corrected,
            read_by=principal.user,
            organisation=principal.organisation,
        )
        locked.confirmed = clean
        locked.confirmed_flags = reading.flags
        locked.confirmed_by = principal.user
        locked.confirmed_at = reading.created_at
        locked.status = EcgStatus.CONFIRMED
        locked.save()
        audit.record(
            actor=principal.actor,
            action="ecg.confirm",
            object_type="ecg_record",
            object_id=locked.external_id,
            patient_id=locked.patient.external_id if locked.patient_id else None,
            subject_organisation_id=locked.organisation_id,
            detail={"corrected": corrected},
        )
        if measure.EMERGENCY_FLAGS.intersection(reading.flags):
            _publish_emergency(locked, reading.flags)
    return locked


def record_signal(record: EcgRecord) -> EcgSignal:
    """The record's waveform, decoded from the archived DICOM object."""
    try:
        return _load_signal(record.instance)
    except EcgFormatError as exc:
        raise UnreadableEcg(str(exc)) from exc
