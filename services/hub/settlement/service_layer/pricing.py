"""Pick the reference data a claim needs and run the engine. Shared by the API and the preview."""

from __future__ import annotations

from typing import Mapping, Sequence

from hub.reference.catalogue import Catalogue
from hub.reference.policy import Policy
from hub.settlement.domain.engine import select_policy, settle
from hub.settlement.domain.model import Accumulators, Claim, Person, Settlement
from hub.settlement.domain.refusals import Refusal, RefusalCode


def price_claim(
    claim: Claim,
    person: Person,
    policies: Sequence[Policy],
    catalogues: Mapping[str, Catalogue],
    accumulators: Accumulators,
) -> Settlement | Refusal:
    """Settle with the home policy in force on the service date and the treatment pool's catalogue."""
    policy = select_policy(list(policies), person, claim.service_date)
    if isinstance(policy, Refusal):
        return policy
    catalogue = catalogues.get(claim.treatment_pool)
    if catalogue is None:
        return Refusal(RefusalCode.UNKNOWN_TREATMENT_REGION, claim.treatment_pool)
    return settle(claim, person, policy, catalogue, accumulators)


def newest_catalogues(catalogues: Sequence[Catalogue]) -> dict[str, Catalogue]:
    """One catalogue per treatment pool: the highest version string."""
    newest: dict[str, Catalogue] = {}
    for cat in catalogues:
        if cat.pool_code not in newest or cat.catalogue_version > newest[cat.pool_code].catalogue_version:
            newest[cat.pool_code] = cat
    return newest
