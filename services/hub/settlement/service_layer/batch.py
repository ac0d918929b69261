"""What one group's transaction has read, as it stands after the requests decided so far, and
what it will write.

The requests of a group are decided one after another in arrival order against this state, so
the second settlement of a person sees the accumulators the first one left, and a visit settled
earlier in the group is settled for the next request too. At the end, `changes()` is the
difference from what was loaded: the repository writes each table once.
"""

from __future__ import annotations

from typing import Any

from hub.settlement.adapters.repository import (
    ANSWERED,
    UNDONE_BEFORE_ARRIVAL,
    Changes,
    FeeRow,
    Key,
    Loaded,
    PersonYear,
    StoredAnswer,
    StoredSettlement,
    Visit,
)
from hub.settlement.domain.model import Accumulators


class Batch:
    def __init__(self, loaded: Loaded, accumulators: dict[PersonYear, Accumulators],
                 registrations: dict[str, bytes]):
        self.originals = loaded.originals  # requests a 2601 of the group undoes, as remembered
        self.visits = loaded.visits
        self.settlements = loaded.settlements
        self._accumulators = accumulators
        self.registrations = registrations  # person_ref -> the read model's Avro bytes
        self._new_visits: dict[str, Visit] = {}
        self._changed_visits: dict[str, Visit] = {}
        self._fees: dict[tuple[str, str], FeeRow | None] = {}  # None: deleted
        self._new_settlements: dict[str, StoredSettlement] = {}
        self._reversed: dict[str, StoredSettlement] = {}
        self._changed_accumulators: set[PersonYear] = set()
        self._outbox: list[tuple[str, bytes]] = []
        self._answers: list[tuple[Key, dict[str, Any]]] = []
        self._forgotten: list[Key] = []
        self._tombstones: list[tuple[Key, str, dict[str, Any]]] = []

    # ------------------------------------------------------------------ reads

    def visit(self, mdtrt_id: str) -> Visit | None:
        return self.visits.get(mdtrt_id)

    def settlement(self, setl_id: str) -> StoredSettlement | None:
        return self.settlements.get(setl_id)

    def accumulators(self, key: PersonYear) -> Accumulators:
        return self._accumulators[key]

    # ------------------------------------------------------------------ writes

    def add_visit(self, visit: Visit) -> None:
        self.visits[visit.mdtrt_id] = self._new_visits[visit.mdtrt_id] = visit

    def set_visit_status(self, visit: Visit, status: str, endtime=None) -> None:
        visit.status = status
        if endtime is not None:
            visit.endtime = endtime
        if visit.mdtrt_id not in self._new_visits:
            self._changed_visits[visit.mdtrt_id] = visit

    def set_visit_end(self, visit: Visit, endtime) -> None:
        """The discharge day (None: taken back)."""
        visit.endtime = endtime
        if visit.mdtrt_id not in self._new_visits:
            self._changed_visits[visit.mdtrt_id] = visit

    def set_visit_diagnoses(self, visit: Visit, diagnoses: str, med_type: str | None = None) -> None:
        """The visit's diagnosis codes (2203, 2402), and its medical type where 2203 names one."""
        visit.diagnoses = diagnoses
        if med_type is not None:
            visit.med_type = med_type
        if visit.mdtrt_id not in self._new_visits:
            self._changed_visits[visit.mdtrt_id] = visit

    def put_fee(self, fee: FeeRow) -> None:
        self.visits[fee.mdtrt_id].fees[fee.feedetl_sn] = fee
        self._fees[(fee.mdtrt_id, fee.feedetl_sn)] = fee

    def delete_fee(self, mdtrt_id: str, feedetl_sn: str) -> bool:
        if self.visits[mdtrt_id].fees.pop(feedetl_sn, None) is None:
            return False
        self._fees[(mdtrt_id, feedetl_sn)] = None
        return True

    def add_settlement(self, settlement: StoredSettlement) -> None:
        self.settlements[settlement.setl_id] = self._new_settlements[settlement.setl_id] = settlement

    def reverse_settlement(self, settlement: StoredSettlement, at, msgid: str, reversal_id: str) -> None:
        settlement.status, settlement.reversed_at, settlement.reversal_msgid = "REVERSED", at, msgid
        settlement.reversal_id = reversal_id
        if settlement.setl_id not in self._new_settlements:
            self._reversed[settlement.setl_id] = settlement

    def set_accumulators(self, key: PersonYear, value: Accumulators) -> None:
        self._accumulators[key] = value
        self._changed_accumulators.add(key)

    def emit(self, key: str, payload: bytes) -> None:
        """An event for the outbox, published in the order of decision."""
        self._outbox.append((key, payload))

    def remember(self, key: Key, body: dict[str, Any]) -> None:
        self._answers.append((key, body))

    def forget(self, key: Key) -> None:
        """Release a claim unanswered: the same msgid is decided afresh later."""
        self._forgotten.append(key)

    def undone(self, key: Key, infno: str, body: dict[str, Any]) -> None:
        """The request `key` is undone (2601): it answers `body` from now on — also if it has not
        arrived yet (then it is remembered before it comes, and never decided)."""
        if key in self.originals:
            self._answers.append((key, body))
        else:
            self._tombstones.append((key, infno, body))
        self.originals[key] = StoredAnswer(UNDONE_BEFORE_ARRIVAL, ANSWERED, body, infno)

    def changes(self) -> Changes:
        return Changes(
            new_visits=list(self._new_visits.values()),
            changed_visits=list(self._changed_visits.values()),
            upserted_fees=[f for f in self._fees.values() if f is not None],
            deleted_fees=[k for k, f in self._fees.items() if f is None],
            new_settlements=list(self._new_settlements.values()),
            reversed_settlements=list(self._reversed.values()),
            accumulators=[(key[0], self._accumulators[key]) for key in sorted(self._changed_accumulators)],
            outbox=self._outbox,
            answers=self._answers,
            forgotten=self._forgotten,
            tombstones=self._tombstones,
        )
