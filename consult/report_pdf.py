"""A signed consult report as a printable PDF (A4, Chinese fonts embedded).

fpdf2 embeds a subset of the font. The default is WenQuanYi Zen Hei (Debian package
``fonts-wqy-zenhei``, TrueType outlines): fpdf2 writes it as a CIDFontType2 font with the
Identity-H encoding, whose text every reader extracts (copy, search, screen readers). Noto
Sans CJK (``fonts-noto-cjk``, CFF outlines) also embeds, but fpdf2 gives a CFF font an embedded
encoding CMap that some readers (pdfminer, pypdf) do not decode, so it is only the fallback.
``settings.CONSULT_PDF_FONT`` (path) and ``CONSULT_PDF_FONT_INDEX`` (the face in a
collection) choose another font. Text is in the site language.

Only a signed version renders: the PDF is a copy of what was signed, with its hash. Its
bytes are deterministic (the creation date is the signing time).
"""

from __future__ import annotations

import io
import logging
from datetime import date
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos

from imaging.ecg.models import EcgRecord
from imaging.ecg.render import render_png
from imaging.ecg.services import UnreadableEcg, record_signal
from imaging.pathology.models import SlideAnnotation
from registry.errors import Conflict, DomainError

from . import report_structure
from .models import ConsultType, RecommendationKind, Report, ReportStatus

log = logging.getLogger(__name__)

# (path, face in the collection), first found wins.
DEFAULT_FONTS = (
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),  # Noto Sans CJK SC
)
FONT = "cjk"
LABEL_WIDTH = 38  # mm
GREY = (90, 90, 90)


class PdfUnavailable(DomainError):
    """The server cannot render PDFs (the CJK font is missing): an operator must act."""

    status_code = 503
    default_code = "pdf_unavailable"


def mask_id_number(value: str | None) -> str:
    """Every character but the last four hidden: ``**************1234``."""
    value = (value or "").strip()
    if not value:
        return "—"
    if len(value) <= 4:
        return "*" * len(value)
    return "*" * (len(value) - 4) + value[-4:]


def age_on(birth: date | None, day: date) -> int | None:
    if birth is None:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


class _Sheet(FPDF):
    footer_text = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=8)
        self.set_text_color(*GREY)
        self.cell(0, 5, f"{self.footer_text}  {self.page_no()}/{{nb}}", align="C")
        self.set_text_color(0, 0, 0)


def _font() -> tuple[Path, int]:
    configured = getattr(settings, "CONSULT_PDF_FONT", "")
    candidates = (
        [(configured, int(getattr(settings, "CONSULT_PDF_FONT_INDEX", 0)))]
        if configured
        else list(DEFAULT_FONTS)
    )
    for name, index in candidates:
        path = Path(name)
        if path.is_file():
            return path, index
    log.error("consult PDF font missing: %s", [c[0] for c in candidates])
    raise PdfUnavailable(
        _("Reports cannot be printed on this server: the Chinese font is not installed.")
    )


def _clean(text: Any) -> str:
    return str(text or "").replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")


class _Writer:
    def __init__(self, pdf: FPDF) -> None:
        self.pdf = pdf

    def heading(self, text: str) -> None:
        pdf = self.pdf
        pdf.ln(2)
        pdf.set_font(FONT, size=12)
        pdf.set_fill_color(235, 240, 245)
        pdf.cell(0, 7, _clean(text), fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")
        pdf.ln(1)
        pdf.set_font(FONT, size=10)

    def row(self, label: str, value: Any) -> None:
        pdf = self.pdf
        pdf.set_font(FONT, size=10)
        if pdf.will_page_break(6):
            pdf.add_page()
        y = pdf.get_y()
        pdf.set_text_color(*GREY)
        pdf.multi_cell(LABEL_WIDTH, 6, _clean(label), wrapmode=WrapMode.CHAR)
        label_bottom = pdf.get_y()
        pdf.set_text_color(0, 0, 0)
        pdf.set_xy(pdf.l_margin + LABEL_WIDTH, y)
        pdf.multi_cell(
            0,
            6,
            _clean(value) or "—",
            wrapmode=WrapMode.CHAR,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.set_y(max(pdf.get_y(), label_bottom))

    def paragraph(self, text: Any) -> None:
        self.pdf.set_font(FONT, size=10)
        self.pdf.multi_cell(
            0,
            6,
            _clean(text) or "—",
            wrapmode=WrapMode.CHAR,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )


def _staff(user: Any) -> tuple[str, str, str]:
    profile = getattr(user, "staff", None) if user is not None else None
    if profile is None:
        return (user.get_username() if user is not None else "—"), "", ""
    title = profile.get_professional_title_display() if profile.professional_title else ""
    return profile.display_name, title, profile.licence_number


def _attached_studies(consult: Any) -> list[Any]:
    return [
        a.study for a in consult.attachments.filter(study__isnull=False).select_related("study")
    ]


def _ecg_png(consult: Any) -> bytes | None:
    studies = _attached_studies(consult)
    if not studies:
        return None
    record = (
        EcgRecord.objects.filter(study__in=studies)
        .select_related("instance")
        .order_by("-acquired_at", "-id")
        .first()
    )
    if record is None:
        return None
    try:
        return render_png(record_signal(record), dpi=150, kind="3x4")
    except (UnreadableEcg, OSError, ValueError) as exc:
        # The report still prints; the page says the trace could not be drawn.
        log.warning("ECG trace of consult %s not drawn: %s", consult.external_id, exc)
        return b""


def _annotations(consult: Any) -> list[SlideAnnotation]:
    studies = _attached_studies(consult)
    return list(
        SlideAnnotation.objects.filter(Q(consult_id=consult.external_id) | Q(study__in=studies))
        .select_related("created_by__staff")
        .order_by("created_at", "id")[:200]
    )


def _recommendation(report: Report) -> str:
    if not report.recommendation_kind:
        return ""
    if report.recommendation_kind == RecommendationKind.FOLLOW_UP:
        return _("Follow up in %(days)s days") % {"days": report.follow_up_days}
    return str(RecommendationKind(report.recommendation_kind).label)


def render_report_pdf(report: Report) -> bytes:
    """The PDF of one signed report version. Raises Conflict for a draft and PdfUnavailable
    when the font is missing. Precondition: the caller passed the consult's access gate."""
    if report.status != ReportStatus.SIGNED:
        raise Conflict(
            _("Only a signed report can be printed; this version is still a draft."),
            code="report_not_signed",
        )
    font_path, font_index = _font()
    with translation.override(settings.LANGUAGE_CODE):
        return _render(report, font_path, font_index)


def _render(report: Report, font_path: Path, font_index: int) -> bytes:
    consult = report.consult
    patient = consult.patient
    signed_local = timezone.localtime(report.signed_at)
    pdf = _Sheet(format="A4", unit="mm")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, margin=16)
    pdf.add_font(FONT, "", str(font_path), collection_font_number=font_index)
    pdf.set_creation_date(report.signed_at)
    pdf.set_creator("Huizhen")
    centre_name = consult.centre.name if consult.centre_id else ""
    title = _("Remote consult report")
    pdf.set_title(f"{centre_name} {title}".strip())
    pdf.set_lang(settings.LANGUAGE_CODE)
    pdf.footer_text = _("Version %(version)s · SHA-256 %(hash)s") % {
        "version": report.version,
        "hash": report.content_hash[:16] + "…",
    }
    pdf.add_page()
    w = _Writer(pdf)

    pdf.set_font(FONT, size=16)
    pdf.cell(0, 9, centre_name or title, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=13)
    pdf.cell(
        0,
        8,
        f"{ConsultType(consult.consult_type).label} · {title}",
        align="C",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(2)

    w.heading(_("Patient"))
    age = age_on(patient.birth_date, signed_local.date())
    w.row(_("Name"), patient.name)
    w.row(_("Sex"), patient.get_sex_display())
    w.row(_("Age"), _("%(age)s years") % {"age": age} if age is not None else "—")
    w.row(_("Resident ID number"), mask_id_number(patient.id_number))

    w.heading(_("Consult"))
    w.row(_("Requesting organisation"), consult.requesting_organisation.name)
    requester, _title, _licence = _staff(consult.requester)
    w.row(_("Requesting doctor"), requester)
    w.row(_("Centre"), centre_name)
    w.row(_("Consult type"), ConsultType(consult.consult_type).label)
    w.row(_("Clinical question"), consult.clinical_question)
    w.row(_("Consult number"), str(consult.external_id))

    w.heading(_("Report"))
    for label, value in report_structure.labelled(consult.consult_type, report.structured or {}):
        w.row(label, value)
    if report.findings.strip():
        w.row(_("Findings"), report.findings)
    w.row(_("Impression"), report.impression)
    if report.icd10_codes:
        w.row(_("ICD-10 codes"), ", ".join(report.icd10_codes))
    recommendation = _recommendation(report)
    if recommendation:
        w.row(_("Recommendation"), recommendation)
    if report.recommendations.strip():
        w.row(_("Recommendations"), report.recommendations)

    if consult.consult_type == ConsultType.PATHOLOGY_READ:
        annotations = _annotations(consult)
        w.heading(_("Slide annotations"))
        if not annotations:
            w.paragraph(_("No annotations."))
        for n, a in enumerate(annotations, start=1):
            author, _t, _l = _staff(a.created_by)
            w.row(
                f"{n}. {a.get_shape_display()}",
                f"{a.text or '—'}  ({author})",
            )

    w.heading(_("Signature"))
    signer, signer_title, licence = _staff(report.signed_by)
    w.row(_("Signed by"), signer)
    w.row(_("Professional title"), signer_title or "—")
    w.row(_("Licence number"), licence or "—")
    w.row(_("Signed at"), signed_local.strftime("%Y-%m-%d %H:%M %Z").strip())
    w.row(_("Version"), str(report.version))
    if report.previous_id:
        w.row(
            _("Amendment"),
            _("This version replaces version %(version)s because: %(reason)s")
            % {"version": report.previous.version, "reason": report.amendment_reason},
        )
    w.row(_("Content hash (SHA-256)"), report.content_hash)

    if consult.consult_type == ConsultType.ECG_READ:
        png = _ecg_png(consult)
        if png is not None:
            pdf.add_page(orientation="L")
            w.heading(_("12-lead ECG"))
            if png:
                width = pdf.w - pdf.l_margin - pdf.r_margin
                pdf.image(io.BytesIO(png), x=pdf.l_margin, w=width, alt_text=_("12-lead ECG"))
            else:
                w.paragraph(_("The ECG trace could not be drawn."))
    return bytes(pdf.output())
