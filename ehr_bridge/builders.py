"""Outbound message builders: plain data in, ER7 text out. Pure: touches no database.

The consult and appointment apps turn their records into these dataclasses; the builders
write ORU^R01 (a signed consult report, with the PDF as an ED attachment where the partner
wants it) and SIU^S12/S14/S15 (a booking made, changed, cancelled) in HL7 v2.3 to v2.5.1.
Every value is escaped with the message's separators; report text keeps its line breaks as
``\\.br\\`` in FT fields. ``validate`` checks a built message against the message structure
of its version with hl7apy (tests run it on every builder; it is too slow for the hot path).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from . import mllp

SEP, ENC = "|", "^~\\&"
SEX = {"male": "M", "female": "F", "unknown": "U", "M": "M", "F": "F", "U": "U"}
SIU_TRIGGERS = {"S12": "Booked", "S13": "Booked", "S14": "Booked", "S15": "Cancelled"}
SIU_REASONS = {"S12": "New booking", "S14": "Booking changed", "S15": "Booking cancelled"}
SIU_ACTIONS = {"S12": "A", "S13": "U", "S14": "U", "S15": "D"}


@dataclass(frozen=True)
class Envelope:
    """MSH of one message to one partner."""

    receiving_application: str
    receiving_facility: str
    control_id: str
    version: str = "2.5"
    charset: str = "UNICODE UTF-8"
    sending_application: str = "HUIZHEN"
    sending_facility: str = "HUIZHEN"
    processing_id: str = "P"


@dataclass(frozen=True)
class Identifier:
    value: str
    authority: str
    type_code: str = "MR"


@dataclass(frozen=True)
class PatientData:
    identifiers: tuple[Identifier, ...]
    name: str
    sex: str = "unknown"  # male, female, unknown (or M, F, U)
    birth_date: date | None = None
    id_number: str = ""  # resident ID number: sent as a PID-3 repetition of type ID


@dataclass(frozen=True)
class ReportSection:
    title: str
    text: str
    code: str = ""


@dataclass(frozen=True)
class ConsultReport:
    report_id: str  # filler order number (OBR-3)
    order_id: str  # placer order number (OBR-2), the HIS's order when it ordered the read
    service_code: str
    service_name: str
    observed_at: datetime
    signed_at: datetime
    signer_id: str
    signer_name: str
    sections: tuple[ReportSection, ...]
    status: str = "F"  # F final, C corrected
    pdf: bytes | None = None
    critical: bool = False


@dataclass(frozen=True)
class AppointmentData:
    appointment_id: str  # filler appointment ID (SCH-2)
    start: datetime
    end: datetime
    service_code: str
    service_name: str
    placer_id: str = ""  # placer appointment ID (SCH-1); the filler ID when empty
    location_code: str = ""
    location_name: str = ""
    resource_id: str = ""
    resource_name: str = ""
    reason: str = ""
    notes: tuple[str, ...] = field(default=())


def _e(value: object) -> str:
    return mllp.escape("" if value is None else str(value), SEP, ENC)


def _ts(value: datetime | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y%m%d%H%M%S%z") if value.tzinfo else value.strftime("%Y%m%d%H%M%S")
    return value.strftime("%Y%m%d")


def _segment(name: str, *fields: str) -> str:
    return SEP.join([name, *fields]).rstrip(SEP)


def _msh(env: Envelope, message_type: str, trigger: str, structure: str, now: datetime) -> str:
    msh9 = f"{message_type}^{trigger}" + (f"^{structure}" if env.version != "2.3" else "")
    return SEP.join(
        [
            "MSH",
            ENC,
            _e(env.sending_application),
            _e(env.sending_facility),
            _e(env.receiving_application),
            _e(env.receiving_facility),
            _ts(now),
            "",
            msh9,
            _e(env.control_id),
            _e(env.processing_id),
            env.version,
            "",
            "",
            "",
            "",
            "CHN",
            _e(env.charset),
        ]
    )


def _pid(patient: PatientData) -> str:
    idents = [f"{_e(i.value)}^^^{_e(i.authority)}^{_e(i.type_code)}" for i in patient.identifiers]
    if patient.id_number:
        idents.append(f"{_e(patient.id_number)}^^^^ID")
    name = patient.name.strip()
    # Chinese names go whole into the family name component, as Chinese HIS expect.
    xpn = f"{_e(name)}^^^^^^L" if name else ""
    return _segment(
        "PID",
        "1",
        "",
        "~".join(idents),
        "",
        xpn,
        "",
        _ts(patient.birth_date),
        SEX.get(patient.sex, "U"),
    )


def _ft(text: str) -> str:
    """Formatted text: each line escaped, lines joined with the \\.br\\ break."""
    return "\\.br\\".join(_e(line) for line in text.replace("\r\n", "\n").split("\n"))


def build_oru_r01(
    envelope: Envelope,
    patient: PatientData,
    report: ConsultReport,
    *,
    now: datetime,
    include_pdf: bool = True,
) -> str:
    """ORU^R01 of a signed consult report: PID, ORC, OBR, one FT OBX per section, and the
    PDF as an ED OBX (base64) when there is one and ``include_pdf``."""
    filler = f"{_e(report.report_id)}^HUIZHEN"
    placer = f"{_e(report.order_id)}" if report.order_id else ""
    service = f"{_e(report.service_code)}^{_e(report.service_name)}^L"
    signer = f"{_e(report.signer_id)}&{_e(report.signer_name)}"
    segments = [
        _msh(envelope, "ORU", "R01", "ORU_R01", now),
        _pid(patient),
        _segment("ORC", "RE", placer, filler, "", "CM", "", f"^^^{_ts(report.observed_at)}"),
        _segment(
            "OBR",
            "1",
            placer,
            filler,
            service,
            "",
            "",
            _ts(report.observed_at),
            *[""] * 14,
            _ts(report.signed_at),
            "",
            "",
            report.status,
            "",
            f"^^^{_ts(report.observed_at)}",
            *[""] * 4,
            signer,
        ),
    ]
    n = 0
    for section in report.sections:
        n += 1
        code = f"{_e(section.code or f'S{n}')}^{_e(section.title)}^L"
        flag = "AA" if report.critical and n == len(report.sections) else ""
        segments.append(
            _segment(
                "OBX",
                str(n),
                "FT",
                code,
                "1",
                _ft(section.text),
                "",
                "",
                flag,
                "",
                "",
                report.status,
                "",
                "",
                _ts(report.observed_at),
            )
        )
    if report.pdf and include_pdf:
        n += 1
        data = base64.b64encode(report.pdf).decode("ascii")
        segments.append(
            _segment(
                "OBX",
                str(n),
                "ED",
                "PDF^Report PDF^L",
                "1",
                f"^AP^PDF^Base64^{data}",
                "",
                "",
                "",
                "",
                "",
                report.status,
            )
        )
    return "\r".join(segments) + "\r"


def build_siu(
    trigger: str,
    envelope: Envelope,
    patient: PatientData,
    appointment: AppointmentData,
    *,
    now: datetime,
) -> str:
    """SIU^S12 (new booking), S14 (changed) or S15 (cancelled): SCH, TQ1, NTE, PID, RGS,
    AIS, AIL, AIP."""
    if trigger not in ("S12", "S14", "S15"):
        raise ValueError(f"unsupported SIU trigger {trigger!r}")
    minutes = max(0, int((appointment.end - appointment.start).total_seconds() // 60))
    action = SIU_ACTIONS[trigger]
    service = f"{_e(appointment.service_code)}^{_e(appointment.service_name)}^L"
    placer_id = appointment.placer_id or appointment.appointment_id
    placer = f"{_e(placer_id)}^HUIZHEN"
    contact = (
        f"{_e(appointment.resource_id)}^{_e(appointment.resource_name)}"
        if appointment.resource_id or appointment.resource_name
        else "HUIZHEN"
    )
    segments = [
        _msh(envelope, "SIU", trigger, "SIU_S12", now),
        _segment(
            "SCH",
            placer,
            f"{_e(appointment.appointment_id)}^HUIZHEN",
            "",
            "",
            "",
            f"^{_e(appointment.reason or SIU_REASONS[trigger])}",
            service,
            "",
            str(minutes),
            "min",
            f"^^{minutes}^{_ts(appointment.start)}^{_ts(appointment.end)}",
            "",
            "",
            "",
            "",
            contact,
            "",
            "",
            "",
            contact,
            "",
            "",
            "",
            "",
            SIU_TRIGGERS[trigger],
        ),
    ]
    if envelope.version in ("2.5", "2.5.1"):  # TQ1 exists from 2.5
        segments.append(
            _segment("TQ1", "1", "", "", "", "", "", _ts(appointment.start), _ts(appointment.end))
        )
    segments += [_segment("NTE", str(i), "", _e(n)) for i, n in enumerate(appointment.notes, 1)]
    segments += [
        _pid(patient),
        _segment("RGS", "1", action),
        _segment("AIS", "1", action, service, _ts(appointment.start), "", "", str(minutes), "min"),
    ]
    if appointment.location_code or appointment.location_name:
        location = f"{_e(appointment.location_code)}^^^{_e(appointment.location_name)}"
        segments.append(
            _segment("AIL", "1", action, location, "CLINIC", "", _ts(appointment.start))
        )
    if appointment.resource_id or appointment.resource_name:
        person = f"{_e(appointment.resource_id)}^{_e(appointment.resource_name)}"
        segments.append(
            _segment("AIP", "1", action, person, "CONSULTANT", "", _ts(appointment.start))
        )
    return "\r".join(segments) + "\r"


def patient_key(patient: PatientData) -> str:
    """The key that orders a patient's outbound messages: first identifier with authority."""
    if patient.identifiers:
        first = patient.identifiers[0]
        return f"{first.authority}|{first.value}"[:255]
    return f"ID|{patient.id_number}"[:255] if patient.id_number else ""


def validate(text: str) -> list[str]:
    """Structure problems hl7apy finds in a built message (empty: valid).

    The message is parsed with group finding against its version's message structure, and
    every segment must land in the structure (none left as an unexpected child).
    """
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.exceptions import HL7apyException
    from hl7apy.parser import parse_message

    try:
        message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        message.validate()
    except HL7apyException as exc:
        return [str(exc)]
    return []


def segments_of(text: str) -> Sequence[str]:
    return [s for s in text.split("\r") if s]
