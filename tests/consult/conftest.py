from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from registry.access import principal_for
from registry.models import Consent
from tests.factories import PatientFactory

URL = "/api/v1/consult/consults/"


@pytest.fixture
def media(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    return tmp_path


def with_consent(patient, user, org) -> Consent:
    return Consent.objects.create(
        patient=patient,
        kind="teleconsult",
        method="written",
        granted_at=timezone.now(),
        recorded_by=user,
        recorded_at_organisation=org,
    )


@pytest.fixture
def patient(community):
    p = PatientFactory(home_organisation=community.village_a)
    with_consent(p, community.users["village_a"], community.village_a)
    return p


def principal(community, username: str):
    return principal_for(community.users[username])


def draft(community, patient, **overrides: Any) -> dict:
    body = {
        "patient": str(patient.external_id),
        "consult_type": "ecg_read",
        "urgency": "urgent",
        "reason": "胸痛两小时",
        "clinical_question": "ST段改变?",
        "vital_signs": {"bp": "150/95", "hr": 96},
        **overrides,
    }
    response = community.client("village_a").post(URL, body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def act(community, username: str, consult_id: str, action: str, body: dict | None = None):
    return community.client(username).post(
        f"{URL}{consult_id}/{action}/", body or {}, format="json"
    )


def submitted(community, patient, **overrides: Any) -> dict:
    consult = draft(community, patient, **overrides)
    response = act(community, "village_a", consult["id"], "submit")
    assert response.status_code == 200, response.json()
    return response.json()


def staff(community, username: str, org, role: str, **kw: Any):
    """A staff member added to the community's users (password ``pw-<username>``)."""
    from tests.factories import make_staff

    user = make_staff(username, org, role, **kw)
    community.users[username] = user
    return user
