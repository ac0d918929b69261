"""The rules engine: one claim, settled with the treatment region's catalogue and the home
region's policy (DESIGN.md section 4). Pure: no I/O, no clock, no randomness.

    settle(claim, person, policy, catalogue, accumulators) -> Settlement | Refusal

Every step's figure is returned in the Settlement. Where DESIGN.md leaves a choice open, the
reading taken is in `reference/READINGS.md` under the same step number as the comments here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from hub.reference.catalogue import Catalogue, ItemClass, OverCapRule
from hub.reference.policy import (
    FilingStatus,
    Level,
    OffSiteRule,
    Outpatient,
    OutpatientTier,
    Policy,
    SegmentBasis,
    SeriousIllness,
    SpecialPopulation,
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


def _serious_due(si_rules: SeriousIllness, threshold: int, segments, cumulative: int) -> int:
    """Step 5: what serious illness owes in total on a year's cumulative compliant out-of-pocket."""
    numerator = 0
    for seg in segments:
        if si_rules.segment_basis is SegmentBasis.ABOVE_THRESHOLD:
            x = max(0, cumulative - threshold)
            lo, hi = seg.lower, seg.upper
        else:
            x = cumulative
            lo, hi = max(seg.lower, threshold), seg.upper
        top = x if hi is None else min(x, hi)
        if top > lo:
            numerator += (top - lo) * seg.ratio
    return div_half_up(numerator, BP)


def settle(claim: Claim, person: Person, policy: Policy, catalogue: Catalogue, acc: Accumulators) -> Settlement | Refusal:
    """Settle one claim. Returns a Settlement whose figures add up to the fen, or a Refusal."""
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

    rule = policy.off_site.rule(filing.status) if filing.status is not None else OffSiteRule()
    pops = sorted(person.special_populations & set(policy.special_populations), key=lambda p: p.value)
    pop_rules = [policy.special_populations[p] for p in pops]

    # Step 1: classify every line by the treatment catalogue.
    lines = tuple(classify_line(line, catalogue) for line in claim.lines)
    medfee = sum(l.amount_fen for l in lines)
    fulamt = sum(l.fulamt_ownpay_amt for l in lines)
    overlmt = sum(l.overlmt_amt for l in lines)
    absorbed = sum(l.hospital_absorbed_amt for l in lines)
    pre = sum(l.preselfpay_amt for l in lines)
    scope = sum(l.inscp_scp_amt for l in lines)
    level = claim.hospital_level

    # Outpatient tiers and fixed payments (READINGS.md 32): which in-scope lines the ratio pays.
    tier, fixed, aside = None, 0, set()
    if outpatient is not None:
        tier = outpatient.tier_for(level, claim.hospital_kind, claim.diagnoses)
        fixed, aside = _fixed_and_aside(claim, lines, catalogue, outpatient, tier)
    rated = [l for l in lines if l.line_no not in aside]
    scope_essential = sum(l.inscp_scp_amt for l in rated if l.essential_drug)
    scope_other = sum(l.inscp_scp_amt for l in rated) - scope_essential
    set_aside = scope - scope_essential - scope_other

    # Step 2a: an off-site self-pay-first share comes off the eligible amount before the deductible.
    first_other = apply_bp(scope_other, rule.self_pay_first_pct)
    first_essential = apply_bp(scope_essential, rule.self_pay_first_pct)
    offsite_first = first_other + first_essential
    eligible_other, eligible_essential = scope_other - first_other, scope_essential - first_essential
    eligible = eligible_other + eligible_essential
    delta = Accumulators(year=acc.year)
    pop_deductible_pcts = [r.deductible_multiplier_pct for r in pop_rules if r.deductible_multiplier_pct is not None]
    pop_points = max((r.ratio_plus_points for r in pop_rules), default=0)

    # Step 2b: the deductible.
    if claim.visit_type.is_stay:
        base = rule.deductible_for(level)
        if base is None:
            base = policy.inpatient.deductible_for(level)
        shares = policy.inpatient.admission_deductible_pct
        admission_share = shares[min(acc.admissions, len(shares) - 1)]
        factors = [admission_share]
        if rule.deductible_multiplier_pct is not None:
            factors.append(rule.deductible_multiplier_pct)
        if pop_deductible_pcts:
            factors.append(min(pop_deductible_pcts))
        deductible_due = _product_bp(base, *factors)
        delta = _with(delta, admissions=1)
    else:
        met = (acc.accident_outpatient_deductible_met if accident_outpatient
               else acc.general_outpatient_deductible_met if claim.visit_type.is_general_outpatient
               else acc.chronic_deductible_met)
        deductible_due = max(0, outpatient.annual_deductible - met)
    dedc = min(eligible, deductible_due)

    # Step 3: the ratio.
    if claim.visit_type.is_stay:
        ratio = policy.inpatient.ratio_for(level)
        ratio_essential = policy.inpatient.essential_drug_ratio_by_level.get(level, ratio)
        if claim.accident_injury and policy.accident_injury is not None:
            ratio = ratio_essential = policy.accident_injury.ratio
    else:
        ratio = ratio_essential = tier.ratio if tier is not None else outpatient.ratio
    ratio = _adjust_ratio(ratio, level, rule, pop_points)
    ratio_essential = _adjust_ratio(ratio_essential, level, rule, pop_points)

    # The deductible is met from the non-essential eligible amount first, then from essential drugs.
    after_other = max(0, eligible_other - dedc)
    after_essential = eligible_essential - max(0, dedc - eligible_other)
    payable = after_other + after_essential
    fund_before_cap = div_half_up(after_other * ratio + after_essential * ratio_essential, BP) + fixed

    # Step 4: the annual cap of the fund that pays this visit type. A chronic disease that shares
    # the inpatient cap is bounded by it instead of its visit type's own (READINGS.md 33).
    shares_inpatient = outpatient is not None and outpatient.shares_inpatient_cap(claim.diagnoses)
    own_cap = outpatient is not None and (outpatient.counts_toward_inpatient_cap or not shares_inpatient)
    remaining: list[int] = []
    if claim.visit_type.is_stay or shares_inpatient:
        if policy.inpatient.annual_cap is not None:
            remaining.append(policy.inpatient.annual_cap - acc.inpatient_fund_paid)
    if claim.visit_type.is_stay and claim.accident_injury and policy.accident_injury is not None:
        if policy.accident_injury.annual_cap is not None:
            remaining.append(policy.accident_injury.annual_cap - acc.accident_fund_paid)
    if own_cap and outpatient.annual_cap is not None:
        paid = (acc.accident_outpatient_fund_paid if accident_outpatient
                else acc.general_outpatient_fund_paid if claim.visit_type.is_general_outpatient
                else acc.chronic_fund_paid)
        remaining.append(outpatient.annual_cap - paid)
    cap_remaining = max(0, min(remaining)) if remaining else None
    hifp = fund_before_cap if cap_remaining is None else min(fund_before_cap, cap_remaining)

    # Compliant out-of-pocket: deductible, coinsurance, and the part above the basic cap.
    above_cap = 0
    if hifp < fund_before_cap:
        covered = div_half_up(payable * hifp, fund_before_cap)
        above_cap = payable - covered
    compliant = eligible + set_aside - hifp
    si = policy.serious_illness
    if si is not None and si.includes_self_pay_first:
        compliant += pre + offsite_first

    # Step 5: serious-illness insurance on the year's cumulative compliant out-of-pocket.
    hifmi = 0
    if si is not None and claim.visit_type.value in si.applies_to and si.at_counter and (
            si.off_site_at_counter or claim.treatment_pool == person.home_pool or claim.manual):
        threshold, segments, no_cap = si.threshold, si.segments, False
        for p in pops_with_override(si, person):
            override = si.special_populations[p]
            threshold = override.threshold if override.threshold is not None else threshold
            segments = override.segments if override.segments is not None else segments
            no_cap = no_cap or override.no_cap
            break
        ordinary = compliant - above_cap if si.above_basic_cap_ratio is not None else compliant
        due_before = _serious_due(si, threshold, segments, acc.serious_compliant_oop)
        due_after = _serious_due(si, threshold, segments, acc.serious_compliant_oop + ordinary)
        owed = due_after - due_before
        if si.above_basic_cap_ratio is not None:
            owed += apply_bp(above_cap, si.above_basic_cap_ratio)
        cap = None if no_cap or si.annual_cap is None else si.annual_cap + max(
            (inc.extra for inc in si.cap_increments if person.continuous_years >= inc.min_continuous_years), default=0
        )
        hifmi = owed if cap is None else max(0, min(owed, cap - acc.serious_paid))
        delta = _with(delta, serious_compliant_oop=ordinary, serious_paid=hifmi)

    # Medical assistance on what is left of the compliant out-of-pocket.
    maf = 0
    ma = policy.medical_assistance
    if ma is not None and person.special_populations & set(ma.eligible):
        left = max(0, compliant - hifmi)
        maf = apply_bp(left, ma.ratio)
        if ma.annual_cap is not None:
            maf = max(0, min(maf, ma.annual_cap - acc.assistance_paid))
        delta = _with(delta, assistance_paid=maf)

    # A special population's out-of-pocket limit on the in-scope amount (READINGS.md 29).
    limits = [r.max_compliant_oop_pct for r in pop_rules if r.max_compliant_oop_pct is not None
              and (not r.oop_limit_in_home_pool_only or claim.treatment_pool == person.home_pool)]
    if limits:
        top_up = max(0, scope - hifp - hifmi - maf - apply_bp(scope, min(limits)))
        if top_up:
            maf += top_up
            delta = _with(delta, assistance_paid=top_up)
    # A special population's floor on what the funds pay of the whole bill (READINGS.md 34).
    floors = [r.min_actual_reimbursement_pct for r in pop_rules if r.min_actual_reimbursement_pct is not None
              and (not r.oop_limit_in_home_pool_only or claim.treatment_pool == person.home_pool)]
    if floors:
        top_up = max(0, apply_bp(medfee, max(floors)) - hifp - hifmi - maf)
        if top_up:
            maf += top_up
            delta = _with(delta, assistance_paid=top_up)

    # Step 6: the patient pays the rest.
    psn = medfee - hifp - hifmi - maf
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

    result = Settlement(
        policy_version=policy.policy_version,
        catalogue_version=catalogue.catalogue_version,
        filing_status=filing.status,
        filing_id=filing.filing_id,
        lines=lines,
        medfee_sumamt=medfee,
        fulamt_ownpay_amt=fulamt,
        overlmt_amt=overlmt,
        hospital_absorbed_amt=absorbed,
        preselfpay_amt=pre,
        inscp_scp_amt=scope,
        offsite_selfpay_first_amt=offsite_first,
        deductible_due=deductible_due,
        act_pay_dedc=dedc,
        pool_ratio_bp=ratio,
        essential_drug_ratio_bp=ratio_essential,
        fund_before_cap=fund_before_cap,
        basic_cap_remaining=cap_remaining,
        hifp_pay=hifp,
        compliant_oop=compliant,
        compliant_oop_above_basic_cap=above_cap,
        hifmi_pay=hifmi,
        maf_pay=maf,
        fund_pay_sumamt=hifp + hifmi + maf,
        psn_part_amt=psn,
        accumulators_delta=delta,
    )
    check_balanced(result)
    return result


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


def pops_with_override(si: SeriousIllness, person: Person) -> list[SpecialPopulation]:
    return sorted((p for p in person.special_populations if p in si.special_populations), key=lambda p: p.value)


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
