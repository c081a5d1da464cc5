"""Orders, results and appointments in HL7 v2 → plain data. Pure: touches no database.

- ORM^O01 / OMG^O19: one ``OrderData`` per ORC (its OBR, NTEs follow it). ORC-1 order
  control (NW new, CA cancel, XO change), ORC-2/OBR-2 placer order number, ORC-3/OBR-3
  filler order number, OBR-4 universal service ID, OBR-5 or ORC-7.6 (TQ priority) urgency,
  OBR-13 relevant clinical information, NTE-3 comments and OBR-31 reason for study make the
  clinical question, ORC-12/OBR-16 ordering provider (XCN: ID, family, given).
- ORU^R01: one ``LabObservation`` per OBX, with its OBR's order numbers and panel.
- SIU^S12-S15: SCH-1/SCH-2 placer/filler appointment IDs, SCH-11.4 (or AIS/AIL/AIP-6)
  start, SCH-7 reason, AIP-3, AIL-3 and AIS-3 resource codes for the partner's schedule map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from django.utils.translation import gettext as _

from .mllp import Segment

# HL7 priority (OBR-5, TQ.6; table 0027) → consult urgency.
PRIORITY_URGENCY = {
    "S": "emergency",  # stat
    "A": "urgent",  # as soon as possible
    "T": "urgent",  # timing critical
    "P": "urgent",  # pre-operative
    "R": "routine",
    "C": "routine",  # callback
}

# Default universal service IDs (OBR-4) → consult type, for codes a partner did not map.
# Exact codes first (LOINC and common HIS codes), then words in the code or the text.
DEFAULT_SERVICE_CODES = {
    "11524-6": "ecg_read",  # EKG study
    "34534-8": "ecg_read",  # 12 lead EKG panel
    "93000": "ecg_read",
    "ECG": "ecg_read",
    "EKG": "ecg_read",
    "CT": "imaging_read",
    "MR": "imaging_read",
    "MRI": "imaging_read",
    "DR": "imaging_read",
    "DX": "imaging_read",
    "CR": "imaging_read",
    "US": "imaging_read",
    "XR": "imaging_read",
    "PATH": "pathology_read",
    "LAB": "lab_review",
}
DEFAULT_SERVICE_WORDS = (
    (re.compile(r"心电|ECG|EKG|electrocardio", re.I), "ecg_read"),
    (re.compile(r"病理|切片|活检|patholog|biops|histolog|cytolog", re.I), "pathology_read"),
    (
        re.compile(r"影像|放射|超声|彩超|CT|MRI|磁共振|X线|DR|胸片|radiolog|ultrasound|imaging"),
        "imaging_read",
    ),
    (re.compile(r"检验|化验|lab", re.I), "lab_review"),
)


class InboundMappingError(ValueError):
    """A field the message must carry is missing or unreadable: park with this reason."""


def hl7_datetime(value: str, *, tz: str = "Asia/Shanghai") -> datetime | None:
    """An HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]) as an aware datetime; local time
    of ``tz`` when no offset is given. Empty → None; unreadable → InboundMappingError."""
    text = value.strip()
    if not text or text == '""':
        return None
    match = re.fullmatch(r"(\d{4,14})(?:\.\d{1,4})?([+-]\d{4})?", text)
    if not match or len(match.group(1)) % 2:
        raise InboundMappingError(_("%(value)r is not an HL7 date/time.") % {"value": value})
    digits = match.group(1).ljust(14, "0")
    if len(match.group(1)) < 8:
        digits = match.group(1) + "0101000000"[len(match.group(1)) - 4 :]
    try:
        naive = datetime(
            int(digits[:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            int(digits[12:14]),
        )
    except ValueError as exc:
        raise InboundMappingError(
            _("%(value)r is not an HL7 date/time.") % {"value": value}
        ) from exc
    offset = match.group(2)
    if offset:
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        return naive.replace(tzinfo=timezone(sign * delta)).astimezone(UTC)
    return naive.replace(tzinfo=ZoneInfo(tz))


def _xcn(seg: Segment | None, field_no: int) -> tuple[str, str]:
    """(ID, name) of the first person in an XCN field."""
    if seg is None:
        return "", ""
    ident = seg.component(field_no, 1)
    family, given = seg.component(field_no, 2), seg.component(field_no, 3)
    if re.search(r"[\u3400-\u9fff]", family + given):
        name = family + given
    else:
        name = " ".join(p for p in (family, given) if p)
    return ident, name


# --- orders -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderData:
    control: str  # ORC-1
    placer_order_number: str
    filler_order_number: str
    service_code: str
    service_text: str
    coding_system: str
    urgency: str
    clinical_question: str
    reason: str
    provider_id: str
    provider_name: str
    ordered_at: datetime | None


def _groups(segments: tuple[Segment, ...], head: str) -> list[list[Segment]]:
    """The segments after each ``head`` segment up to the next one (the head first)."""
    groups: list[list[Segment]] = []
    for seg in segments:
        if seg.name == head:
            groups.append([seg])
        elif groups:
            groups[-1].append(seg)
    return groups


def orders(segments: tuple[Segment, ...], *, tz: str) -> list[OrderData]:
    """Every order (ORC group) of an ORM^O01 / OMG^O19 message."""
    result = []
    for group in _groups(segments, "ORC"):
        orc = group[0]
        obr = next((s for s in group if s.name == "OBR"), None)
        control = orc.component(1).upper()
        placer = orc.component(2) or (obr.component(2) if obr else "")
        if not placer:
            raise InboundMappingError(_("ORC-2/OBR-2 (placer order number) is empty."))
        if len(placer) > 64:
            raise InboundMappingError(
                _("ORC-2 (placer order number) is longer than 64 characters.")
            )
        filler = orc.component(3) or (obr.component(3) if obr else "")
        code = obr.component(4, 1) if obr else ""
        text = (obr.component(4, 2) or obr.component(4, 5)) if obr else ""
        system = obr.component(4, 3) if obr else ""
        if control == "NW" and not (code or text):
            raise InboundMappingError(_("OBR-4 (universal service ID) is empty."))
        priority = (obr.component(5) if obr else "") or orc.component(7, 6)
        if not priority and obr is not None:
            priority = obr.component(27, 6)
        urgency = PRIORITY_URGENCY.get(priority[:1].upper(), "routine")
        notes = []
        if obr is not None:
            notes.append(obr.component(13))
        notes += [
            "\n".join(rep[0][0] for rep in s.repetitions(3) if rep and rep[0][0].strip())
            for s in group
            if s.name == "NTE"
        ]
        reason = ""
        if obr is not None:
            reason = obr.component(31, 2) or obr.component(31, 1)
        question = "\n".join(n.strip() for n in notes if n and n.strip())
        provider_id, provider_name = _xcn(orc, 12)
        if not provider_id and obr is not None:
            provider_id, provider_name = _xcn(obr, 16)
        result.append(
            OrderData(
                control=control,
                placer_order_number=placer,
                filler_order_number=filler[:64],
                service_code=code[:64],
                service_text=text[:200],
                coding_system=system[:32],
                urgency=urgency,
                clinical_question=question[:4000],
                reason=reason[:500],
                provider_id=provider_id[:64],
                provider_name=provider_name[:200],
                ordered_at=hl7_datetime(orc.component(9), tz=tz),
            )
        )
    if not result:
        raise InboundMappingError(_("The message holds no ORC segment."))
    return result


def consult_type_for(order: OrderData, partner_map: dict[str, str]) -> str | None:
    """The consult type of an order: the partner's map (by code, then text), the default
    codes, then words in the code or text. None when nothing fits."""
    for key in (order.service_code, order.service_text):
        if key and key in partner_map:
            return partner_map[key]
    upper = order.service_code.upper()
    if upper in DEFAULT_SERVICE_CODES:
        return DEFAULT_SERVICE_CODES[upper]
    for pattern, consult_type in DEFAULT_SERVICE_WORDS:
        if pattern.search(order.service_code) or pattern.search(order.service_text):
            return consult_type
    return None


# --- lab results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabObservation:
    placer_order_number: str
    filler_order_number: str
    order_code: str
    order_text: str
    code: str
    coding_system: str
    text: str
    sub_id: str
    value_type: str
    value: str
    units: str
    reference_range: str
    abnormal_flag: str
    status: str
    observed_at: datetime | None

    @property
    def order_key(self) -> str:
        return self.filler_order_number or self.placer_order_number


RESULT_STATUSES = {"F": "F", "C": "C", "P": "P", "R": "P", "I": "P", "S": "P", "A": "C"}


def lab_observations(segments: tuple[Segment, ...], *, tz: str) -> list[LabObservation]:
    """Every OBX of an ORU^R01 with its OBR. OBX-11 F final, C corrected, P/R/I/S
    preliminary (A, amended, reads as corrected); D (delete) and X (cannot obtain) and other
    statuses are refused."""
    result = []
    for group in _groups(segments, "OBR"):
        obr = group[0]
        placer, filler = obr.component(2), obr.component(3)
        order_time = hl7_datetime(obr.component(7), tz=tz)
        for obx in (s for s in group if s.name == "OBX"):
            code = obx.component(3, 1) or obx.component(3, 2)
            if not code:
                raise InboundMappingError(_("OBX-3 (observation identifier) is empty."))
            raw_status = obx.component(11).upper() or "F"
            status = RESULT_STATUSES.get(raw_status)
            if status is None:
                raise InboundMappingError(
                    f"OBX-11 result status {raw_status!r} is not supported (F, C, P)."
                )
            comp_sep = obx.encoding_chars[0]
            values = [
                comp_sep.join(c[0] for c in rep).strip(comp_sep + " ") for rep in obx.repetitions(5)
            ]
            result.append(
                LabObservation(
                    placer_order_number=placer[:64],
                    filler_order_number=filler[:64],
                    order_code=obr.component(4, 1)[:64],
                    order_text=obr.component(4, 2)[:200],
                    code=code[:64],
                    coding_system=obx.component(3, 3)[:32],
                    text=obx.component(3, 2)[:200],
                    sub_id=obx.component(4)[:20],
                    value_type=obx.component(2)[:3],
                    value="~".join(v for v in values if v)[:4000],
                    units=(obx.component(6, 1) or obx.component(6, 2))[:64],
                    reference_range=obx.component(7)[:64],
                    abnormal_flag=obx.component(8)[:8],
                    status=status,
                    observed_at=hl7_datetime(obx.component(14), tz=tz) or order_time,
                )
            )
    if not result:
        raise InboundMappingError(_("The message holds no OBX under an OBR."))
    if any(not (o.order_key) for o in result):
        raise InboundMappingError(_("OBR-2/OBR-3 (order number) is empty."))
    return result


# --- appointments -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppointmentRequest:
    filler_id: str  # SCH-2, else SCH-1
    placer_id: str
    start: datetime | None
    reason: str
    resource_codes: tuple[str, ...]  # AIP-3, AIL-3, AIS-3 first components, in that order
    service_code: str  # AIS-3.1


def appointment(segments: tuple[Segment, ...], *, tz: str) -> AppointmentRequest:
    sch = next((s for s in segments if s.name == "SCH"), None)
    if sch is None:
        raise InboundMappingError(_("SCH segment missing."))
    placer = sch.component(1)
    filler = sch.component(2) or placer
    if not filler:
        raise InboundMappingError(_("SCH-2 (filler appointment ID) is empty."))
    if len(filler) > 75:
        raise InboundMappingError(_("SCH-2 is longer than 75 characters."))
    start = hl7_datetime(sch.component(11, 4), tz=tz)
    codes: list[str] = []
    for name in ("AIP", "AIL", "AIS"):
        for seg in (s for s in segments if s.name == name):
            code = seg.component(3, 1)
            if code and code not in codes:
                codes.append(code)
            if start is None:
                start = hl7_datetime(seg.component(6), tz=tz)
    ais = next((s for s in segments if s.name == "AIS"), None)
    return AppointmentRequest(
        filler_id=filler,
        placer_id=placer[:75],
        start=start,
        reason=(sch.component(7, 2) or sch.component(7, 1))[:500],
        resource_codes=tuple(codes),
        service_code=ais.component(3, 1) if ais else "",
    )
