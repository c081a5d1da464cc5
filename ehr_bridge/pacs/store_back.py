"""Signed consult reports stored back at the hospital PACS as Encapsulated PDF (C-STORE),
from a queue row with bounded retries (a Celery task per row, a beat sweep for lost ones)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom.sop_class import (
    EncapsulatedPDFStorage,
)

from consult.models import ConsultRequest, Report
from consult.report_pdf import PdfUnavailable, render_report_pdf
from imaging.models import Study
from registry.events import Event, subscribe

from ..models import (
    PacsJobStatus,
    PacsReportFormat,
    PacsReportSend,
    RemotePacs,
)
from .client import PacsFailed, PacsUnavailable, c_store
from .priors import authorities, pacs_for_organisation, patient_ids_for

logger = logging.getLogger(__name__)

MAX_SEND_ATTEMPTS = 8


def report_send_enqueue(consult_external_id: str) -> int:
    """Queue the consult's latest signed report for the PACS configured to take reports.
    Returns how many sends were queued (0 or 1)."""
    consult = (
        ConsultRequest.objects.select_related("requesting_organisation")
        .filter(external_id=consult_external_id)
        .first()
    )
    if consult is None:
        return 0
    pacs = pacs_for_organisation(consult.requesting_organisation)
    if pacs is None or pacs.report_format != PacsReportFormat.PDF:
        return 0
    report = (
        Report.objects.filter(consult=consult, signed_at__isnull=False).order_by("-version").first()
    )
    if report is None:
        return 0
    with transaction.atomic():
        send, created = PacsReportSend.objects.get_or_create(
            pacs=pacs,
            report=report,
            defaults={"sop_instance_uid": _report_uid("sop", report)},
        )
        if created:
            transaction.on_commit(lambda: _dispatch_send(send.pk))
    return int(created)


def _dispatch_send(send_id: int) -> None:
    from ..tasks import pacs_report_send

    try:
        pacs_report_send.delay(send_id)
    except Exception:  # noqa: BLE001 - broker down: the beat sweep sends it later
        logger.warning("PACS report dispatch failed; the sweep will send it", exc_info=True)


def _report_uid(kind: str, report: Report) -> str:
    """Stable UIDs per report, so that a retried send stores the same object again."""
    return str(generate_uid(entropy_srcs=["huizhen-report-pdf", kind, str(report.external_id)]))


def _attached_study(consult: ConsultRequest) -> Study | None:
    attachment = (
        consult.attachments.filter(study__isnull=False)
        .select_related("study")
        .order_by("pk")
        .first()
    )
    return attachment.study if attachment else None


def build_report_pdf_dataset(
    report: Report, pacs: RemotePacs, pdf: bytes, sop_instance_uid: str
) -> Dataset:
    """An Encapsulated PDF instance of a signed report, in the attached study if any, else in
    a study of its own (stable UIDs per report)."""
    consult = report.consult
    patient = consult.patient
    study = _attached_study(consult)
    now = timezone.localtime(report.signed_at or timezone.now())
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = EncapsulatedPDFStorage
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = EncapsulatedPDFStorage
    ds.SOPInstanceUID = sop_instance_uid
    ids = patient_ids_for(pacs, patient)
    if study is not None:
        ds.PatientID = study.dicom_patient_id or (ids[0] if ids else str(patient.external_id))
        ds.IssuerOfPatientID = study.issuer_of_patient_id
        ds.PatientName = study.dicom_patient_name or patient.name
        ds.PatientBirthDate = study.patient_birth_date
        ds.PatientSex = study.patient_sex
        ds.StudyInstanceUID = study.study_instance_uid
        ds.StudyDate, ds.StudyTime = study.study_date, study.study_time
        ds.AccessionNumber = study.accession_number
        ds.StudyID = study.study_id
        ds.ReferringPhysicianName = study.referring_physician_name
        ds.StudyDescription = study.study_description
    else:
        ds.PatientID = ids[0] if ids else str(patient.external_id)
        ds.IssuerOfPatientID = authorities(pacs)[0] if ids and authorities(pacs) else ""
        ds.PatientName = patient.name
        birth = getattr(patient, "birth_date", None)
        ds.PatientBirthDate = birth.strftime("%Y%m%d") if birth else ""
        ds.PatientSex = {"M": "M", "F": "F", "male": "M", "female": "F"}.get(
            str(getattr(patient, "sex", "") or ""), "O"
        )
        ds.StudyInstanceUID = _report_uid("study", report)
        ds.StudyDate, ds.StudyTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        ds.AccessionNumber = ""
        ds.StudyID = ""
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = consult.get_consult_type_display()[:64]
    ds.SeriesInstanceUID = _report_uid("series", report)
    ds.Modality = "DOC"
    ds.SeriesNumber = 9000 + report.version
    ds.InstanceNumber = 1
    ds.Manufacturer = "Huizhen"
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.ConversionType = "SD"
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = _("Consult report")[:64]
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    return ds


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class SendResult:
    status: str
    retry_at: Any = None


def report_send(*, send_id: int) -> SendResult:
    """Store one queued report at its PACS. A failure schedules the next attempt (bounded by
    MAX_SEND_ATTEMPTS, then the row is failed); a sent row is never sent again."""
    with transaction.atomic():
        send = (
            PacsReportSend.objects.select_for_update(skip_locked=True)
            .filter(pk=send_id, status=PacsJobStatus.PENDING, next_attempt_at__lte=timezone.now())
            .first()
        )
        if send is None:
            return SendResult("")
        send.status = PacsJobStatus.RUNNING
        send.attempts += 1
        send.save(update_fields=["status", "attempts", "updated_at"])
    send = PacsReportSend.objects.select_related(
        "pacs__organisation", "report__consult__patient"
    ).get(pk=send_id)
    error = ""
    try:
        pdf = render_report_pdf(send.report)
        ds = build_report_pdf_dataset(send.report, send.pacs, pdf, send.sop_instance_uid)
        c_store(send.pacs, ds)
    except (PacsUnavailable, PacsFailed, PdfUnavailable) as exc:
        error = exc.message
    except OSError as exc:
        error = str(exc)
    now = timezone.now()
    if not error:
        PacsReportSend.objects.filter(pk=send.pk).update(
            status=PacsJobStatus.DONE, error="", updated_at=now
        )
        return SendResult(PacsJobStatus.DONE)
    if send.attempts >= MAX_SEND_ATTEMPTS:
        PacsReportSend.objects.filter(pk=send.pk).update(
            status=PacsJobStatus.FAILED, error=error[:500], updated_at=now
        )
        logger.error("report not stored at PACS after %s attempts", send.attempts)
        return SendResult(PacsJobStatus.FAILED)
    retry_at = now + _backoff(send.attempts)
    PacsReportSend.objects.filter(pk=send.pk).update(
        status=PacsJobStatus.PENDING, error=error[:500], next_attempt_at=retry_at, updated_at=now
    )
    return SendResult(PacsJobStatus.PENDING, retry_at)


def report_send_due(*, stale_after: timedelta = timedelta(minutes=15)) -> list[int]:
    """Ids of sends due now; a row left running by a dead worker is made pending again."""
    now = timezone.now()
    PacsReportSend.objects.filter(
        status=PacsJobStatus.RUNNING, updated_at__lt=now - stale_after
    ).update(status=PacsJobStatus.PENDING, updated_at=now)
    return list(
        PacsReportSend.objects.filter(
            status=PacsJobStatus.PENDING, next_attempt_at__lte=now
        ).values_list("pk", flat=True)[:500]
    )


@subscribe("consult.sign", name="ehr_bridge.pacs_store_signed_report")
def on_signed(event: Event) -> None:
    report_send_enqueue(event.payload["consult"])


@subscribe("consult.report_amended", name="ehr_bridge.pacs_store_amended_report")
def on_amended(event: Event) -> None:
    report_send_enqueue(event.payload["consult"])
