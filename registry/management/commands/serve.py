"""Run Huizhen in one process: the web server with WebSockets (ASGI, uvicorn)."""

from __future__ import annotations

from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand

from registry.demo.data import demo_logins


class Command(BaseCommand):
    help = "Serve the web application and WebSockets (and the protocol servers when enabled)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=settings.HUIZHEN_HTTP_HOST)
        parser.add_argument("--port", type=int, default=settings.HUIZHEN_HTTP_PORT)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        base = f"http://{host}:{port}"
        self.stdout.write(f"Huizhen is starting on {base}")
        self.stdout.write(f"  API docs      {base}/api/docs/")
        self.stdout.write(f"  Health        {base}/healthz   {base}/readyz")
        self.stdout.write(f"  Admin         {base}/admin/")
        self.stdout.write(f"  WebSocket     ws://{host}:{port}/ws/notifications/")
        self.stdout.write(
            "Demo logins (password huizhen-demo unless HUIZHEN_DEMO_PASSWORD is set):"
        )
        for login in demo_logins():
            self.stdout.write(f"  {login.username:<22} {login.role:<15} {login.organisation}")
        config = uvicorn.Config(
            "config.asgi:application",
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            proxy_headers=True,
            forwarded_allow_ips=settings.HUIZHEN_TRUSTED_PROXIES,
        )
        uvicorn.Server(config).run()
