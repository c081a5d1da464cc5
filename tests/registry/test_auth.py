import pytest
from django.test import override_settings
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from knox.models import AuthToken
from rest_framework.test import APIClient

from registry import services
from registry.access import principal_for
from registry.auth import LoginRateThrottle
from registry.models import AuditEvent

TOKEN_URL = "/api/v1/auth/token/"


def _token(username, password, **extra):
    return APIClient().post(
        TOKEN_URL, {"username": username, "password": password, **extra}, format="json"
    )


def _bearer(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_token_from_username_and_password_works_and_logout_revokes_it(community):
    response = _token("village_a", "pw-village_a")
    assert response.status_code == 200
    token = response.json()["token"]
    client = _bearer(token)
    me = client.get("/api/v1/me/").json()
    assert me["acting_role"] == "village_doctor"
    assert me["acting_organisation"]["id"] == str(community.village_a.external_id)
    assert client.post("/api/v1/auth/logout/").status_code == 204
    assert client.get("/api/v1/me/").status_code == 401


def test_a_wrong_password_gets_a_clear_error_and_is_audited(community):
    response = _token("village_a", "nope")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_credentials"
    assert AuditEvent.objects.filter(
        action="auth.sign_in", outcome="denied", actor_username="village_a"
    ).exists()


def test_an_account_is_locked_after_five_failures_even_with_the_right_password(community):
    for _ in range(4):
        assert _token("village_a", "nope").status_code == 400
    fifth = _token("village_a", "nope")
    assert fifth.status_code == 429
    assert "15" in fifth.json()["detail"]  # says when to try again
    locked = _token("village_a", "pw-village_a")
    assert locked.status_code == 429
    assert locked.json()["code"] == "locked_out"
    # Another account from the same address is not affected.
    assert _token("village_b", "pw-village_b").status_code == 200


def test_sign_in_attempts_are_throttled_per_address(community, monkeypatch):
    monkeypatch.setattr(LoginRateThrottle, "THROTTLE_RATES", {"login": "3/min"})
    codes = [_token(f"nobody{i}", "x").status_code for i in range(4)]
    assert codes == [400, 400, 400, 429]
    assert "Retry-After" in _token("village_a", "pw-village_a")


def test_disabling_an_account_kills_its_tokens_and_sessions_at_once(community):
    token = _token("village_a", "pw-village_a").json()["token"]
    session = APIClient()
    session.force_login(community.users["village_a"])
    assert session.get("/api/v1/me/").status_code == 200
    services.user_disable(
        actor=principal_for(community.users["county_admin"]).actor,
        user=community.users["village_a"],
    )
    assert _bearer(token).get("/api/v1/me/").status_code == 401
    assert session.get("/api/v1/me/").status_code in (401, 403)
    assert not AuthToken.objects.filter(user=community.users["village_a"]).exists()


@override_settings(HUIZHEN_REQUIRE_2FA=True)
def test_specialists_need_a_totp_code_when_two_factor_is_required(community):
    user = community.users["ecg_specialist"]
    no_device = _token("ecg_specialist", "pw-ecg_specialist")
    assert no_device.status_code == 403
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    missing = _token("ecg_specialist", "pw-ecg_specialist")
    assert missing.status_code == 401
    assert missing.json()["code"] == "otp_required"
    code = f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"
    assert _token("ecg_specialist", "pw-ecg_specialist", otp=code).status_code == 200
    # Village doctors are not asked for a second factor.
    assert _token("village_a", "pw-village_a").status_code == 200


@pytest.mark.parametrize("header", ["Bearer nonsense", "Token abc", "Bearer "])
def test_bad_tokens_get_401(community, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get("/api/v1/me/").status_code == 401
