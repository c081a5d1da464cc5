"""Deploy checks of the EHR bridge."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def mllp_known_senders(app_configs: Any, **kwargs: Any) -> list[Warning]:
    if not getattr(settings, "HUIZHEN_MLLP_REQUIRE_KNOWN_SENDER", False):
        return [
            Warning(
                "The MLLP listener accepts HL7 messages from any sending application.",
                hint="Set HUIZHEN_MLLP_REQUIRE_KNOWN_SENDER=true and register each sender "
                "(MSH-3/MSH-4) as an HL7 partner of its organisation.",
                id="huizhen.W101",
            )
        ]
    return []
