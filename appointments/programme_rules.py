"""The programme rules as pure functions (no ORM), after the national basic public health
service specification (third edition) for hypertension and type 2 diabetes.

``Rules`` carries the thresholds of one ``Programme`` row; ``assess`` classifies one
follow-up's readings and ``decide`` says when the next follow-up falls due and whether to
refer to the centre.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class Rules:
    kind: str  # hypertension | diabetes | other
    routine_interval_days: int = 90
    uncontrolled_interval_days: int = 14
    referral_check_days: int = 14
    uncontrolled_in_a_row_to_refer: int = 2
    sbp_controlled_below: int | None = 140
    dbp_controlled_below: int | None = 90
    glucose_controlled_below: Decimal | None = Decimal("7.0")
    urgent_sbp_at_least: int = 180
    urgent_dbp_at_least: int = 110
    urgent_glucose_at_least: Decimal = Decimal("16.7")
    urgent_glucose_at_most: Decimal = Decimal("3.9")


@dataclass(frozen=True)
class Readings:
    sbp: int | None = None
    dbp: int | None = None
    fasting_glucose: Decimal | None = None
    random_glucose: Decimal | None = None


@dataclass(frozen=True)
class Assessment:
    control: str  # controlled | uncontrolled | unknown
    urgent: bool
    urgent_reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    next_in_days: int
    refer: str | None  # None | uncontrolled | complication | urgent
    uncontrolled_in_a_row: int
    reasons: tuple[str, ...] = field(default_factory=tuple)


def urgent_reasons(rules: Rules, readings: Readings) -> tuple[str, ...]:
    """Readings that call for urgent referral, whatever the programme."""
    reasons = []
    if readings.sbp is not None and readings.sbp >= rules.urgent_sbp_at_least:
        reasons.append("sbp_high")
    if readings.dbp is not None and readings.dbp >= rules.urgent_dbp_at_least:
        reasons.append("dbp_high")
    for name in ("fasting_glucose", "random_glucose"):
        value = getattr(readings, name)
        if value is None:
            continue
        if Decimal(value) >= rules.urgent_glucose_at_least:
            reasons.append(f"{name}_high")
        elif Decimal(value) <= rules.urgent_glucose_at_most:
            reasons.append(f"{name}_low")
    return tuple(reasons)


def assess(rules: Rules, readings: Readings) -> Assessment:
    """Controlled when every threshold of the programme is met by a reading; unknown when the
    reading it needs is missing (or the programme has no threshold)."""
    control = "unknown"
    if rules.kind == "hypertension" and rules.sbp_controlled_below is not None:
        if readings.sbp is not None and readings.dbp is not None:
            ok = readings.sbp < rules.sbp_controlled_below and (
                rules.dbp_controlled_below is None or readings.dbp < rules.dbp_controlled_below
            )
            control = "controlled" if ok else "uncontrolled"
    elif rules.kind == "diabetes" and rules.glucose_controlled_below is not None:
        if readings.fasting_glucose is not None:
            ok = Decimal(readings.fasting_glucose) < rules.glucose_controlled_below
            control = "controlled" if ok else "uncontrolled"
    reasons = urgent_reasons(rules, readings)
    return Assessment(control=control, urgent=bool(reasons), urgent_reasons=reasons)


def decide(
    rules: Rules,
    assessment: Assessment,
    *,
    adverse_reaction: bool,
    new_complication: bool,
    uncontrolled_before: int,
) -> Decision:
    """Next follow-up and referral.

    - urgent reading → urgent referral, follow up within ``uncontrolled_interval_days``;
    - ``uncontrolled_in_a_row_to_refer`` uncontrolled follow-ups in a row, or a new
      complication → referral;
    - uncontrolled or an adverse drug reaction → next follow-up within
      ``uncontrolled_interval_days``; otherwise ``routine_interval_days``.
    """
    in_a_row = uncontrolled_before + 1 if assessment.control == "uncontrolled" else 0
    reasons: list[str] = []
    short = False
    if assessment.control == "uncontrolled":
        reasons.append("uncontrolled")
        short = True
    if adverse_reaction:
        reasons.append("adverse_reaction")
        short = True
    refer: str | None = None
    if assessment.urgent:
        refer = "urgent"
        short = True
        reasons.extend(assessment.urgent_reasons)
    elif new_complication:
        refer = "complication"
        short = True
        reasons.append("new_complication")
    elif in_a_row >= rules.uncontrolled_in_a_row_to_refer:
        refer = "uncontrolled"
    if refer == "urgent" and new_complication:
        reasons.append("new_complication")
    days = rules.uncontrolled_interval_days if short else rules.routine_interval_days
    return Decision(
        next_in_days=days, refer=refer, uncontrolled_in_a_row=in_a_row, reasons=tuple(reasons)
    )
