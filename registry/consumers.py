"""WebSocket endpoint that delivers notifications to a signed-in staff member."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .notifications import user_group


@database_sync_to_async
def _staff_external_id(user: Any) -> str | None:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    profile = getattr(user, "staff", None)
    return str(profile.external_id) if profile else None


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    """Joins the user's own group; anonymous or disabled users are refused (close 4401)."""

    group: str | None = None

    async def connect(self) -> None:
        external_id = await _staff_external_id(self.scope.get("user"))
        if external_id is None:
            await self.close(code=4401)
            return
        self.group = user_group(external_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def notification_push(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "notification", "notification": event["notification"]})
