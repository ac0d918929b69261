"""What-if policy replay: what a pool's off-site bills would have cost under a draft policy.

Every standing settlement of the pool's insured in the window is re-priced by the same engine
(hub.settlement.domain.engine.settle) with the draft, in the order the bills were settled, each
person-year's accumulators replayed under the draft from zero at the start of the window (so
caps and deductibles bind as they would have). The draft is applied whatever its effective
dates (the question is what the bills would have cost had it been in force). The person is as
the settlement read model knows them now (filings, special populations); the treatment pool's
catalogue the one in force now. Before is what was settled.

Paid manual claims (零星报销) are bills too: they count in the same accumulators, in the order
they were decided among the settlements, and are priced as claims (`Claim.manual`), with the
hospital level and kind the claim gave.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from hub.reference.catalogue import Catalogue
from hub.reference.policy import HospitalKind, InsuranceType, Level, Policy
from hub.settlement.adapters.replay_source import SettledBill
from hub.settlement.adapters.repository import StoredClaim
from hub.settlement.domain.engine import settle
from hub.settlement.domain.model import Accumulators, Claim, FeeLine, Person, Settlement
from hub.settlement.domain.refusals import Refusal
from hub.settlement.service_layer.claims import ClaimIn
from hub.settlement.service_layer.convention import EMERGENCY_ADMISSION_MED_TYPES, FUND_PAY_TYPES, INSUTYPES, MED_TYPES
from hub.settlement.service_layer.envelope import SHANGHAI

SHARE_BUCKETS = 10  # the patient's share of the bill, in tenths


@dataclass
class Totals:
    bills: int = 0
    medfee: int = 0
    funds: list[int] = field(default_factory=lambda: [0, 0, 0])  # hifp, hifmi, maf
    patient: int = 0

    def add(self, medfee: int, hifp: int, hifmi: int, maf: int, patient: int) -> None:
        self.bills += 1
        self.medfee += medfee
        self.funds[0] += hifp
        self.funds[1] += hifmi
        self.funds[2] += maf
        self.patient += patient


@dataclass
class ReplayReport:
    pool: str
    insurance_type: str
    draft_version: str
    first: date
    last: date
    before: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))  # by treatment pool
    after: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    share_before: Counter = field(default_factory=Counter)
    share_after: Counter = field(default_factory=Counter)
    changes: list[tuple[int, str, int, int]] = field(default_factory=list)  # (|delta|, setl_id, before, after)
    skipped: Counter = field(default_factory=Counter)  # why a bill was not re-priced
    refused: Counter = field(default_factory=Counter)  # the draft's refusals (the bill would not settle)

    def as_dict(self, top: int = 20) -> dict[str, Any]:
        funds = [FUND_PAY_TYPES[(share, InsuranceType(self.insurance_type))][0] for share in ("hifp", "serious", "maf")]

        def totals(t: Totals) -> dict[str, Any]:
            return {"bills": t.bills, "medfee_sumamt_fen": t.medfee, "psn_part_amt_fen": t.patient,
                    "funds": {code: amount for code, amount in zip(funds, t.funds)}}
        pools = sorted(set(self.before) | set(self.after))
        all_before, all_after = Totals(), Totals()
        for t, into in ((self.before, all_before), (self.after, all_after)):
            for v in t.values():
                into.bills += v.bills
                into.medfee += v.medfee
                into.patient += v.patient
                into.funds = [a + b for a, b in zip(into.funds, v.funds)]
        return {
            "pool": self.pool, "insurance_type": self.insurance_type, "draft": self.draft_version,
            "from": self.first.isoformat(), "to": self.last.isoformat(),
            "total": {"before": totals(all_before), "after": totals(all_after)},
            "by_treatment_pool": {p: {"before": totals(self.before[p]), "after": totals(self.after[p])} for p in pools},
            "patient_share_tenths": {"before": [self.share_before[i] for i in range(SHARE_BUCKETS)],
                                     "after": [self.share_after[i] for i in range(SHARE_BUCKETS)]},
            "largest_changes": [{"setl_id": s, "funds_before_fen": b, "funds_after_fen": a, "change_fen": a - b}
                                for _, s, b, a in sorted(self.changes, key=lambda c: (-c[0], c[1]))[:top]],
            "skipped": dict(self.skipped), "refused_under_draft": dict(self.refused),
        }


def _bucket(patient: int, medfee: int) -> int:
    return min(SHARE_BUCKETS - 1, patient * SHARE_BUCKETS // medfee) if medfee > 0 else 0


def claim_bill(c: StoredClaim) -> SettledBill:
    """A paid manual claim as a bill to re-price, read through the claims' own reader of what they keep."""
    k = ClaimIn.from_stored(c)
    return SettledBill(
        f"claim:{c.claim_no}", c.person_ref, c.hospital_code, c.home_pool, c.treatment_pool, c.result["insutype"],
        c.decided_at.astimezone(SHANGHAI).date(), k.med_type, k.begntime, k.endtime, k.accident_injury,
        " ".join(k.diagnoses), c.medfee_sumamt_fen, c.hifp_pay_fen, c.hifmi_pay_fen, c.maf_pay_fen, c.psn_part_amt_fen,
        tuple((code, Decimal(qty), price, amount) for code, qty, price, amount in k.lines),
        at=c.decided_at, manual=True, level=k.level, kind=k.kind)


def replay(draft: Policy, bills: Iterable[SettledBill], persons: Callable[[list[str]], Mapping[str, dict]],
           person_of: Callable[[dict, date], Person | None], hospitals: Mapping[str, tuple[str, Level, HospitalKind]],
           catalogues: Mapping[str, Catalogue], first: date, last: date, chunk: int = 2_000,
           progress: Callable[[int], None] = lambda n: None, top: int = 20) -> ReplayReport:
    """Re-price `bills` (the draft's pool's, oldest first) under `draft`. `persons` gives the
    registrations of a chunk's person refs, `person_of` the Person from one on a day; `hospitals`
    a hospital code's (pool, level, kind)."""
    pricer = _Repricer(draft, person_of, hospitals, catalogues, first, last, top)
    pending: list[SettledBill] = []
    for bill in bills:
        pending.append(bill)
        if len(pending) >= chunk:
            pricer.chunk(pending, persons(sorted({b.person_ref for b in pending})))
            progress(len(pending))
            pending = []
    if pending:
        pricer.chunk(pending, persons(sorted({b.person_ref for b in pending})))
        progress(len(pending))
    return pricer.report


class _Repricer:
    """The draft (in force on every day replayed), each person-year's accumulators as the replay
    moves them, and the report."""

    def __init__(self, draft: Policy, person_of, hospitals, catalogues, first: date, last: date, top: int):
        self.policy = draft.model_copy(update={"effective_from": date.min, "effective_to": None})
        self.report = ReplayReport(draft.pool_code, draft.insurance_type.value, draft.policy_version, first, last)
        self.person_of, self.hospitals, self.catalogues, self.top = person_of, hospitals, catalogues, top
        self.accumulators: dict[tuple[str, int], Accumulators] = {}

    def chunk(self, bills: list[SettledBill], registrations: Mapping[str, dict]) -> None:
        for bill in bills:
            self.one(bill, registrations)

    def one(self, bill: SettledBill, registrations: Mapping[str, dict]) -> None:
        """One bill re-priced (or skipped, and why), its figures before and after in the report."""
        report = self.report
        if INSUTYPES.get(bill.insutype) is not InsuranceType(self.policy.insurance_type):
            report.skipped["another insurance type"] += 1
            return
        hospital = ((bill.treatment_pool, Level(bill.level), HospitalKind(bill.kind)) if bill.manual
                    else self.hospitals.get(bill.hospital_code))
        end = bill.endtime or bill.begntime
        value = registrations.get(bill.person_ref)
        person = self.person_of(value, end) if value is not None else None
        catalogue = self.catalogues.get(bill.treatment_pool)
        skipped = ("hospital not in the hospitals file" if hospital is None
                   else "person not in the read model" if person is None
                   else "no catalogue for the treatment pool" if catalogue is None else None)
        if skipped:
            report.skipped[skipped] += 1
            return
        claim = Claim(MED_TYPES[bill.med_type], hospital[1], bill.treatment_pool, bill.begntime, end,
                      tuple(FeeLine(n, code, qty, price, amount) for n, (code, qty, price, amount) in enumerate(bill.lines, 1)),
                      bill.accident_injury, tuple(bill.diagnoses.split()), hospital[2], manual=bill.manual,
                      emergency_admission=bill.med_type in EMERGENCY_ADMISSION_MED_TYPES)
        key = (bill.person_ref, end.year)
        acc = self.accumulators.get(key) or Accumulators(end.year)
        result = settle(claim, person, self.policy, catalogue, acc)
        if isinstance(result, Settlement):
            self.accumulators[key] = acc.plus(result.accumulators_delta)
        self.record(bill, result)

    def record(self, bill: SettledBill, result: Settlement | Refusal) -> None:
        report = self.report
        funds_before = bill.hifp_pay_fen + bill.hifmi_pay_fen + bill.maf_pay_fen
        report.before[bill.treatment_pool].add(bill.medfee_sumamt_fen, bill.hifp_pay_fen, bill.hifmi_pay_fen,
                                               bill.maf_pay_fen, bill.psn_part_amt_fen)
        report.share_before[_bucket(bill.psn_part_amt_fen, bill.medfee_sumamt_fen)] += 1
        if not isinstance(result, Settlement):
            report.refused[result.reason.value] += 1
            report.after[bill.treatment_pool].add(bill.medfee_sumamt_fen, 0, 0, 0, bill.medfee_sumamt_fen)
            report.share_after[_bucket(bill.medfee_sumamt_fen, bill.medfee_sumamt_fen)] += 1
            funds_after = 0
        else:
            report.after[bill.treatment_pool].add(result.medfee_sumamt, result.hifp_pay, result.hifmi_pay,
                                                  result.maf_pay, result.psn_part_amt)
            report.share_after[_bucket(result.psn_part_amt, result.medfee_sumamt)] += 1
            funds_after = result.fund_pay_sumamt
        change = abs(funds_after - funds_before)
        if change:
            report.changes.append((change, bill.setl_id, funds_before, funds_after))
            if len(report.changes) > 4 * self.top:  # keep only the largest
                report.changes.sort(key=lambda c: (-c[0], c[1]))
                del report.changes[self.top:]
