"""Signed consult reports go back to the hospital: ORU^R01 to every partner that takes it."""

from __future__ import annotations

import dataclasses
import logging
import uuid

from django.db import transaction
from django.utils import timezone

from consult.models import ConsultRequest, Report
from consult.report_pdf import PdfUnavailable, render_report_pdf
from registry.events import Event, subscribe

from . import builders
from .models import InboundOrder
from .outbound import enqueue_outbound, partners_for_event, patient_data

logger = logging.getLogger(__name__)
EVENT = "ORU^R01"


def _report(
    consult: ConsultRequest, report: Report, *, corrected: bool, order_id: str = ""
) -> builders.ConsultReport:
    signer = report.signed_by
    profile = getattr(signer, "staff", None)
    sections = tuple(
        builders.ReportSection(title=title, text=text)
        for title, text in (
            ("Findings", report.findings),
            ("Impression", report.impression),
            ("Recommendations", report.recommendations),
        )
        if text
    )
    return builders.ConsultReport(
        report_id=f"{consult.external_id}-{report.version}",
        order_id=order_id,
        service_code=consult.consult_type,
        service_name=consult.get_consult_type_display(),
        observed_at=consult.created_at,
        signed_at=report.signed_at or timezone.now(),
        signer_id=profile.licence_number if profile and profile.licence_number else str(signer.pk),
        signer_name=profile.display_name if profile else signer.get_username(),
        sections=sections,
        status="C" if corrected else "F",
    )


def _pdf(report: Report) -> bytes | None:
    """The signed report's PDF for partners that take it; without a font the text goes alone."""
    try:
        return render_report_pdf(report)
    except PdfUnavailable:
        logger.error("report %s sent without its PDF: no Chinese font installed", report.pk)
        return None


def send_signed_report(consult_external_id: str, *, corrected: bool) -> int:
    """Queue ORU^R01 of the consult's latest signed report for each partner that takes it.
    Returns how many messages were queued."""
    partners = partners_for_event(EVENT)
    if not partners:
        return 0
    consult = (
        ConsultRequest.objects.select_related("patient")
        .filter(external_id=consult_external_id)
        .first()
    )
    if consult is None:
        return 0
    report = (
        Report.objects.select_related("signed_by__staff")
        .filter(consult=consult, signed_at__isnull=False)
        .order_by("-version")
        .first()
    )
    if report is None:
        return 0
    patient = patient_data(consult.patient)
    # The placer order number goes back only to the partner that placed the order.
    orders = dict(
        InboundOrder.objects.filter(consult=consult).values_list(
            "partner_id", "placer_order_number"
        )
    )
    pdf = _pdf(report) if any(p.outbound_include_pdf for p in partners) else None
    queued = 0
    with transaction.atomic():
        for partner in partners:
            payload = _report(
                consult, report, corrected=corrected, order_id=orders.get(partner.pk, "")
            )
            payload = dataclasses.replace(payload, pdf=pdf)
            envelope = builders.Envelope(
                receiving_application=partner.sending_application,
                receiving_facility=partner.sending_facility,
                control_id=uuid.uuid4().hex[:20],
                version=partner.outbound_version,
                charset=partner.outbound_charset,
            )
            text = builders.build_oru_r01(
                envelope,
                patient,
                payload,
                now=timezone.now(),
                include_pdf=partner.outbound_include_pdf,
            )
            if enqueue_outbound(partner, EVENT, builders.patient_key(patient), text):
                queued += 1
    return queued


@subscribe("consult.sign", name="ehr_bridge.send_signed_report")
def on_signed(event: Event) -> None:
    send_signed_report(event.payload["consult"], corrected=False)


@subscribe("consult.report_amended", name="ehr_bridge.send_amended_report")
def on_amended(event: Event) -> None:
    send_signed_report(event.payload["consult"], corrected=True)
