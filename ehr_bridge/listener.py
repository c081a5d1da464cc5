"""The MLLP listener: asyncio, many connections, several messages per connection.

Per frame: ``services.inbound_receive`` runs in a worker thread (one short transaction),
the acknowledgement it returns is written, and only then is the message handed to the
worker. Frames on one connection are answered in order. A frame over
HUIZHEN_MLLP_MAX_MESSAGE_BYTES is answered AR and the connection closed; a frame whose end
block does not arrive within HUIZHEN_MLLP_FRAME_TIMEOUT seconds is answered AR and the
connection closed; a connection with no frame for HUIZHEN_MLLP_IDLE_TIMEOUT seconds is
closed. None of this affects other connections. If storing fails (database down), the
answer is AR, never AA.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from . import mllp, services

logger = logging.getLogger(__name__)


class _Server:
    def __init__(self) -> None:
        self.max_size = settings.HUIZHEN_MLLP_MAX_MESSAGE_BYTES
        self.frame_timeout = float(settings.HUIZHEN_MLLP_FRAME_TIMEOUT)
        self.idle_timeout = float(settings.HUIZHEN_MLLP_IDLE_TIMEOUT)
        self.max_connections = settings.HUIZHEN_MLLP_MAX_CONNECTIONS
        self.connections = 0
        # Each database thread keeps its own connection open between messages (opening one
        # per message would cost more than storing the message); a connection that failed is
        # closed, and the next message opens a new one.
        self.db_executor = ThreadPoolExecutor(
            max_workers=settings.HUIZHEN_MLLP_DB_THREADS, thread_name_prefix="mllp-db"
        )
        self.dispatch_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mllp-task")
        self.db_connections: list[Any] = []
        self.background: set[asyncio.Task[None]] = set()

    def _in_db_thread(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        db = connections[DEFAULT_DB_ALIAS]
        if not any(known is db for known in self.db_connections):
            db.inc_thread_sharing()  # so that close() may close it from the event loop's thread
            self.db_connections.append(db)
        try:
            return func(*args, **kwargs)
        except Exception:
            with contextlib.suppress(Exception):
                db.close()
            raise

    async def receive(self, **kwargs: Any) -> services.ReceiveResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.db_executor, lambda: self._in_db_thread(services.inbound_receive, **kwargs)
        )

    async def dispatch(self, message_id: int) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self.dispatch_executor,
            lambda: self._in_db_thread(services.inbound_dispatch, message_id),
        )

    async def close(self) -> None:
        """Let hand-offs already started finish (bounded), then stop the threads."""
        if self.background:
            await asyncio.wait(set(self.background), timeout=30)
        loop = asyncio.get_running_loop()
        for executor in (self.dispatch_executor, self.db_executor):
            await loop.run_in_executor(None, executor.shutdown, True)
        for db in self.db_connections:
            with contextlib.suppress(Exception):
                db.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else ""
        if self.connections >= self.max_connections:
            logger.warning("MLLP connection refused: too many connections", extra={"peer": peer})
            writer.close()
            return
        self.connections += 1
        try:
            await self._serve(reader, writer, peer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self.connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def _send(self, writer: asyncio.StreamWriter, payload: bytes) -> None:
        writer.write(mllp.frame(payload))
        await asyncio.wait_for(writer.drain(), self.idle_timeout)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        loop = asyncio.get_running_loop()
        parser = mllp.FrameParser(self.max_size)
        deadline: float | None = None
        while True:
            if parser.in_frame:
                deadline = deadline or loop.time() + self.frame_timeout
                timeout = max(0.0, deadline - loop.time())
            else:
                deadline, timeout = None, self.idle_timeout
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout)
            except TimeoutError:
                if parser.in_frame:
                    logger.warning(
                        "MLLP frame timed out without its end block", extra={"peer": peer}
                    )
                    await self._send(
                        writer,
                        services.nak(
                            parser.pending, code="AR", text="The frame's end block did not arrive."
                        ),
                    )
                return
            if not data:
                return
            try:
                items = parser.feed(data)
            except mllp.FrameTooLarge as exc:
                logger.warning("MLLP frame over the size limit refused", extra={"peer": peer})
                await self._send(
                    writer,
                    services.nak(
                        exc.head,
                        code="AR",
                        text=f"The message is larger than {self.max_size} bytes.",
                    ),
                )
                return
            if items:
                deadline = None
            for item in items:
                if isinstance(item, mllp.TruncatedFrame):
                    await self._send(
                        writer,
                        services.nak(item.payload, code="AR", text="The frame was cut off."),
                    )
                    continue
                await self._handle_frame(writer, item.payload, peer)

    async def _handle_frame(self, writer: asyncio.StreamWriter, payload: bytes, peer: str) -> None:
        try:
            result = await self.receive(raw=payload, peer=peer)
        except Exception:  # noqa: BLE001 - whatever failed, the message is not stored: AR
            logger.exception("HL7 message could not be stored", extra={"peer": peer})
            await self._send(
                writer,
                services.nak(payload, code="AR", text="The message could not be stored; resend."),
            )
            return
        if result.ack is not None:
            await self._send(writer, result.ack)
        if result.dispatch and result.message_id is not None:
            task = asyncio.ensure_future(self.dispatch(result.message_id))
            self.background.add(task)
            task.add_done_callback(self.background.discard)


async def serve_mllp(host: str, port: int, *, ready: asyncio.Event | None = None) -> None:
    """Serve MLLP on host:port until cancelled. Sets ``ready`` once listening."""
    server_state = _Server()
    server = await asyncio.start_server(server_state.handle, host, port, reuse_address=True)
    logger.info("MLLP listener started", extra={"host": host, "port": port})
    if ready is not None:
        ready.set()
    try:
        async with server:
            await server.serve_forever()
    finally:
        server.close()
        await server_state.close()
