"""Attribute matching shared by C-FIND and QIDO-RS (PS3.4 C.2.2.2 and PS3.18 8.3.4).

``study_filter``/``series_filter``/``instance_filter`` turn {keyword: value} into ORM
filters on the index: single value, UID list, wildcard (``*`` and ``?``), and date and time
ranges (``A-B``, ``-B``, ``A-``). Unknown keywords are ignored for matching (they may still
be returned). Pure apart from building Q objects; the caller scopes the queryset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db.models import Q

from .dicom.parse import UID_RE


class BadQuery(ValueError):
    pass


# keyword -> (field on Study/Series/Instance relative to the level's model, kind)
STUDY_FIELDS = {
    "StudyInstanceUID": ("study_instance_uid", "uid"),
    "PatientID": ("dicom_patient_id", "text"),
    "IssuerOfPatientID": ("issuer_of_patient_id", "text"),
    "PatientName": ("dicom_patient_name", "pn"),
    "PatientBirthDate": ("patient_birth_date", "date"),
    "PatientSex": ("patient_sex", "text"),
    "StudyDate": ("study_date", "date"),
    "StudyTime": ("study_time", "time"),
    "AccessionNumber": ("accession_number", "text"),
    "StudyID": ("study_id", "text"),
    "ReferringPhysicianName": ("referring_physician_name", "pn"),
    "StudyDescription": ("study_description", "text"),
    "ModalitiesInStudy": ("modalities", "modalities"),
}
SERIES_FIELDS = {
    "SeriesInstanceUID": ("series_instance_uid", "uid"),
    "Modality": ("modality", "text"),
    "SeriesNumber": ("series_number", "int"),
    "SeriesDescription": ("series_description", "text"),
    "BodyPartExamined": ("body_part_examined", "text"),
    "SeriesDate": ("series_date", "date"),
}
INSTANCE_FIELDS = {
    "SOPInstanceUID": ("sop_instance_uid", "uid"),
    "SOPClassUID": ("sop_class_uid", "uid"),
    "InstanceNumber": ("instance_number", "int"),
}
# The same keywords seen from a lower level's model.
PREFIX = {"study": "", "series": "study__", "instance": "series__study__"}
SERIES_PREFIX = {"series": "", "instance": "series__"}


def _wildcard(field: str, value: str, *, fuzzy: bool) -> Q:
    if "*" in value or "?" in value:
        pattern = (
            "^"
            + "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
            + "$"
        )
        return Q(**{f"{field}__iregex" if fuzzy else f"{field}__regex": pattern})
    if fuzzy:
        return Q(**{f"{field}__iexact": value})
    return Q(**{field: value})


def _range(field: str, value: str) -> Q:
    if "-" not in value:
        return Q(**{field: value})
    start, _, end = value.partition("-")
    q = Q()
    if start:
        q &= Q(**{f"{field}__gte": start})
    if end:
        q &= Q(**{f"{field}__lte": end + ("\uffff" if len(end) < 8 else "")})
    q &= ~Q(**{field: ""})
    return q


def _uids(value: str) -> list[str]:
    uids = [u.strip() for u in re.split(r"[\\,]", value) if u.strip()]
    for uid in uids:
        if not UID_RE.match(uid) or len(uid) > 64:
            raise BadQuery(f"not a UID: {uid[:70]}")
    return uids


def match(field: str, kind: str, value: str, *, fuzzy: bool = False) -> Q:
    value = value.strip()
    if value in ("", "*"):
        return Q()
    if kind == "uid":
        return Q(**{f"{field}__in": _uids(value)})
    if kind == "int":
        try:
            return Q(**{field: int(value)})
        except ValueError as exc:
            raise BadQuery(f"not a number: {value[:20]}") from exc
    if kind in ("date", "time"):
        return _range(field, value.replace(".", "").replace(":", ""))
    if kind == "modalities":
        q = Q()
        for modality in re.split(r"[\\,]", value):
            q |= Q(**{f"{field}__icontains": f'"{modality.strip().upper()}"'})
        return q
    if kind == "pn":
        # PN matching is case-insensitive; fuzzy matching also finds a component prefix.
        q = _wildcard(field, value, fuzzy=True)
        if fuzzy and "*" not in value:
            q |= Q(**{f"{field}__icontains": value})
        return q
    return _wildcard(field, value, fuzzy=False)


def filters(level: str, criteria: Iterable[tuple[str, str]], *, fuzzy: bool = False) -> Q:
    """Q for the model of ``level`` ("study", "series" or "instance")."""
    q = Q()
    for keyword, value in criteria:
        if keyword in STUDY_FIELDS:
            field, kind = STUDY_FIELDS[keyword]
            q &= match(PREFIX[level] + field, kind, value, fuzzy=fuzzy)
        elif keyword in SERIES_FIELDS and level in SERIES_PREFIX:
            field, kind = SERIES_FIELDS[keyword]
            q &= match(SERIES_PREFIX[level] + field, kind, value, fuzzy=fuzzy)
        elif keyword in INSTANCE_FIELDS and level == "instance":
            field, kind = INSTANCE_FIELDS[keyword]
            q &= match(field, kind, value, fuzzy=fuzzy)
    return q
