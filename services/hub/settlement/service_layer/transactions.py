"""The hospital interface's transactions (DESIGN.md 2.1), each decided once, in memory, against
its group's `Batch`: open and cancel a visit, upload and cancel fee lines, pre-settle, settle,
reverse. Every one checks everything before it changes anything, so a refusal leaves nothing
behind but its remembered answer.

A group is read in two steps before any request is decided: what the requests name (`names`,
from their input alone), then what those rows lead to (`touches`: the people and the
person-years). Both are best-effort: a request whose input is wrong names nothing and is
refused when it is decided.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Mapping

from hub.messaging import AvroCodec
from hub.settlement.adapters.repository import FeeRow, Loaded, PersonYear, StoredAnswer, StoredSettlement, Visit
from hub.reference.catalogue import Catalogue
from hub.settlement.domain.engine import classify_line
from hub.settlement.domain.model import ACCUMULATOR_FIELDS, Accumulators, Claim, FeeLine, Person
from hub.settlement.domain.money import AmountError, yuan_to_fen
from hub.settlement.domain.refusals import Refusal, RefusalCode
from hub.settlement.service_layer import convention
from hub.settlement.service_layer.batch import Batch
from hub.settlement.service_layer.envelope import (
    ADMISSION_CHANGE,
    CANCEL_DISCHARGE,
    CANCEL_FEES,
    CANCEL_VISIT,
    DIAGNOSES,
    DISCHARGE,
    OPEN_VISIT,
    PRE_SETTLE,
    REVERSE,
    SEALED,
    SETTLE,
    SHANGHAI,
    UNDO,
    UNDOABLE,
    UPLOAD_FEES,
    Answer,
    Request,
    data_of,
    not_ready,
    refused,
    succeeded,
)
from hub.settlement.service_layer.events import settlement_completed_event, settlement_reversed_event
from hub.settlement.service_layer.identity import Hospital, mask_person_id, person_ref
from hub.settlement.service_layer.people import (CredentialError, PersonShown, check_credential, credential,
                                                 person_from_registration, shown)
from hub.settlement.service_layer.pricing import ReferenceCache, price_claim
from hub.settlement.service_layer import visit_data
from hub.settlement.service_layer.reasons import Why
from hub.privacy import Key

INPATIENT_MED_TYPES = frozenset({"21", "22", "24"})  # 2401 admits: a stay, an injury's, an emergency's
OUTPATIENT_MED_TYPES = frozenset({"11", "13", "14", "41"})  # 2201: outpatient, emergency, chronic, pharmacy
MAX_FEE_LINES_PER_UPLOAD = 2_000
EMPTY_CATALOGUE = Catalogue("", "", {})  # a pool without a catalogue: every line self-paid
DATA_NODE = {**dict.fromkeys(DISCHARGE, "dscginfo"), **dict.fromkeys(DIAGNOSES, "mdtrtinfo"),
             **dict.fromkeys(ADMISSION_CHANGE, "adminfo")}  # else `data`


@dataclass
class Touches:
    """What a group's requests need beyond the rows they name."""

    people: set[str] = field(default_factory=set)  # person_refs whose registration is read
    lock: set[PersonYear] = field(default_factory=set)  # accumulators changed: locked
    read: set[PersonYear] = field(default_factory=set)  # accumulators only looked at


class Transactions:
    def __init__(self, codec: AvroCodec, reference: ReferenceCache, person_key: Key,
                 read_model_ready: Callable[[], bool], limits: convention.Limits = convention.DEFAULT_LIMITS,
                 voucher_key: bytes = b""):
        self.codec = codec
        self.reference = reference
        self.person_key = person_key
        self.voucher_key = voucher_key
        self._decoded: dict[bytes, dict[str, Any]] = {}  # registration bytes -> decoded (bounded)
        self.read_model_ready = read_model_ready
        self.limits = limits
        by_kind = ((SETTLE, self.settle), (PRE_SETTLE, self.preview), (UPLOAD_FEES, self.upload_fees),
                   (OPEN_VISIT, self.open_visit), (CANCEL_FEES, self.cancel_fees), (CANCEL_VISIT, self.cancel_visit),
                   (REVERSE, self.reverse), (UNDO, self.undo), (DIAGNOSES, self.diagnoses),
                   (DISCHARGE, self.discharge), (CANCEL_DISCHARGE, self.cancel_discharge),
                   (ADMISSION_CHANGE, self.change_admission))
        self._by_infno: dict[str, Callable[[Batch, Request], dict]] = {
            infno: decide for kind, decide in by_kind for infno in kind}

    # ------------------------------------------------------------------ what a group reads

    def names(self, request: Request) -> tuple[str | None, str | None]:
        """The visit and the settlement a request names in its input (None where it names none)."""
        payload = request.payload
        if request.infno in UPLOAD_FEES:
            lines = payload.get("feedetail")
            first = lines[0] if isinstance(lines, list) and lines else None
            return (visit_data.text(first.get("mdtrt_id")) if isinstance(first, dict) else None), None
        data = payload.get(DATA_NODE.get(request.infno, "data"))
        if not isinstance(data, dict):
            return None, None
        if request.infno in REVERSE:
            return None, visit_data.text(data.get("setl_id"))
        if request.infno in OPEN_VISIT | UNDO:  # what a 2601 names comes from its original (`undone_names`)
            return None, None
        return visit_data.text(data.get("mdtrt_id")), None

    @staticmethod
    def undone_key(request: Request) -> tuple[str, str] | None:
        """The (hospital, msgid) a 2601 undoes."""
        data = request.payload.get("data")
        omsgid = data.get("omsgid") if isinstance(data, dict) else None
        return (request.hospital.code, omsgid) if isinstance(omsgid, str) else None

    @staticmethod
    def undone_names(original: StoredAnswer | None) -> tuple[str | None, str | None]:
        """The visit or settlement a remembered request made (from its answer)."""
        if original is None or original.infno not in UNDOABLE or not succeeded(original.response):
            return None, None
        output = original.response.get("output") or {}
        if original.infno in SETTLE:
            return None, visit_data.text((output.get("setlinfo") or {}).get("setl_id"))
        return visit_data.text((output.get("data") or output.get("result") or {}).get("mdtrt_id")), None

    def touches(self, request: Request, loaded: Loaded, into: Touches) -> None:
        """Add the people and person-years the request will read or change, as far as they can
        be told from its input and the rows loaded."""
        infno, data = request.infno, request.payload.get("data")
        data = data if isinstance(data, dict) else {}
        if infno in OPEN_VISIT:
            mdtrt = request.payload.get("mdtrtinfo")
            psn_no = (mdtrt if isinstance(mdtrt, dict) else data).get("psn_no")
            if isinstance(psn_no, str):
                into.people.add(person_ref(self.person_key, psn_no))
        elif infno in SETTLE | PRE_SETTLE:
            visit = loaded.visits.get(visit_data.text(data.get("mdtrt_id")) or "")
            if visit is not None:
                end_day = visit_data.end_day(data, visit) or visit.begntime
                into.people.add(visit.person_ref)
                (into.lock if infno in SETTLE else into.read).add((visit.person_ref, end_day.year))
        elif infno in REVERSE | UNDO:
            setl_id = data.get("setl_id") if infno in REVERSE else None
            if infno in UNDO and (key := self.undone_key(request)) is not None:
                setl_id = self.undone_names(loaded.originals.get(key))[1]
            settlement = loaded.settlements.get(visit_data.text(setl_id) or "")
            if settlement is not None:
                into.lock.add((settlement.person_ref, settlement.policy_year))

    # ------------------------------------------------------------------ deciding

    def decide(self, batch: Batch, request: Request) -> dict[str, Any]:
        """The transaction's output, its changes made to `batch`; or an Answer raised before any."""
        try:
            return self._by_infno[request.infno](batch, request)
        except convention.ConventionError as exc:
            raise Answer(exc.reason, exc.message) from None
        except CredentialError as exc:
            raise Answer(exc.reason, exc.message) from None

    def open_visit(self, batch: Batch, request: Request) -> dict:
        hospital, infno = request.hospital, request.infno
        data = data_of(request.payload, "mdtrtinfo") or data_of(request.payload, "data")
        med_type = str(data.get("med_type", "21" if infno == "2401" else "11"))
        allowed = INPATIENT_MED_TYPES if infno == "2401" else OUTPATIENT_MED_TYPES
        if med_type not in allowed:
            raise Answer(Why.INVALID_FIELD, f"med_type {med_type!r}: {infno} opens "
                         f"{'a stay' if infno == '2401' else 'an outpatient visit'}, one of {', '.join(sorted(allowed))}")
        begn = convention.parse_day(data.get("begntime"))
        if begn is None:
            raise Answer(Why.INVALID_FIELD, "begntime: yyyy-MM-dd HH:mm:ss")
        psn_no = self.person_number(data.get("psn_no"))
        ref, masked = person_ref(self.person_key, psn_no), mask_person_id(psn_no)
        person = self.person(batch.registrations, ref, begn)
        # The credential shown at registration must name this person (an e-voucher: and be current).
        check_credential(self.person_key, self.voucher_key, credential(data), self.registration(batch.registrations, ref),
                         request.now.timestamp(), check_expiry=True)
        insutype = str(data.get("insutype") or convention.INSUTYPE_CODES[person.insurance_type])
        mdtrt_id = f"M{hospital.code}{uuid.uuid4().hex[:16].upper()}"
        batch.add_visit(Visit(mdtrt_id, hospital.code, ref, masked, med_type, insutype, begn, "OPEN",
                              accident_injury=visit_data.accident(med_type, data),
                              diagnoses=visit_data.diagnosis_codes(data, request.payload)))
        answer = {"mdtrt_id": mdtrt_id, "psn_no": masked, "ipt_otp_no": str(data.get("ipt_otp_no") or "")}
        if infno == "2201":  # 挂号 answers in `data`, 入院办理 in `result`, as the convention has them
            return {"data": {**answer, "exp_content": ""}}
        return {"result": answer}

    def cancel_visit(self, batch: Batch, request: Request) -> dict:
        visit = self.own_visit(batch, request.hospital, data_of(request.payload).get("mdtrt_id"))
        if visit.status == "SETTLED":
            raise Answer(Why.VISIT_ALREADY_SETTLED, "reverse the settlement before cancelling the visit")
        batch.set_visit_status(visit, "CANCELLED")
        return {"result": {"mdtrt_id": visit.mdtrt_id, "status": "CANCELLED"}}

    def diagnoses(self, batch: Batch, request: Request) -> dict:
        """2203: an outpatient visit's diagnoses (`diseinfo`, and the 病种 `dise_codg`), and its
        medical type where `mdtrtinfo` names one (a chronic-disease visit is 14). The rules use the
        codes: 冠县's chronic diseases sharing the inpatient cap, 九江's hypertension tier."""
        data = data_of(request.payload, "mdtrtinfo")
        visit = self.open_visit_of(batch, request.hospital, data.get("mdtrt_id"))
        visit_data.check_diagnoses(request.payload, required=True)
        med_type = data.get("med_type")
        if med_type is not None and str(med_type) not in OUTPATIENT_MED_TYPES:
            raise Answer(Why.INVALID_FIELD, f"med_type {med_type!r}: 2203 describes an outpatient visit, one of "
                                            f"{', '.join(sorted(OUTPATIENT_MED_TYPES))}")
        if med_type is not None and visit.med_type not in OUTPATIENT_MED_TYPES:
            raise Answer(Why.INVALID_FIELD, "2203 describes an outpatient visit (2201); a stay's diagnoses come with 2402")
        batch.set_visit_diagnoses(visit, visit_data.diagnosis_codes(data, request.payload),
                                  str(med_type) if med_type is not None else None)
        return {}

    def discharge(self, batch: Batch, request: Request) -> dict:
        """2402: a stay's discharge; its `endtime` is the bill's last day unless the settlement says otherwise."""
        data = data_of(request.payload, "dscginfo")
        visit = self.open_visit_of(batch, request.hospital, data.get("mdtrt_id"))
        if visit.med_type not in INPATIENT_MED_TYPES:
            raise Answer(Why.INVALID_FIELD, "2402 discharges a stay (2401); an outpatient visit is settled directly")
        end = convention.parse_day(data.get("endtime"))
        if end is None or end < visit.begntime:
            raise Answer(Why.INVALID_FIELD, "endtime: yyyy-MM-dd HH:mm:ss, not before the stay began")
        visit_data.check_diagnoses(request.payload)
        batch.set_visit_end(visit, end)
        codes = visit_data.diagnosis_codes(data, request.payload)
        if codes:
            batch.set_visit_diagnoses(visit, " ".join(dict.fromkeys([*visit.diagnoses.split(), *codes.split()])))
        return {}

    def change_admission(self, batch: Batch, request: Request) -> dict:
        """2403 入院信息变更: an open stay's medical type (21, 22, 24) and diagnoses, as the HIS
        corrects them before settling. Its admission day stays (cancel with 2404 and admit anew)."""
        data = data_of(request.payload, "adminfo")
        visit = self.open_visit_of(batch, request.hospital, data.get("mdtrt_id"), settled=Why.VISIT_ALREADY_SETTLED)
        if visit.med_type not in INPATIENT_MED_TYPES:
            raise Answer(Why.INVALID_FIELD, "mdtrt_id: 2403 changes a stay (2401); an outpatient visit's is 2203")
        med_type = data.get("med_type")
        if med_type not in (None, "") and str(med_type) not in INPATIENT_MED_TYPES:
            raise Answer(Why.INVALID_FIELD, f"med_type {med_type!r}: a stay is one of {', '.join(sorted(INPATIENT_MED_TYPES))}")
        if med_type not in (None, "") and "22" in {str(med_type), visit.med_type} and str(med_type) != visit.med_type:
            raise Answer(Why.INVALID_FIELD, "med_type: an injury's stay (22) is admitted as one (cancel with 2404, admit anew)")
        begn = convention.parse_day(data.get("begntime")) if data.get("begntime") else None
        if begn is not None and begn != visit.begntime:
            raise Answer(Why.INVALID_FIELD, "begntime: the admission day does not change (cancel with 2404 and admit anew)")
        visit_data.check_diagnoses(request.payload)
        codes = visit_data.diagnosis_codes(data, request.payload)
        batch.set_visit_diagnoses(visit, codes or visit.diagnoses, str(med_type) if med_type not in (None, "") else None)
        return {}

    def cancel_discharge(self, batch: Batch, request: Request) -> dict:
        """2405: the discharge taken back (the stay goes on); not once the stay is settled."""
        visit = self.open_visit_of(batch, request.hospital, data_of(request.payload).get("mdtrt_id"),
                                   settled=Why.VISIT_ALREADY_SETTLED)
        batch.set_visit_end(visit, None)
        return {}

    def upload_fees(self, batch: Batch, request: Request) -> dict:
        lines = request.payload.get("feedetail")
        if not isinstance(lines, list) or not 1 <= len(lines) <= MAX_FEE_LINES_PER_UPLOAD:
            raise Answer(Why.INVALID_FIELD, f"feedetail: 1 to {MAX_FEE_LINES_PER_UPLOAD} fee lines")
        ids = {visit_data.text(l.get("mdtrt_id")) if isinstance(l, dict) else None for l in lines}
        if len(ids) != 1 or None in ids:
            raise Answer(Why.INVALID_FIELD, "feedetail: every line names the same mdtrt_id (a string)")
        checked = convention.fee_lines(lines, self.limits)
        visit = self.open_visit_of(batch, request.hospital, ids.pop())
        catalogue = self.reference.current()[1].get(request.hospital.pool)
        result = []
        for n, f in enumerate(checked):
            sn = f.feedetl_sn or str(n + 1)
            batch.put_fee(FeeRow(visit.mdtrt_id, sn, f.med_list_codg, f.cnt, f.pric_fen, f.amount_fen))
            result.append(self.split(catalogue, FeeLine(n + 1, f.med_list_codg, f.cnt, f.pric_fen, f.amount_fen), sn))
        return {"result": result}

    @staticmethod
    def split(catalogue: Catalogue | None, line: FeeLine, sn: str) -> dict:
        """A fee line's split as the upload answers it (the catalogue's classes; no policy yet)."""
        catalogue = catalogue or EMPTY_CATALOGUE
        priced = classify_line(line, catalogue)
        return {**convention.line_split(priced, catalogue.get(line.item_code)), "feedetl_sn": sn, "cnt": str(line.quantity),
                "pric": convention.fen_to_yuan(line.unit_price_fen), "lmt_used_flag": "0"}

    def cancel_fees(self, batch: Batch, request: Request) -> dict:
        data = data_of(request.payload)
        visit = self.open_visit_of(batch, request.hospital, data.get("mdtrt_id"))
        sn = str(data.get("feedetl_sn", "0000"))
        chosen = list(visit.fees) if sn == "0000" else [sn]  # "0000": the convention's "all lines"
        deleted = sum(batch.delete_fee(visit.mdtrt_id, s) for s in chosen)
        return {"result": {"mdtrt_id": visit.mdtrt_id, "cancelled_lines": deleted}}

    def preview(self, batch: Batch, request: Request) -> dict:
        """Pre-settlement (2206/2303): the settlement as it would be now; nothing changes."""
        visit, claim, person, key, holder = self._priceable(batch, request)
        result = self.price(claim, person, batch.accumulators(key))
        return visit_data.sealed(convention.settlement_output(result, claim, self.context(request, visit, person, holder, None)),
                       holder)

    def settle(self, batch: Batch, request: Request) -> dict:
        visit, claim, person, key, holder = self._priceable(batch, request)
        result = self.price(claim, person, batch.accumulators(key))
        hospital, now, msgid = request.hospital, request.now, request.msgid
        setl_id = f"S{hospital.code}{uuid.uuid4().hex[:16].upper()}"
        output = visit_data.sealed(convention.settlement_output(result, claim, self.context(request, visit, person, holder, setl_id)),
                         holder)
        business_date = now.astimezone(SHANGHAI).date()
        delta = result.accumulators_delta
        batch.set_accumulators(key, batch.accumulators(key).plus(delta))
        batch.set_visit_status(visit, "SETTLED", claim.discharge_date)
        batch.add_settlement(StoredSettlement(
            setl_id, visit.mdtrt_id, msgid, hospital.code, visit.person_ref, visit.person_id_masked,
            person.home_pool, hospital.pool, key[1], business_date, now, result.medfee_sumamt, result.hifp_pay,
            result.hifmi_pay, result.maf_pay, result.psn_part_amt,
            {f: getattr(delta, f) for f in ACCUMULATOR_FIELDS},
            {k: output[k] for k in ("setlinfo", "setldetail", SEALED) if k in output}))
        event = settlement_completed_event(result, claim, person, hospital, visit, setl_id, msgid, business_date, now)
        batch.emit(person.home_pool, self.codec.encode("SettlementCompleted", event, check=False))
        return output

    def reverse(self, batch: Batch, request: Request) -> dict:
        setl_id = data_of(request.payload).get("setl_id")
        if not isinstance(setl_id, str):
            raise Answer(Why.INVALID_FIELD, "setl_id: the settlement to reverse")
        row = batch.settlement(setl_id)
        if row is None:
            raise Answer(Why.SETTLEMENT_NOT_FOUND, f"setl_id: no settlement {setl_id}")
        if row.hospital_code != request.hospital.code:
            raise Answer(Why.SETTLEMENT_OF_ANOTHER_HOSPITAL, "setl_id: a hospital reverses only its own settlements")
        if row.status == "REVERSED":
            raise Answer(Why.SETTLEMENT_ALREADY_REVERSED, f"{setl_id} was reversed at {row.reversed_at.isoformat()}")
        return self._reverse_settlement(batch, request, row)

    def _reverse_settlement(self, batch: Batch, request: Request, row: StoredSettlement) -> dict:
        """Take a standing settlement back: accumulators, the visit open again, the event."""
        hospital, now = request.hospital, request.now
        key = (row.person_ref, row.policy_year)
        delta = Accumulators(year=row.policy_year, **row.accumulators_delta)
        batch.set_accumulators(key, batch.accumulators(key).plus(delta, sign=-1))
        reversal_id = f"R{hospital.code}{uuid.uuid4().hex[:16].upper()}"
        batch.reverse_settlement(row, now, request.msgid, reversal_id)
        # The visit is open again: the hospital may correct the fee details and settle anew.
        batch.set_visit_status(batch.visits[row.mdtrt_id], "OPEN")
        event = settlement_reversed_event(row, reversal_id, request.msgid, hospital,
                                          now.astimezone(SHANGHAI).date(), now)
        batch.emit(row.home_pool, self.codec.encode("SettlementReversed", event))
        return visit_data.reversal_output(row, reversal_id, now)

    def undo(self, batch: Batch, request: Request) -> dict:
        """2601 冲正: undo the request `omsgid` (of type `oinfno`) whose answer the hospital never
        received. A settlement is reversed, an opened visit cancelled; a request that never
        arrived is remembered as undone, so if it arrives late it changes nothing. From now on
        `omsgid` answers `transaction_undone`. Asked again, 2601 answers the same."""
        data = data_of(request.payload)
        omsgid, oinfno = data.get("omsgid"), data.get("oinfno")
        if not isinstance(omsgid, str) or not convention.is_code(omsgid) or len(omsgid) > self.limits.max_code_length:
            raise Answer(Why.INVALID_FIELD, "omsgid: the msgid of the transaction to undo")
        if oinfno not in UNDOABLE:
            raise Answer(Why.NOT_UNDOABLE, f"oinfno {oinfno!r}: one of {', '.join(sorted(UNDOABLE))}")
        key = (request.hospital.code, omsgid)
        original = batch.originals.get(key)
        if original is not None and original.infno != oinfno:
            raise Answer(Why.INVALID_FIELD, f"omsgid {omsgid} was a {original.infno}, not a {oinfno}")
        undone = self._undo_effect(batch, request, original)
        if original is None or original.response.get("err_code") != Why.TRANSACTION_UNDONE.code:
            body = refused(Why.TRANSACTION_UNDONE, f"undone by 2601 msgid {request.msgid}", request.now).body
            batch.undone(key, oinfno, body)
        return {"hub_undo": {"omsgid": omsgid, "oinfno": oinfno, "undone": undone}}

    def _undo_effect(self, batch: Batch, request: Request, original: StoredAnswer | None) -> str:
        """What undoing the original changes (checked before anything is changed)."""
        if original is None:
            return "nothing: the transaction never arrived, and will change nothing if it does"
        visit_id, setl_id = self.undone_names(original)
        if setl_id is not None:
            row = batch.settlement(setl_id)
            if row is None or row.status != "SETTLED":
                return f"nothing: settlement {setl_id} is already reversed"
            reversal = self._reverse_settlement(batch, request, row)
            return f"settlement {setl_id} reversed by {reversal['hub_reversal']['reversal_id']}"
        if visit_id is not None:
            visit = batch.visit(visit_id)
            if visit is not None and visit.status == "SETTLED":
                raise Answer(Why.VISIT_ALREADY_SETTLED, "undo (or reverse) the visit's settlement first")
            if visit is not None and visit.status == "OPEN":
                batch.set_visit_status(visit, "CANCELLED")
                return f"visit {visit_id} cancelled"
            return f"nothing: visit {visit_id} is not open"
        return "nothing: the transaction was refused, or already undone"

    # ------------------------------------------------------------------ shared steps

    def context(self, request: Request, visit: Visit, person: Person, holder: PersonShown,
                setl_id: str | None) -> convention.SettlementContext:
        data = data_of(request.payload)
        return convention.SettlementContext(
            visit.mdtrt_id, {**holder.masked(), "psn_no": visit.person_id_masked}, person.insurance_type, setl_id,
            request.msgid,
            request.now.astimezone(SHANGHAI), request.hospital.pool, str(data.get("mdtrt_cert_type") or ""),
            visit.med_type)

    def open_visit_of(self, batch: Batch, hospital: Hospital, mdtrt_id: Any, settled: Why = Why.VISIT_NOT_OPEN) -> Visit:
        """The hospital's visit (`own_visit`), still open; a settled one answers `settled`."""
        visit = self.own_visit(batch, hospital, mdtrt_id)
        if visit.status != "OPEN":
            raise Answer(settled if visit.status == "SETTLED" else Why.VISIT_NOT_OPEN, f"mdtrt_id: the visit is {visit.status}")
        return visit

    def person_number(self, value: Any) -> str:
        """A psn_no (or the id a hospital looks a person up by) as the hub takes it."""
        if not isinstance(value, str) or not 1 <= len(value) <= self.limits.max_code_length:
            raise Answer(Why.INVALID_FIELD, "psn_no: the person's number or id")
        return value

    def own_visit(self, batch: Batch, hospital: Hospital, mdtrt_id: Any) -> Visit:
        """The visit, if it exists and belongs to the asking hospital; else the answer why not."""
        if not isinstance(mdtrt_id, str):
            raise Answer(Why.INVALID_FIELD, "mdtrt_id: the visit id the hub returned")
        visit = batch.visit(mdtrt_id)
        if visit is None:
            raise Answer(Why.VISIT_NOT_FOUND, f"mdtrt_id: no visit {mdtrt_id}")
        if visit.hospital_code != hospital.code:
            raise Answer(Why.VISIT_OF_ANOTHER_HOSPITAL, "mdtrt_id: this visit belongs to another hospital")
        return visit

    def _priceable(self, batch: Batch, request: Request) -> tuple[Visit, Claim, Person, PersonYear, PersonShown]:
        """An open visit of the hospital's, its claim, the person, the person-year to price
        against, and the person as the answer names them. A psn_no or credential the request
        sends must name the visit's person (an e-voucher's expiry counts at registration only)."""
        data = data_of(request.payload)
        visit = self.open_visit_of(batch, request.hospital, data.get("mdtrt_id"), settled=Why.VISIT_ALREADY_SETTLED)
        psn_no = data.get("psn_no")
        if psn_no not in (None, "") and (not isinstance(psn_no, str) or person_ref(self.person_key, psn_no) != visit.person_ref):
            raise Answer(Why.CREDENTIAL_MISMATCH, "psn_no: not the person of this visit")
        claim = self.claim(request.hospital, visit, data)
        person = self.person(batch.registrations, visit.person_ref, claim.service_date)
        value = self.registration(batch.registrations, visit.person_ref)
        check_credential(self.person_key, self.voucher_key, credential(data), value, request.now.timestamp(),
                         check_expiry=False)
        holder = shown(value, self.person_key, claim.service_date)
        return visit, claim, person, (visit.person_ref, claim.service_date.year), holder

    def claim(self, hospital: Hospital, visit: Visit, data: dict) -> Claim:
        """The visit's claim: its fee lines (in feedetl_sn order), checked once more as a bill."""
        if not visit.fees:
            raise Answer(RefusalCode.CLAIM_INVALID, "no fee details uploaded for this visit")
        end_day = visit_data.end_day(data, visit)
        if end_day is None or end_day < visit.begntime:
            raise Answer(Why.INVALID_FIELD, "endtime: yyyy-MM-dd HH:mm:ss, not before the visit began")
        lines = tuple(FeeLine(n, f.med_list_codg, f.cnt, f.pric_fen, f.amount_fen)
                      for n, f in enumerate((visit.fees[sn] for sn in sorted(visit.fees)), 1))
        total = sum(l.amount_fen for l in lines)
        if total > self.limits.max_bill_fen:  # uploads add up across calls
            raise Answer(Why.AMOUNT_TOO_LARGE, "the visit's fee lines add up to more than "
                                               f"{convention.fen_to_yuan(self.limits.max_bill_fen)} yuan")
        claimed = data.get("medfee_sumamt")
        if claimed is not None:
            try:
                if yuan_to_fen(claimed, "medfee_sumamt") != total:
                    raise Answer(Why.AMOUNT_MISMATCH, "medfee_sumamt is not the sum of the uploaded fee details")
            except AmountError as exc:
                raise Answer(Why.INVALID_AMOUNT, str(exc)) from None
        return Claim(convention.MED_TYPES[visit.med_type], hospital.level, hospital.pool, visit.begntime, end_day,
                     lines, visit.accident_injury, tuple(visit.diagnoses.split()), hospital.kind,
                     emergency_admission=visit.med_type in convention.EMERGENCY_ADMISSION_MED_TYPES)

    def person(self, registrations: Mapping[str, bytes], ref: str, day: date) -> Person:
        """The enrolled person from the read model's bytes — or why not: not enrolled, or the read
        model is rebuilding (then nothing is decided, and nothing remembered)."""
        value = self.registration(registrations, ref)
        person = person_from_registration(value, day) if value else None
        if person is None:
            if not self.read_model_ready():
                raise not_ready()
            raise Answer(RefusalCode.PERSON_NOT_ENROLLED, "psn_no: the hub has no enrolment for this person")
        return person

    def registration(self, registrations: Mapping[str, bytes], ref: str) -> dict[str, Any] | None:
        """The person's registration as the read model holds it, decoded (once per group)."""
        raw = registrations.get(ref)
        if raw is None:
            return None
        decoded = self._decoded.get(raw)
        if decoded is None:
            if len(self._decoded) > 4096:
                self._decoded.clear()
            decoded = self._decoded[raw] = self.codec.decode(raw).value
        return decoded

    def price(self, claim: Claim, person: Person, accumulators: Accumulators):
        policies, catalogues = self.reference.current()
        result = price_claim(claim, person, policies, catalogues, accumulators)
        if isinstance(result, Refusal):
            raise Answer(result.reason, result.detail)
        return result
