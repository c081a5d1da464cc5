"""The live worklist socket, the pages, and the OpenAPI schema."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.test import Client

from config.asgi import application
from consult import services
from registry.access import principal_for

from .conftest import act, draft, submitted


def _cookie(user) -> str:
    browser = Client()
    browser.force_login(user)
    return browser.cookies["sessionid"].value


def _socket(cookie: str | None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://localhost")]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, "/ws/consult/worklist/", headers=headers)


@pytest.mark.django_db(transaction=True)
def test_the_worklist_socket_hears_a_new_consult_and_outsiders_hear_nothing(community, patient):
    consult = draft(community, patient)
    specialist = _cookie(community.users["ecg_specialist"])
    outsider = _cookie(community.users["other_doctor"])

    def submit() -> None:
        services.consult_submit(
            principal=principal_for(community.users["village_a"]), consult_id=consult["id"]
        )

    async def scenario():
        mine, theirs = _socket(specialist), _socket(outsider)
        assert (await mine.connect())[0] and (await theirs.connect())[0]
        await database_sync_to_async(submit)()
        message = await mine.receive_json_from(timeout=5)
        quiet = await theirs.receive_nothing(timeout=0.5)
        await mine.disconnect()
        await theirs.disconnect()
        return message, quiet

    message, quiet = async_to_sync(scenario)()
    assert message["type"] == "worklist.update"
    assert message["consult"]["id"] == consult["id"] and message["consult"]["state"] == "queued"
    assert "patient" not in message["consult"]  # no patient data over the socket
    assert quiet is True


@pytest.mark.django_db(transaction=True)
def test_an_anonymous_worklist_socket_is_refused():
    async def connect():
        socket = _socket(None)
        result = await socket.connect()
        await socket.disconnect()
        return result

    assert async_to_sync(connect)() == (False, 4401)


def _page(community, username, url):
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(community.users[username])
    return client.get(url)


def test_the_pages_render_in_chinese(community, patient):
    consult = submitted(community, patient)
    act(community, "ecg_specialist", consult["id"], "accept")
    act(community, "ecg_specialist", consult["id"], "start")
    for username, url, expected in (
        ("village_a", "/consult/", consult["id"]),
        ("village_a", "/consult/new/", "consult.js"),
        ("ecg_specialist", "/consult/worklist/", consult["id"]),
        ("ecg_specialist", f"/consult/{consult['id']}/", 'id="report"'),
        ("village_a", "/consult/critical/", "危急值"),
        ("coordinator", "/consult/statistics/", "consult-statistics"),
    ):
        response = _page(community, username, url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert 'lang="zh-hans"' in html
        assert expected in html or expected.replace("consult-statistics", "CSV") in html, url
    assert _page(community, "other_doctor", f"/consult/{consult['id']}/").status_code == 404
    assert Client().get("/consult/").status_code == 302


def test_the_api_is_in_the_openapi_schema(community):
    schema = community.client("village_a").get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    for path in (
        "/api/v1/consult/consults/",
        "/api/v1/consult/consults/{consult_id}/submit/",
        "/api/v1/consult/consults/{consult_id}/attachments/{attachment_id}/upload/",
        "/api/v1/consult/critical-values/{alert_id}/acknowledge/",
        "/api/v1/consult/statistics.csv",
        "/api/v1/consult/worklist/",
    ):
        assert path in paths, path
