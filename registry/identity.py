"""Pure validation of Chinese identity data. Touches no database.

- Resident identity card numbers (公民身份号码), GB 11643-1999: 6-digit division code,
  8-digit birth date, 3-digit sequence (odd for men, even for women), ISO 7064 MOD 11-2
  check character.
- Mainland mobile numbers: 11 digits starting with 1 and a second digit 3-9, optionally with
  a +86 / 86 / 0086 prefix, which is removed.
- ICD-10 codes as used in China's national edition (e.g. I10, E11.9, E11.900).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from django.utils.translation import gettext as _

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^\d{17}[\dX]$")
_MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
_DIVISION_RE = re.compile(r"^[1-8]\d{5}$")
_ICD10_RE = re.compile(r"^[A-Z]\d{2}(\.[0-9A-Z]{1,4})?$")


class IdentityError(ValueError):
    """A value that cannot be a valid identifier; ``code`` names the rule it broke."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ResidentId:
    number: str
    division_code: str
    birth_date: date
    sex: str  # "male" or "female"


def id_check_character(first17: str) -> str:
    total = sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def parse_resident_id(raw: str) -> ResidentId:
    """Validate an 18-character resident ID number and return what it encodes.

    Raises IdentityError with code ``format``, ``birth_date``, ``division`` or ``checksum``.
    """
    number = (raw or "").strip().upper()
    if not _ID_RE.match(number):
        raise IdentityError(
            "format", _("A resident ID number has 17 digits and a final digit or X.")
        )
    if not _DIVISION_RE.match(number[:6]):
        raise IdentityError("division", _("The first six digits are not a division code."))
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError as exc:
        raise IdentityError("birth_date", _("Digits 7-14 are not a valid birth date.")) from exc
    if born.year < 1880 or born > date.today():
        raise IdentityError("birth_date", _("Digits 7-14 are not a plausible birth date."))
    if id_check_character(number[:17]) != number[17]:
        raise IdentityError("checksum", _("The check character does not match; look for a typo."))
    sex = "male" if int(number[16]) % 2 == 1 else "female"
    return ResidentId(number=number, division_code=number[:6], birth_date=born, sex=sex)


def normalise_mobile(raw: str) -> str:
    """Return the 11-digit mainland mobile number or raise IdentityError(code="mobile")."""
    digits = re.sub(r"[\s\-()]", "", raw or "")
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            digits = digits[len(prefix) :]
            break
    if not _MOBILE_RE.match(digits):
        raise IdentityError(
            "mobile", _("A mainland mobile number has 11 digits and starts with 13-19.")
        )
    return digits


def validate_division_code(code: str) -> str:
    if not _DIVISION_RE.match(code or ""):
        raise IdentityError("division", _("An administrative division code has six digits."))
    return code


def normalise_icd10(code: str) -> str:
    value = (code or "").strip().upper()
    if not _ICD10_RE.match(value):
        raise IdentityError(
            "icd10", _("%(code)r is not an ICD-10 code such as I10 or E11.9.") % {"code": code}
        )
    return value


def mask_mobile(number: str) -> str:
    """138****5678: what may appear in logs and delivery records."""
    return f"{number[:3]}****{number[-4:]}" if len(number) == 11 else "***"


# Compound (two-character) surnames, so that 欧阳修 is 欧阳 + 修, not 欧 + 阳修.
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 钟离 端木 "
    "澹台 南宫 西门 独孤 申屠 百里 呼延 东郭 赫连 闻人 万俟 太史 司空 公羊 濮阳 淳于 单于 "
    "仲孙 拓跋 左丘 梁丘 第五 耶律 完颜".split()
)
_HAN = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+$")


def split_chinese_name(name: str) -> tuple[str | None, list[str]]:
    """Surname and given name of a Han name (a two-character surname when it is a known
    compound one). Names with a separator dot (ethnic-minority names written in Han
    characters) or other scripts are not split: (None, [])."""
    name = name.strip()
    if len(name) < 2 or not _HAN.match(name):
        return None, []
    if len(name) >= 3 and name[:2] in COMPOUND_SURNAMES:
        return name[:2], [name[2:]]
    return name[0], [name[1:]]
