"""iCalendar (RFC 5545) for one booking, built with the ``icalendar`` package. Pure: takes
plain values, touches no database. Times are written in UTC, so no VTIMEZONE is needed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from icalendar import Calendar, Event


@dataclass(frozen=True)
class VisitInfo:
    uid: str
    summary: str
    location: str
    description: str
    starts_at: datetime
    ends_at: datetime
    stamp: datetime
    cancelled: bool = False
    sequence: int = 0


def render(visit: VisitInfo, *, product: str = "-//Huizhen//Appointments//ZH") -> bytes:
    calendar = Calendar()
    calendar.add("prodid", product)
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if visit.cancelled else "PUBLISH")
    event = Event()
    event.add("uid", visit.uid)
    event.add("dtstamp", visit.stamp)
    event.add("dtstart", visit.starts_at.astimezone(UTC))
    event.add("dtend", visit.ends_at.astimezone(UTC))
    event.add("summary", visit.summary)
    event.add("location", visit.location)
    event.add("description", visit.description)
    event.add("sequence", visit.sequence)
    event.add("status", "CANCELLED" if visit.cancelled else "CONFIRMED")
    calendar.add_component(event)
    return calendar.to_ical()
