from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from registry import sms
from tests.factories import PatientFactory, make_org, make_staff


@dataclass
class Community:
    """A small county medical community: one county hospital, an ECG centre, one township
    centre with two village clinics, and a second county that is someone else's."""

    county: Any
    ecg: Any
    township: Any
    village_a: Any
    village_b: Any
    other_county: Any
    users: dict[str, Any]

    def client(self, username: str, language: str = "en") -> APIClient:
        """An API client signed in as ``username``, asking for answers in ``language``.

        Pages and API answer in zh-Hans unless asked otherwise; tests read the English text.
        """
        client = APIClient(HTTP_ACCEPT_LANGUAGE=language)
        client.force_authenticate(self.users[username])
        return client


@pytest.fixture(autouse=True)
def _audit_trail_guard(request):
    """Keep the audit table's append-only triggers on during every test.

    A transactional test ends with a flush (TRUNCATE), which the triggers refuse; for that
    flush alone the session switches triggers off, and the next test switches them on again.
    """
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or bool(
        marker and marker.kwargs.get("transaction")
    )
    if not (transactional or marker or "db" in request.fixturenames):
        yield
        return
    request.getfixturevalue("transactional_db" if transactional else "db")
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = DEFAULT")
    yield
    if transactional:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")


def _clear_cache() -> None:
    """Delete this run's cache keys only: other runs may share the Redis database."""
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    client = getattr(cache, "_cache", None)
    if not prefix or client is None or not hasattr(client, "get_client"):
        cache.clear()
        return
    redis = client.get_client(write=True)
    keys = list(redis.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        redis.delete(*keys)


@pytest.fixture(autouse=True)
def _clean_state():
    _clear_cache()
    sms.outbox.clear()
    yield
    sms.outbox.clear()


@pytest.fixture
def community(db) -> Community:
    county = make_org("县医院", "county_hospital", services=["cardiology"], hl7_facilities=["QSX"])
    ecg = make_org("心电中心", "regional_centre", county, services=["ecg"], ae_titles=["QSECG"])
    township = make_org("东山镇卫生院", "township_centre", county)
    village_a = make_org("东山村卫生室", "village_clinic", township)
    village_b = make_org("石桥村卫生室", "village_clinic", township)
    other_county = make_org("外县医院", "county_hospital")
    users = {
        "village_a": make_staff("village_a", village_a, "village_doctor", mobile="13900000001"),
        "village_b": make_staff("village_b", village_b, "village_doctor"),
        "township_doctor": make_staff("township_doctor", township, "doctor"),
        "county_doctor": make_staff("county_doctor", county, "doctor"),
        "county_admin": make_staff("county_admin", county, "org_admin", mobile="13900000009"),
        "ecg_specialist": make_staff("ecg_specialist", ecg, "specialist"),
        "other_doctor": make_staff("other_doctor", other_county, "doctor"),
        "other_admin": make_staff("other_admin", other_county, "org_admin"),
        "coordinator": make_staff("coordinator", county, "coordinator"),
    }
    return Community(county, ecg, township, village_a, village_b, other_county, users)


@pytest.fixture
def patient_factory():
    return PatientFactory
