"""What the funds pay after the basic fund, on the compliant out-of-pocket (DESIGN.md section 4,
steps 5 and after): serious-illness insurance (大病保险) on the year's cumulative compliant
out-of-pocket, medical assistance (医疗救助) on what is left, and a special population's limit on
its out-of-pocket and floor on what the funds pay (READINGS.md 29, 34). Pure: no I/O."""

from __future__ import annotations

from hub.reference.policy import Policy, SegmentBasis, SeriousIllness, SpecialPopulation
from hub.settlement.domain.model import Accumulators, Claim, Person
from hub.settlement.domain.money import BP, apply_bp, div_half_up


def serious_illness(si: SeriousIllness | None, claim: Claim, person: Person, acc: Accumulators, compliant: int,
                    above_cap: int) -> tuple[int, int]:
    """Step 5: (what serious illness pays, the compliant out-of-pocket it counts this year). Paid at
    the counter where the home policy says so (off-site too, or in the home pool, or for a manual
    claim); a special population's threshold, segments or lifted cap replace the ordinary ones."""
    if si is None or claim.visit_type.value not in si.applies_to or not si.at_counter or not (
            si.off_site_at_counter or claim.treatment_pool == person.home_pool or claim.manual):
        return 0, 0
    threshold, segments, no_cap = si.threshold, si.segments, False
    for p in pops_with_override(si, person):
        override = si.special_populations[p]
        threshold = override.threshold if override.threshold is not None else threshold
        segments = override.segments if override.segments is not None else segments
        no_cap = no_cap or override.no_cap
        break
    ordinary = compliant - above_cap if si.above_basic_cap_ratio is not None else compliant
    owed = (_serious_due(si, threshold, segments, acc.serious_compliant_oop + ordinary)
            - _serious_due(si, threshold, segments, acc.serious_compliant_oop))
    if si.above_basic_cap_ratio is not None:
        owed += apply_bp(above_cap, si.above_basic_cap_ratio)
    cap = None if no_cap or si.annual_cap is None else si.annual_cap + max(
        (inc.extra for inc in si.cap_increments if person.continuous_years >= inc.min_continuous_years), default=0)
    return (owed if cap is None else max(0, min(owed, cap - acc.serious_paid))), ordinary


def medical_assistance(policy: Policy, pop_rules: list, claim: Claim, person: Person, acc: Accumulators,
                       compliant: int, hifp: int, hifmi: int, scope: int, medfee: int) -> int:
    """What medical assistance pays: its ratio of what is left of the compliant out-of-pocket for
    the populations it covers (within its annual cap), topped up to a special population's limit on
    its out-of-pocket of the in-scope amount, then to its floor on what the funds pay of the bill."""
    maf = 0
    ma = policy.medical_assistance
    if ma is not None and person.special_populations & set(ma.eligible):
        maf = apply_bp(max(0, compliant - hifmi), ma.ratio)
        if ma.annual_cap is not None:
            maf = max(0, min(maf, ma.annual_cap - acc.assistance_paid))
    here = [r for r in pop_rules if not r.oop_limit_in_home_pool_only or claim.treatment_pool == person.home_pool]
    limits = [r.max_compliant_oop_pct for r in here if r.max_compliant_oop_pct is not None]
    if limits:
        maf += max(0, scope - hifp - hifmi - maf - apply_bp(scope, min(limits)))
    floors = [r.min_actual_reimbursement_pct for r in here if r.min_actual_reimbursement_pct is not None]
    if floors:
        maf += max(0, apply_bp(medfee, max(floors)) - hifp - hifmi - maf)
    return maf


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


def pops_with_override(si: SeriousIllness, person: Person) -> list[SpecialPopulation]:
    return sorted((p for p in person.special_populations if p in si.special_populations), key=lambda p: p.value)
