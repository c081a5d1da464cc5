import os
import subprocess
import sys

from django.conf import settings


def _check(**extra: str) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "x7#Lq9-production-like-secret-key-with-enough-entropy-2026-!",
        "DATABASE_URL": "postgres://huizhen@127.0.0.1:5432/huizhen",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "DJANGO_ALLOWED_HOSTS": "huizhen.example.org",
        "HUIZHEN_MLLP_REQUIRE_KNOWN_SENDER": "true",
        **extra,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_settings_pass_the_deploy_checks():
    result = _check()
    assert result.returncode == 0, result.stderr


def test_the_project_checks_flag_an_open_dicom_port():
    result = _check(HUIZHEN_DICOM_REQUIRE_KNOWN_AE="false")
    assert result.returncode != 0
    assert "huizhen.W004" in result.stderr
