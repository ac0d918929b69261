"""Pick the reference data a claim needs and run the engine. Shared by the API and the preview."""

from __future__ import annotations

import threading
import time
from typing import Callable
from typing import Mapping, Sequence

from hub.reference.catalogue import Catalogue
from hub.reference.policy import Policy
from hub.settlement.adapters.read_model import ReadModel
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


class ReferenceCache:
    """Policies and catalogues from the read model, held in memory and reloaded when their
    stamp changes (checked at most every `refresh_s`)."""

    def __init__(self, read_model: ReadModel, refresh_s: float = 2.0):
        self.read_model = read_model
        self.refresh_s = refresh_s
        self._stamp = -1
        self._checked = 0.0
        self._lock = threading.Lock()
        self.policies: list[Policy] = []
        self.catalogues: dict[str, Catalogue] = {}
        self.after_reload: Callable[[], None] | None = None  # e.g. the entrypoint's gc.freeze

    def current(self) -> tuple[list[Policy], dict[str, Catalogue]]:
        now = time.monotonic()
        if now - self._checked > self.refresh_s:
            with self._lock:
                if now - self._checked > self.refresh_s:
                    stamp = self.read_model.reference_stamp()
                    if stamp != self._stamp:
                        self.policies = self.read_model.policies()
                        self.catalogues = newest_catalogues(self.read_model.catalogues())
                        self._stamp = stamp
                        if self.after_reload is not None:
                            self.after_reload()
                    self._checked = now
        return self.policies, self.catalogues
