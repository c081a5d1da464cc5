"""A specialist opens a converted slide in the OpenSeadragon viewer in a real browser, zooms,
and marks a point with text."""

from __future__ import annotations

import os

import pytest

from imaging import services
from imaging.pathology import selectors, tiles
from imaging.pathology.models import SlideAnnotation, SlideConversion
from imaging.pathology.services import slide_conversion_run
from tests.e2e.conftest import sign_in
from tests.pathology.slide_factory import write_pyramid_tiff

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def slide(community, settings, tmp_path, patient_factory):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "archive")},
        },
    }
    tiles.clear_caches()
    selectors._levels_cache.clear()
    patient = patient_factory(home_organisation=community.village_a)
    upload = tmp_path / "archive" / "pathology" / "uploads" / "e2e.tif"
    upload.parent.mkdir(parents=True)
    write_pyramid_tiff(upload, 2048, 1536, 3)
    conversion = SlideConversion.objects.create(
        organisation=community.village_a,
        patient=patient,
        upload_key="pathology/uploads/e2e.tif",
        file_format="tiff",
        study_instance_uid=services_uid("study"),
        series_instance_uid=services_uid("series"),
    )
    assert slide_conversion_run(conversion_id=conversion.pk) == "done"
    return conversion


def services_uid(kind: str) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["huizhen-e2e-slide", kind])


def test_the_slide_viewer_loads_tiles_and_saves_an_annotation(page, live_server, slide, tmp_path):
    assert services  # the archive the slide was stored in
    sign_in(page, live_server, "township_doctor", "pw-township_doctor")
    page.goto(
        f"{live_server.url}/pathology/viewer/{slide.study_instance_uid}/"
        f"?series={slide.series_instance_uid}"
    )
    page.wait_for_function("window.huizhenSlide && window.huizhenSlide.opened", timeout=15000)
    page.wait_for_function("window.huizhenSlide.tilesLoaded > 0", timeout=15000)
    assert "40" in page.inner_text("#slide-info")  # scanned at 40× (0.25 µm per pixel)
    page.click("[data-magnification='20']")
    page.wait_for_function("window.huizhenSlide.tilesLoaded > 3", timeout=15000)
    page.wait_for_timeout(800)
    assert page.evaluate("window.huizhenSlide.tileErrors") == 0
    page.click("[data-tool='point']")
    page.fill("#annotation-text", "atypical cells")
    box = page.locator("#osd").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("window.huizhenSlide.annotations.length === 1", timeout=10000)
    assert "atypical cells" in page.inner_text("#annotation-list")
    page.wait_for_selector(".ann-label")
    page.screenshot(
        path=os.environ.get("HUIZHEN_SCREENSHOT_PATHOLOGY", str(tmp_path / "pathology-viewer.png"))
    )
    annotation = SlideAnnotation.objects.get()
    assert annotation.shape == "point" and annotation.text == "atypical cells"
    x, y = annotation.points[0]
    assert 0 < x < 2048 and 0 < y < 1536
