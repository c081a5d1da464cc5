"""ADT segments → patient index input (``registry.feeds``). Pure: touches no database.

Where Chinese HIS put things:
- PID-3 repeats: MR (medical record number), PI (patient ID), INS (insurance number) become
  identifiers within their assigning authority (CX.4, else the partner's authority); type
  ID (or NNCHN) carries the 18-character resident ID number.
- The resident ID number also turns up in PID-19 (SSN in the standard) or PID-20.
- PID-5 XPN: family name and given name, written together without a space when either
  holds Chinese characters (王 + 小明 → 王小明); the legal name (XPN.7 = L) if several.
- PID-7 birth date (YYYY[MM[DD]]...), PID-8 sex M/F/U/O (A, N → unknown).
- PID-11 XAD: province, city, street, other designation; XAD.9 a six-digit county code.
- PID-13 XTN: the first repetition holding a mainland mobile number (XTN.1, .12 or .7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from registry.feeds import CLEAR, FeedIdentifier, FeedPatient

from .mllp import Segment

IDENTIFIER_KINDS = {"MR": "MR", "PI": "PI", "INS": "INS", "PT": "PI", "PN": "PI"}
ID_NUMBER_TYPES = {"ID", "NNCHN", "CN", "RI"}
SEX = {"M": "male", "F": "female", "U": "unknown", "O": "unknown", "A": "unknown", "N": "unknown"}
NULL = '""'
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_ID_NUMBER = re.compile(r"^\d{17}[\dXx]$")


class MappingError(ValueError):
    """The message cannot be turned into patient data (missing or malformed fields)."""


@dataclass(frozen=True)
class Merge:
    survivor: FeedPatient
    prior: tuple[FeedIdentifier, ...]


def _identifiers(
    seg: Segment, field_no: int, authority: str
) -> tuple[list[FeedIdentifier], str | None]:
    idents: list[FeedIdentifier] = []
    id_number = None
    for rep in seg.repetitions(field_no):
        comps = [c[0].strip() if c else "" for c in rep] + [""] * 6
        value, assigner, type_code = comps[0], comps[3], comps[4].upper()
        if not value or value == NULL:
            continue
        if type_code in ID_NUMBER_TYPES or (not type_code and _ID_NUMBER.match(value)):
            id_number = id_number or value.upper()
            continue
        kind = IDENTIFIER_KINDS.get(type_code, "OTHER" if type_code else "PI")
        idents.append(
            FeedIdentifier(authority=(assigner or authority)[:64], kind=kind, value=value[:64])
        )
    return idents, id_number


def _name(seg: Segment) -> str | None:
    reps = seg.repetitions(5)
    if not reps:
        return None
    chosen = next((r for r in reps if len(r) > 6 and r[6][0].strip().upper() == "L"), reps[0])
    family = chosen[0][0].strip() if chosen and chosen[0] else ""
    given = chosen[1][0].strip() if len(chosen) > 1 and chosen[1] else ""
    if NULL in (family, given):
        family, given = family.replace(NULL, ""), given.replace(NULL, "")
    if _CJK.search(family + given):
        return (family + given).replace(" ", "") or None
    return " ".join(p for p in (family, given) if p) or None


def _date(value: str) -> date | None:
    digits = value.strip()[:8]
    if not digits or digits == NULL:
        return None
    if not re.fullmatch(r"\d{8}", digits):
        raise MappingError(f"PID-7 birth date {value!r} is not YYYYMMDD.")
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError as exc:
        raise MappingError(f"PID-7 birth date {value!r} is not a date.") from exc


def _mobile(seg: Segment) -> object:
    if seg.raw(13).strip() == NULL:
        return CLEAR
    for rep in seg.repetitions(13):
        comps = [c[0].strip() if c else "" for c in rep] + [""] * 12
        for candidate in (comps[0], comps[11], comps[6]):
            digits = re.sub(r"[\s\-()+]", "", candidate)
            if re.fullmatch(r"(?:86|0086)?1[3-9]\d{9}", digits):
                return candidate
    return None


def _address(seg: Segment) -> tuple[object, str | None]:
    if seg.raw(11).strip() == NULL:
        return CLEAR, None
    reps = seg.repetitions(11)
    if not reps:
        return None, None
    comps = [c[0].strip() if c else "" for c in reps[0]] + [""] * 10
    street, other, city, province, county = comps[0], comps[1], comps[2], comps[3], comps[8]
    text = "".join(p for p in (province, city, street, other) if p)
    division = county if re.fullmatch(r"[1-8]\d{5}", county) else None
    return (text or None), division


def feed_patient(pid: Segment, *, authority: str) -> FeedPatient:
    """Patient data from a PID segment; ``authority`` for identifiers without CX.4."""
    idents, id_number = _identifiers(pid, 3, authority)
    if not idents and not id_number:
        more, id_number = _identifiers(pid, 2, authority)
        idents.extend(more)
    for field_no in (19, 20):
        value = pid.component(field_no)
        if not id_number and _ID_NUMBER.match(value):
            id_number = value.upper()
    address, division = _address(pid)
    sex_code = pid.component(8).upper()
    return FeedPatient(
        identifiers=tuple(dict.fromkeys(idents)),
        id_number=id_number,
        name=_name(pid),
        sex=SEX.get(sex_code) if sex_code else None,
        birth_date=_date(pid.component(7)),
        mobile=_mobile(pid),
        address=address,
        address_division_code=division,
    )


def merge(pid: Segment, mrg: Segment, *, authority: str) -> Merge:
    prior, _id_number = _identifiers(mrg, 1, authority)
    if not prior:
        raise MappingError("MRG-1 (prior patient identifier list) is empty.")
    return Merge(survivor=feed_patient(pid, authority=authority), prior=tuple(prior))
