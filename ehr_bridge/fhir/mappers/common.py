"""Shared pieces of the mappers: absolute links, names, meta."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from registry.identity import split_chinese_name

from .. import systems

HAS_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


@dataclass(frozen=True)
class Links:
    """Absolute bases for ``fullUrl``s and endpoints."""

    fhir_base: str
    dicomweb_base: str


def last_updated(value: datetime | None) -> dict[str, Any]:
    return {"meta": {"lastUpdated": value.isoformat()}} if value else {}


# --- names ----------------------------------------------------------------------------------


def representation(code: str) -> list[dict[str, Any]]:
    return [{"url": systems.EN_REPRESENTATION, "valueCode": code}]


def human_names(name: str, pinyin: str = "") -> list[dict[str, Any]]:
    """The Chinese name (ideographic), then the pinyin spelling (alphabetic) when known."""
    names: list[dict[str, Any]] = []
    if name:
        family, given = split_chinese_name(name)
        entry: dict[str, Any] = {"use": "official", "text": name}
        if family:
            entry.update(family=family, given=given)
        if HAS_HAN.search(name):
            entry["extension"] = representation("IDE")
        names.append(entry)
    if pinyin:
        family_py, _sep, given_py = pinyin.strip().partition(" ")
        entry = {"use": "official", "text": pinyin.strip(), "extension": representation("ABC")}
        if family_py and given_py:
            entry.update(family=family_py, given=[given_py])
        names.append(entry)
    return names


def extension_code(element: Any, url: str) -> str | None:
    for ext in getattr(element, "extension", None) or []:
        if ext.url == url:
            return ext.valueCode
    return None
