"""SMS gateway adapters. Pick one with ``HUIZHEN_SMS_BACKEND``: file, console, memory, http."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from django.conf import settings

from .identity import mask_mobile

logger = logging.getLogger(__name__)


class SmsError(Exception):
    """The gateway refused or could not be reached; ``retryable`` says whether to try again."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class SmsMessage:
    mobile: str
    text: str
    reference: str  # our idempotency key, passed to gateways that de-duplicate


def send(message: SmsMessage) -> str:
    """Send through the configured backend; returns the provider's reference."""
    backend = settings.HUIZHEN_SMS_BACKEND
    if backend == "file":
        return _send_file(message)
    if backend == "console":
        logger.info("sms (console backend)", extra={"to": mask_mobile(message.mobile)})
        return f"console-{message.reference}"
    if backend == "memory":
        return _send_memory(message)
    if backend == "http":
        return _send_http(message)
    raise SmsError(f"unknown SMS backend {backend!r}", retryable=False)


_file_lock = threading.Lock()


def _send_file(message: SmsMessage) -> str:
    path = Path(settings.HUIZHEN_SMS_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {
            "at": datetime.now(UTC).isoformat(),
            "to": message.mobile,
            "text": message.text,
            "reference": message.reference,
        },
        ensure_ascii=False,
    )
    with _file_lock, path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    return f"file-{message.reference}"


outbox: list[SmsMessage] = []  # the memory backend, for tests


def _send_memory(message: SmsMessage) -> str:
    outbox.append(message)
    return f"memory-{uuid.uuid4().hex[:12]}"


def _send_http(message: SmsMessage) -> str:
    """POST ``{"to", "text", "reference"}`` as JSON; expects 2xx and optionally ``{"id"}``."""
    url = settings.HUIZHEN_SMS_HTTP_URL
    if not url:
        raise SmsError("HUIZHEN_SMS_HTTP_URL is not set", retryable=False)
    headers = {"Idempotency-Key": message.reference}
    if settings.HUIZHEN_SMS_HTTP_TOKEN:
        headers["Authorization"] = f"Bearer {settings.HUIZHEN_SMS_HTTP_TOKEN}"
    try:
        response = httpx.post(
            url,
            json={"to": message.mobile, "text": message.text, "reference": message.reference},
            headers=headers,
            timeout=settings.HUIZHEN_SMS_HTTP_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise SmsError(f"gateway unreachable: {type(exc).__name__}", retryable=True) from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise SmsError(f"gateway answered {response.status_code}", retryable=True)
    if response.status_code >= 400:
        raise SmsError(f"gateway refused with {response.status_code}", retryable=False)
    try:
        return str(response.json().get("id") or message.reference)
    except ValueError:
        return message.reference
