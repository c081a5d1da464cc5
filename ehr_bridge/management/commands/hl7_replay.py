"""Replay parked (or failed, or not yet supported) inbound HL7 messages."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ehr_bridge import services
from registry import audit
from registry.errors import DomainError


class Command(BaseCommand):
    help = "Put inbound HL7 messages (by id or external ID) back in the processing queue."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("message", nargs="+", help="message id or external ID")

    def handle(self, *args: Any, message: list[str], **options: Any) -> None:
        actor = audit.Actor.system("hl7_replay")
        failed = False
        for key in message:
            try:
                message_id = services.inbound_replay(message_id=key, actor=actor)
            except DomainError as exc:
                self.stderr.write(f"{key}: {exc.message}")
                failed = True
            else:
                self.stdout.write(f"{key}: queued (message {message_id})")
        if failed:
            raise CommandError("Some messages were not replayed.")
