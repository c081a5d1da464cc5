"""Per-request context (request ID, client address) for logs and the audit trail.

Set by the HTTP middleware and the WebSocket consumers; read by ``audit.record`` and the
log filter, so that services need not pass a request object around.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    client_address: str | None = None


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "huizhen_request_context",
    default=RequestContext(),  # noqa: B039 - frozen, so immutable
)


def current() -> RequestContext:
    return _current.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def bound(ctx: RequestContext) -> Iterator[RequestContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
