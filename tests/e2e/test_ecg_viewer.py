"""A specialist opens a 12-lead ECG in the viewer in a real browser, measures with the
calipers and confirms the machine's measurements."""

from __future__ import annotations

import os
import re
from datetime import datetime

import pytest

from imaging.ecg.models import EcgRecord, EcgStatus
from imaging.ecg.services import ecg_upload
from imaging.ecg.synthetic import synthetic_ecg
from registry.access import principal_for
from tests.e2e.conftest import sign_in
from tests.ecg.ecg_factory import write_scp

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ecg_record(community, patient_factory, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "archive")},
        },
    }
    patient = patient_factory(home_organisation=community.village_a)
    signal, _ = synthetic_ecg(heart_rate=60, resolution_uv=5.0)
    signal.acquired_at = datetime(2024, 6, 3, 9, 30)
    principal = principal_for(community.users["village_a"])
    return ecg_upload(
        principal=principal, patient_id=patient.external_id, raw=write_scp(signal), filename="a.scp"
    ).record


def test_the_ecg_viewer_draws_measures_and_confirms(page, live_server, ecg_record, tmp_path):
    sign_in(page, live_server, "county_doctor", "pw-county_doctor")
    page.goto(f"{live_server.url}/ecg/{ecg_record.external_id}/")
    page.wait_for_function("document.getElementById('ecg').dataset.ready === '1'")
    assert page.locator("#paper path.trace").count() == 13
    assert page.get_attribute("#paper", "viewBox").startswith("0 0 ")
    # Time calipers one second apart (25 mm at 25 mm/s) read 1000 ms and 60/min.
    page.click("[data-caliper=time]")
    ctm = page.evaluate(
        "(() => { const m = document.getElementById('paper').getScreenCTM();"
        " return [m.a, m.e, m.f]; })()"
    )
    scale, left, top = ctm
    y = top + 30 * scale
    page.mouse.click(left + 40 * scale, y)
    page.mouse.click(left + 65 * scale, y)
    readout = page.inner_text("#readout")
    interval = int(re.search(r"(\d+) ms", readout).group(1))
    assert abs(interval - 1000) <= 10 and "60/min" in readout  # within a screen pixel
    # Gain 20 mm/mV doubles the drawing height; 6x2 layout draws 12 leads.
    page.select_option("#layout", "6x2")
    page.wait_for_function("document.querySelectorAll('#paper path.trace').length === 12")
    page.select_option("#gain", "20")
    page.select_option("#layout", "3x4")
    page.screenshot(
        path=os.environ.get("HUIZHEN_ECG_SCREENSHOT", str(tmp_path / "ecg-viewer.png")),
        full_page=True,
    )
    page.fill("input[name=qt]", "404")
    page.click("#confirm-form button[type=submit]")
    page.wait_for_function("document.getElementById('status').textContent.length > 0")
    record = EcgRecord.objects.get(pk=ecg_record.pk)
    assert record.status == EcgStatus.CONFIRMED and record.confirmed["qt"] == 404.0


def test_another_organisation_gets_a_404_page(page, live_server, ecg_record):
    sign_in(page, live_server, "other_doctor", "pw-other_doctor")
    response = page.goto(f"{live_server.url}/ecg/{ecg_record.external_id}/")
    assert response.status == 404
