from __future__ import annotations

import pytest

from imaging.pathology import selectors, tiles


@pytest.fixture
def archive(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "archive")},
        },
    }
    tiles.clear_caches()
    selectors._levels_cache.clear()
    yield tmp_path / "archive"
    tiles.clear_caches()
    selectors._levels_cache.clear()


@pytest.fixture
def patient(community, patient_factory):
    return patient_factory(home_organisation=community.village_a, name="王秀英")
