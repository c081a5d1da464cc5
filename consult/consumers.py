"""The live worklist: a signed-in specialist or coordinator joins the group of each centre
they work for (a coordinator's group also hears the centres below) and their own group; every
consult transition pushes a small message and the page re-fetches its lists."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from registry.access import CLINICAL_ROLES
from registry.models import Membership

from .push import centre_group, user_group


@database_sync_to_async
def _groups_for(user: Any) -> list[str] | None:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    profile = getattr(user, "staff", None)
    if profile is None:
        return None
    orgs = Membership.objects.filter(
        user=user, is_active=True, organisation__is_active=True, role__in=CLINICAL_ROLES
    ).values_list("organisation__external_id", flat=True)
    return [user_group(str(profile.external_id)), *(centre_group(str(o)) for o in orgs)]


class WorklistConsumer(AsyncJsonWebsocketConsumer):
    """Anonymous, disabled or organisation-less users are refused (close 4401)."""

    groups_joined: list[str] = []

    async def connect(self) -> None:
        groups = await _groups_for(self.scope.get("user"))
        if not groups:
            await self.close(code=4401)
            return
        self.groups_joined = groups
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def worklist_update(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "worklist.update", "consult": event["consult"]})
