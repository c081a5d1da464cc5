"""Run Huizhen in one process: the web server with WebSockets (ASGI, uvicorn), and beside it
the DICOM server and the HL7 MLLP listener (each can be switched off)."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string

from registry.demo.data import demo_logins
from registry.models import Membership

# Protocol servers, imported by path: the registry does not depend on the apps above it.
DICOM_START = "imaging.dicom.scp.start"
MLLP_SERVE = "ehr_bridge.listener.serve_mllp"


class Command(BaseCommand):
    help = "Serve the web application and WebSockets, and the DICOM and MLLP servers."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=settings.HUIZHEN_HTTP_HOST)
        parser.add_argument("--port", type=int, default=settings.HUIZHEN_HTTP_PORT)
        parser.add_argument("--no-dicom", action="store_true", help="do not serve DIMSE")
        parser.add_argument("--no-mllp", action="store_true", help="do not serve HL7 MLLP")

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        dicom = settings.HUIZHEN_SERVE_DICOM and not options["no_dicom"]
        mllp = settings.HUIZHEN_SERVE_MLLP and not options["no_mllp"]
        base = f"http://{host}:{port}"
        self.stdout.write(f"Huizhen is starting on {base}")
        self.stdout.write(f"  API docs      {base}/api/docs/")
        self.stdout.write(f"  DICOMweb      {base}/dicomweb/")
        self.stdout.write(f"  Health        {base}/healthz   {base}/readyz")
        self.stdout.write(f"  Admin         {base}/admin/")
        self.stdout.write(f"  WebSocket     ws://{host}:{port}/ws/notifications/")
        if dicom:
            self.stdout.write(
                f"  DICOM         {settings.HUIZHEN_DICOM_AE_TITLE} on "
                f"{settings.HUIZHEN_DICOM_HOST}:{settings.HUIZHEN_DICOM_PORT}"
            )
        if mllp:
            self.stdout.write(
                f"  HL7 MLLP      {settings.HUIZHEN_MLLP_HOST}:{settings.HUIZHEN_MLLP_PORT}"
            )
        self._print_demo_logins()
        dicom_server = None
        if dicom:
            dicom_server = import_string(DICOM_START)(
                settings.HUIZHEN_DICOM_HOST, settings.HUIZHEN_DICOM_PORT, block=False
            )
        try:
            asyncio.run(self._serve(host, port, mllp=mllp))
        finally:
            if dicom_server is not None:
                dicom_server.shutdown()

    def _print_demo_logins(self) -> None:
        logins = demo_logins()
        if not settings.HUIZHEN_SHOW_DEMO_LOGINS or not (
            get_user_model().objects.filter(username=logins[-1].username).exists()
        ):
            return
        self.stdout.write(
            "Demo logins (password huizhen-demo unless HUIZHEN_DEMO_PASSWORD is set):"
        )
        memberships = {
            m.user.username: m
            for m in Membership.objects.select_related("user", "organisation").filter(
                user__username__in=[login.username for login in logins]
            )
        }
        for login in logins:
            membership = memberships.get(login.username)
            where = membership.organisation.name if membership else login.organisation
            role = membership.get_role_display() if membership else login.role
            self.stdout.write(f"  {login.username:<22} {role}, {where}")

    async def _serve(self, host: str, port: int, *, mllp: bool) -> None:
        config = uvicorn.Config(
            "config.asgi:application",
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            proxy_headers=True,
            forwarded_allow_ips=settings.HUIZHEN_TRUSTED_PROXIES,
        )
        web = uvicorn.Server(config)
        tasks = [asyncio.create_task(web.serve())]
        if mllp:
            serve_mllp = import_string(MLLP_SERVE)
            tasks.append(
                asyncio.create_task(
                    serve_mllp(settings.HUIZHEN_MLLP_HOST, settings.HUIZHEN_MLLP_PORT)
                )
            )
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()
