"""Manual claims (零星报销 / 手工报销): care that was not settled at the counter — the visit was not
filed, the hospital is not connected, the rules route it home (广州's off-site serious illness),
or the counter was down — paid in full by the patient and claimed afterwards at the home bureau.

Why here, in the settle-at-treatment service, and not in registration: a claim is priced by the
same engine under the home policy and counts in the same accumulators as direct settlements,
under the same person-year row lock (`accumulators` in this service's database). Anywhere else
the caps could be passed by a claim and a bill settled at the same moment.

- A home bureau submits a claim: it is checked (every refused fee line reported at once),
  priced (`Claim.manual`, READINGS.md 37), its accumulators locked and added to, and a
  `ManualClaimSettled` event written with it in one transaction. It is idempotent by
  (home pool, claim number): the same claim again answers the same, another claim under a
  used number is refused.
- A designated agency of the treatment region (代办) lodges a claim on the insured's behalf: it
  waits, LODGED, until the home bureau approves (then it is priced, as above) or rejects it
  (with a note). An agency sees only the claims it lodged; a bureau only its own insured's.

A manual claim moves no money between funds: the home fund pays the patient. Clearing lists it
in the home bureau's files and counts it in the fund-risk watch, and does not net it.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable

from hub.messaging import AvroCodec
from hub.rejections import Reason
from hub.settlement.adapters.read_model import ReadModel
from hub.settlement.adapters.repository import Changes, Repository, StoredClaim
from hub.settlement.domain.model import ACCUMULATOR_FIELDS, Claim, FeeLine, HospitalKind, Level, Person, Settlement
from hub.settlement.domain.refusals import Refusal
from hub.settlement.service_layer import convention
from hub.settlement.service_layer.envelope import SHANGHAI
from hub.settlement.service_layer.identity import HospitalRegistry, mask_person_id, person_ref
from hub.settlement.service_layer.people import person_from_registration
from hub.settlement.service_layer.pricing import ReferenceCache, price_claim
from hub.settlement.service_layer.reasons import ClaimWhy, Why
from hub.privacy import Key

PRODUCER = "settle-at-treatment"
REASONS = {  # convention.MANUAL_REASONS names the same (the preview's edge)
    "NOT_FILED": "the visit was not filed (备案) in time for direct settlement",
    "HOSPITAL_NOT_CONNECTED": "the hospital is not connected to direct settlement",
    "ROUTED_HOME": "the home policy routes this care to a claim at home (e.g. 广州's off-site serious illness)",
    "COUNTER_DOWN": "direct settlement was unavailable at the counter (系统故障)",
}
_POOL = re.compile(r"^[0-9]{6}$")
MAX_CLAIM_NO = 40
MAX_NOTE = 500


class ClaimRefused(Exception):
    """A claim or a decision refused: its reason (ClaimWhy, the input's Why, or the engine's
    refusal when pricing it), the detail of the case, and (for fee lines) every refused line.
    Nothing was changed. The API's edge (entrypoints/claims_http.py) chooses the HTTP status."""

    def __init__(self, reason: Reason, detail: str = "", lines: list[dict] | None = None):
        self.refusal = Refusal(reason, detail)
        super().__init__(f"{self.refusal.code}: {self.refusal.message}")
        self.reason, self.code, self.message = reason, self.refusal.code, self.refusal.message
        self.lines = lines or []

    def body(self) -> dict:
        """The answer, in the shape of every bureau API's errors."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.lines:
            out["refused_lines"] = self.lines
        return {"error": out}


@dataclass(frozen=True)
class Actor:
    """Who is asking: a home bureau (its pool) or a designated agency (代办) of a treatment region."""

    kind: str  # "bureau" or "agency"
    code: str
    pool: str

    @property
    def name(self) -> str:
        return f"bureau:{self.pool}" if self.kind == "bureau" else f"agency:{self.code}"


@dataclass(frozen=True)
class ClaimIn:
    """A claim as checked: everything pricing needs, and nothing in clear about the person but
    the keyed reference and the masked number."""

    claim_no: str
    home_pool: str
    person_ref: str
    person_id_masked: str
    med_type: str
    treatment_pool: str
    hospital_code: str
    level: str
    kind: str
    begntime: date
    endtime: date
    reason: str
    accident_injury: bool
    diagnoses: tuple[str, ...]
    lines: tuple[tuple[str, str, int, int], ...]  # (item code, quantity, unit price fen, amount fen)
    request_sha256: str = field(default="", compare=False)

    def stored(self) -> dict:
        """The claim as kept (and read back on approval)."""
        return {"med_type": self.med_type, "level": self.level, "kind": self.kind,
                "begntime": self.begntime.isoformat(), "endtime": self.endtime.isoformat(),
                "accident_injury": self.accident_injury, "diagnoses": list(self.diagnoses),
                "lines": [list(l) for l in self.lines]}

    @classmethod
    def from_stored(cls, c: StoredClaim) -> "ClaimIn":
        k = c.claim
        return cls(c.claim_no, c.home_pool, c.person_ref, c.person_id_masked, k["med_type"], c.treatment_pool,
                   c.hospital_code, k["level"], k["kind"], date.fromisoformat(k["begntime"]),
                   date.fromisoformat(k["endtime"]), c.reason, k["accident_injury"], tuple(k["diagnoses"]),
                   tuple((str(l[0]), str(l[1]), int(l[2]), int(l[3])) for l in k["lines"]), c.request_sha256)

    def engine_claim(self) -> Claim:
        lines = tuple(FeeLine(n, code, Decimal(qty), price, amount)
                      for n, (code, qty, price, amount) in enumerate(self.lines, 1))
        return Claim(convention.MED_TYPES[self.med_type], Level(self.level), self.treatment_pool, self.begntime,
                     self.endtime, lines, self.accident_injury, self.diagnoses, HospitalKind(self.kind), manual=True,
                     emergency_admission=self.med_type in convention.EMERGENCY_ADMISSION_MED_TYPES)


class Claims:
    def __init__(self, repository: Repository, read_model: ReadModel, reference: ReferenceCache, codec: AvroCodec,
                 person_key: Key, hospitals: HospitalRegistry, limits: convention.Limits = convention.DEFAULT_LIMITS,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.repository = repository
        self.read_model = read_model
        self.reference = reference
        self.codec = codec
        self.person_key = person_key
        self.hospitals = hospitals
        self.limits = limits
        self.clock = clock

    # ------------------------------------------------------------------ use cases

    def submit(self, actor: Actor, body: Any) -> tuple[int, dict]:
        """A claim from a home bureau (priced now: 201) or an agency (lodged: 202); the same
        claim again answers what it answered (200)."""
        claim = self.parse(actor, body)
        now = self.clock()
        new = StoredClaim(claim.home_pool, claim.claim_no, actor.name, claim.request_sha256, "LODGED",
                          claim.person_ref, claim.person_id_masked, claim.treatment_pool, claim.hospital_code,
                          claim.reason, claim.stored(), {}, None, {}, 0, 0, 0, 0, 0, now)
        with self.repository.transaction() as tx:
            stored, inserted = tx.manual_claim(claim.home_pool, claim.claim_no, new)
            assert stored is not None
            if not inserted:
                if stored.request_sha256 != claim.request_sha256:
                    raise ClaimRefused(ClaimWhy.CLAIM_NUMBER_REUSED, f"claim {claim.claim_no} of {claim.home_pool} was "
                                                              "already submitted with other content")
                return 200, self.view(stored)
            # after the lookup: the same claim sent again answers as before, even once the
            # person's enrolment has ended; a refusal here rolls the new claim back
            person = self._person(claim)
            if actor.kind == "bureau":
                self._settle(tx, stored, claim, person, now, actor.name, "")
            else:
                stored.result = self._lodged_view(stored)
                tx.update_manual_claim(stored)
        return (201 if actor.kind == "bureau" else 202), self.view(stored)

    def decide(self, actor: Actor, home_pool: str, claim_no: str, body: Any) -> dict:
        """The home bureau approves (prices) or rejects a claim an agency lodged. The same
        decision again answers the same; the other one is refused."""
        if not isinstance(body, dict) or not isinstance(body.get("decision"), str) or \
                body["decision"] not in ("APPROVE", "REJECT"):
            raise ClaimRefused(ClaimWhy.INVALID_DECISION)
        decision, note = body["decision"], body.get("note") or ""
        try:
            convention.check_text(note, "note", self.limits)
        except convention.ConventionError:
            note = None
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            raise ClaimRefused(ClaimWhy.INVALID_NOTE)
        if decision == "REJECT" and not note.strip():
            raise ClaimRefused(ClaimWhy.NOTE_REQUIRED)
        if actor.kind != "bureau" or actor.pool != home_pool:
            raise ClaimRefused(ClaimWhy.CLAIM_NOT_FOUND, f"no claim {claim_no} of {home_pool} for you to decide")
        now = self.clock()
        with self.repository.transaction() as tx:
            stored, _ = tx.manual_claim(home_pool, claim_no)
            if stored is None:
                raise ClaimRefused(ClaimWhy.CLAIM_NOT_FOUND, f"no claim {claim_no} of {home_pool}")
            if stored.status != "LODGED":
                if (stored.status == "SETTLED") == (decision == "APPROVE"):
                    return self.view(stored)
                raise ClaimRefused(ClaimWhy.CLAIM_ALREADY_DECIDED, f"claim {claim_no} is {stored.status}")
            if decision == "REJECT":
                stored.status, stored.decided_at, stored.decided_by, stored.note = "REJECTED", now, actor.name, note
                stored.result = self._lodged_view(stored)
                tx.update_manual_claim(stored)
                return self.view(stored)
            claim = ClaimIn.from_stored(stored)
            self._settle(tx, stored, claim, self._person(claim), now, actor.name, note)
        return self.view(stored)

    def get(self, actor: Actor, home_pool: str, claim_no: str) -> dict:
        found = self.repository.manual_claims(home_pool=home_pool, claim_no=claim_no, limit=1)
        if not found or not self._sees(actor, found[0]):
            raise ClaimRefused(ClaimWhy.CLAIM_NOT_FOUND, f"no claim {claim_no} of {home_pool} of yours")
        return self.view(found[0])

    def list(self, actor: Actor, status: str | None = None, limit: int = 1000) -> list[dict]:
        if status is not None and status not in ("LODGED", "SETTLED", "REJECTED"):
            raise ClaimRefused(ClaimWhy.INVALID_STATUS)
        if actor.kind == "bureau":
            rows = self.repository.manual_claims(home_pool=actor.pool, status=status, limit=limit)
        else:
            rows = self.repository.manual_claims(lodged_by=actor.name, status=status, limit=limit)
        return [self.view(c) for c in rows]

    @staticmethod
    def _sees(actor: Actor, c: StoredClaim) -> bool:
        return c.home_pool == actor.pool if actor.kind == "bureau" else c.lodged_by == actor.name

    # ------------------------------------------------------------------ steps

    def _person(self, claim: ClaimIn) -> Person:
        """The insured as the read model holds them, enrolled with the claim's home bureau (a
        person of another pool is answered as unknown: a bureau learns nothing of others' insured)."""
        raw = self.read_model.registration_bytes(claim.person_ref)
        person = person_from_registration(self.codec.decode(raw).value, claim.endtime) if raw else None
        if person is None or person.home_pool != claim.home_pool:
            if not self.read_model.ready():
                raise ClaimRefused(Why.HUB_NOT_READY, "its registrations; submit again shortly")
            raise ClaimRefused(ClaimWhy.PERSON_NOT_ENROLLED, claim.home_pool)
        return person

    def _settle(self, tx, stored: StoredClaim, claim: ClaimIn, person: Person, now: datetime, by: str,
                note: str) -> None:
        """Price the claim against the person-year it falls in (locked), and write the claim, the
        accumulators and the event together. A refusal raises: the transaction keeps nothing."""
        key = (claim.person_ref, claim.endtime.year)
        before = tx.accumulators([key], [])[key]
        policies, catalogues = self.reference.current()
        engine_claim = claim.engine_claim()
        result = price_claim(engine_claim, person, policies, catalogues, before)
        if isinstance(result, Refusal):
            raise ClaimRefused(result.reason, result.detail)
        delta = result.accumulators_delta
        stored.status, stored.decided_at, stored.decided_by, stored.note = "SETTLED", now, by, note
        stored.policy_year = key[1]
        stored.accumulators_delta = {f: getattr(delta, f) for f in ACCUMULATOR_FIELDS}
        stored.medfee_sumamt_fen, stored.hifp_pay_fen, stored.hifmi_pay_fen = (result.medfee_sumamt, result.hifp_pay,
                                                                              result.hifmi_pay)
        stored.maf_pay_fen, stored.psn_part_amt_fen = result.maf_pay, result.psn_part_amt
        stored.result = self._settled_view(stored, result, person, catalogues.get(claim.treatment_pool))
        tx.update_manual_claim(stored)
        event = manual_claim_event(stored, result, person, engine_claim, now)
        tx.write(Changes(accumulators=[(claim.person_ref, before.plus(delta))],
                         outbox=[(claim.home_pool, self.codec.encode("ManualClaimSettled", event))]))

    # ------------------------------------------------------------------ what is answered

    def view(self, c: StoredClaim) -> dict:
        return {**c.result, "status": c.status, "decided_at": c.decided_at.isoformat() if c.decided_at else None,
                "decided_by": c.decided_by, "note": c.note}

    @staticmethod
    def _lodged_view(c: StoredClaim) -> dict:
        k = c.claim
        return {"claim_no": c.claim_no, "home_pool": c.home_pool, "lodged_by": c.lodged_by,
                "lodged_at": c.lodged_at.isoformat(), "reason": c.reason, "treatment_pool": c.treatment_pool,
                "hospital_code": c.hospital_code, "psn_no": c.person_id_masked, "med_type": k["med_type"],
                "begntime": k["begntime"], "endtime": k["endtime"],
                "medfee_sumamt": convention.fen_to_yuan(sum(int(l[3]) for l in k["lines"])), "lines": len(k["lines"])}

    def _settled_view(self, c: StoredClaim, s: Settlement, person: Person, catalogue) -> dict:
        y = convention.fen_to_yuan
        lines = [convention.line_split(l, catalogue.get(l.item_code) if catalogue else None) for l in s.lines]
        return {**self._lodged_view(c), "insutype": convention.INSUTYPE_CODES[person.insurance_type],
                "filing_status": s.filing_status.value if s.filing_status else "IN_POOL",
                "policy_version": s.policy_version, "catalogue_version": s.catalogue_version,
                "medfee_sumamt": y(s.medfee_sumamt), "fulamt_ownpay_amt": y(s.fulamt_ownpay_amt),
                "overlmt_selfpay": y(s.overlmt_amt), "preselfpay_amt": y(s.preselfpay_amt),
                "inscp_scp_amt": y(s.inscp_scp_amt), "act_pay_dedc": y(s.act_pay_dedc),
                "hifp_pay": y(s.hifp_pay), "hifmi_pay": y(s.hifmi_pay), "maf_pay": y(s.maf_pay),
                "fund_pay_sumamt": y(s.fund_pay_sumamt), "psn_part_amt": y(s.psn_part_amt),
                "paid_to_patient": y(s.fund_pay_sumamt), "detail": lines}

    # ------------------------------------------------------------------ the input

    def parse(self, actor: Actor, body: Any) -> ClaimIn:
        """The claim checked whole; every refused fee line is reported at once (`invalid_lines`)."""
        if not isinstance(body, dict):
            raise ClaimRefused(ClaimWhy.INVALID_CLAIM)
        try:
            convention.check_text(body, "claim", self.limits)
            claim_no = convention.code(body.get("claim_no"), "claim_no", self.limits)
        except convention.ConventionError as exc:
            raise ClaimRefused(exc.reason, exc.message) from None
        if len(claim_no) > MAX_CLAIM_NO:
            raise ClaimRefused(Why.INVALID_FIELD, f"claim_no: at most {MAX_CLAIM_NO} characters")
        home_pool = body.get("home_pool", actor.pool if actor.kind == "bureau" else None)
        if not isinstance(home_pool, str) or not _POOL.match(home_pool):
            raise ClaimRefused(Why.INVALID_FIELD, "home_pool: the insured's pool, 6 digits")
        if actor.kind == "bureau" and home_pool != actor.pool:
            raise ClaimRefused(ClaimWhy.CLAIM_OF_ANOTHER_POOL, f"{home_pool}, not {actor.pool}")
        treatment_pool = body.get("treatment_pool")
        if not isinstance(treatment_pool, str) or not _POOL.match(treatment_pool):
            raise ClaimRefused(Why.INVALID_FIELD, "treatment_pool: where the care was given, 6 digits")
        if treatment_pool == home_pool:
            raise ClaimRefused(ClaimWhy.NOT_OFF_SITE, treatment_pool)
        if actor.kind == "agency" and treatment_pool != actor.pool:
            raise ClaimRefused(ClaimWhy.CLAIM_OUTSIDE_AGENCY_REGION, f"{treatment_pool}, not {actor.pool}")
        psn_no = body.get("psn_no")
        if not isinstance(psn_no, str) or not 1 <= len(psn_no.strip()) <= self.limits.max_code_length:
            raise ClaimRefused(Why.INVALID_FIELD, "psn_no: the insured's person number")
        med_type = str(body.get("med_type", ""))
        if med_type not in convention.MED_TYPES:
            raise ClaimRefused(Why.INVALID_FIELD, f"med_type: one of {', '.join(sorted(convention.MED_TYPES))}")
        begn, end = convention.parse_day(body.get("begntime")), convention.parse_day(body.get("endtime"))
        if begn is None or end is None or end < begn:
            raise ClaimRefused(Why.INVALID_FIELD, "begntime, endtime: yyyy-MM-dd, the end not before the beginning")
        if end > self.clock().astimezone(SHANGHAI).date():
            raise ClaimRefused(Why.INVALID_FIELD, "endtime: a claim is for care that has ended")
        reason = body.get("reason")
        if not isinstance(reason, str) or reason not in REASONS:
            raise ClaimRefused(Why.INVALID_FIELD, f"reason: why it was not settled directly, one of {', '.join(REASONS)}")
        hospital_code, level, kind = self._hospital(body, treatment_pool)
        diagnoses = body.get("diagnoses") or []
        if not isinstance(diagnoses, list) or not all(isinstance(d, str) and d.strip() for d in diagnoses):
            raise ClaimRefused(Why.INVALID_FIELD, "diagnoses: a list of ICD-10 codes")
        accident = body.get("accident_injury", False)
        if not isinstance(accident, bool):
            raise ClaimRefused(Why.INVALID_FIELD, "accident_injury: true or false")
        lines = self._lines(body.get("feedetail"))
        digest = hashlib.sha256(json.dumps({"by": actor.name, "claim": body}, sort_keys=True, ensure_ascii=False,
                                           default=str).encode()).hexdigest()
        return ClaimIn(claim_no, home_pool, person_ref(self.person_key, psn_no), mask_person_id(psn_no.strip()), med_type,
                       treatment_pool, hospital_code, level, kind, begn, end, reason,
                       accident or med_type in convention.ACCIDENT_MED_TYPES,
                       tuple(dict.fromkeys(d.strip()[:32] for d in diagnoses)), lines, digest)

    def _hospital(self, body: dict, treatment_pool: str) -> tuple[str, str, str]:
        """(code, level, kind): a connected hospital's from the hub's registry, another's as sent."""
        code = body.get("hospital_code")
        if not isinstance(code, str) or not convention.is_code(code) or len(code) > self.limits.max_code_length:
            raise ClaimRefused(Why.INVALID_FIELD, "hospital_code: the treating hospital's code")
        known = self.hospitals.by_code.get(code)
        if known is not None:
            if known.pool != treatment_pool:
                raise ClaimRefused(ClaimWhy.HOSPITAL_REGION_MISMATCH, f"{code} is in {known.pool}, not {treatment_pool}")
            return code, known.level.value, known.kind.value
        lv = body.get("hosp_lv")
        level = convention.HOSP_LV.get(lv) if isinstance(lv, str) else None
        if level is None:
            raise ClaimRefused(Why.INVALID_FIELD, "hosp_lv: the hospital's level (the convention's 01-11, or 1, 2, 3, 3P)")
        return code, level, HospitalKind.GENERAL.value

    def _lines(self, feedetail: Any) -> tuple[tuple[str, str, int, int], ...]:
        """Every receipt line through the interface's one fee-line parser, each on its own, so
        that every refused line is named with its reason, not only the first."""
        if not isinstance(feedetail, list) or not feedetail:
            raise ClaimRefused(Why.INVALID_FIELD, "feedetail: the receipts' fee lines, a non-empty list")
        if len(feedetail) > self.limits.max_lines:
            raise ClaimRefused(Why.TOO_MANY_LINES, f"feedetail: at most {self.limits.max_lines} lines")
        refused, lines = [], []
        for n, raw in enumerate(feedetail):
            try:
                (line,) = convention.fee_lines([raw], self.limits)
            except convention.ConventionError as exc:
                refused.append({"line": n + 1, "reason": exc.code,
                                "message": exc.message.replace("feedetail.0", f"feedetail.{n}")})
                continue
            lines.append((line.med_list_codg, str(line.cnt), line.pric_fen, line.amount_fen))
        if refused:
            raise ClaimRefused(ClaimWhy.INVALID_LINES, f"{len(refused)} of {len(feedetail)} fee lines refused; nothing was "
                                                "kept — correct them and submit the claim again", lines=refused)
        if sum(l[3] for l in lines) > self.limits.max_bill_fen:
            raise ClaimRefused(Why.AMOUNT_TOO_LARGE, f"a claim of at most {convention.fen_to_yuan(self.limits.max_bill_fen)} yuan")
        return tuple(lines)


def manual_claim_event(c: StoredClaim, s: Settlement, person: Person, claim: Claim, now: datetime) -> dict:
    """The ManualClaimSettled record of a claim just priced."""
    return {
        "event_id": uuid.uuid4(), "event_time": now, "producer": PRODUCER, "schema_version": 1,
        "claim_no": c.claim_no, "home_pool": c.home_pool, "treatment_pool": c.treatment_pool,
        "hospital_code": c.hospital_code, "lodged_by": c.lodged_by, "reason": c.reason,
        "person_ref": c.person_ref, "person_id_masked": c.person_id_masked,
        "insurance_type": person.insurance_type.value, "visit_type": claim.visit_type.value,
        "filing_status": s.filing_status.value if s.filing_status else "IN_POOL",
        "begntime": claim.admission_date, "endtime": claim.discharge_date,
        "business_date": now.astimezone(SHANGHAI).date(), "settled_at": now,
        "medfee_sumamt_fen": s.medfee_sumamt, "hifp_pay_fen": s.hifp_pay, "hifmi_pay_fen": s.hifmi_pay,
        "maf_pay_fen": s.maf_pay, "fund_pay_sumamt_fen": s.fund_pay_sumamt, "psn_part_amt_fen": s.psn_part_amt,
        "policy_version": s.policy_version, "catalogue_version": s.catalogue_version,
    }
