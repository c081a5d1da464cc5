import logging
import time
from datetime import date

import pytest
from asgiref.sync import async_to_sync
from channels.testing.websocket import WebsocketCommunicator
from django.test import Client

from config.asgi import application
from tests.factories import resident_id


def test_an_idle_session_ends(community, settings, monkeypatch):
    settings.HUIZHEN_SESSION_IDLE_SECONDS = 60
    client = Client()
    client.force_login(community.users["village_a"])
    assert client.get("/").status_code == 200
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    assert client.get("/").status_code == 302


def test_activity_does_not_extend_the_absolute_limit(community, settings, monkeypatch):
    settings.HUIZHEN_SESSION_IDLE_SECONDS = 3600
    settings.SESSION_COOKIE_AGE = 7200
    client = Client()
    client.force_login(community.users["village_a"])
    start = time.time()
    for minutes in (0, 50, 100):  # active all the time
        monkeypatch.setattr(time, "time", lambda m=minutes: start + m * 60)
        assert client.get("/").status_code == 200
    monkeypatch.setattr(time, "time", lambda: start + 7201)
    assert client.get("/").status_code == 302


@pytest.mark.django_db(transaction=True)
def test_an_anonymous_websocket_is_refused():
    async def connect():
        socket = WebsocketCommunicator(
            application, "/ws/notifications/", headers=[(b"origin", b"http://localhost")]
        )
        connected, code = await socket.connect()
        await socket.disconnect()
        return connected, code

    assert async_to_sync(connect)() == (False, 4401)


@pytest.mark.django_db(transaction=True)
def test_a_websocket_from_a_foreign_origin_is_refused(community):
    client = Client()
    client.force_login(community.users["village_a"])
    cookie = client.cookies["sessionid"].value

    async def connect():
        socket = WebsocketCommunicator(
            application,
            "/ws/notifications/",
            headers=[
                (b"cookie", f"sessionid={cookie}".encode()),
                (b"origin", b"https://evil.example"),
            ],
        )
        connected, _ = await socket.connect()
        await socket.disconnect()
        return connected

    assert async_to_sync(connect)() is False


def test_logs_carry_no_names_or_id_numbers(community, caplog):
    caplog.set_level(logging.DEBUG)
    client = Client()
    id_number = resident_id(date(1961, 4, 2), male=True)
    client.post("/api/v1/auth/token/", {"username": "village_a", "password": "wrong"})
    api = community.client("village_a")
    api.post(
        "/api/v1/patients/",
        {"name": "欧阳修远", "id_number": id_number, "mobile": "13912340000"},
        format="json",
    )
    api.get("/api/v1/patients/", {"id_number": id_number})
    community.client("village_b").get("/api/v1/patients/", {"name": "欧阳修远"})
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "欧阳修远" not in text
    assert id_number not in text
    assert "13912340000" not in text
    assert "wrong" not in text
