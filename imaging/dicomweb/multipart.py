"""multipart/related (RFC 2387) bodies: a streaming reader for STOW-RS requests and a writer
for WADO-RS responses. Pure: no database, no storage."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

CRLF = b"\r\n"
READ_CHUNK = 1 << 20
MAX_HEADER_BYTES = 16 * 1024
MAX_PREAMBLE_BYTES = 64 * 1024


class MultipartError(ValueError):
    """The body is not the multipart message its Content-Type announced."""


@dataclass
class Part:
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""
    # The part was larger than allowed: its bytes were read and dropped.
    too_large: bool = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class _Buffer:
    def __init__(self, read: Callable[[int], bytes]) -> None:
        self.read = read
        self.data = bytearray()
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.read(READ_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.data += chunk
        return True

    def find(self, needle: bytes, limit: int) -> int:
        """Index of ``needle``, reading more as needed, within the first ``limit`` bytes."""
        start = 0
        while True:
            index = self.data.find(needle, start)
            if index >= 0:
                return index if index <= limit else -1
            if len(self.data) > limit:
                return -1
            start = max(0, len(self.data) - len(needle) + 1)
            if not self.fill():
                return -1


def iter_parts(
    read: Callable[[int], bytes], boundary: bytes, *, max_part_bytes: int
) -> Iterator[Part]:
    """Yield the parts of a multipart body read through ``read(n)``. A part larger than
    ``max_part_bytes`` is consumed without being kept and yielded with ``too_large``.
    Raises MultipartError for a body without the boundary or cut off inside a part."""
    delimiter = b"--" + boundary
    buffer = _Buffer(read)
    first = buffer.find(delimiter, MAX_PREAMBLE_BYTES)
    if first < 0:
        raise MultipartError("the body does not contain the boundary")
    del buffer.data[: first + len(delimiter)]
    body_end = CRLF + delimiter
    while True:
        while len(buffer.data) < 2 and buffer.fill():
            pass
        if buffer.data[:2] == b"--" or (not buffer.data and buffer.eof):
            return  # the close delimiter (or a body that ends right after a part)
        line_end = buffer.find(CRLF, 1024)
        if line_end < 0:
            raise MultipartError("a boundary line is not terminated")
        del buffer.data[: line_end + 2]
        headers: dict[str, str] = {}
        while len(buffer.data) < 2 and buffer.fill():
            pass
        if buffer.data[:2] == CRLF:
            del buffer.data[:2]
        else:
            header_end = buffer.find(CRLF + CRLF, MAX_HEADER_BYTES)
            if header_end < 0:
                raise MultipartError("the headers of a part are missing or too long")
            for line in bytes(buffer.data[:header_end]).split(CRLF):
                name, sep, value = line.decode("latin-1").partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            del buffer.data[: header_end + 4]
        chunks: list[bytes] = []
        size = 0
        too_large = False
        keep = len(body_end) - 1
        while True:
            index = buffer.data.find(body_end)
            if index >= 0:
                size += index
                if size > max_part_bytes:
                    too_large = True
                if not too_large:
                    chunks.append(bytes(buffer.data[:index]))
                del buffer.data[: index + len(body_end)]
                break
            if len(buffer.data) > keep:
                cut = len(buffer.data) - keep
                size += cut
                if size > max_part_bytes:
                    too_large = True
                    chunks = []
                else:
                    chunks.append(bytes(buffer.data[:cut]))
                del buffer.data[:cut]
            if not buffer.fill():
                raise MultipartError("the body ends inside a part")
        yield Part(headers=headers, content=b"".join(chunks), too_large=too_large)


def new_boundary() -> str:
    return uuid.uuid4().hex


def content_type(part_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    if transfer_syntax:
        value += f"; transfer-syntax={transfer_syntax}"
    return value


def part_head(boundary: str, headers: Iterable[tuple[str, str]], *, first: bool) -> bytes:
    lead = b"" if first else CRLF
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return lead + f"--{boundary}\r\n{lines}\r\n".encode("latin-1")


def closing(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode("latin-1")


def write_parts(
    boundary: str, parts: Iterable[tuple[list[tuple[str, str]], Iterable[bytes]]]
) -> Iterator[bytes]:
    """The body of a multipart/related response: each part is (headers, chunks)."""
    first = True
    for headers, chunks in parts:
        yield part_head(boundary, headers, first=first)
        first = False
        yield from chunks
    if first:  # an empty multipart message still needs one boundary
        yield f"--{boundary}--\r\n".encode("latin-1")
    else:
        yield closing(boundary)
