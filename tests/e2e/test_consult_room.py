"""Browser: two headless Chromium pages meet in the consult room (fake camera and microphone),
signalling over the room socket of a real server process, until both report ICE connected and
decoded video frames; one page then passes the pre-call echo test against the aiortc peer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx
import pytest
from django.conf import settings as django_settings
from django.db import connection

from consult import live
from registry.access import principal_for
from tests.consult.conftest import act, submitted, with_consent
from tests.e2e.conftest import sign_in
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Server:
    url: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url() -> str:
    name = connection.settings_dict["NAME"]
    if "DATABASE_URL" in os.environ:
        return os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name
    return f"postgres://postgres@127.0.0.1:5432/{name}"


SERVER_APP_NAME = "huizhen-e2e-room-server"


@pytest.fixture
def server(transactional_db):
    """``manage.py serve`` (uvicorn, HTTP and WebSockets) on the test database: pytest-django's
    live server speaks WSGI only."""
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "HUIZHEN_TEST_CELERY_EAGER": "true",
        "PGAPPNAME": SERVER_APP_NAME,  # so that only the server's sessions are ended below
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--no-dicom", "--no-mllp", "--port", str(port)],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None:
                    raise RuntimeError(process.stderr.read().decode()[-2000:]) from None
                time.sleep(0.1)
        yield Server(url)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                [SERVER_APP_NAME],
            )


def _open_session(community) -> str:
    patient = PatientFactory(home_organisation=community.village_a)
    with_consent(patient, community.users["village_a"], community.village_a)
    consult = submitted(community, patient)
    assert act(community, "ecg_specialist", consult["id"], "accept").status_code == 200
    session = live.live_session_open(
        principal=principal_for(community.users["village_a"]), consult_id=consult["id"]
    )
    return str(session.external_id)


def _page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 800}, locale="zh-CN")
    return context, context.new_page()


def _connected(page) -> bool:
    report = page.evaluate("() => window.huizhenRoom ? window.huizhenRoom.report() : []")
    return bool(report) and all(
        r["ice"] in ("connected", "completed") and r["framesDecoded"] > 0 for r in report
    )


def test_two_browsers_meet_in_the_room_and_the_precall_test_passes(browser, server, community):
    sid = _open_session(community)
    (ctx_a, a), (ctx_b, b) = _page(browser), _page(browser)
    try:
        sign_in(a, server, "village_a", "pw-village_a")
        sign_in(b, server, "ecg_specialist", "pw-ecg_specialist")
        a.goto(f"{server.url}/consult/room/{sid}/")
        a.wait_for_function("() => window.huizhenRoom && window.huizhenRoom.me()")
        b.goto(f"{server.url}/consult/room/{sid}/")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (_connected(a) and _connected(b)):
            time.sleep(0.5)
        report_a = a.evaluate("() => window.huizhenRoom.report()")
        report_b = b.evaluate("() => window.huizhenRoom.report()")
        assert _connected(a) and _connected(b), (report_a, report_b)
        assert len(report_a) == 1 and len(report_b) == 1

        b.fill("#chat-form input[name=text]", "请看V1-V4")
        b.click("#chat-form button[type=submit]")
        a.wait_for_selector("#chat-log >> text=请看V1-V4", timeout=5000)

        result = a.evaluate("() => window.huizhenRoom.runPrecall()")
        assert result["verdict"] == "video_ok", result
        assert result["framesDecoded"] > 0 and result["relayed"] is False
        assert a.locator("#precall-result").is_visible()
    finally:
        ctx_a.close()
        ctx_b.close()
    from consult.models import ConsultMessage

    assert ConsultMessage.objects.filter(body="请看V1-V4").exists()
