"""Full parsing of a stored message, in the worker. Pure: touches no database.

hl7apy parses the message at its tolerant validation level (trailing separators, missing
optional segments and Z-segments pass), without group finding (much faster, and the
mapping reads segments by name). Each parsed segment is re-read through the same accessor
the listener uses (``mllp.Segment``), so the mapping has one way to read fields. When
hl7apy refuses a message that passed the listener's checks (it is stricter about some
real-world deviations), the listener's own split is used instead and ``parser`` says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from . import mllp

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parsed:
    header: mllp.Header
    segments: tuple[mllp.Segment, ...]
    parser: str  # "hl7apy" or "fallback"

    def first(self, name: str) -> mllp.Segment | None:
        return next((s for s in self.segments if s.name == name), None)


def parse(text: str) -> Parsed:
    """Parse stored (decoded, CR-separated) text. Raises MessageRejected if it is not HL7."""
    header = mllp._header(text.split("\r", 1)[0])
    own = mllp.split_segments(text, header)
    try:
        message = parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)
        segments = tuple(
            mllp.split_segments(child.to_er7(), header)[0] for child in message.children
        )
    except (HL7apyException, ValueError, IndexError, KeyError, AttributeError) as exc:
        logger.info("hl7apy could not parse a message; using the plain split", exc_info=exc)
        return Parsed(header, own, "fallback")
    if [s.name for s in segments] != [s.name for s in own]:
        # hl7apy dropped or reordered something: trust the plain split, which keeps all.
        return Parsed(header, own, "fallback")
    return Parsed(header, segments, "hl7apy")
