"""The rules engine: one claim, settled with the treatment region's catalogue and the home
region's policy (DESIGN.md section 4). Pure: no I/O, no clock, no randomness.

    settle(claim, person, policy, catalogue, accumulators) -> Settlement | Refusal

Every step's figure is returned in the Settlement. Where DESIGN.md leaves a choice open, the
reading taken is in `reference/READINGS.md` under the same step number as the comments here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from hub.reference.catalogue import Catalogue, ItemClass, OverCapRule
from hub.reference.policy import (
    FilingStatus,
    Level,
    OffSiteRule,
    Outpatient,
    OutpatientTier,
    Policy,
)
from hub.settlement.domain.model import (
    Accumulators,
    Claim,
    FeeLine,
    LineResult,
    Person,
    Settlement,
    VisitType,
)
from hub.settlement.domain.money import BP, apply_bp, div_half_up
from hub.settlement.domain.refusals import Refusal, RefusalCode
from hub.settlement.domain.supplementary import medical_assistance, serious_illness

MAX_LINES = 2_000


class SettlementImbalance(RuntimeError):
    """A computed settlement that does not add up: a bug, never sent to a hospital."""


def select_policy(policies: list[Policy], person: Person, day: date) -> Policy | Refusal:
    """The home policy of the person's pool and insurance type in force on `day`."""
    of_pool = [p for p in policies if p.pool_code == person.home_pool and p.insurance_type == person.insurance_type]
    if not of_pool:
        return Refusal(RefusalCode.UNKNOWN_HOME_REGION, f"{person.home_pool} {person.insurance_type.value}")
    in_force = [p for p in of_pool if p.in_force_on(day)]
    if not in_force:
        return Refusal(RefusalCode.POLICY_NOT_IN_FORCE, f"{person.home_pool} on {day.isoformat()}")
    # Overlapping versions: the one that took effect last wins (a correction supersedes).
    return max(in_force, key=lambda p: (p.effective_from, p.policy_version))


# --------------------------------------------------------------------------- filing status


@dataclass(frozen=True)
class FilingDecision:
    status: FilingStatus | None  # None: care inside the home pool
    filing_id: str | None
    expired_filing_id: str | None = None


_STATUS_PREFERENCE = (FilingStatus.REGISTERED, FilingStatus.REFERRAL, FilingStatus.EMERGENCY, FilingStatus.TEMPORARY)


def target_matches(target_pool: str, treatment_pool: str) -> bool:
    """A filing names a pool, or a whole province by its code ending in 0000."""
    if target_pool == treatment_pool:
        return True
    return target_pool.endswith("0000") and target_pool[:2] == treatment_pool[:2]


def decide_filing(person: Person, claim: Claim) -> FilingDecision:
    """Step 3's filing status. A filing counts when it targets the treatment region, is not
    revoked, started on or before discharge (filed before discharge is settled directly) and
    had not ended before admission. Emergency care — an emergency visit, or a stay admitted from
    the emergency room — is treated as filed."""
    if claim.treatment_pool == person.home_pool:
        return FilingDecision(None, None)
    matching = [f for f in person.filings if not f.revoked and target_matches(f.target_pool, claim.treatment_pool)]
    valid = [
        f for f in matching
        if f.valid_from <= claim.discharge_date and (f.valid_to is None or f.valid_to >= claim.admission_date)
    ]
    if valid:
        best = min(valid, key=lambda f: (_STATUS_PREFERENCE.index(f.filing_type.status), f.filing_id))
        return FilingDecision(best.filing_type.status, best.filing_id)
    if claim.visit_type is VisitType.EMERGENCY or claim.emergency_admission:
        return FilingDecision(FilingStatus.EMERGENCY, None)
    expired = [f for f in matching if f.valid_to is not None and f.valid_to < claim.admission_date]
    return FilingDecision(FilingStatus.UNREGISTERED, None, max(expired, key=lambda f: f.valid_to).filing_id if expired else None)


# --------------------------------------------------------------------------- step 1: lines


def classify_line(line: FeeLine, catalogue: Catalogue) -> LineResult:
    item = catalogue.get(line.item_code)
    a = line.amount_fen
    if item is None or item.item_class is ItemClass.BING:
        return LineResult(line.line_no, line.item_code, "03", a, a, 0, 0, 0, 0, False)
    over = 0
    if item.price_cap_fen is not None:
        allowed = int((item.price_cap_fen * line.quantity).to_integral_value(rounding="ROUND_HALF_UP"))
        over = max(0, a - allowed)
    overlmt, absorbed = (over, 0) if item.over_cap_rule is OverCapRule.SELF_PAY else (0, over)
    amount = a - absorbed
    base = amount - overlmt
    pre = apply_bp(base, item.self_pay_first_bp) if item.item_class is ItemClass.YI else 0
    level = "01" if item.item_class is ItemClass.JIA else "02"
    return LineResult(line.line_no, line.item_code, level, amount, 0, overlmt, absorbed, pre, base - pre,
                      item.essential_drug)


# --------------------------------------------------------------------------- the engine


def _check_claim(claim: Claim) -> Refusal | None:
    if not claim.lines:
        return Refusal(RefusalCode.CLAIM_INVALID, "no fee lines")
    if len(claim.lines) > MAX_LINES:
        return Refusal(RefusalCode.CLAIM_INVALID, f"more than {MAX_LINES} fee lines")
    if claim.discharge_date < claim.admission_date:
        return Refusal(RefusalCode.CLAIM_INVALID, "discharge date before admission date")
    if any(line.amount_fen < 0 or line.unit_price_fen < 0 for line in claim.lines):
        return Refusal(RefusalCode.CLAIM_INVALID, "negative amounts")
    return None


def _accident_outpatient(policy: Policy, claim: Claim, person: Person) -> bool:
    """Whether the accident outpatient rules settle this visit (READINGS.md 30)."""
    rules = policy.accident_outpatient
    return (rules is not None and claim.accident_injury and claim.visit_type.is_general_outpatient
            and bool(person.special_populations & set(rules.populations)))


def _outpatient_rules(policy: Policy, visit_type: VisitType, accident: bool = False) -> Outpatient | None:
    if accident:
        return policy.accident_outpatient
    if visit_type.is_general_outpatient:  # an emergency visit too (READINGS.md 15)
        return policy.general_outpatient
    if visit_type is VisitType.CHRONIC_OUTPATIENT:
        return policy.chronic_outpatient
    return None


def _product_bp(amount_fen: int, *factors_bp: int) -> int:
    """amount × f1 × f2 × ..., each factor in basis points, rounded half-up once at the end."""
    numerator, denominator = amount_fen, 1
    for factor in factors_bp:
        numerator *= factor
        denominator *= BP
    return div_half_up(numerator, denominator)


def _clamp_bp(value: int) -> int:
    return max(0, min(BP, value))


def _adjust_ratio(ratio: int, level: Level, rule: OffSiteRule, pop_points: int) -> int:
    """Step 3: off-site override, minus points, share of the ratio, then special-population points."""
    override = rule.ratio_for(level)
    if override is not None:
        ratio = override
    ratio -= rule.ratio_minus_points
    if rule.ratio_share_pct is not None:
        ratio = apply_bp(_clamp_bp(ratio), rule.ratio_share_pct)
    return _clamp_bp(ratio + pop_points)


def settle(claim: Claim, person: Person, policy: Policy, catalogue: Catalogue, acc: Accumulators) -> Settlement | Refusal:
    """Settle one claim. Returns a Settlement whose figures add up to the fen, or a Refusal."""
    admitted = _admit(claim, person, policy)
    if isinstance(admitted, Refusal):
        return admitted
    filing, accident_outpatient, outpatient = admitted
    rule = policy.off_site.rule(filing.status) if filing.status is not None else OffSiteRule()
    pops = sorted(person.special_populations & set(policy.special_populations), key=lambda p: p.value)
    pop_rules = [policy.special_populations[p] for p in pops]
    level = claim.hospital_level

    # Step 1: classify every line by the treatment catalogue.
    lines = tuple(classify_line(line, catalogue) for line in claim.lines)
    # Outpatient tiers and fixed payments (READINGS.md 32): which in-scope lines the ratio pays.
    tier, fixed, aside = None, 0, set()
    if outpatient is not None:
        tier = outpatient.tier_for(level, claim.hospital_kind, claim.diagnoses)
        fixed, aside = _fixed_and_aside(claim, lines, catalogue, outpatient, tier)
    a = _amounts(lines, aside, rule)

    # Step 2b: the deductible; step 3: the ratio.
    deductible_due = _deductible(claim, policy, rule, pop_rules, acc, outpatient, accident_outpatient)
    dedc = min(a.eligible, deductible_due)
    ratio, ratio_essential = _ratios(claim, policy, rule, pop_rules, tier, outpatient)
    # The deductible is met from the non-essential eligible amount first, then from essential drugs.
    after_other = max(0, a.eligible_other - dedc)
    after_essential = a.eligible_essential - max(0, dedc - a.eligible_other)
    payable = after_other + after_essential
    fund_before_cap = div_half_up(after_other * ratio + after_essential * ratio_essential, BP) + fixed

    # Step 4: the annual cap of the fund that pays this visit type.
    cap_remaining, shares_inpatient, own_cap = _cap_remaining(claim, policy, acc, outpatient, accident_outpatient)
    hifp = fund_before_cap if cap_remaining is None else min(fund_before_cap, cap_remaining)
    # Compliant out-of-pocket: deductible, coinsurance, and the part above the basic cap.
    above_cap = payable - div_half_up(payable * hifp, fund_before_cap) if hifp < fund_before_cap else 0
    compliant = a.eligible + a.set_aside - hifp
    if policy.serious_illness is not None and policy.serious_illness.includes_self_pay_first:
        compliant += a.pre + a.offsite_first

    # Step 5 and after: serious-illness insurance, medical assistance, special populations' limits.
    hifmi, serious_oop = serious_illness(policy.serious_illness, claim, person, acc, compliant, above_cap)
    maf = medical_assistance(policy, pop_rules, claim, person, acc, compliant, hifp, hifmi, a.scope, a.medfee)

    # Step 6: the patient pays the rest; the year's accumulators move.
    delta = _delta(claim, policy, acc, hifp, dedc, accident_outpatient, shares_inpatient, own_cap,
                   serious_oop, hifmi, maf)
    result = Settlement(
        policy_version=policy.policy_version, catalogue_version=catalogue.catalogue_version,
        filing_status=filing.status, filing_id=filing.filing_id, lines=lines, medfee_sumamt=a.medfee,
        fulamt_ownpay_amt=a.fulamt, overlmt_amt=a.overlmt, hospital_absorbed_amt=a.absorbed, preselfpay_amt=a.pre,
        inscp_scp_amt=a.scope, offsite_selfpay_first_amt=a.offsite_first, deductible_due=deductible_due,
        act_pay_dedc=dedc, pool_ratio_bp=ratio, essential_drug_ratio_bp=ratio_essential,
        fund_before_cap=fund_before_cap, basic_cap_remaining=cap_remaining, hifp_pay=hifp, compliant_oop=compliant,
        compliant_oop_above_basic_cap=above_cap, hifmi_pay=hifmi, maf_pay=maf, fund_pay_sumamt=hifp + hifmi + maf,
        psn_part_amt=a.medfee - hifp - hifmi - maf, accumulators_delta=delta)
    check_balanced(result)
    return result


def _admit(claim: Claim, person: Person, policy: Policy) -> tuple[FilingDecision, bool, Outpatient | None] | Refusal:
    """Whether the claim is settled at all (the claim, the policy, the enrolment, the filing, the
    visit type), in the order of precedence; if so: the filing decision, whether the accident
    outpatient rules apply, and the outpatient rules that do."""
    invalid = _check_claim(claim)
    if invalid:
        return invalid
    day = claim.service_date
    if not policy.in_force_on(day):
        return Refusal(RefusalCode.POLICY_NOT_IN_FORCE, f"{policy.policy_version} on {day.isoformat()}")
    if person.enrolled_from > claim.admission_date or (person.enrolled_to is not None and person.enrolled_to < claim.admission_date):
        return Refusal(RefusalCode.PERSON_NOT_ENROLLED, f"enrolment {person.enrolled_from}..{person.enrolled_to or ''}")
    if person.benefits_from > claim.admission_date:
        return Refusal(RefusalCode.ENROLMENT_IN_WAITING_PERIOD, f"benefits from {person.benefits_from.isoformat()}")
    filing = decide_filing(person, claim)
    if (filing.status is FilingStatus.UNREGISTERED and not policy.off_site.unregistered_settles_directly
            and not claim.manual):
        if filing.expired_filing_id:
            return Refusal(RefusalCode.FILING_EXPIRED, f"filing {filing.expired_filing_id}")
        return Refusal(RefusalCode.FILING_REQUIRED, f"no filing for {claim.treatment_pool}")
    accident_outpatient = _accident_outpatient(policy, claim, person)
    outpatient = _outpatient_rules(policy, claim.visit_type, accident_outpatient)
    if not claim.visit_type.is_stay:
        if outpatient is None:  # not covered anywhere, the home pool included: the visit type is the cause
            return Refusal(RefusalCode.VISIT_TYPE_NOT_COVERED, f"{policy.policy_version} has no {claim.visit_type.value} rules")
        if filing.status is not None and filing.status not in outpatient.off_site_statuses:
            return Refusal(RefusalCode.VISIT_TYPE_NOT_COVERED_OFF_SITE, f"{claim.visit_type.value} with filing status {filing.status.value}")
    return filing, accident_outpatient, outpatient


class _Amounts(NamedTuple):
    medfee: int
    fulamt: int
    overlmt: int
    absorbed: int
    pre: int
    scope: int
    set_aside: int  # in scope, but not paid by the ratio (fixed payments, lines outside the tier)
    offsite_first: int
    eligible_other: int
    eligible_essential: int

    @property
    def eligible(self) -> int:
        return self.eligible_other + self.eligible_essential


def _amounts(lines: tuple[LineResult, ...], aside: set[int], rule: OffSiteRule) -> _Amounts:
    """The bill's totals by class, and step 2a: an off-site self-pay-first share comes off the
    eligible amount (what the ratio pays, essential drugs apart) before the deductible."""
    scope = sum(l.inscp_scp_amt for l in lines)
    rated = [l for l in lines if l.line_no not in aside]
    scope_essential = sum(l.inscp_scp_amt for l in rated if l.essential_drug)
    scope_other = sum(l.inscp_scp_amt for l in rated) - scope_essential
    first_other = apply_bp(scope_other, rule.self_pay_first_pct)
    first_essential = apply_bp(scope_essential, rule.self_pay_first_pct)
    return _Amounts(sum(l.amount_fen for l in lines), sum(l.fulamt_ownpay_amt for l in lines),
                    sum(l.overlmt_amt for l in lines), sum(l.hospital_absorbed_amt for l in lines),
                    sum(l.preselfpay_amt for l in lines), scope, scope - scope_essential - scope_other,
                    first_other + first_essential, scope_other - first_other, scope_essential - first_essential)


def _deductible(claim: Claim, policy: Policy, rule: OffSiteRule, pop_rules: list, acc: Accumulators,
                outpatient: Outpatient | None, accident_outpatient: bool) -> int:
    """Step 2b: the deductible due. A stay's: the off-site rule's (else the policy's) by level, times
    the admission's share, the off-site multiplier and the lowest special-population multiplier; an
    outpatient visit's: what is left of its fund's annual deductible."""
    if claim.visit_type.is_stay:
        base = rule.deductible_for(claim.hospital_level)
        if base is None:
            base = policy.inpatient.deductible_for(claim.hospital_level)
        shares = policy.inpatient.admission_deductible_pct
        factors = [shares[min(acc.admissions, len(shares) - 1)]]
        if rule.deductible_multiplier_pct is not None:
            factors.append(rule.deductible_multiplier_pct)
        pop_pcts = [r.deductible_multiplier_pct for r in pop_rules if r.deductible_multiplier_pct is not None]
        if pop_pcts:
            factors.append(min(pop_pcts))
        return _product_bp(base, *factors)
    met = (acc.accident_outpatient_deductible_met if accident_outpatient
           else acc.general_outpatient_deductible_met if claim.visit_type.is_general_outpatient
           else acc.chronic_deductible_met)
    return max(0, outpatient.annual_deductible - met)


def _ratios(claim: Claim, policy: Policy, rule: OffSiteRule, pop_rules: list, tier: OutpatientTier | None,
            outpatient: Outpatient | None) -> tuple[int, int]:
    """Step 3: the ratio the fund pays, and the ratio for essential drugs."""
    level = claim.hospital_level
    if claim.visit_type.is_stay:
        ratio = policy.inpatient.ratio_for(level)
        ratio_essential = policy.inpatient.essential_drug_ratio_by_level.get(level, ratio)
        if claim.accident_injury and policy.accident_injury is not None:
            ratio = ratio_essential = policy.accident_injury.ratio
    else:
        ratio = ratio_essential = tier.ratio if tier is not None else outpatient.ratio
    pop_points = max((r.ratio_plus_points for r in pop_rules), default=0)
    return _adjust_ratio(ratio, level, rule, pop_points), _adjust_ratio(ratio_essential, level, rule, pop_points)


def _cap_remaining(claim: Claim, policy: Policy, acc: Accumulators, outpatient: Outpatient | None,
                   accident_outpatient: bool) -> tuple[int | None, bool, bool]:
    """Step 4: what is left of the annual caps that bound this visit's fund (None: no cap), whether
    it shares the inpatient cap, and whether it counts toward its own. A chronic disease that shares
    the inpatient cap is bounded by it instead of its visit type's own (READINGS.md 33)."""
    shares_inpatient = outpatient is not None and outpatient.shares_inpatient_cap(claim.diagnoses)
    own_cap = outpatient is not None and (outpatient.counts_toward_inpatient_cap or not shares_inpatient)
    remaining: list[int] = []
    if (claim.visit_type.is_stay or shares_inpatient) and policy.inpatient.annual_cap is not None:
        remaining.append(policy.inpatient.annual_cap - acc.inpatient_fund_paid)
    if claim.visit_type.is_stay and claim.accident_injury and policy.accident_injury is not None:
        if policy.accident_injury.annual_cap is not None:
            remaining.append(policy.accident_injury.annual_cap - acc.accident_fund_paid)
    if own_cap and outpatient.annual_cap is not None:
        paid = (acc.accident_outpatient_fund_paid if accident_outpatient
                else acc.general_outpatient_fund_paid if claim.visit_type.is_general_outpatient
                else acc.chronic_fund_paid)
        remaining.append(outpatient.annual_cap - paid)
    return (max(0, min(remaining)) if remaining else None), shares_inpatient, own_cap


def _delta(claim: Claim, policy: Policy, acc: Accumulators, hifp: int, dedc: int, accident_outpatient: bool,
           shares_inpatient: bool, own_cap: bool, serious_oop: int, hifmi: int, maf: int) -> Accumulators:
    """The year's accumulators this settlement moves."""
    delta = _with(Accumulators(year=acc.year), serious_compliant_oop=serious_oop, serious_paid=hifmi,
                  assistance_paid=maf)
    if claim.visit_type.is_stay:
        delta = _with(delta, admissions=1)
    if claim.visit_type.is_stay or shares_inpatient:
        delta = _with(delta, inpatient_fund_paid=hifp)
    if claim.visit_type.is_stay and claim.accident_injury and policy.accident_injury is not None:
        delta = _with(delta, accident_fund_paid=hifp)
    if accident_outpatient:
        delta = _with(delta, accident_outpatient_fund_paid=hifp, accident_outpatient_deductible_met=dedc)
    elif claim.visit_type.is_general_outpatient:
        delta = _with(delta, general_outpatient_fund_paid=hifp, general_outpatient_deductible_met=dedc)
    elif claim.visit_type is VisitType.CHRONIC_OUTPATIENT:
        delta = _with(delta, chronic_fund_paid=hifp if own_cap else 0, chronic_deductible_met=dedc)
    return delta


def _fixed_and_aside(claim: Claim, lines: tuple[LineResult, ...], catalogue: Catalogue, outpatient: Outpatient,
                     tier: OutpatientTier | None) -> tuple[int, set[int]]:
    """The fund's fixed payments (定额支付) on the lines that have one, and the line numbers the
    ratio does not pay: those lines, and in-scope lines outside the tier's items."""
    fixed, aside = 0, set()
    for line, result in zip(claim.lines, lines):
        if not result.inscp_scp_amt:
            continue
        item = catalogue.get(line.item_code)
        codes = (line.item_code, item.item_code, item.former_code) if item is not None else (line.item_code,)
        unit = outpatient.fixed_payment(codes, claim.hospital_level)
        if unit is not None:
            fixed += min(result.inscp_scp_amt, int((unit * line.quantity).to_integral_value(rounding="ROUND_HALF_UP")))
            aside.add(result.line_no)
        elif tier is not None and not tier.covers(codes[1] if item is not None else line.item_code):
            aside.add(result.line_no)
    return fixed, aside


def _with(acc: Accumulators, **increments: int) -> Accumulators:
    values = {k: getattr(acc, k) + v for k, v in increments.items()}
    return Accumulators(**{**acc.__dict__, **values})


def check_balanced(s: Settlement) -> None:
    """The money invariants of one settlement; a violation is a bug and stops the settlement."""
    problems = []
    if s.hifp_pay + s.hifmi_pay + s.maf_pay + s.psn_part_amt != s.medfee_sumamt:
        problems.append("fund + serious illness + assistance + personal != total")
    if s.fulamt_ownpay_amt + s.overlmt_amt + s.preselfpay_amt + s.inscp_scp_amt != s.medfee_sumamt:
        problems.append("line portions do not add up to the total")
    if min(s.hifp_pay, s.hifmi_pay, s.maf_pay, s.psn_part_amt) < 0:
        problems.append("a negative share")
    if s.hifp_pay > s.inscp_scp_amt - s.act_pay_dedc:
        problems.append("the fund pays more than the eligible amount above the deductible")
    if problems:
        raise SettlementImbalance("; ".join(problems) + f" in {s}")
