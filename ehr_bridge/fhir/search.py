"""Parsing of FHIR search parameters (R4, RESTful search). Pure: touches no database.

Supported: string (default match: contains, as the REST API; ``:exact`` and ``:contains``),
token (``system|code``, ``|code``, ``system|``, ``code``), date (prefixes eq, ne, gt, lt, ge,
le at year, month or day precision; a time part is cut to its date), reference
(``Type/id``, ``id`` or an absolute URL ending in ``Type/id``). A comma inside one value
means OR; a repeated parameter means AND. Paging with ``_count`` and ``_offset``.

By default an unknown parameter, modifier or malformed value is refused (400) so that a
client never mistakes an ignored criterion for a match; ``Prefer: handling=lenient`` makes
unknown parameters ignored instead, as the FHIR specification allows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.utils.translation import gettext as _

DEFAULT_COUNT = 20
MAX_COUNT = 100
MAX_OFFSET = 10_000
# Parameters that are not criteria: paging and the response format.
CONTROL_PARAMS = frozenset({"_count", "_offset", "_format"})
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})

STRING_MODIFIERS = frozenset({"exact", "contains"})
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le")
_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?$")


class SearchError(ValueError):
    """A search the server refuses (HTTP 400); ``param`` names the parameter."""

    def __init__(self, message: str, *, param: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class ParamSpec:
    """One search parameter a resource supports (also listed in the CapabilityStatement)."""

    name: str
    type: str  # string | token | date | reference
    documentation: str


@dataclass(frozen=True)
class Token:
    """``system`` None: any system; "" : no system. ``code`` None: any code in the system."""

    system: str | None
    code: str | None


@dataclass(frozen=True)
class DateRange:
    """A date criterion: ``prefix`` applied to the day range [start, end)."""

    prefix: str
    start: date
    end: date


@dataclass(frozen=True)
class Criterion:
    """One occurrence of a parameter: its modifier and its OR-ed values (parsed by type)."""

    name: str
    modifier: str
    values: tuple[object, ...]


@dataclass
class SearchQuery:
    criteria: list[Criterion] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    # The parameters used, in the order given, for the self link (values as received).
    used: list[tuple[str, str]] = field(default_factory=list)

    def names(self) -> list[str]:
        """Criterion names only, never values: what the audit trail records."""
        return sorted({c.name for c in self.criteria})

    def all(self, name: str) -> list[Criterion]:
        return [c for c in self.criteria if c.name == name]


def parse_query(
    query: Mapping[str, Sequence[str]], specs: Sequence[ParamSpec], *, lenient: bool = False
) -> SearchQuery:
    """Parse a query string (a mapping of each name to its list of values)."""
    known = {spec.name: spec for spec in specs}
    result = SearchQuery()
    for raw_name, values in query.items():
        name, _sep, modifier = raw_name.partition(":")
        if name in CONTROL_PARAMS:
            if modifier:
                raise SearchError(_("%(p)s takes no modifier.") % {"p": name}, param=raw_name)
            _control(result, name, values)
            continue
        spec = known.get(name)
        if spec is None:
            if lenient:
                continue
            raise SearchError(
                _("Unknown search parameter %(p)s. Supported: %(known)s.")
                % {"p": raw_name, "known": ", ".join(sorted(known) + sorted(CONTROL_PARAMS))},
                param=raw_name,
            )
        if modifier and not (spec.type == "string" and modifier in STRING_MODIFIERS):
            raise SearchError(
                _("Modifier :%(m)s is not supported on %(p)s.") % {"m": modifier, "p": name},
                param=raw_name,
            )
        for value in values:
            parts = [part.strip() for part in _split_or(value)]
            if not any(parts):
                raise SearchError(_("%(p)s needs a value.") % {"p": raw_name}, param=raw_name)
            parsed = tuple(_parse_value(spec, raw_name, part) for part in parts if part)
            result.criteria.append(Criterion(name=name, modifier=modifier, values=parsed))
            result.used.append((raw_name, value))
    return result


def _split_or(value: str) -> list[str]:
    r"""Split on commas not escaped with a backslash; ``\,`` is a literal comma."""
    parts = re.split(r"(?<!\\),", value)
    return [part.replace("\\,", ",") for part in parts]


def _control(result: SearchQuery, name: str, values: Sequence[str]) -> None:
    value = values[-1].strip() if values else ""
    if name == "_format":
        if value not in JSON_FORMATS:
            raise SearchError(_("Only JSON is served (_format=json)."), param=name)
        return
    limit = MAX_COUNT if name == "_count" else MAX_OFFSET
    if not value.isdigit() or int(value) > limit:
        raise SearchError(
            _("%(p)s must be a whole number from 0 to %(max)s.") % {"p": name, "max": limit},
            param=name,
        )
    if name == "_count":
        result.count = int(value)
    else:
        result.offset = int(value)
    result.used.append((name, value))


def _parse_value(spec: ParamSpec, raw_name: str, value: str) -> object:
    if spec.type == "token":
        return parse_token(value)
    if spec.type == "date":
        return parse_date(value, param=raw_name)
    if spec.type == "reference":
        return value.rstrip("/").rsplit("/", 1)[-1]
    return value


def parse_token(value: str) -> Token:
    if "|" not in value:
        return Token(system=None, code=value)
    system, _sep, code = value.partition("|")
    return Token(system=system, code=code or None)


def parse_date(value: str, *, param: str = "") -> DateRange:
    prefix = "eq"
    if value[:2] in DATE_PREFIXES:
        prefix, value = value[:2], value[2:]
    match = _DATE_RE.match(value)
    if not match:
        raise SearchError(
            _(
                "%(p)s takes a date such as 1956, 1956-03 or 1956-03-14, optionally after a "
                "prefix (eq, ne, gt, lt, ge, le)."
            )
            % {"p": param},
            param=param,
        )
    year, month, day = (int(g) if g else None for g in match.groups())
    try:
        if month is None:
            start, end = date(year, 1, 1), date(year + 1, 1, 1)
        elif day is None:
            start = date(year, month, 1)
            end = date(year + (month == 12), month % 12 + 1, 1)
        else:
            start = date(year, month, day)
            end = start + timedelta(days=1)
    except (ValueError, OverflowError) as exc:
        raise SearchError(_("%(p)s: no such date.") % {"p": param}, param=param) from exc
    return DateRange(prefix=prefix, start=start, end=end)
