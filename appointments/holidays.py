"""Which days a schedule works: China's statutory holidays and adjusted working days (调休).

The packaged table comes from ``chinese_calendar`` (PyPI ``chinesecalendar``), which covers the
years the State Council has announced; ``HolidayOverride`` rows, edited by admins, win over it
(a late announcement, a local holiday, a correction). Outside the packaged years a day is a
working day from Monday to Friday unless an override says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import chinese_calendar

from .models import HolidayOverride


@dataclass(frozen=True)
class DayKind:
    """``statutory_holiday``: closed by law; ``adjusted_workday``: a weekend day worked in
    exchange (调休); ``works_as``: the weekday whose sessions an adjusted day follows, if known."""

    day: date
    statutory_holiday: bool = False
    adjusted_workday: bool = False
    name: str = ""
    works_as: int | None = None


def packaged_day_kind(day: date) -> DayKind:
    """What the packaged table says about ``day`` (pure, no database)."""
    try:
        is_holiday, name = chinese_calendar.get_holiday_detail(day)
        workday = chinese_calendar.is_workday(day)
    except NotImplementedError:  # a year the package does not cover
        return DayKind(day=day)
    weekend = day.weekday() >= 5
    if is_holiday and name:
        return DayKind(day=day, statutory_holiday=True, name=str(name))
    if workday and weekend:
        return DayKind(day=day, adjusted_workday=True, name=str(name or ""))
    return DayKind(day=day)


def day_kinds(first: date, last: date) -> dict[date, DayKind]:
    """Only the days in ``[first, last]`` that differ from an ordinary week, overrides applied."""
    result: dict[date, DayKind] = {}
    day = first
    one = date.resolution
    while day <= last:
        kind = packaged_day_kind(day)
        if kind.statutory_holiday or kind.adjusted_workday:
            result[day] = kind
        day += one
    for override in HolidayOverride.objects.filter(date__gte=first, date__lte=last):
        weekend = override.date.weekday() >= 5
        if not override.is_workday:
            result[override.date] = DayKind(
                day=override.date, statutory_holiday=True, name=override.name
            )
        elif weekend or override.works_as_weekday is not None:
            result[override.date] = DayKind(
                day=override.date,
                adjusted_workday=True,
                name=override.name,
                works_as=override.works_as_weekday,
            )
        else:
            result.pop(override.date, None)  # an ordinary working day after all
    return result


def effective_weekday(day: date, kind: DayKind | None, *, adjusted_as: int) -> int | None:
    """The weekday whose sessions run on ``day`` for a schedule that observes the calendar,
    or None when it is closed."""
    if kind is None:
        return day.weekday()
    if kind.statutory_holiday:
        return None
    if kind.adjusted_workday:
        if kind.works_as is not None:
            return kind.works_as
        return adjusted_as if day.weekday() >= 5 else day.weekday()
    return day.weekday()
