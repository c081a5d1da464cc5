"""Annotations: point, rectangle and polygon with text, scoped to who may see the slide,
changed only by their author, optionally tied to a consult."""

from __future__ import annotations

import uuid

import pydicom
import pytest

from imaging import services as archive_services
from imaging.pathology.models import SlideAnnotation
from imaging.pathology.urgency import FROZEN_SECTION, FROZEN_SECTION_SLA, URGENCIES
from imaging.pathology.wsi import LevelSpec, SlideIdentity, level_part10
from registry.models import AuditEvent
from tests.pathology.slide_factory import pattern


@pytest.fixture
def slide_url(community, archive):
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pattern(256, 256)).save(out, "JPEG")
    identity = SlideIdentity(
        study_instance_uid=pydicom.uid.generate_uid(),
        series_instance_uid=pydicom.uid.generate_uid(),
        patient_id="ANN-1",
    )
    spec = LevelSpec(width=1000, height=700, tile_width=256, tile_height=256, mpp=0.25)
    raw = level_part10(identity, spec, [out.getvalue()] * spec.frames, instance_number=1)
    source = archive_services.Source(organisation=community.township, calling_ae_title="SCANNER")
    archive_services.store_instance(raw, source=source)
    return f"/api/v1/pathology/slides/{identity.study_instance_uid}/{identity.series_instance_uid}/"


def test_annotations_are_created_listed_changed_and_deleted(community, slide_url):
    doctor = community.client("township_doctor")
    consult = uuid.uuid4()
    shapes = [
        {"shape": "point", "points": [[10, 20]], "text": "mitosis"},
        {
            "shape": "rectangle",
            "points": [[100, 100], [300, 250]],
            "text": "区域",
            "consult": str(consult),
        },
        {"shape": "polygon", "points": [[0, 0], [50, 0], [25, 40]], "text": ""},
    ]
    created = [doctor.post(f"{slide_url}annotations/", s, format="json") for s in shapes]
    assert [r.status_code for r in created] == [201, 201, 201]
    assert created[1].json()["consult"] == str(consult) and created[1].json()["mine"] is True
    listed = doctor.get(f"{slide_url}annotations/").json()
    assert [a["shape"] for a in listed] == ["point", "rectangle", "polygon"]
    only = doctor.get(f"{slide_url}annotations/?consult={consult}").json()
    assert [a["text"] for a in only] == ["区域"]
    one = created[0].json()["id"]
    changed = doctor.patch(
        f"/api/v1/pathology/annotations/{one}/", {"text": "two mitoses"}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["text"] == "two mitoses"
    assert doctor.delete(f"/api/v1/pathology/annotations/{one}/").status_code == 204
    assert SlideAnnotation.objects.count() == 2
    assert AuditEvent.objects.filter(action__startswith="pathology.annotation.").count() == 5


@pytest.mark.parametrize(
    "body",
    [
        {"shape": "circle", "points": [[1, 1]]},
        {"shape": "point", "points": [[1, 1], [2, 2]]},
        {"shape": "polygon", "points": [[1, 1], [2, 2]]},
        {"shape": "rectangle", "points": [[0, 0], [5000, 10]]},
        {"shape": "point", "points": [["a", 1]]},
        {"shape": "point", "points": "10,20"},
    ],
)
def test_bad_annotations_are_refused(community, slide_url, body):
    response = community.client("township_doctor").post(
        f"{slide_url}annotations/", body, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"]
    assert not SlideAnnotation.objects.exists()


def test_annotation_access_matrix(community, slide_url):
    author = community.client("township_doctor")
    made = author.post(
        f"{slide_url}annotations/", {"shape": "point", "points": [[5, 5]]}, format="json"
    )
    url = f"/api/v1/pathology/annotations/{made.json()['id']}/"
    # A colleague higher in the tree sees it but may not change it.
    colleague = community.client("county_doctor")
    assert len(colleague.get(f"{slide_url}annotations/").json()) == 1
    assert colleague.delete(url).status_code == 403
    # Another county: not found, for the list, a new annotation, and the existing one.
    other = community.client("other_doctor")
    assert other.get(f"{slide_url}annotations/").status_code == 404
    assert (
        other.post(
            f"{slide_url}annotations/", {"shape": "point", "points": [[1, 1]]}, format="json"
        ).status_code
        == 404
    )
    assert other.patch(url, {"text": "x"}, format="json").status_code == 404
    assert other.delete(url).status_code == 404
    # An administrator without a clinical role sees nothing either.
    assert community.client("county_admin").get(f"{slide_url}annotations/").status_code == 404
    annotation = SlideAnnotation.objects.get()
    assert annotation.text == "" and annotation.points == [[5.0, 5.0]]


def test_frozen_sections_are_an_emergency_class_with_a_30_minute_report():
    assert FROZEN_SECTION.emergency is True
    assert FROZEN_SECTION.report_within == FROZEN_SECTION_SLA
    assert FROZEN_SECTION_SLA.total_seconds() == 30 * 60
    assert URGENCIES["frozen_section"] is FROZEN_SECTION
