from django.test import Client

from imaging import services
from imaging.models import Study
from tests.imaging.dicom_factory import make_ct_series


def _login(community, username):
    client = Client()
    client.force_login(community.users[username])
    return client


def test_the_study_list_and_viewer_pages_for_the_clinic(db, settings, tmp_path, community):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    source = services.Source(organisation=community.village_a, calling_ae_title="X")
    for raw in make_ct_series(2, patient_name="Chen^Hua", patient_id="PG1"):
        services.store_instance(raw, source=source)
    uid = Study.objects.get().study_instance_uid
    client = _login(community, "village_a")
    listing = client.get("/imaging/").content.decode()
    assert "Chen^Hua" in listing and f"/imaging/viewer/{uid}/" in listing
    assert "未匹配" in listing or "not matched" in listing
    viewer = client.get(f"/imaging/viewer/{uid}/")
    assert viewer.status_code == 200
    assert "/static/imaging/viewer.js" in viewer.content.decode()
    assert _login(community, "other_doctor").get(f"/imaging/viewer/{uid}/").status_code == 404
    assert "Chen^Hua" not in _login(community, "other_doctor").get("/imaging/").content.decode()


def test_pages_need_a_signed_in_user(db):
    response = Client().get("/imaging/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
