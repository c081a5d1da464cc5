"""A doctor opens a CT study in the viewer in a real browser."""

from __future__ import annotations

import os

import pytest

from imaging import services
from imaging.models import Study
from tests.e2e.conftest import sign_in
from tests.imaging.dicom_factory import make_ct_series

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ct_study(community, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "archive")},
        },
    }
    source = services.Source(organisation=community.township, calling_ae_title="TEST_DR")
    for raw in make_ct_series(12, rows=128, cols=128, patient_name="Zhao^Min", patient_id="E2E1"):
        services.store_instance(raw, source=source)
    return Study.objects.get()


def test_the_viewer_shows_scrolls_and_windows_a_series(page, live_server, ct_study, tmp_path):
    sign_in(page, live_server, "township_doctor", "pw-township_doctor")
    page.goto(f"{live_server.url}/imaging/")
    page.click("text=Zhao^Min >> xpath=ancestor::tr >> a")
    page.wait_for_function("document.getElementById('image').naturalWidth === 128")
    info = page.inner_text("#info")
    assert "7/12" in info  # opens in the middle of the series
    page.focus("#stage")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("document.getElementById('info').textContent.includes('8/12')")
    first = page.get_attribute("#image", "src")
    page.click("[data-preset='-600,1500']")
    page.wait_for_function("document.getElementById('image').src.includes('window=-600,1500')")
    assert page.get_attribute("#image", "src") != first
    page.wait_for_function("document.getElementById('image').complete")
    page.click("[data-action='measure']")
    box = page.locator("#image").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.5)
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.5)
    label = page.text_content("#overlay text") or ""
    assert label.endswith("mm")
    # 64 pixels at 0.7 mm spacing: about 45 mm.
    assert 40 < float(label.split()[0]) < 50
    page.screenshot(path=os.environ.get("HUIZHEN_SCREENSHOT", str(tmp_path / "viewer.png")))
    assert page.inner_text("#status") == ""


def test_another_organisation_gets_a_404_page(page, live_server, ct_study):
    sign_in(page, live_server, "other_doctor", "pw-other_doctor")
    response = page.goto(f"{live_server.url}/imaging/viewer/{ct_study.study_instance_uid}/")
    assert response.status == 404
