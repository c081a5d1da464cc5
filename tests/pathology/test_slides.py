"""Slides: vendor uploads convert to DICOM WSI; tiles from WADO-RS frames and from the tile
endpoint match the source pixels; bad uploads are refused; other organisations see nothing."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from imaging import services as archive_services
from imaging.models import Instance, Study
from imaging.pathology.models import ConversionStatus, SlideConversion
from imaging.pathology.wsi import WSI_SOP_CLASS
from registry.models import AuditEvent
from tests.imaging.dicom_factory import make_ct_series
from tests.imaging.test_dicomweb import split_multipart
from tests.pathology.slide_factory import (
    TILE,
    decode_jpeg,
    mean_error,
    pattern,
    write_pyramid_tiff,
    write_svs_like,
)

JPEG_TOLERANCE = 4.0  # mean absolute difference per channel, 0-255


def upload(client, path_or_bytes, patient, name="slide.tif"):
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    return client.post(
        "/api/v1/pathology/slides/uploads/",
        {"file": SimpleUploadedFile(name, data), "patient": str(patient.external_id)},
        format="multipart",
    )


@pytest.fixture
def converted(community, archive, patient, tmp_path, django_capture_on_commit_callbacks):
    path = tmp_path / "slide.tif"
    base = write_pyramid_tiff(path)
    client = community.client("village_a")
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, path, patient)
    assert response.status_code == 202, response.content
    conversion = client.get(f"/api/v1/pathology/conversions/{response.json()['id']}/").json()
    return conversion, base


def test_a_pyramidal_tiff_converts_to_dicom_wsi_levels(community, converted, patient):
    conversion, _base = converted
    assert conversion["status"] == "done" and conversion["progress"] == 100
    assert conversion["error"] == ""
    assert [(lv["width"], lv["height"]) for lv in conversion["levels"]] == [
        (4096, 3072),
        (2048, 1536),
        (1024, 768),
    ]
    study = Study.objects.get(study_instance_uid=conversion["study"])
    assert study.patient == patient and study.modalities == ["SM"]
    instances = list(Instance.objects.filter(series__study=study).order_by("instance_number"))
    assert [i.sop_class_uid for i in instances] == [WSI_SOP_CLASS] * 3
    assert [i.number_of_frames for i in instances] == [16 * 12, 8 * 6, 4 * 3]
    assert all(i.transfer_syntax_uid == "1.2.840.10008.1.2.4.50" for i in instances)
    meta = instances[0].metadata
    assert meta["00209311"]["Value"] == ["TILED_FULL"]
    assert meta["00480006"]["Value"] == [4096] and meta["00480007"]["Value"] == [3072]
    assert SlideConversion.objects.get().upload_key  # kept for the record
    assert (
        AuditEvent.objects.filter(
            action="pathology.slide.upload", object_type="slide_conversion"
        ).count()
        == 1
    )


def test_wado_rs_frames_match_the_source_pixels(community, converted):
    conversion, base = converted
    client = community.client("county_doctor")
    level0 = Instance.objects.get(
        series__series_instance_uid=conversion["series"], instance_number=1
    )
    url = (
        f"/dicomweb/studies/{conversion['study']}/series/{conversion['series']}"
        f"/instances/{level0.sop_instance_uid}/frames/1,18,192"
    )
    response = client.get(url, HTTP_ACCEPT='multipart/related; type="image/jpeg"')
    assert response.status_code == 200
    parts = split_multipart(response)
    assert len(parts) == 3
    for (_headers, data), frame in zip(parts, (1, 18, 192), strict=True):
        row, col = divmod(frame - 1, 16)
        source = base[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE]
        assert mean_error(decode_jpeg(data), source) < JPEG_TOLERANCE


def test_tiles_match_the_source_at_every_level_and_are_cached(community, converted):
    conversion, base = converted
    client = community.client("county_doctor")
    slide_url = f"/api/v1/pathology/slides/{conversion['study']}/{conversion['series']}/"
    slide = client.get(slide_url).json()
    assert (slide["width"], slide["height"]) == (4096, 3072)
    assert slide["mpp"] == pytest.approx(0.25) and slide["objective_power"] == pytest.approx(40)
    assert [lv["downsample"] for lv in slide["levels"]] == [1, 2, 4]
    for level, col, row in [(0, 0, 0), (0, 15, 11), (0, 7, 5), (1, 3, 2), (2, 3, 2)]:
        response = client.get(f"{slide_url}tiles/{level}/{col}_{row}.jpg")
        assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
        scale = 1 << level
        source = pattern(3072 >> level, 4096 >> level, step=scale)
        expected = source[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE]
        assert mean_error(decode_jpeg(response.content), expected) < JPEG_TOLERANCE
    tile = client.get(f"{slide_url}tiles/0/2_1.jpg")
    assert "max-age" in tile["Cache-Control"] and "private" in tile["Cache-Control"]
    again = client.get(f"{slide_url}tiles/0/2_1.jpg", HTTP_IF_NONE_MATCH=tile["ETag"])
    assert again.status_code == 304
    assert client.get(f"{slide_url}tiles/0/16_0.jpg").status_code == 404
    assert client.get(f"{slide_url}tiles/3/0_0.jpg").status_code == 404


def test_an_aperio_style_slide_with_lzw_tiles_is_reencoded(
    community, archive, patient, tmp_path, django_capture_on_commit_callbacks
):
    path = tmp_path / "case.svs"
    base = write_svs_like(path)
    client = community.client("village_a")
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, path, patient, name="case.svs")
    assert response.status_code == 202, response.content
    conversion = SlideConversion.objects.get()
    assert conversion.status == ConversionStatus.DONE, conversion.error
    assert conversion.file_format == "aperio_svs"
    slide_url = (
        f"/api/v1/pathology/slides/{conversion.study_instance_uid}/"
        f"{conversion.series_instance_uid}/"
    )
    slide = client.get(slide_url).json()
    assert slide["mpp"] == pytest.approx(0.5) and slide["objective_power"] == pytest.approx(20)
    tile = decode_jpeg(client.get(f"{slide_url}tiles/0/5_3.jpg").content)
    assert mean_error(tile, base[3 * TILE : 4 * TILE, 5 * TILE : 6 * TILE]) < JPEG_TOLERANCE


def _stripped_tiff() -> bytes:
    import tifffile

    out = io.BytesIO()
    tifffile.imwrite(out, pattern(300, 400), photometric="rgb")
    return out.getvalue()


@pytest.mark.parametrize(
    ("make", "status", "words"),
    [
        (lambda p: b"%PDF-1.7 not a slide at all", 415, "not a slide file"),
        (lambda p: make_ct_series(1)[0], 415, "STOW-RS"),
        (lambda p: _stripped_tiff(), 400, "not tiled"),
        (lambda p: p.read_bytes()[: len(p.read_bytes()) // 2], 400, "cut off"),
        (lambda p: b"II*\0" + b"\xff" * 64, 400, "damaged"),
        (lambda p: b"", 400, "file"),
    ],
    ids=["pdf", "dicom", "stripped-tiff", "truncated", "garbage-tiff", "empty"],
)
def test_malformed_or_non_slide_uploads_are_refused_clearly(
    community, archive, patient, tmp_path, make, status, words
):
    path = tmp_path / "slide.tif"
    write_pyramid_tiff(path, 1024, 768, 2)
    response = upload(community.client("village_a"), make(path), patient)
    assert response.status_code == status, response.content
    body = response.json()
    assert words in (body["detail"] + str(body.get("fields", ""))), body
    assert not SlideConversion.objects.exists()
    assert not Instance.objects.exists()
    assert not (archive / "pathology").exists() or not any((archive / "pathology").rglob("*.*"))


def test_a_refused_upload_is_explained_in_chinese_by_default(community, archive, patient):
    response = upload(community.client("village_a", language="zh-hans"), b"II*\0" * 8, patient)
    assert response.status_code == 400
    assert "切片" in response.json()["detail"]


def test_upload_for_a_patient_out_of_reach_is_404_and_audited(
    community, archive, patient, tmp_path
):
    path = tmp_path / "slide.tif"
    write_pyramid_tiff(path, 512, 512, 1)
    response = upload(community.client("other_doctor"), path, patient)
    assert response.status_code == 404
    assert not SlideConversion.objects.exists()
    assert AuditEvent.objects.filter(
        action="pathology.slide.upload", outcome="denied", patient_id=patient.external_id
    ).exists()
    assert upload(community.client("county_admin"), path, patient).status_code == 403


def test_another_organisation_gets_404_for_slide_tiles_and_conversion(community, converted):
    conversion, _base = converted
    other = community.client("other_doctor")
    base = f"/api/v1/pathology/slides/{conversion['study']}/{conversion['series']}/"
    page = Client()
    page.force_login(community.users["other_doctor"])
    assert page.get(f"/pathology/viewer/{conversion['study']}/").status_code == 404
    for url in (
        base,
        f"{base}tiles/0/0_0.jpg",
        f"{base}annotations/",
        f"/api/v1/pathology/studies/{conversion['study']}/",
        f"/api/v1/pathology/conversions/{conversion['id']}/",
    ):
        assert other.get(url).status_code == 404, url
    study = Study.objects.get(study_instance_uid=conversion["study"])
    assert AuditEvent.objects.filter(
        action="imaging.study.view", outcome="denied", object_id=str(study.external_id)
    ).exists()
    from rest_framework.test import APIClient

    assert APIClient().get(f"{base}tiles/0/0_0.jpg").status_code in (401, 403)


def test_a_dicom_wsi_sent_through_the_archive_is_served_as_tiles(community, archive, tmp_path):
    """What DIMSE C-STORE and STOW-RS do: store_instance with a generated WSI level."""
    from imaging.pathology.wsi import LevelSpec, SlideIdentity, level_part10

    base = pattern(512, 768)
    tiles = []
    for row in range(2):
        for col in range(3):
            out = io.BytesIO()
            from PIL import Image

            Image.fromarray(base[row * 256 : (row + 1) * 256, col * 256 : (col + 1) * 256]).save(
                out, "JPEG", quality=92
            )
            tiles.append(out.getvalue())
    identity = SlideIdentity(
        study_instance_uid=pydicom.uid.generate_uid(),
        series_instance_uid=pydicom.uid.generate_uid(),
        patient_id="WSI-1",
        patient_name="Test^Slide",
    )
    raw = level_part10(
        identity,
        LevelSpec(width=768, height=512, tile_width=256, tile_height=256, mpp=0.5),
        tiles,
        instance_number=1,
    )
    source = archive_services.Source(organisation=community.township, calling_ae_title="SCANNER")
    assert archive_services.store_instance(raw, source=source).outcome == "stored"
    client = community.client("township_doctor")
    url = f"/api/v1/pathology/slides/{identity.study_instance_uid}/{identity.series_instance_uid}/"
    slide = client.get(url).json()
    assert slide["objective_power"] == pytest.approx(20)
    tile = decode_jpeg(client.get(f"{url}tiles/0/2_1.jpg").content)
    assert mean_error(tile, base[256:512, 512:768]) < JPEG_TOLERANCE
    assert np.asarray(tile).shape == (256, 256, 3)
