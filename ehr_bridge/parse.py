"""Full parsing of a stored message, in the worker. Pure: touches no database.

The worker parses with python-hl7, about twenty times faster than hl7apy on real ADT
messages (see docs/benchmarks.md): it splits the message by the separators MSH declares
and keeps every segment, so trailing separators, missing optional segments and Z-segments
pass as they are. hl7apy stays the tool for building and validating outbound messages
(``outbound_messages``). Each parsed segment is read through the accessor the listener uses
(``mllp.Segment``), so the mapping has one way to read fields whichever parser ran.
"""

from __future__ import annotations

from typing import Any

import hl7
from hl7.exceptions import ParseException

from . import mllp


class Parsed:
    """A message parsed by python-hl7; segments are read through ``mllp.Segment``, built
    when first asked for (the mapping reads two or three of a dozen segments)."""

    parser = "python-hl7"

    def __init__(self, header: mllp.Header, message: hl7.Message) -> None:
        self.header = header
        self.message = message
        self._segments: tuple[mllp.Segment, ...] | None = None

    def _build(self, segment: hl7.Segment) -> mllp.Segment:
        fields = tuple(str(f) for f in segment)
        return mllp.Segment(fields[0], fields, self.header.field_sep, self.header.encoding_chars)

    @property
    def segments(self) -> tuple[mllp.Segment, ...]:
        if self._segments is None:
            self._segments = tuple(self._build(s) for s in self.message if len(s) and str(s[0]))
        return self._segments

    def first(self, name: str) -> mllp.Segment | None:
        for segment in self.message:
            if len(segment) and str(segment[0]) == name:
                return self._build(segment)
        return None

    def all(self, name: str) -> list[mllp.Segment]:
        return [s for s in self.segments if s.name == name]


def parse(text: str) -> Parsed:
    """Parse stored (decoded, CR-separated) text.

    Raises ``mllp.MessageRejected`` when it is not HL7 (such a message never passes the
    listener's checks; a replayed or hand-imported one might).
    """
    header = mllp._header(text.split("\r", 1)[0])
    try:
        message = hl7.parse(text)
    except (ParseException, IndexError, ValueError) as exc:
        raise mllp.MessageRejected(
            mllp.Hl7Error("AR", mllp.ERR_SEGMENT_SEQUENCE, f"Not parseable as HL7: {exc}")
        ) from exc
    return Parsed(header, message)


def describe(text: str) -> list[dict[str, Any]]:
    """The parsed view of a message for people: each segment with its valued fields, each
    field as written (``value``) and split into repetitions of unescaped components."""
    parsed = parse(text)
    sub = parsed.header.encoding_chars[3] if len(parsed.header.encoding_chars) > 3 else "&"
    view = []
    for segment in parsed.segments:
        fields = []
        for n in range(1, len(segment.fields)):
            value = segment.raw(n)
            if not value:
                continue
            fields.append(
                {
                    "position": n,
                    "name": f"{segment.name}-{n}",
                    "value": value,
                    "repetitions": [
                        [sub.join(component) for component in repetition]
                        for repetition in segment.repetitions(n)
                    ],
                }
            )
        view.append({"segment": segment.name, "fields": fields})
    return view
