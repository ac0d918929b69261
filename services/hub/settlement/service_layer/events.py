"""One builder per event record the service publishes (schemas in schemas/avro)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from hub.settlement.adapters.repository import StoredSettlement, Visit
from hub.settlement.domain.model import Claim, Person, Settlement
from hub.settlement.service_layer.convention import INSUTYPES
from hub.settlement.service_layer.identity import Hospital

PRODUCER = "settle-at-treatment"


def settlement_completed_event(result: Settlement, claim: Claim, person: Person, hospital: Hospital, visit: Visit,
                               setl_id: str, msgid: str, business_date: date, now: datetime) -> dict:
    """The SettlementCompleted record of a settlement just decided."""
    return {
        "event_id": uuid.uuid4(), "event_time": now, "producer": PRODUCER, "schema_version": 2,
        "settlement_id": setl_id, "msgid": msgid, "visit_id": visit.mdtrt_id, "hospital_code": hospital.code,
        "hospital_level": {"1": 1, "2": 2, "3": 3, "3P": 3}[hospital.level.value],
        "treatment_pool": hospital.pool, "home_pool": person.home_pool, "person_ref": person.person_ref,
        "person_id_masked": visit.person_id_masked, "insurance_type": person.insurance_type.value,
        "visit_type": claim.visit_type.value,
        "filing_status": result.filing_status.value if result.filing_status else "IN_POOL",
        "business_date": business_date, "settled_at": now,
        "medfee_sumamt_fen": result.medfee_sumamt, "fulamt_ownpay_amt_fen": result.fulamt_ownpay_amt,
        "overlmt_amt_fen": result.overlmt_amt, "preselfpay_amt_fen": result.preselfpay_amt,
        "inscp_scp_amt_fen": result.inscp_scp_amt, "act_pay_dedc_fen": result.act_pay_dedc,
        "hifp_pay_fen": result.hifp_pay, "hifmi_pay_fen": result.hifmi_pay, "maf_pay_fen": result.maf_pay,
        "fund_pay_sumamt_fen": result.fund_pay_sumamt, "psn_part_amt_fen": result.psn_part_amt,
        "pool_ratio_bp": result.pool_ratio_bp, "policy_version": result.policy_version,
        "catalogue_version": result.catalogue_version,
        "begntime": claim.admission_date, "endtime": claim.discharge_date,
    }


def settlement_reversed_event(row: StoredSettlement, reversal_id: str, msgid: str, hospital: Hospital, business_date: date,
                              now: datetime) -> dict:
    """The SettlementReversed record of a standing settlement's row: its amounts, taken back."""
    return {
        "event_id": uuid.uuid4(), "event_time": now, "producer": PRODUCER, "schema_version": 2,
        "reversal_id": reversal_id, "settlement_id": row.setl_id, "msgid": msgid, "hospital_code": hospital.code,
        "treatment_pool": row.treatment_pool, "home_pool": row.home_pool, "person_ref": row.person_ref,
        "person_id_masked": row.person_id_masked, "business_date": business_date,
        "original_business_date": row.business_date, "reversed_at": now,
        "medfee_sumamt_fen": row.medfee_sumamt_fen, "hifp_pay_fen": row.hifp_pay_fen,
        "hifmi_pay_fen": row.hifmi_pay_fen, "maf_pay_fen": row.maf_pay_fen,
        "fund_pay_sumamt_fen": row.hifp_pay_fen + row.hifmi_pay_fen + row.maf_pay_fen,
        "psn_part_amt_fen": row.psn_part_amt_fen,
        "insurance_type": INSUTYPES[row.output["setlinfo"]["insutype"]].value,
    }
