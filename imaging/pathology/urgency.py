"""Urgency classes of pathology consults, for the consult workflow to route and time them.

An intra-operative frozen section is read while the patient is on the table: the surgeon
waits for the answer before going on. It is an emergency-class consult whose report is due
within ``FROZEN_SECTION_SLA`` of the slide arriving (30 minutes is the usual target of
Chinese pathology quality control for a frozen-section diagnosis), and whose first response
(a specialist has opened it) is due within ``FROZEN_SECTION_FIRST_RESPONSE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class PathologyUrgency:
    code: str
    label: Any  # a lazy translation
    emergency: bool
    report_within: timedelta
    first_response_within: timedelta


FROZEN_SECTION_SLA = timedelta(minutes=30)
FROZEN_SECTION_FIRST_RESPONSE = timedelta(minutes=5)

FROZEN_SECTION = PathologyUrgency(
    code="frozen_section",
    label=_("Intra-operative frozen section"),
    emergency=True,
    report_within=FROZEN_SECTION_SLA,
    first_response_within=FROZEN_SECTION_FIRST_RESPONSE,
)
ROUTINE_HISTOLOGY = PathologyUrgency(
    code="routine_histology",
    label=_("Routine histology"),
    emergency=False,
    report_within=timedelta(days=3),
    first_response_within=timedelta(hours=24),
)

URGENCIES = {u.code: u for u in (FROZEN_SECTION, ROUTINE_HISTOLOGY)}
