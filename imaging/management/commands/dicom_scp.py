"""Run the DICOM server (DIMSE) on its own."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from imaging.dicom import scp


class Command(BaseCommand):
    help = "Serve DICOM C-ECHO, C-STORE, C-FIND, C-GET and C-MOVE."
    # The system checks import every URL module (and with them the video and signal
    # libraries); the DICOM server needs none of them, and they cost ~150 MiB resident.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=settings.HUIZHEN_DICOM_HOST)
        parser.add_argument("--port", type=int, default=settings.HUIZHEN_DICOM_PORT)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        self.stdout.write(
            f"DICOM server {settings.HUIZHEN_DICOM_AE_TITLE} listening on {host}:{port}"
        )
        scp.start(host, port, block=True)
