"""Demo data of the EHR bridge: the county hospital's HIS as an HL7 partner."""

from __future__ import annotations

from typing import Any

from .models import Hl7Partner


def seed(organisations: dict[str, Any]) -> None:
    """The county HIS sends as DEMO_HIS / COUNTY_HOSP with its MRNs under COUNTY_HOSP.
    Outbound stays off until an operator gives it an endpoint (host and port). Idempotent."""
    county = organisations.get("county")
    if county is None:
        return
    Hl7Partner.objects.get_or_create(
        sending_application="DEMO_HIS",
        sending_facility="COUNTY_HOSP",
        defaults={
            "name": "青山县人民医院 HIS",
            "organisation": county,
            "assigning_authority": "COUNTY_HOSP",
            "outbound_events": ["ORU^R01", "SIU^S12", "SIU^S14", "SIU^S15"],
        },
    )
