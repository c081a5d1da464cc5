"""Run the HL7 v2 MLLP listener in its own process."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from ehr_bridge.listener import serve_mllp


class Command(BaseCommand):
    help = "Listen for HL7 v2 messages over MLLP (store, acknowledge, then process)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=settings.HUIZHEN_MLLP_HOST)
        parser.add_argument("--port", type=int, default=settings.HUIZHEN_MLLP_PORT)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        self.stdout.write(f"MLLP listener on {host}:{port}")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_mllp(host, port))
