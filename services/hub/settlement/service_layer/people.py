"""The insured person as the settlement rules see them, from the registration the read model holds."""

from __future__ import annotations

from datetime import date
from typing import Any

from hub.reference.policy import InsuranceType, SpecialPopulation
from hub.settlement.domain.model import Filing, FilingType, Person


def person_from_registration(value: dict[str, Any], service_day: date) -> Person | None:
    enrolment = value.get("enrolment")
    if enrolment is None:
        return None
    enrolled_from = enrolment["enrolled_from"]
    years = service_day.year - enrolled_from.year - ((service_day.month, service_day.day) < (enrolled_from.month, enrolled_from.day))
    return Person(
        person_ref=value["person_ref"],
        home_pool=value["home_pool"],
        insurance_type=InsuranceType(enrolment["insurance_type"]),
        enrolled_from=enrolled_from,
        benefits_from=enrolment["benefits_from"],
        enrolled_to=enrolment.get("enrolled_to"),
        special_populations=frozenset(SpecialPopulation(p) for p in enrolment.get("special_populations", [])
                                      if p in SpecialPopulation.__members__),
        filings=tuple(
            Filing(f["filing_id"], FilingType(f["filing_type"]), f["target_pool"], f["valid_from"], f.get("valid_to"),
                   f.get("revoked", False))
            for f in value.get("filings", []) if f["filing_type"] in FilingType.__members__
        ),
        continuous_years=max(0, years),
    )
