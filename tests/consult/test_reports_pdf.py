"""Structured consult reports and the signed report as a printable PDF with embedded fonts."""

from __future__ import annotations

import io
import re
from datetime import datetime

import pytest
from pypdf import PdfReader

from consult.models import ConsultRequest, Report
from consult.report_pdf import mask_id_number, render_report_pdf
from consult.services import report_hash
from imaging.ecg.services import ecg_upload
from imaging.ecg.synthetic import synthetic_ecg
from imaging.models import Series, Study
from imaging.pathology.models import SlideAnnotation
from registry.access import principal_for
from registry.models import AuditEvent, StaffProfile
from tests.consult.conftest import URL, act, draft, staff, submitted
from tests.ecg.ecg_factory import write_scp
from tests.factories import make_org

ECG_REPORT = {
    "findings": "窦性心律,V1-V4 ST段抬高",
    "impression": "急性前壁心肌梗死",
    "recommendations": "立即转上级医院",
    "structured": {
        "rhythm": "窦性心律",
        "rate": 96,
        "axis": "45",
        "pr_ms": 160,
        "qrs_ms": 92,
        "qt_ms": 380,
        "qtc_ms": 440,
        "st_t": "V1-V4 ST段抬高0.3mV",
        "conclusion": "急性前壁心肌梗死",
    },
    "icd10_codes": ["i21.0", "I10"],
    "recommendation_kind": "repeat_exam",
}


def _text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return re.sub(r"\s+", "", "".join(page.extract_text() for page in reader.pages))


def _embedded_fonts(pdf: bytes) -> list[tuple[str, str]]:
    """(BaseFont, FontFile key) of every font on every page; a font without a FontFile*
    entry is not embedded."""
    found = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            target = descendants[0].get_object() if descendants else font
            descriptor = target["/FontDescriptor"].get_object()
            files = [k for k in descriptor if k.startswith("/FontFile")]
            found.append((str(font["/BaseFont"]), files[0] if files else ""))
    return found


def _in_progress(community, patient, **overrides) -> str:
    cid = submitted(community, patient, **overrides)["id"]
    assert act(community, "ecg_specialist", cid, "accept").status_code == 200
    assert act(community, "ecg_specialist", cid, "start").status_code == 200
    return cid


def _sign(community, cid: str, body: dict, reader: str = "ecg_specialist") -> dict:
    saved = community.client(reader).put(f"{URL}{cid}/report/", body, format="json")
    assert saved.status_code == 200, saved.json()
    signed = act(community, reader, cid, "sign", {"password": f"pw-{reader}"})
    assert signed.status_code == 200, signed.json()
    return signed.json()


@pytest.fixture
def titled_reader(community):
    StaffProfile.objects.filter(user=community.users["ecg_specialist"]).update(
        display_name="赵心电", professional_title="associate_chief", licence_number="110431226001"
    )


@pytest.fixture
def ecg_study(community, patient, media):
    signal, _ = synthetic_ecg(heart_rate=60, resolution_uv=5.0)
    signal.acquired_at = datetime(2026, 6, 3, 9, 30)
    record = ecg_upload(
        principal=principal_for(community.users["village_a"]),
        patient_id=patient.external_id,
        raw=write_scp(signal),
        filename="a.scp",
    ).record
    return record.study


def test_a_signed_ecg_report_prints_with_chinese_text_embedded_font_and_the_trace(
    community, patient, titled_reader, ecg_study
):
    cid = draft(community, patient)["id"]
    attached = community.client("village_a").post(
        f"{URL}{cid}/attachments/study/",
        {"study_instance_uid": ecg_study.study_instance_uid},
        format="json",
    )
    assert attached.status_code == 201, attached.json()
    assert act(community, "village_a", cid, "submit").status_code == 200
    assert act(community, "ecg_specialist", cid, "accept").status_code == 200
    assert act(community, "ecg_specialist", cid, "start").status_code == 200
    report = _sign(community, cid, ECG_REPORT)
    assert report["icd10_codes"] == ["I21.0", "I10"]
    assert report["structured"]["axis"] == 45 and report["pdf"].endswith("/reports/1.pdf")

    response = community.client("village_a").get(report["pdf"])

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    body = response.content
    assert body.startswith(b"%PDF-")
    text = _text(body)
    assert patient.name in text
    assert "心电中心" in text and "东山村卫生室" in text
    assert "急性前壁心肌梗死" in text and "V1-V4ST段抬高0.3mV" in text
    assert "I21.0,I10" in text and "96bpm" in text
    assert "赵心电" in text and "110431226001" in text
    assert report["content_hash"] in text
    # The ID number is masked but for its last four characters.
    assert patient.id_number not in text
    assert mask_id_number(patient.id_number) in text
    fonts = _embedded_fonts(body)
    assert fonts and all(embedded for _name, embedded in fonts)
    assert any("WenQuanYi" in name or "NotoSansCJK" in name for name, _f in fonts)
    # The 12-lead trace is drawn on its own page.
    reader = PdfReader(io.BytesIO(body))
    assert len(reader.pages) >= 2
    assert any(page.images for page in reader.pages[1:])
    # The read is audited against the report.
    assert AuditEvent.objects.filter(
        action="consult.report.pdf", object_id=report["id"], outcome="success"
    ).exists()


def test_a_draft_report_is_not_printed(community, patient):
    cid = _in_progress(community, patient)
    saved = community.client("ecg_specialist").put(
        f"{URL}{cid}/report/", {"impression": "正常心电图"}, format="json"
    )
    assert saved.status_code == 200

    response = community.client("village_a").get(f"{URL}{cid}/reports/1.pdf")

    assert response.status_code == 409
    assert response.json()["code"] == "report_not_signed"
    assert "signed" in response.json()["detail"]
    assert community.client("village_a").get(f"{URL}{cid}/reports/7.pdf").status_code == 404
    huge = community.client("village_a").get(f"{URL}{cid}/reports/99999999999.pdf")
    assert huge.status_code == 404
    # A client that asks for a PDF still reads why it got none.
    asked = community.client("village_a").get(
        f"{URL}{cid}/reports/1.pdf", HTTP_ACCEPT="application/pdf"
    )
    assert asked.status_code == 409 and b"report_not_signed" in asked.content


def test_someone_of_another_organisation_gets_404_and_the_denial_is_audited(community, patient):
    cid = _in_progress(community, patient)
    _sign(community, cid, {"impression": "正常心电图"})
    for outsider in ("other_doctor", "village_b"):
        response = community.client(outsider).get(f"{URL}{cid}/reports/1.pdf")
        assert response.status_code == 404
        assert patient.name not in response.content.decode()
    assert (
        AuditEvent.objects.filter(
            action="consult.report.pdf", object_id=cid, outcome="denied"
        ).count()
        == 2
    )
    # The requesting clinic's township and the centre may print it.
    assert community.client("township_doctor").get(f"{URL}{cid}/reports/1.pdf").status_code == 200
    assert community.client("ecg_specialist").get(f"{URL}{cid}/reports/1.pdf").status_code == 200


def test_an_amended_version_says_which_version_it_replaces_and_why(community, patient):
    cid = _in_progress(community, patient)
    _sign(community, cid, {"impression": "正常心电图"})
    opened = act(community, "ecg_specialist", cid, "amend", {"reason": "漏报房性早搏"})
    assert opened.status_code == 201
    v2 = _sign(community, cid, {"impression": "窦性心律,偶发房性早搏"})
    assert v2["version"] == 2

    text = _text(community.client("village_a").get(f"{URL}{cid}/reports/2.pdf").content)

    assert "漏报房性早搏" in text and "偶发房性早搏" in text
    assert re.search(r"version1", text) or "第1版" in text
    # Version 1 still prints as it was signed.
    assert "偶发房性早搏" not in _text(
        community.client("village_a").get(f"{URL}{cid}/reports/1.pdf").content
    )


def test_structured_fields_are_validated_per_consult_type(community, patient):
    cid = _in_progress(community, patient)
    client = community.client("ecg_specialist")
    bad = client.put(
        f"{URL}{cid}/report/",
        {
            "impression": "x",
            "structured": {"rate": "fast", "gross": "灰白", "axis": 400},
            "icd10_codes": ["I21.0", "chest pain"],
            "recommendation_kind": "follow_up",
        },
        format="json",
    )
    assert bad.status_code == 400
    fields = bad.json()["fields"]
    assert {
        "structured.rate",
        "structured.gross",
        "structured.axis",
        "icd10_codes",
        "follow_up_days",
    } <= set(fields)
    assert not Report.objects.filter(consult__external_id=cid).exists()
    not_a_list = client.put(
        f"{URL}{cid}/report/", {"impression": "x", "structured": ["rate"]}, format="json"
    )
    assert not_a_list.status_code == 400 and "structured" in not_a_list.json()["fields"]
    nul = client.put(
        f"{URL}{cid}/report/",
        {"impression": "x", "structured": {"rhythm": "a\x00b"}},
        format="json",
    )
    assert nul.status_code == 400 and "structured.rhythm" in nul.json()["fields"]
    unknown_kind = client.put(
        f"{URL}{cid}/report/", {"impression": "x", "recommendation_kind": "pray"}, format="json"
    )
    assert unknown_kind.status_code == 400


def test_the_content_hash_covers_the_structured_fields(community, patient):
    cid = _in_progress(community, patient)
    signed = _sign(community, cid, ECG_REPORT)
    report = Report.objects.select_related("previous").get(external_id=signed["id"])
    consult = ConsultRequest.objects.get(external_id=cid)
    assert report_hash(report, consult) == signed["content_hash"]
    for field, value in (
        ("structured", {**report.structured, "rate": 97}),
        ("icd10_codes", ["I21.1"]),
        ("recommendation_kind", "manage_locally"),
    ):
        original = getattr(report, field)
        setattr(report, field, value)
        assert report_hash(report, consult) != signed["content_hash"], field
        setattr(report, field, original)


def test_a_pathology_report_lists_the_slide_annotations(community, patient):
    pathology = make_org("病理中心", "regional_centre", community.county, services=["pathology"])
    staff(community, "path_reader", pathology, "specialist")
    cid = submitted(community, patient, consult_type="pathology_read")["id"]
    assert act(community, "path_reader", cid, "accept").status_code == 200
    assert act(community, "path_reader", cid, "start").status_code == 200
    study = Study.objects.create(
        study_instance_uid="1.2.826.0.1.3680043.10.999.1",
        organisation=community.village_a,
        patient=patient,
    )
    series = Series.objects.create(study=study, series_instance_uid="1.2.826.0.1.3680043.10.999.2")
    SlideAnnotation.objects.create(
        study=study,
        series=series,
        consult_id=cid,
        shape="rectangle",
        points=[[10, 10], [200, 120]],
        text="腺体排列紊乱",
        organisation=pathology,
    )
    signed = _sign(
        community,
        cid,
        {
            "impression": "",
            "structured": {"gross": "灰白组织一块", "microscopic": "腺体增生", "diagnosis": "腺癌"},
            "icd10_codes": ["C16.9"],
            "recommendation_kind": "manage_locally",
        },
        reader="path_reader",
    )
    report = Report.objects.select_related("consult").get(external_id=signed["id"])

    text = _text(render_report_pdf(report))

    assert "灰白组织一块" in text and "腺癌" in text and "C16.9" in text
    assert "腺体排列紊乱" in text
