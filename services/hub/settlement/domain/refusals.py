"""Why a claim is not settled: data, not exceptions. Ordered by precedence: when several
apply, the first in this list is the one answered."""

from __future__ import annotations

from hub.rejections import Reason, Refusal

__all__ = ["RefusalCode", "Refusal"]


class RefusalCode(Reason):
    CLAIM_INVALID = ("claim_invalid", "The claim is malformed")
    UNKNOWN_HOME_REGION = ("unknown_home_region", "No policy of the home region is known to the hub")
    POLICY_NOT_IN_FORCE = ("policy_not_in_force", "The home region has no policy in force on the service date")
    UNKNOWN_TREATMENT_REGION = ("unknown_treatment_region", "No catalogue of the treatment region is known to the hub")
    PERSON_NOT_ENROLLED = ("person_not_enrolled", "The person is not enrolled in the home region on the service date")
    ENROLMENT_IN_WAITING_PERIOD = ("enrolment_in_waiting_period", "The person's enrolment is still in its waiting period")
    FILING_EXPIRED = ("filing_expired", "The person's off-site filing for this region has expired, and the home region settles no unfiled care directly")
    FILING_REQUIRED = ("filing_required", "The home region settles off-site care directly only with a filing for this region")
    VISIT_TYPE_NOT_COVERED = ("visit_type_not_covered", "The home region's policy does not cover this visit type")
    VISIT_TYPE_NOT_COVERED_OFF_SITE = ("visit_type_not_covered_off_site", "The home region does not cover this visit type off-site for this filing status")
