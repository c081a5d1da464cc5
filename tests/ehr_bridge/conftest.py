from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.db import connections
from django.utils import translation

from ehr_bridge.listener import serve_mllp
from ehr_bridge.models import Hl7Partner


@pytest.fixture(autouse=True)
def _english(settings):
    """Park reasons and alerts are written in the site's language (zh-Hans by default), on
    whichever thread applies the message; the tests read the English text."""
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


VT, FS, CR = b"\x0b", b"\x1c", b"\r"


def adt(
    control_id: str,
    *,
    trigger: str = "A04",
    charset: str = "UNICODE UTF-8",
    family: str = "王",
    given: str = "小明",
    mrn: str = "MRN001",
    id_number: str = "",
    birth: str = "19560314",
    sex: str = "M",
    mobile: str = "13800138000",
    address: str = "人民路1号^^青山县^湖南省^^CHN^H^^431226",
    version: str = "2.5",
    sender: tuple[str, str] = ("DEMO_HIS", "COUNTY_HOSP"),
    extra: str = "",
    accept_ack: str = "",
    app_ack: str = "",
) -> str:
    """An ADT message as a HIS sends it (text; encode it in ``charset``'s codec)."""
    ident = f"{mrn}^^^COUNTY_HOSP^MR"
    if id_number:
        ident += f"~{id_number}^^^^ID"
    structure = "ADT_A39" if trigger == "A40" else "ADT_A01"
    msh = (
        f"MSH|^~\\&|{sender[0]}|{sender[1]}|HUIZHEN|HUIZHEN|20240301083000||ADT^{trigger}^"
        f"{structure}|{control_id}|P|{version}|||{accept_ack}|{app_ack}|CHN|{charset}"
    )
    segments = [
        msh,
        f"EVN|{trigger}|20240301083000",
        f"PID|1||{ident}||{family}^{given}^^^^^L||{birth}|{sex}|||{address}"
        f"||{mobile}^PRN^CP|||||||||||",
        "PV1|1|O",
    ]
    if extra:
        segments.append(extra)
    return "\r".join(segments) + "\r"


def frame(payload: bytes) -> bytes:
    return VT + payload + FS + CR


def read_frame(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """One MLLP frame's payload; b"" when the peer closed first."""
    sock.settimeout(timeout)
    buffer = b""
    while True:
        end = buffer.find(FS + CR)
        if buffer.startswith(VT) and end > 0:
            return buffer[1:end]
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        buffer += chunk


def msa(ack: bytes, codec: str = "utf-8") -> list[str]:
    for segment in ack.decode(codec).split("\r"):
        if segment.startswith("MSA|"):
            return segment.split("|")
    raise AssertionError(f"no MSA in {ack!r}")


def err(ack: bytes, codec: str = "utf-8") -> str:
    return next((s for s in ack.decode(codec).split("\r") if s.startswith("ERR|")), "")


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@dataclass
class Listener:
    host: str
    port: int

    def connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def send(self, payload: bytes, sock: socket.socket | None = None) -> bytes:
        own = sock is None
        sock = sock or self.connect()
        try:
            sock.sendall(frame(payload))
            return read_frame(sock)
        finally:
            if own:
                sock.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def start_listener(transactional_db, settings) -> Iterator[Callable[..., Listener]]:
    """Start the real listener (its own thread and event loop) on a free port.

    Database connections of the listener's threads close after each use, so that nothing
    holds the test database open afterwards.
    """
    started: list[tuple[asyncio.AbstractEventLoop, asyncio.Task[None], threading.Thread]] = []
    saved = connections.settings["default"].get("CONN_MAX_AGE", 0)
    connections.settings["default"]["CONN_MAX_AGE"] = 0

    def start(**overrides: object) -> Listener:
        for name, value in overrides.items():
            setattr(settings, name, value)
        port = _free_port()
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        holder: dict[str, asyncio.Task[None]] = {}

        async def main() -> None:
            event = asyncio.Event()
            task = asyncio.ensure_future(serve_mllp("127.0.0.1", port, ready=event))
            holder["task"] = task
            await event.wait()
            ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        assert ready.wait(10), "listener did not start"
        started.append((loop, holder["task"], thread))
        return Listener("127.0.0.1", port)

    yield start
    for loop, task, thread in started:
        loop.call_soon_threadsafe(task.cancel)
        thread.join(10)
    connections.settings["default"]["CONN_MAX_AGE"] = saved


@pytest.fixture
def partner(community) -> Hl7Partner:
    return Hl7Partner.objects.create(
        name="County HIS",
        organisation=community.county,
        sending_application="DEMO_HIS",
        sending_facility="COUNTY_HOSP",
        assigning_authority="COUNTY_HOSP",
    )


class Receiver:
    """A tiny asyncio MLLP receiver, as a hospital system runs one: answers AA, or AE for
    the first ``fail_first`` messages, or never answers (``silent``). Records what came."""

    def __init__(self, *, fail_first: int = 0, silent: bool = False) -> None:
        self.fail_first, self.silent = fail_first, silent
        self.received: list[bytes] = []
        self.connections = 0
        self.port = _free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    @property
    def control_ids(self) -> list[str]:
        return [raw.split(b"\r", 1)[0].decode("latin-1").split("|")[9] for raw in self.received]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                await reader.readuntil(VT)
                payload = (await reader.readuntil(FS + CR))[:-2]
                self.received.append(payload)
                if self.silent:
                    continue
                msh = payload.split(b"\r", 1)[0].decode("latin-1").split("|")
                code = "AE" if len(self.received) <= self.fail_first else "AA"
                err = "\rERR||||E|||||Try again later" if code == "AE" else ""
                ack = (
                    f"MSH|^~\\&|{msh[4]}|{msh[5]}|{msh[2]}|{msh[3]}|20240301||ACK|A{msh[9]}|P|"
                    f"{msh[11]}\rMSA|{code}|{msh[9]}{err}\r"
                )
                writer.write(VT + ack.encode("latin-1") + FS + CR)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            self._ready.set()
            async with self._server:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._server.serve_forever()

        self._loop.run_until_complete(main())

    def start(self) -> Receiver:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        def cancel_all() -> None:
            for task in asyncio.all_tasks():
                task.cancel()

        if self._loop.is_running():
            self._loop.call_soon_threadsafe(cancel_all)
        self._thread.join(10)


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(**kwargs: object) -> Receiver:
        rcv = Receiver(**kwargs).start()  # type: ignore[arg-type]
        started.append(rcv)
        return rcv

    yield start
    for rcv in started:
        rcv.stop()
