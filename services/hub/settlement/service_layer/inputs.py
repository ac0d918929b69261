"""The hospital interface's input, declared: for each transaction, the nodes it reads and the kind
of every field the hub uses. A request is checked against its declaration at the edge, before
anything is decided: a field of the wrong kind (a list where a code goes, an integer past any
count, a date that is not one) is refused with a stable reason naming the field, and nothing
else reaches the service layer. Fields a HIS sends that the hub does not use pass through
untouched (their characters are checked by `convention.check_text`).

Pydantic, not msgspec: its models already serve the preview's edge (`convention.MdtrtIn`), it is
among the project's chosen packages, and its Rust core validates a request in microseconds; the
JSON itself is parsed once by the gateway (`parse_body`), so a second decoder would not remove a
parse. Every field is optional here: whether a transaction needs a field, and what its value
means, is the service layer's to say (it names the field as well).

The kinds, as public HIS code sends them (Java maps serialise numbers as numbers):
- code: an identifier or code (msgid-like, med_type, psn_no): text of printable ASCII without
  spaces, or a whole number (read as its digits); "" allowed (many HIS send empty optionals).
- text: a name or description: text of at most 500 characters, or a whole number.
- token: a credential (e-voucher token, card number): text of at most 2,048 characters.
- time: "yyyy-MM-dd" or "yyyy-MM-dd HH:mm:ss" (or "").
- amount: yuan, a decimal string or JSON number with at most 2 decimals (never a binary float).
- quantity: a decimal string or JSON number (the fee-line parser bounds it).
- count: a whole number from 0 to 10^9 (or its digits as text).
- flag: "0"/"1", 0/1, true/false (or "").
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, create_model
from pydantic_core import PydanticCustomError

from hub.money import AmountError, yuan_to_fen
from hub.settlement.service_layer.convention import ConventionError, is_code, parse_day
from hub.settlement.service_layer.reasons import Why

MAX_CODE = 64
MAX_TEXT = 500
MAX_TOKEN = 2048
MAX_COUNT = 10**9
MAX_FILE_TEXT = 8 * 1024 * 1024  # 9101's base64 (the body is bounded at 8 MiB too)
_WHOLE = (int,)


def _refuse(reason: str, what: str):
    return PydanticCustomError(reason, what)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _code(value: Any) -> str:
    if _whole(value) and abs(value) < 10**18:
        return str(value)
    if isinstance(value, str) and (value == "" or (len(value) <= MAX_CODE and is_code(value))):
        return value
    raise _refuse("invalid_field", f"a code: up to {MAX_CODE} letters, digits or punctuation, no spaces")


def _text(limit: int):
    def check(value: Any) -> str:
        if _whole(value) and abs(value) < 10**18:
            return str(value)
        if isinstance(value, str) and len(value) <= limit:
            return value
        raise _refuse("invalid_field", f"text of at most {limit} characters")
    return check


def _time(value: Any) -> str:
    if isinstance(value, str) and len(value) <= 32 and (value == "" or parse_day(value) is not None):
        return value
    raise _refuse("invalid_field", "a date, yyyy-MM-dd or yyyy-MM-dd HH:mm:ss")


def _amount(value: Any) -> Any:
    if value == "":
        return value
    try:
        yuan_to_fen(value, "amount")
    except AmountError as exc:
        raise _refuse("invalid_amount", str(exc).removeprefix("amount: ")) from None
    return value


def _quantity(value: Any) -> Any:
    if isinstance(value, (str, Decimal)) or _whole(value):
        if isinstance(value, str) and len(value) > 32:
            raise _refuse("invalid_field", "a quantity: a decimal number")
        return value
    raise _refuse("invalid_field", "a quantity: a decimal string or number, not a binary float")


def _count(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 10:
        value = int(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value() and abs(value) <= MAX_COUNT:
        value = int(value)
    if _whole(value) and 0 <= value <= MAX_COUNT:
        return value
    raise _refuse("invalid_field", f"a whole number from 0 to {MAX_COUNT}")


def _flag(value: Any) -> Any:
    if value in ("", "0", "1", "true", "false") or isinstance(value, bool) or value in (0, 1):
        return value
    raise _refuse("invalid_field", "a flag: 0 or 1")


def _kind(check) -> Any:
    return Annotated[Any, BeforeValidator(check)]


KINDS: dict[str, Any] = {
    "code": _kind(_code), "text": _kind(_text(MAX_TEXT)), "token": _kind(_text(MAX_TOKEN)), "time": _kind(_time),
    "amount": _kind(_amount), "quantity": _kind(_quantity), "count": _kind(_count), "flag": _kind(_flag),
    "file": _kind(lambda v: v if isinstance(v, list) else _text(MAX_FILE_TEXT)(v)),  # 9101: base64, or byte values
}


class _Node(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


def _node(name: str, **fields: str) -> type[_Node]:
    """An input node (an object) whose named fields have these kinds; any other field passes."""
    return create_model(name, __base__=_Node, **{f: (KINDS[k] | None, None) for f, k in fields.items()})


def _listed(node: type[_Node], most: int) -> Any:
    def check(value: Any) -> Any:
        if not isinstance(value, list):
            raise _refuse("invalid_input", "a list")
        if len(value) > most:
            raise _refuse("invalid_field", f"at most {most} entries")
        return value
    return Annotated[list[node], BeforeValidator(check)]


PERSON = dict(psn_no="code", psn_cert_type="code", certno="code", psn_name="text", insutype="code")
CREDENTIAL = dict(mdtrt_cert_type="code", mdtrt_cert_no="token", card_sn="text")
VISIT = dict(mdtrt_id="code", ipt_otp_no="text", ipt_no="text")
DiseInfo = _node("DiseInfo", diag_code="text", diag_name="text", diag_type="code", diag_srt_no="code",
                 diag_time="time", vali_flag="flag")
FeeDetail = _node("FeeDetail", feedetl_sn="code", mdtrt_id="code", psn_no="code", med_list_codg="code",
                  medins_list_codg="text", det_item_fee_sumamt="amount", cnt="quantity", pric="quantity",
                  fee_ocur_time="time", chrg_bchno="text")
OpenVisit = _node("OpenVisit", **PERSON, **CREDENTIAL, **VISIT, med_type="code", begntime="time", dise_codg="text",
                  trum_flag="flag", rel_ttp_flag="flag", accident_injury="flag")
Diagnoses = _node("Diagnoses", **PERSON, **VISIT, med_type="code", begntime="time", dise_codg="text")
Discharge = _node("Discharge", **PERSON, **VISIT, endtime="time", dscg_maindiag_code="text", dscg_way="code")
OfVisit = _node("OfVisit", **PERSON, **VISIT, feedetl_sn="code", chrg_bchno="text")
Settle = _node("Settle", **PERSON, **CREDENTIAL, **VISIT, med_type="code", medfee_sumamt="amount", endtime="time",
               enddate="time", psn_setlway="code", acct_used_flag="flag", mid_setl_flag="flag", chrg_bchno="text")
OfSettlement = _node("OfSettlement", **PERSON, **VISIT, setl_id="code")
Undo = _node("Undo", **PERSON, omsgid="code", oinfno="code")
Lookup = _node("Lookup", **PERSON, **CREDENTIAL, begntime="time")
Accumulated = _node("Accumulated", **PERSON, cum_ym="code")
TOTALS = dict(insutype="code", clr_type="code", setl_optins="code", stmt_begndate="time", stmt_enddate="time",
              medfee_sumamt="amount", fund_pay_sumamt="amount", acct_pay="amount", cash_payamt="amount",
              fixmedins_setl_cnt="count", refd_setl_flag="flag", file_qury_no="code")
Totals = _node("Totals", **TOTALS)
DetailRow = _node("DetailRow", setl_id="code", mdtrt_id="code", psn_no="code", medfee_sumamt="amount",
                  fund_pay_sumamt="amount", acct_pay="amount", refd_setl_flag="flag")
Signing = _node("Signing", opter_no="text", mac="text", ip="text", sign_no="text")
Upload = _node("Upload", **{"in": "file"}, filename="text", fixmedins_code="code")
Download = _node("Download", file_qury_no="code", filename="text", fixmedins_code="code")
CatalogueQuery = _node("CatalogueQuery", ver="code", updt_time="time")
MONTH = dict(trt_year="code", trt_month="code", startrow="count", totalrow="count", otransid="code")
Month = _node("Month", **MONTH)
MonthLineIn = _node("MonthLineIn", certno="code", mdtrt_id="code", mdtrt_setl_time="time", setl_sn="code",
                    medfee_sumamt="amount", optins_pay_sumamt="amount", cnfm_flag="flag")
ClearingApplication = _node("ClearingApplication", clr_type="code", clr_way="code", setlym="code", psntime="count",
                            medfee_sumamt="amount", med_sumfee="amount", fund_appy_sum="amount", cash_payamt="amount",
                            acct_pay="amount", begndate="time", enddate="time", clr_optins="code",
                            clr_appy_evt_id="code")


def _input(name: str, **nodes: Any) -> type[_Node]:
    return create_model(name, __base__=_Node, **{n: (t | None, None) for n, t in nodes.items()})


DISEINFO = _listed(DiseInfo, 100)
_OPEN = _input("OpenIn", mdtrtinfo=OpenVisit, data=OpenVisit, diseinfo=DISEINFO)
_OF_VISIT = _input("OfVisitIn", data=OfVisit)
_SETTLE = _input("SettleIn", data=Settle)
_OF_SETTLEMENT = _input("OfSettlementIn", data=OfSettlement)
_FEES = _input("FeesIn", feedetail=_listed(FeeDetail, 2_000))
_RECONCILE = _input("ReconcileIn", data=create_model("Reconcile", __base__=Totals,
                                                       details=(_listed(DetailRow, 100_000) | None, None)))
_SIGN = _input("SignIn", signIn=Signing, signOut=Signing, data=Signing)
_CATALOGUE = _input("CatalogueIn", data=CatalogueQuery)
# A month's fields come in `data`, or straight under `input` (hsa-his's 3262).
_MONTH = create_model("MonthIn", __base__=Month, data=(Month | None, None), detail=(_listed(MonthLineIn, 1_000) | None, None))
_APPLICATION = _input("ClearingApplicationIn", data=ClearingApplication)

DECLARED: dict[str, type[_Node]] = {
    "1101": _input("LookupIn", data=Lookup),
    "2201": _OPEN, "2401": _OPEN,
    "2202": _OF_VISIT, "2404": _OF_VISIT, "2405": _OF_VISIT, "2205": _OF_VISIT, "2302": _OF_VISIT,
    "2203": _input("DiagnosesIn", mdtrtinfo=Diagnoses, diseinfo=DISEINFO),
    "2402": _input("DischargeIn", dscginfo=Discharge, diseinfo=DISEINFO),
    "2403": _input("AdmissionChangeIn", adminfo=_node("Admission", **PERSON, **CREDENTIAL, **VISIT, med_type="code",
                                                      begntime="time", dise_codg="text", dscg_maindiag_code="text"),
                   diseinfo=DISEINFO),
    "2204": _FEES, "2301": _FEES,
    "2206": _SETTLE, "2207": _SETTLE, "2303": _SETTLE, "2304": _SETTLE,
    "2208": _OF_SETTLEMENT, "2305": _OF_SETTLEMENT, "5203": _OF_SETTLEMENT, "5204": _OF_SETTLEMENT,
    "2601": _input("UndoIn", data=Undo),
    "3201": _RECONCILE, "3202": _RECONCILE,
    "5206": _input("AccumulatedIn", data=Accumulated),
    "9001": _SIGN, "9002": _SIGN,
    "2001": _input("BenefitsIn", data=_node("Benefits", **PERSON, med_type="code", begntime="time", endtime="time",
                                            fixmedins_code="code", dise_codg="text")),
    **dict.fromkeys(("5301", "5302", "5303", "5304"), create_model(
        "PersonQueryIn", __base__=_node("PersonQuery", **PERSON, biz_appy_type="code", begntime="time", endtime="time"),
        data=(_node("PersonQueryData", **PERSON, biz_appy_type="code", begntime="time", endtime="time") | None, None))),
    **dict.fromkeys(("5269", "5270"), _input("SlipIn", data=_node("Slip", **PERSON, setl_id="code", mdtrt_id="code",
                                                                  mdtrtRegno="code", mdtrtId="code", medinsNo="code"))),
    "3260": _MONTH, "3261": _MONTH, "3262": _MONTH, "3203": _APPLICATION, "3204": _APPLICATION,
    "9101": _input("UploadIn", fsUploadIn=Upload),
    "9102": _input("DownloadIn", fsDownloadIn=Download),
    **{infno: _CATALOGUE for infno in ("1301", "1302", "1303", "1304", "1305", "1306", "1307")},
}

_NODE_ERRORS = frozenset({"model_type", "model_attributes_type", "dict_type", "list_type", "invalid_input"})


def checked(infno: str, payload: dict) -> dict:
    """The transaction's input checked against its declaration, codes sent as numbers read as
    their digits; or ConventionError naming the first field of the wrong kind."""
    model = DECLARED[infno]
    try:
        return model.model_validate(payload).model_dump(exclude_unset=True)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(["input", *(str(part) for part in error["loc"])])
        if error["type"] in _NODE_ERRORS:
            shape = "a list" if error["type"] in ("list_type", "invalid_input") else "an object"
            raise ConventionError(Why.INVALID_INPUT, f"{where}: {shape}") from None
        reason = Why.INVALID_AMOUNT if error["type"] == "invalid_amount" else Why.INVALID_FIELD
        raise ConventionError(reason, f"{where}: {error['msg']}") from None
