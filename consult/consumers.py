"""Channels consumers of consults: the live worklist and the live consult room.

The live worklist: a signed-in specialist or coordinator joins the group of each centre
they work for (a coordinator's group also hears the centres below) and their own group; every
consult transition pushes a small message and the page re-fetches its lists.

The room (``LiveRoomConsumer``) relays WebRTC signalling between the participants of one live
session; the rules live in ``live`` (who is admitted) and ``signalling`` (the protocol)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.core.cache import cache

from registry.access import CLINICAL_ROLES
from registry.models import Membership

from . import live, signalling, turn
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


# --- the live consult room ---------------------------------------------------------------------

logger = logging.getLogger(__name__)

# Close codes of the room socket (4xxx: application codes a page can act on).
CLOSE_ANONYMOUS = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_ENDED = 4410
CLOSE_THROTTLED = 4429
CLOSE_TOO_LARGE = 1009


@database_sync_to_async
def _user_for_token(raw: str) -> tuple[Any, str] | None:
    """Validate a knox token from ``?token=`` (browsers cannot set headers on a socket)."""
    from knox.auth import TokenAuthentication
    from rest_framework.exceptions import AuthenticationFailed

    try:
        user, auth_token = TokenAuthentication().authenticate_credentials(raw.encode())
    except AuthenticationFailed:
        return None
    return user, auth_token.token_key


def _presence_key(session_id: str, participant_id: str) -> str:
    return f"live:{session_id}:{participant_id}"


@database_sync_to_async
def _room_state(
    admitted: live.Admitted,
) -> tuple[list[dict[str, Any]], dict[str, signalling.PeerState]]:
    roster = live.roster(admitted.session_id)
    keys = {_presence_key(admitted.session_id, r["id"]): r["id"] for r in roster}
    stored = cache.get_many(list(keys))
    states = {
        keys[k]: signalling.PeerState(
            participant=keys[k],
            online=bool(v.get("online")),
            last_seq=int(v.get("seq", -1)),
            seen=float(v.get("seen", 0)),
        )
        for k, v in stored.items()
    }
    return roster, states


def _write_presence(admitted: live.Admitted, *, online: bool, seq: int) -> None:
    cache.set(
        _presence_key(admitted.session_id, admitted.participant_id),
        {"online": online, "seq": seq, "seen": time.time()},
        timeout=24 * 3600,
    )


_store_presence = database_sync_to_async(_write_presence)


@database_sync_to_async
def _recheck(admitted: live.Admitted, *, seq: int) -> bool:
    """The periodic re-check and the presence heartbeat in one trip to a worker thread."""
    _write_presence(admitted, online=True, seq=seq)
    return live.live_still_admitted(admitted)


class LiveRoomConsumer(AsyncJsonWebsocketConsumer):
    """Signalling for one live session at ``/ws/consult/<session-id>/``.

    Authenticates by session cookie, ``?token=<knox token>`` or ``?p=<participant token>``
    (the patient's link). Close codes: 4401 anonymous, 4403 not a participant (or removed,
    disabled, signed out: re-checked every ``HUIZHEN_LIVE_RECHECK_SECONDS``), 4410 session
    ended, 4429 flooding, 1009 frame over 64 KiB. Frames are parsed by ``signalling.parse``;
    directed frames go to the named participant's group, the rest to the room's.
    """

    admitted: live.Admitted | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        """As Channels' own, without the per-message ``aclose_old_connections`` thread hop:
        relaying touches no database, and every database call here goes through
        ``database_sync_to_async``, which does that housekeeping itself."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        session_id = self.scope["url_route"]["kwargs"]["session_id"]
        query = parse_qs(self.scope.get("query_string", b"").decode())
        user = self.scope.get("user")
        session_key, token_key, ptoken = "", "", (query.get("p") or [""])[0]
        if ptoken:
            user = None
        elif query.get("token"):
            found = await _user_for_token(query["token"][0])
            user, token_key = found if found else (None, "")
        elif getattr(user, "is_authenticated", False):
            session = self.scope.get("session")
            session_key = getattr(session, "session_key", "") or ""
        else:
            user = None
        await self.accept()
        if user is None and not ptoken:
            await self.close(code=CLOSE_ANONYMOUS)
            return
        admitted = await database_sync_to_async(live.live_admit)(
            session_id=session_id,
            user=user,
            participant_token_value=ptoken,
            session_key=session_key,
            token_key=token_key,
        )
        if admitted is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.admitted = admitted
        self.room = live.session_group(admitted.session_id)
        self.own = live.participant_group(admitted.participant_id)
        self.bucket = signalling.TokenBucket(
            rate=float(getattr(settings, "HUIZHEN_LIVE_RATE", 30)),
            burst=float(getattr(settings, "HUIZHEN_LIVE_BURST", 90)),
        )
        self.max_bytes = int(getattr(settings, "HUIZHEN_LIVE_MAX_FRAME_BYTES", 64 * 1024))
        roster, states = await _room_state(admitted)
        self.members = {r["id"] for r in roster}
        previous = states.get(admitted.participant_id)
        resumed = previous is not None and (
            previous.online or time.time() - previous.seen < signalling.RESUME_SECONDS
        )
        self.guard = signalling.SequenceGuard(last=previous.last_seq if resumed else -1)
        for group in (self.room, self.own):
            await self.channel_layer.group_add(group, self.channel_name)
        await _store_presence(admitted, online=True, seq=self.guard.last)
        roster, states = await _room_state(admitted)
        ice = turn.ice_servers_for(admitted.participant_id)
        await self.send_json(
            signalling.snapshot(
                me=admitted.participant_id,
                roster=roster,
                states=states,
                resumed=resumed,
                ice_servers=ice,
            )
        )
        await self._broadcast({"type": "presence", "state": "online", "resumed": resumed})
        self.recheck = asyncio.create_task(self._recheck_loop())

    async def _recheck_loop(self) -> None:
        interval = float(getattr(settings, "HUIZHEN_LIVE_RECHECK_SECONDS", 30))
        assert self.admitted is not None
        # The first check comes at a random point of the interval, so that the sockets of a
        # process (many connect together after a restart) do not all check at once; every
        # socket is still checked at least once per interval.
        delay = interval * random.uniform(0.1, 1.0)
        while True:
            await asyncio.sleep(delay)
            delay = interval
            try:
                ok = await _recheck(self.admitted, seq=self.guard.last)
            except Exception:  # noqa: BLE001 - a database hiccup is not a revocation
                logger.warning("live re-check failed", exc_info=True)
                continue
            if not ok:
                await self.send_json({"type": "revoked"})
                await self.close(code=CLOSE_FORBIDDEN)
                return

    async def disconnect(self, code: int) -> None:
        if self.admitted is None:
            return
        task = getattr(self, "recheck", None)
        if task is not None:
            task.cancel()
        for group in (self.room, self.own):
            await self.channel_layer.group_discard(group, self.channel_name)
        await _store_presence(self.admitted, online=False, seq=self.guard.last)
        await self._broadcast({"type": "presence", "state": "away"})

    async def _broadcast(self, frame: dict[str, Any]) -> None:
        assert self.admitted is not None
        await self.channel_layer.group_send(
            self.room,
            {"type": "room.relay", "frame": {**frame, "from": self.admitted.participant_id}},
        )

    async def _error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        if self.admitted is None:
            return
        text = message.get("text")
        if text is None and message.get("bytes") is not None:
            if len(message["bytes"]) > self.max_bytes:
                await self.close(code=CLOSE_TOO_LARGE)
                return
        if not self.bucket.take():
            await self._error("throttled", "too many messages")
            await self.close(code=CLOSE_THROTTLED)
            return
        try:
            frame = signalling.parse(text, max_bytes=self.max_bytes)
        except signalling.FrameTooLarge:
            await self.close(code=CLOSE_TOO_LARGE)
            return
        except signalling.ProtocolError as exc:
            await self._error(exc.code, exc.message)
            return
        if frame.type == "ping":
            await self.send_json({"type": "pong", "seq": frame.seq})
            return
        if not self.guard.accept(frame.seq):
            await self._error("stale_seq", f"seq must be above {self.guard.last}")
            return
        await self.HANDLERS[frame.type](self, frame)

    async def _directed(self, frame: signalling.Frame) -> None:
        assert self.admitted is not None and frame.to is not None
        if frame.to not in self.members:
            self.members = {r["id"] for r in (await _room_state(self.admitted))[0]}
            if frame.to not in self.members:
                await self._error("not_member", "no such participant in this room")
                return
        await self.channel_layer.group_send(
            live.participant_group(frame.to),
            {
                "type": "room.relay",
                "frame": {
                    "type": frame.type,
                    "from": self.admitted.participant_id,
                    "seq": frame.seq,
                    "payload": frame.payload,
                },
            },
        )

    async def _chat(self, frame: signalling.Frame) -> None:
        assert self.admitted is not None
        row = await database_sync_to_async(live.live_chat_post)(
            admitted=self.admitted, body=frame.payload["text"], client_seq=frame.seq
        )
        await self._broadcast(
            {
                "type": "chat",
                "seq": frame.seq,
                "payload": {
                    "id": str(row.external_id),
                    "text": row.body,
                    "name": row.author_label,
                    "at": row.created_at.isoformat(),
                },
            }
        )

    async def _plain(self, frame: signalling.Frame) -> None:
        await self._broadcast({"type": frame.type, "seq": frame.seq, "payload": frame.payload})

    async def _call_failed(self, frame: signalling.Frame) -> None:
        assert self.admitted is not None
        reason = str(frame.payload.get("reason", ""))[:200]
        await database_sync_to_async(live.live_call_failed)(admitted=self.admitted, reason=reason)

    HANDLERS = {
        "offer": _directed,
        "answer": _directed,
        "ice": _directed,
        "restart": _directed,
        "chat": _chat,
        "hangup": _plain,
        "media": _plain,
        "call_failed": _call_failed,
    }

    # --- channel-layer events ---

    async def room_relay(self, event: dict[str, Any]) -> None:
        frame = event["frame"]
        if self.admitted is None:
            return
        if frame.get("from") == self.admitted.participant_id and frame["type"] != "chat":
            return
        await self.send(text_data=json.dumps(frame))

    async def room_revoke(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "revoked"})
        await self.close(code=CLOSE_FORBIDDEN)

    async def room_ended(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "ended"})
        await self.close(code=CLOSE_ENDED)

    async def room_fallback(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "store_and_forward"})

    async def room_roster(self, event: dict[str, Any]) -> None:
        if self.admitted is None:
            return
        roster, _states = await _room_state(self.admitted)
        self.members = {r["id"] for r in roster}
        await self.send_json({"type": "roster", "participants": roster})
