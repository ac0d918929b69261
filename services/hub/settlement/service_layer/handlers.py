"""The hospital interface's transactions (DESIGN.md 2.1), each in one database transaction.

Mutating transactions are idempotent by (hospital, msgid): the first request claims the msgid
row, later ones wait for it and answer the stored response — or refuse when the same msgid
comes with different content (SHA-256 of the canonical `infno` + `input`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable, NamedTuple, Sequence
from zoneinfo import ZoneInfo

import orjson
import psycopg
import sqlalchemy as sa
from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb, set_json_dumps
from sqlalchemy.dialects.postgresql import insert as pg_insert

from hub.messaging import AvroCodec
from hub.messaging.topics import SETTLEMENT_EVENTS
from hub.reference.catalogue import Catalogue
from hub.reference.policy import InsuranceType, Policy, SpecialPopulation
from hub.rejections import Reason
from hub.settlement.adapters import database as db
from hub.settlement.adapters.read_model import ReadModel
from hub.settlement.domain.engine import decide_filing
from hub.settlement.domain.model import (
    ACCUMULATOR_FIELDS,
    Accumulators,
    Claim,
    FeeLine,
    Filing,
    FilingType,
    Person,
    Settlement,
)
from hub.settlement.domain.money import AmountError, yuan_to_fen
from hub.settlement.domain.refusals import Refusal, RefusalCode
from hub.settlement.service_layer import convention
from hub.settlement.service_layer.identity import Hospital, mask_person_id, person_ref
from hub.settlement.service_layer.pricing import newest_catalogues, price_claim
from hub.settlement.service_layer.reasons import Why, reason_of

log = logging.getLogger(__name__)
SHANGHAI = ZoneInfo("Asia/Shanghai")
PRODUCER = "settle-at-treatment"

OPEN_VISIT = {"2201", "2401"}
CANCEL_VISIT = {"2202", "2404"}
UPLOAD_FEES = {"2204", "2301"}
CANCEL_FEES = {"2205", "2302"}
PRE_SETTLE = {"2206", "2303"}
SETTLE = {"2207", "2304"}
REVERSE = {"2208", "2305"}
LOOKUP = {"1101"}
RECONCILE_TOTALS = {"3201"}
RECONCILE_DETAIL = {"3202"}
MUTATING = OPEN_VISIT | CANCEL_VISIT | UPLOAD_FEES | CANCEL_FEES | SETTLE | REVERSE
KNOWN = MUTATING | PRE_SETTLE | LOOKUP | RECONCILE_TOTALS | RECONCILE_DETAIL
MAX_RECONCILE_DAYS = 31
MAX_RECONCILE_DETAILS = 100_000
MAX_FEE_LINES_PER_UPLOAD = 2_000
INPATIENT_MED_TYPES = {"21"}  # 2401 admits
OUTPATIENT_MED_TYPES = {"11", "13", "14"}  # 2201 registers an outpatient or emergency visit


class Answer(Exception):
    """Ends a transaction with a refusal: its reason (a stable code) and what exactly was wrong."""

    def __init__(self, reason: Reason, detail: str = ""):
        super().__init__(f"{reason.code}: {detail or reason.message}")
        self.reason = reason
        self.code = reason.code
        self.message = detail or reason.message


def not_ready() -> "Answer":
    """The answer while the read model rebuilds: try again, nothing was decided."""
    return Answer(Why.HUB_NOT_READY)


class Request(NamedTuple):
    """A request whose envelope has been checked (`SettlementService.check`)."""

    hospital: Hospital
    infno: str
    msgid: str
    payload: dict
    now: datetime


def _orjson_dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


@dataclass(frozen=True)
class Reply:
    """The answer in the envelope, and its reason when it is a refusal (None: done)."""

    reason: Reason | None
    body: dict[str, Any]


ANSWERED = 1  # requests.status_code: 0 while the msgid is claimed and not yet answered


class ReferenceCache:
    """Policies and catalogues from the read model, held in memory and reloaded when their
    stamp changes (checked at most every `refresh_s`)."""

    def __init__(self, read_model: ReadModel, refresh_s: float = 2.0):
        self.read_model = read_model
        self.refresh_s = refresh_s
        self._stamp = -1
        self._checked = 0.0
        self._lock = threading.Lock()
        self.policies: list[Policy] = []
        self.catalogues: dict[str, Catalogue] = {}
        self.after_reload: Callable[[], None] | None = None  # e.g. the entrypoint's gc.freeze

    def current(self) -> tuple[list[Policy], dict[str, Catalogue]]:
        now = time.monotonic()
        if now - self._checked > self.refresh_s:
            with self._lock:
                if now - self._checked > self.refresh_s:
                    stamp = self.read_model.reference_stamp()
                    if stamp != self._stamp:
                        self.policies = self.read_model.policies()
                        self.catalogues = newest_catalogues(self.read_model.catalogues())
                        self._stamp = stamp
                        if self.after_reload is not None:
                            self.after_reload()
                    self._checked = now
        return self.policies, self.catalogues


def person_from_registration(value: dict[str, Any], service_day: date) -> Person | None:
    enrolment = value.get("enrolment")
    if enrolment is None:
        return None
    enrolled_from = enrolment["enrolled_from"]
    years = service_day.year - enrolled_from.year - ((service_day.month, service_day.day) < (enrolled_from.month, enrolled_from.day))
    return Person(
        person_ref=value["person_ref"],
        home_pool=value["home_pool"],
        insurance_type=InsuranceType(enrolment["insurance_type"]),
        enrolled_from=enrolled_from,
        benefits_from=enrolment["benefits_from"],
        enrolled_to=enrolment.get("enrolled_to"),
        special_populations=frozenset(SpecialPopulation(p) for p in enrolment.get("special_populations", [])
                                      if p in SpecialPopulation.__members__),
        filings=tuple(
            Filing(f["filing_id"], FilingType(f["filing_type"]), f["target_pool"], f["valid_from"], f.get("valid_to"),
                   f.get("revoked", False))
            for f in value.get("filings", []) if f["filing_type"] in FilingType.__members__
        ),
        continuous_years=max(0, years),
    )


def canonical_sha256(infno: str, payload: Any) -> str:
    text = json.dumps({"infno": infno, "input": payload}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class SettlementService:
    def __init__(self, engine: sa.Engine, read_model: ReadModel, codec: AvroCodec, person_key: bytes,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 limits: convention.Limits = convention.DEFAULT_LIMITS):
        self.engine = engine
        self.limits = limits
        self.read_model = read_model
        self.reference = ReferenceCache(read_model)
        self.codec = codec
        self.person_key = person_key
        self.clock = clock
        self._ready_until = 0.0
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._local = threading.local()

    # ------------------------------------------------------------------ the envelope

    def check(self, hospital: Hospital, envelope: Any) -> "Request | Reply":
        """The envelope checked: a Request to answer, or the error Reply that ends it here."""
        now = self.clock()
        try:
            if not isinstance(envelope, dict):
                raise Answer(Why.INVALID_JSON, "the request body is a JSON object in the interface envelope")
            infno = str(envelope.get("infno", ""))
            if infno not in KNOWN:
                raise Answer(Why.UNKNOWN_INFNO, f"infno {infno!r} is not served here; served: {', '.join(sorted(KNOWN))}")
            msgid = envelope.get("msgid")
            if (not isinstance(msgid, str) or not 1 <= len(msgid) <= self.limits.max_code_length
                    or not convention.is_code(msgid)):
                raise Answer(Why.INVALID_MSGID, "msgid: institution code + yyyyMMddHHmmss + 4-digit sequence "
                                                   f"(at most {self.limits.max_code_length} printable characters)")
            if envelope.get("fixmedins_code") not in (None, hospital.code):
                raise Answer(Why.HOSPITAL_MISMATCH, "fixmedins_code is not the hospital these credentials belong to")
            mdtrtarea = envelope.get("mdtrtarea_admvs")
            if mdtrtarea not in (None, "", hospital.pool):
                raise Answer(Why.TREATMENT_REGION_MISMATCH, f"this hospital is in {hospital.pool}, not {mdtrtarea}")
            payload = envelope.get("input")
            if not isinstance(payload, dict):
                raise Answer(Why.INVALID_INPUT, "input: an object")
            convention.check_text(payload, "input", self.limits)
        except convention.ConventionError as exc:
            return self._reply(Answer(reason_of(exc.code), exc.message), now)
        except Answer as exc:
            return self._reply(exc, now)
        return Request(hospital, infno, msgid, payload, now)

    def handle(self, hospital: Hospital, envelope: Any) -> Reply:
        """One request in the national envelope; always answers in the envelope."""
        request = self.check(hospital, envelope)
        if isinstance(request, Reply):
            return request
        if request.infno in SETTLE:
            return self.settle_many([request])[0]  # a group of one raises rather than returns its exception
        return self.answer(request)

    def answer(self, request: "Request") -> Reply:
        """Every transaction but settlement (see `settle_many`), each in its own database transaction."""
        hospital, infno, msgid, payload, now = request
        try:
            if infno in MUTATING:
                return self._idempotent(hospital, infno, msgid, payload, now)
            if infno not in RECONCILE_TOTALS | RECONCILE_DETAIL and not self.read_model.ready():
                raise not_ready()
            with self.engine.connect() as conn:
                output = self._dispatch(conn, hospital, infno, payload, now, msgid)
            return Reply(None, self._ok(output, now))
        except Answer as exc:
            return self._reply(exc, now)

    def _idempotent(self, hospital: Hospital, infno: str, msgid: str, payload: dict, now: datetime) -> Reply:
        digest = canonical_sha256(infno, payload)
        with self.engine.begin() as conn:
            claimed = conn.exec_driver_sql(
                "insert into requests (hospital_code, msgid, infno, request_sha256, status_code, response)"
                " values (%s, %s, %s, %s, 0, '{}') on conflict do nothing returning msgid",
                (hospital.code, msgid, infno, digest)).first()
            if claimed is None:
                row = conn.execute(
                    sa.select(db.requests.c.request_sha256, db.requests.c.status_code, db.requests.c.response)
                    .where(db.requests.c.hospital_code == hospital.code, db.requests.c.msgid == msgid)
                ).one()
                return self._replay(row.request_sha256, row.status_code, row.response, digest, msgid, now)
            if not self._ready():
                raise not_ready()
            # Every handler raises its Answer before it writes anything, so a refused request
            # leaves only its remembered answer behind (a retry gets the same answer).
            try:
                reply = Reply(None, self._ok(self._dispatch(conn, hospital, infno, payload, now, msgid), now))
            except Answer as exc:
                if exc.reason is Why.HUB_NOT_READY:
                    raise
                reply = self._reply(exc, now)
            conn.execute(db.requests.update()
                         .where(db.requests.c.hospital_code == hospital.code, db.requests.c.msgid == msgid)
                         .values(status_code=ANSWERED, response=reply.body))
        return reply

    def _replay(self, stored_sha256: str, answered: int, response: dict, digest: str, msgid: str,
                now: datetime) -> Reply:
        """The remembered answer to a msgid seen before — or the refusal when its content differs."""
        if stored_sha256 != digest:
            return Reply(Why.MSGID_REUSED, self._error(Why.MSGID_REUSED.code,
                                          f"msgid {msgid} was already used for a different request", now))
        if answered == 0:  # its first request was not answered (the hub was not ready): ask again
            return self._reply(not_ready(), now)
        return Reply(reason_of(response["err_code"]) if response.get("infcode") == -1 else None, response)

    # ------------------------------------------------------------------ settlement: group commit

    def settle_many(self, requests: Sequence["Request"]) -> list["Reply | Exception"]:
        """Settle (2207/2304) several bills in one database transaction: group commit.

        Each request is decided exactly as it would be alone — its own msgid claim, its own
        answer remembered with it, refusals leave nothing but that answer — and requests for the
        same person are decided in arrival order against the accumulators the earlier ones left.
        If the group's transaction fails as a whole (a deadlock, a lost connection, one bill the
        database refuses), each request is retried on its own, so one bad apple costs the others
        only time: its own place in the list is then the exception it raised alone.
        """
        if not requests:
            return []
        try:
            return self._settle_group(requests)
        except Exception as exc:
            self._drop_connection()
            if len(requests) == 1:
                raise
            log.warning("a group of %d settlements failed (%s); settling each on its own", len(requests),
                        type(exc).__name__)
        replies: list = []
        for request in requests:
            try:
                replies.append(self._settle_group([request])[0])
            except Exception as exc:  # this one alone fails: the caller answers it, the others stand
                self._drop_connection()
                replies.append(exc)
        return replies

    def _connection(self) -> psycopg.Connection:
        """This thread's own connection for settling (no pool checkout, statements stay prepared)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self._dsn, autocommit=True, row_factory=namedtuple_row)
            set_json_dumps(_orjson_dumps, conn)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def _settle_group(self, requests: Sequence["Request"]) -> list[Reply]:
        n = len(requests)
        replies: list[Reply | None] = [None] * n
        if not self._ready():
            return [self._reply(not_ready(), r.now) for r in requests]
        digests = [canonical_sha256(r.infno, r.payload) for r in requests]
        keys = [(r.hospital.code, r.msgid) for r in requests]
        first: dict[tuple[str, str], int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        in_key_order = sorted(first.values(), key=keys.__getitem__)  # one lock order for every group
        conn = self._connection()
        with conn.pipeline(), conn.transaction():
            claim = conn.cursor()
            rows, params = _values([(*keys[i], requests[i].infno, digests[i]) for i in in_key_order],
                                   "%s, %s, %s, %s, 0, '{}'")
            claim.execute("insert into requests (hospital_code, msgid, infno, request_sha256, status_code, response)"
                          f" values {rows} on conflict do nothing returning hospital_code, msgid", params)
            visit_ids = sorted({d["mdtrt_id"] for i in in_key_order
                                if isinstance(d := requests[i].payload.get("data") or {}, dict)
                                and isinstance(d.get("mdtrt_id"), str)})
            # Visits locked, then their fee lines: two statements each led by its primary key
            # (a join may be planned as a scan of every fee line on stale statistics).
            visits, fees = conn.cursor(), conn.cursor()
            visits.execute("select mdtrt_id, hospital_code, person_ref, person_id_masked, med_type, begntime,"
                           " accident_injury, status from visits where mdtrt_id = any(%s) order by mdtrt_id"
                           " for update", (visit_ids,))
            fees.execute("select mdtrt_id, feedetl_sn, med_list_codg, cnt, pric_fen, amount_fen from fee_details"
                         " where mdtrt_id = any(%s) order by mdtrt_id, feedetl_sn", (visit_ids,))
            claimed = set(claim.fetchall())
            found: dict[str, tuple[Any, list]] = {row.mdtrt_id: (row, []) for row in visits.fetchall()}
            for row in fees.fetchall():
                if row.mdtrt_id in found:
                    found[row.mdtrt_id][1].append(row)
            mine = [i for i in sorted(first.values()) if keys[i] in claimed]  # decided here, in arrival order
            if mine:
                self._decide_group(conn, [requests[i] for i in mine], found, replies, mine)
        replayed = [i for i in range(n) if replies[i] is None]
        if replayed:
            rows = conn.execute(
                "select hospital_code, msgid, request_sha256, status_code, response from requests"
                " where (hospital_code, msgid) in (select * from unnest(%s::text[], %s::text[]))",
                ([keys[i][0] for i in replayed], [keys[i][1] for i in replayed])).fetchall()
            stored = {(r.hospital_code, r.msgid): r for r in rows}
            for i in replayed:
                row = stored.get(keys[i])
                replies[i] = (self._replay(row.request_sha256, row.status_code, row.response, digests[i], keys[i][1],
                                           requests[i].now) if row is not None else
                              self._reply(not_ready(), requests[i].now))
        return replies  # type: ignore[return-value]

    def _decide_group(self, conn: psycopg.Connection, group: list["Request"], found: dict, replies: list,
                      slots: list[int]) -> None:
        """Decide every claimed settle of the group and queue its writes (committed by the caller)."""
        answers: list[Reply | None] = [None] * len(group)
        prepared: dict[int, tuple[Any, Claim]] = {}
        for j, request in enumerate(group):
            try:
                data = _object(request.payload, "data")
                mdtrt_id = data.get("mdtrt_id")
                if not isinstance(mdtrt_id, str):
                    raise Answer(Why.INVALID_FIELD, "mdtrt_id: the visit id the hub returned")
                visit, fees = found.get(mdtrt_id, (None, []))
                visit = _own_visit(visit, request.hospital, mdtrt_id)
                prepared[j] = (visit, self._claim(request.hospital, visit, fees, data))
            except Answer as exc:
                answers[j] = self._reply(exc, request.now)
        raw_registrations = self.read_model.registrations_bytes(sorted({v.person_ref for v, _ in prepared.values()}))
        people: dict[int, Person] = {}
        unanswerable: list[int] = []  # not enrolled as far as a rebuilding read model knows: nothing is remembered
        for j, (visit, claim) in prepared.items():
            try:
                people[j] = self._person_from(raw_registrations.get(visit.person_ref), claim.service_date)
            except Answer as exc:
                answers[j] = self._reply(exc, group[j].now)
                if exc.reason is Why.HUB_NOT_READY:
                    unanswerable.append(j)
        years = sorted({(prepared[j][0].person_ref, prepared[j][1].service_date.year) for j in people})
        accumulators: dict[tuple[str, int], Accumulators] = {}
        if years:
            # Creates each person-year row if needed and locks it to the end of the transaction, in
            # one statement and one (sorted) order: concurrent settlements of a person queue here.
            columns = ", ".join(ACCUMULATOR_FIELDS)
            values, params = _values(years, "%s, %s")
            rows = conn.execute(
                f"insert into accumulators (person_ref, policy_year) values {values}"
                f" on conflict (person_ref, policy_year) do update set person_ref = excluded.person_ref"
                f" returning person_ref, policy_year, {columns}", params).fetchall()
            for row in rows:
                accumulators[(row.person_ref, row.policy_year)] = Accumulators(
                    row.policy_year, *(getattr(row, f) for f in ACCUMULATOR_FIELDS))
        policies, catalogues = self.reference.current()
        settled_visits: set[str] = set()
        settlements, outbox, visit_updates = [], [], []
        for j in sorted(people):
            request, person = group[j], people[j]
            visit, claim = prepared[j]
            try:
                if visit.status != "OPEN" or visit.mdtrt_id in settled_visits:
                    settled = visit.status == "SETTLED" or visit.mdtrt_id in settled_visits
                    raise Answer(Why.VISIT_ALREADY_SETTLED if settled else Why.VISIT_NOT_OPEN,
                                 f"visit is {'SETTLED' if settled else visit.status}")
                year_key = (visit.person_ref, claim.service_date.year)
                result = price_claim(claim, person, policies, catalogues, accumulators[year_key])
                if isinstance(result, Refusal):
                    raise Answer(result.reason, result.detail)
            except Answer as exc:
                answers[j] = self._reply(exc, request.now)
                continue
            hospital, now = request.hospital, request.now
            output = convention.settlement_output(result, claim)
            setl_id = f"S{hospital.code}{uuid.uuid4().hex[:16].upper()}"
            output["setlinfo"] = {"setl_id": setl_id, "mdtrt_id": visit.mdtrt_id, **output["setlinfo"]}
            business_date = now.astimezone(SHANGHAI).date()
            delta = result.accumulators_delta
            accumulators[year_key] = accumulators[year_key].plus(delta)
            settled_visits.add(visit.mdtrt_id)
            settlements.append((
                setl_id, visit.mdtrt_id, request.msgid, hospital.code, visit.person_ref, visit.person_id_masked,
                person.home_pool, hospital.pool, year_key[1], business_date, now, result.medfee_sumamt,
                result.hifp_pay, result.hifmi_pay, result.maf_pay, result.psn_part_amt,
                Jsonb({f: getattr(delta, f) for f in ACCUMULATOR_FIELDS}), Jsonb({"setlinfo": output["setlinfo"]})))
            visit_updates.append((claim.discharge_date, visit.mdtrt_id))
            event = settlement_completed_event(result, claim, person, hospital, visit, setl_id, request.msgid,
                                               business_date, now)
            outbox.append((SETTLEMENT_EVENTS.name, person.home_pool,
                           self.codec.encode("SettlementCompleted", event, check=False)))
            answers[j] = Reply(None, self._ok(output, now))
        # Every write of the group is one statement per table over multi-row VALUES (the planner
        # knows the row count; psycopg binds each value in C), and all of them go with the commit
        # in one round trip (pipeline mode). Row-by-row executemany costs a socket wait, with its
        # GIL hand-off, per row; arrays (unnest) cost psycopg's Python array dumping.
        if settlements:
            values, params = _values(settlements, ", ".join(["%s"] * 18) + ", 'SETTLED'")
            conn.execute(
                "insert into settlements (setl_id, mdtrt_id, msgid, hospital_code, person_ref, person_id_masked,"
                " home_pool, treatment_pool, policy_year, business_date, settled_at, medfee_sumamt_fen, hifp_pay_fen,"
                " hifmi_pay_fen, maf_pay_fen, psn_part_amt_fen, accumulators_delta, output, status)"
                f" values {values}", params)
            changed = sorted({(visit.person_ref, claim.service_date.year) for visit, claim in
                              (prepared[j] for j in people if answers[j].reason is None)})
            fields = ", ".join(ACCUMULATOR_FIELDS)
            values, params = _values([(*k, *(getattr(accumulators[k], f) for f in ACCUMULATOR_FIELDS)) for k in changed],
                                     "%s::text, %s::int" + ", %s::bigint" * len(ACCUMULATOR_FIELDS))
            conn.execute("update accumulators a set " + ", ".join(f"{f} = d.{f}" for f in ACCUMULATOR_FIELDS)
                         + f" from (values {values}) as d(person_ref, policy_year, {fields})"
                         " where a.person_ref = d.person_ref and a.policy_year = d.policy_year", params)
            values, params = _values(visit_updates, "%s::date, %s::text")
            conn.execute("update visits v set status = 'SETTLED', endtime = d.endtime"
                         f" from (values {values}) as d(endtime, mdtrt_id) where v.mdtrt_id = d.mdtrt_id", params)
            values, params = _values(outbox, "%s, %s, %s")  # ids follow the order of decision
            conn.execute(f"insert into outbox (topic, message_key, payload) values {values}", params)
        remembered = [j for j in range(len(group)) if j not in unanswerable]
        if remembered:
            values, params = _values([(group[j].hospital.code, group[j].msgid, ANSWERED,
                                       Jsonb(answers[j].body)) for j in remembered], "%s::text, %s::text, %s::int, %s::jsonb")
            conn.execute("update requests r set status_code = d.status_code, response = d.response"
                         f" from (values {values}) as d(hospital_code, msgid, status_code, response)"
                         " where r.hospital_code = d.hospital_code and r.msgid = d.msgid", params)
        if unanswerable:
            values, params = _values([(group[j].hospital.code, group[j].msgid) for j in unanswerable], "%s::text, %s::text")
            conn.execute(f"delete from requests r using (values {values}) as d(hospital_code, msgid)"
                         " where r.hospital_code = d.hospital_code and r.msgid = d.msgid", params)
        for j, slot in enumerate(slots):
            replies[slot] = answers[j]

    def _ready(self) -> bool:
        """Readiness, trusted for a second once seen; a missing registration re-checks it
        (see `_registration`), so a flushed Redis never turns into a wrong refusal."""
        if time.monotonic() < self._ready_until:
            return True
        if self.read_model.ready():
            self._ready_until = time.monotonic() + 1.0
            return True
        return False

    def _registration(self, ref: str, day: date) -> Person:
        return self._person_from(self.read_model.registration_bytes(ref), day)

    def _person_from(self, raw: bytes | None, day: date) -> Person:
        """The enrolled person from the read model's bytes — or why not: not enrolled (422), or
        the read model is rebuilding (503: nothing is decided)."""
        person = person_from_registration(self.codec.decode(raw).value, day) if raw else None
        if person is None:
            self._ready_until = 0.0
            if not self.read_model.ready():
                raise not_ready()
            raise Answer(RefusalCode.PERSON_NOT_ENROLLED, "the hub has no enrolment for this person")
        return person

    def _ok(self, output: dict, now: datetime) -> dict:
        stamp = now.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
        return {"infcode": 0, "inf_refmsgid": f"HUB{now.strftime('%Y%m%d%H%M%S')}{uuid.uuid4().hex[:8]}",
                "refmsg_time": stamp, "respond_time": stamp, "err_msg": "", "output": output}

    def _reply(self, exc: Answer, now: datetime) -> Reply:
        return Reply(exc.reason, self._error(exc.code, exc.message, now))

    def _error(self, code: str, message: str, now: datetime) -> dict:
        body = self._ok({}, now)
        body.update(infcode=-1, err_code=code, err_msg=message, output={})
        return body

    def _dispatch(self, conn: sa.Connection, hospital: Hospital, infno: str, payload: dict, now: datetime,
                  msgid: str) -> dict:
        """The transaction's output; every refusal (the convention's, too) as an Answer raised
        before anything is written."""
        try:
            return self._dispatch_checked(conn, hospital, infno, payload, now, msgid)
        except convention.ConventionError as exc:
            raise Answer(reason_of(exc.code), exc.message) from None

    def _dispatch_checked(self, conn: sa.Connection, hospital: Hospital, infno: str, payload: dict, now: datetime,
                          msgid: str) -> dict:
        if infno in LOOKUP:
            return self._lookup(hospital, payload, now)
        if infno in RECONCILE_TOTALS | RECONCILE_DETAIL:
            return self._reconcile(conn, hospital, infno, payload)
        if infno in OPEN_VISIT:
            return self._open_visit(conn, hospital, infno, payload, now)
        if infno in CANCEL_VISIT:
            return self._cancel_visit(conn, hospital, payload)
        if infno in UPLOAD_FEES:
            return self._upload_fees(conn, hospital, payload)
        if infno in CANCEL_FEES:
            return self._cancel_fees(conn, hospital, payload)
        if infno in PRE_SETTLE:
            return self._preview(conn, hospital, payload)
        return self._reverse(conn, hospital, payload, now, msgid)

    # ------------------------------------------------------------------ people

    def _person(self, psn_no: Any, day: date) -> tuple[Person, str, str]:
        if not isinstance(psn_no, str) or not 1 <= len(psn_no) <= 64:
            raise Answer(Why.INVALID_FIELD, "psn_no: the person's number or id")
        ref = person_ref(self.person_key, psn_no)
        return self._registration(ref, day), ref, mask_person_id(psn_no)

    def _lookup(self, hospital: Hospital, payload: dict, now: datetime) -> dict:
        data = _object(payload, "data")
        day = now.astimezone(SHANGHAI).date()
        person, _ref, masked = self._person(data.get("psn_no") or data.get("certno") or data.get("mdtrt_cert_no"), day)
        probe = Claim(convention.VisitType.INPATIENT, hospital.level, hospital.pool, day, day, ())
        filing = decide_filing(person, probe)
        return {
            "baseinfo": {"psn_no": masked, "certno": masked},
            "insuinfo": [{
                "insutype": {"RESIDENT": "390", "EMPLOYEE": "310"}[person.insurance_type.value],
                "insuplc_admdvs": person.home_pool,
                "psn_insu_stas": "1" if person.enrolled_to is None or person.enrolled_to >= day else "0",
                "psn_insu_date": person.enrolled_from.isoformat(),
                "benefits_from": person.benefits_from.isoformat(),
            }],
            "idetinfo": [{"psn_idet_type": p.value} for p in sorted(person.special_populations, key=lambda p: p.value)],
            "filing": {"status": filing.status.value if filing.status else "IN_POOL", "filing_id": filing.filing_id,
                       "mdtrtarea_admvs": hospital.pool},
        }

    # ------------------------------------------------------------------ visits and fees

    def _open_visit(self, conn: sa.Connection, hospital: Hospital, infno: str, payload: dict, now: datetime) -> dict:
        data = _object(payload, "mdtrtinfo") or _object(payload, "data")
        med_type = str(data.get("med_type", "21" if infno == "2401" else "11"))
        allowed = INPATIENT_MED_TYPES if infno == "2401" else OUTPATIENT_MED_TYPES
        if med_type not in allowed:
            raise Answer(Why.INVALID_FIELD, f"med_type {med_type!r}: {infno} opens "
                         f"{'a stay' if infno == '2401' else 'an outpatient visit'}, one of {', '.join(sorted(allowed))}")
        begn = convention.parse_day(data.get("begntime"))
        if begn is None:
            raise Answer(Why.INVALID_FIELD, "begntime: yyyy-MM-dd HH:mm:ss")
        person, ref, masked = self._person(data.get("psn_no"), begn)
        insutype = str(data.get("insutype") or {"RESIDENT": "390", "EMPLOYEE": "310"}[person.insurance_type.value])
        mdtrt_id = f"M{hospital.code}{uuid.uuid4().hex[:16].upper()}"
        conn.execute(db.visits.insert().values(
            mdtrt_id=mdtrt_id, hospital_code=hospital.code, person_ref=ref, person_id_masked=masked,
            med_type=med_type, insutype=insutype, begntime=begn, status="OPEN",
            accident_injury=data.get("accident_injury") in (True, "1", 1, "true"),
        ))
        return {"result": {"mdtrt_id": mdtrt_id, "psn_no": masked}}

    def _visit(self, conn: sa.Connection, hospital: Hospital, mdtrt_id: Any, lock: bool = True):
        if not isinstance(mdtrt_id, str):
            raise Answer(Why.INVALID_FIELD, "mdtrt_id: the visit id the hub returned")
        query = sa.select(db.visits).where(db.visits.c.mdtrt_id == mdtrt_id)
        return _own_visit(conn.execute(query.with_for_update() if lock else query).first(), hospital, mdtrt_id)

    def _cancel_visit(self, conn: sa.Connection, hospital: Hospital, payload: dict) -> dict:
        data = _object(payload, "data")
        visit = self._visit(conn, hospital, data.get("mdtrt_id"))
        if visit.status == "SETTLED":
            raise Answer(Why.VISIT_ALREADY_SETTLED, "reverse the settlement before cancelling the visit")
        conn.execute(db.visits.update().where(db.visits.c.mdtrt_id == visit.mdtrt_id).values(status="CANCELLED"))
        return {"result": {"mdtrt_id": visit.mdtrt_id, "status": "CANCELLED"}}

    def _upload_fees(self, conn: sa.Connection, hospital: Hospital, payload: dict) -> dict:
        lines = payload.get("feedetail")
        if not isinstance(lines, list) or not 1 <= len(lines) <= MAX_FEE_LINES_PER_UPLOAD:
            raise Answer(Why.INVALID_FIELD, f"feedetail: 1 to {MAX_FEE_LINES_PER_UPLOAD} fee lines")
        ids = {l.get("mdtrt_id") if isinstance(l, dict) and isinstance(l.get("mdtrt_id"), str) else None for l in lines}
        if len(ids) != 1 or None in ids:
            raise Answer(Why.INVALID_FIELD, "feedetail: every line names the same mdtrt_id (a string)")
        checked = convention.fee_lines(lines, self.limits)  # refuses before the visit is even read
        visit = self._visit(conn, hospital, ids.pop())
        if visit.status != "OPEN":
            raise Answer(Why.VISIT_NOT_OPEN, f"visit is {visit.status}")
        rows, result = [], []
        for n, f in enumerate(checked):
            sn = f.feedetl_sn or str(n + 1)
            rows.append(dict(mdtrt_id=visit.mdtrt_id, feedetl_sn=sn, med_list_codg=f.med_list_codg, cnt=f.cnt,
                             pric_fen=f.pric_fen, amount_fen=f.amount_fen))
            result.append({"feedetl_sn": sn, "det_item_fee_sumamt": convention.fen_to_yuan(f.amount_fen)})
        stmt = pg_insert(db.fee_details).values(rows)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[db.fee_details.c.mdtrt_id, db.fee_details.c.feedetl_sn],
            set_={c: stmt.excluded[c] for c in ("med_list_codg", "cnt", "pric_fen", "amount_fen")},
        ))
        return {"result": result}

    def _cancel_fees(self, conn: sa.Connection, hospital: Hospital, payload: dict) -> dict:
        data = _object(payload, "data")
        visit = self._visit(conn, hospital, data.get("mdtrt_id"))
        if visit.status != "OPEN":
            raise Answer(Why.VISIT_NOT_OPEN, f"visit is {visit.status}")
        sn = str(data.get("feedetl_sn", "0000"))
        query = db.fee_details.delete().where(db.fee_details.c.mdtrt_id == visit.mdtrt_id)
        if sn != "0000":  # the convention's "all lines"
            query = query.where(db.fee_details.c.feedetl_sn == sn)
        deleted = conn.execute(query).rowcount
        return {"result": {"mdtrt_id": visit.mdtrt_id, "cancelled_lines": deleted}}

    # ------------------------------------------------------------------ settlement

    def _claim(self, hospital: Hospital, visit, fees: list, data: dict) -> Claim:
        if not fees:
            raise Answer(RefusalCode.CLAIM_INVALID, "no fee details uploaded for this visit")
        end = data.get("endtime") or data.get("enddate")
        end_day = convention.parse_day(end) if end else visit.begntime
        if end_day is None or end_day < visit.begntime:
            raise Answer(Why.INVALID_FIELD, "endtime: yyyy-MM-dd HH:mm:ss, not before the visit began")
        lines = tuple(FeeLine(n, f.med_list_codg, f.cnt, f.pric_fen, f.amount_fen) for n, f in enumerate(fees, 1))
        if sum(l.amount_fen for l in lines) > self.limits.max_bill_fen:  # uploads add up across calls
            raise Answer(Why.AMOUNT_TOO_LARGE,
                         f"the visit's fee lines add up to more than {convention.fen_to_yuan(self.limits.max_bill_fen)} yuan")
        claimed = data.get("medfee_sumamt")
        if claimed is not None:
            try:
                if yuan_to_fen(claimed, "medfee_sumamt") != sum(l.amount_fen for l in lines):
                    raise Answer(Why.AMOUNT_MISMATCH, "medfee_sumamt is not the sum of the uploaded fee details")
            except AmountError as exc:
                raise Answer(Why.INVALID_AMOUNT, str(exc)) from None
        return Claim(convention.MED_TYPES[visit.med_type], hospital.level, hospital.pool, visit.begntime, end_day,
                     lines, visit.accident_injury)

    def _visit_with_fees(self, conn: sa.Connection, hospital: Hospital, mdtrt_id: Any):
        """The visit and its fee lines, in one round trip."""
        if not isinstance(mdtrt_id, str):
            raise Answer(Why.INVALID_FIELD, "mdtrt_id: the visit id the hub returned")
        rows = conn.exec_driver_sql(
            "select v.mdtrt_id, v.hospital_code, v.person_ref, v.person_id_masked, v.med_type, v.begntime,"
            " v.accident_injury, v.status, f.feedetl_sn, f.med_list_codg, f.cnt, f.pric_fen, f.amount_fen"
            " from visits v left join fee_details f on f.mdtrt_id = v.mdtrt_id where v.mdtrt_id = %s"
            " order by f.feedetl_sn", (mdtrt_id,)).all()
        visit = _own_visit(rows[0] if rows else None, hospital, mdtrt_id)
        return visit, [r for r in rows if r.feedetl_sn is not None]

    def _preview(self, conn: sa.Connection, hospital: Hospital, payload: dict) -> dict:
        """Pre-settlement (2206/2303): the settlement as it would be now, nothing written or locked."""
        data = _object(payload, "data")
        visit, fees = self._visit_with_fees(conn, hospital, data.get("mdtrt_id"))
        if visit.status != "OPEN":
            raise Answer(Why.VISIT_ALREADY_SETTLED if visit.status == "SETTLED" else Why.VISIT_NOT_OPEN,
                         f"visit is {visit.status}")
        claim = self._claim(hospital, visit, fees, data)
        person = self._registration(visit.person_ref, claim.service_date)
        acc = self._accumulators(conn, visit.person_ref, claim.service_date.year, lock=False)
        policies, catalogues = self.reference.current()
        result = price_claim(claim, person, policies, catalogues, acc)
        if isinstance(result, Refusal):
            raise Answer(result.reason, result.detail)
        return convention.settlement_output(result, claim)

    def _reverse(self, conn: sa.Connection, hospital: Hospital, payload: dict, now: datetime, msgid: str) -> dict:
        data = _object(payload, "data")
        setl_id = data.get("setl_id")
        if not isinstance(setl_id, str):
            raise Answer(Why.INVALID_FIELD, "setl_id: the settlement to reverse")
        row = conn.execute(sa.select(db.settlements).where(db.settlements.c.setl_id == setl_id).with_for_update()).first()
        if row is None:
            raise Answer(Why.SETTLEMENT_NOT_FOUND, f"no settlement {setl_id}")
        if row.hospital_code != hospital.code:
            raise Answer(Why.SETTLEMENT_OF_ANOTHER_HOSPITAL, "a hospital reverses only its own settlements")
        if row.status == "REVERSED":
            raise Answer(Why.SETTLEMENT_ALREADY_REVERSED, f"{setl_id} was reversed at {row.reversed_at.isoformat()}")
        delta = Accumulators(year=row.policy_year, **row.accumulators_delta)
        self._accumulators(conn, row.person_ref, row.policy_year, lock=True)
        self._add_accumulators(conn, row.person_ref, row.policy_year, delta, sign=-1)  # reversals are rare: plain SQL
        conn.execute(db.settlements.update().where(db.settlements.c.setl_id == setl_id)
                     .values(status="REVERSED", reversed_at=now, reversal_msgid=msgid))
        # The visit is open again: the hospital may correct the fee details and settle anew.
        conn.execute(db.visits.update().where(db.visits.c.mdtrt_id == row.mdtrt_id).values(status="OPEN"))
        reversal_id = f"R{hospital.code}{uuid.uuid4().hex[:16].upper()}"
        business_date = now.astimezone(SHANGHAI).date()
        event = settlement_reversed_event(row, reversal_id, msgid, hospital, business_date, now)
        self._outbox(conn, row.home_pool, "SettlementReversed", event)
        original = row.output["setlinfo"]
        return {"setlinfo": {**original, "setl_id": setl_id, "reversal_id": reversal_id, "status": "REVERSED"}}

    # ------------------------------------------------------------------ reconciliation

    def _reconcile(self, conn: sa.Connection, hospital: Hospital, infno: str, payload: dict) -> dict:
        """3201 totals / 3202 detail: what the hub holds for this hospital, settlements standing
        (settled, not reversed) whose business date lies in [stmt_begndate, stmt_enddate]."""
        data = _object(payload, "data")
        begin, end = convention.parse_day(data.get("stmt_begndate")), convention.parse_day(data.get("stmt_enddate"))
        if begin is None or end is None or end < begin or (end - begin).days >= MAX_RECONCILE_DAYS:
            raise Answer(Why.INVALID_FIELD, f"stmt_begndate..stmt_enddate: a range of at most {MAX_RECONCILE_DAYS} days")
        s = db.settlements.c
        rows = conn.execute(sa.select(s.setl_id, s.medfee_sumamt_fen, s.hifp_pay_fen, s.hifmi_pay_fen, s.maf_pay_fen,
                                      s.psn_part_amt_fen)
                            .where(s.hospital_code == hospital.code, s.status == "SETTLED",
                                   s.business_date >= begin, s.business_date <= end)).all()
        hub = {r.setl_id: (r.medfee_sumamt_fen, r.hifp_pay_fen + r.hifmi_pay_fen + r.maf_pay_fen) for r in rows}
        y = convention.fen_to_yuan
        hub_totals = {"medfee_sumamt": y(sum(v[0] for v in hub.values())),
                      "fund_pay_sumamt": y(sum(v[1] for v in hub.values())), "fixmedins_setl_cnt": len(hub)}
        try:
            if infno in RECONCILE_TOTALS:
                theirs = {"medfee_sumamt": y(yuan_to_fen(data.get("medfee_sumamt", "0"), "medfee_sumamt")),
                          "fund_pay_sumamt": y(yuan_to_fen(data.get("fund_pay_sumamt", "0"), "fund_pay_sumamt")),
                          "fixmedins_setl_cnt": int(data.get("fixmedins_setl_cnt", -1))}
                differing = [k for k in hub_totals if hub_totals[k] != theirs[k]]
                return {"stmtinfo": {"stmt_rslt": "0" if not differing else "1",
                                     "stmt_rslt_dscr": "match" if not differing else "mismatch: " + ", ".join(differing),
                                     "hub": hub_totals, "hospital": theirs}}
            details = data.get("details")
            if not isinstance(details, list) or len(details) > MAX_RECONCILE_DETAILS:
                raise Answer(Why.INVALID_FIELD, f"details: a list of at most {MAX_RECONCILE_DETAILS} settlements")
            theirs_detail = {}
            for n, d in enumerate(details):
                if not isinstance(d, dict) or not isinstance(d.get("setl_id"), str):
                    raise Answer(Why.INVALID_FIELD, f"details.{n}.setl_id")
                theirs_detail[d["setl_id"]] = (yuan_to_fen(d.get("medfee_sumamt", "0"), f"details.{n}.medfee_sumamt"),
                                               yuan_to_fen(d.get("fund_pay_sumamt", "0"), f"details.{n}.fund_pay_sumamt"))
        except (AmountError, ValueError, TypeError) as exc:
            raise Answer(Why.INVALID_AMOUNT, str(exc)) from None
        differences = sorted(
            [{"setl_id": k, "reason": "missing_at_hospital"} for k in hub.keys() - theirs_detail.keys()]
            + [{"setl_id": k, "reason": "not_standing_at_hub"} for k in theirs_detail.keys() - hub.keys()]
            + [{"setl_id": k, "reason": "amounts_differ", "hub_medfee_sumamt": y(hub[k][0]),
                "hub_fund_pay_sumamt": y(hub[k][1])}
               for k in hub.keys() & theirs_detail.keys() if hub[k] != theirs_detail[k]],
            key=lambda d: d["setl_id"])
        return {"stmtinfo": {"stmt_rslt": "0" if not differences else "1",
                             "stmt_rslt_dscr": "match" if not differences else f"{len(differences)} differing settlements",
                             "hub": hub_totals}, "differences": differences}

    # ------------------------------------------------------------------ accumulators and outbox

    def _accumulators(self, conn: sa.Connection, ref: str, year: int, lock: bool) -> Accumulators:
        columns = ", ".join(ACCUMULATOR_FIELDS)
        if lock:
            # Creates the person-year row if needed and locks it for the rest of the transaction,
            # in one statement: concurrent settlements of one person queue here, so no cap is overrun.
            row = conn.exec_driver_sql(
                "insert into accumulators (person_ref, policy_year) values (%s, %s) on conflict (person_ref, policy_year)"
                f" do update set person_ref = excluded.person_ref returning {columns}", (ref, year)).one()
        else:
            row = conn.exec_driver_sql(f"select {columns} from accumulators where person_ref = %s and policy_year = %s",
                                       (ref, year)).first()
        if row is None:
            return Accumulators(year=year)
        return Accumulators(year=year, **{f: getattr(row, f) for f in ACCUMULATOR_FIELDS})

    def _add_accumulators(self, conn: sa.Connection, ref: str, year: int, delta: Accumulators, sign: int) -> None:
        t = db.accumulators
        conn.execute(t.update().where(t.c.person_ref == ref, t.c.policy_year == year)
                     .values({f: t.c[f] + sign * getattr(delta, f) for f in ACCUMULATOR_FIELDS}))

    def _outbox(self, conn: sa.Connection, key: str, record_name: str, event: dict) -> None:
        conn.execute(db.outbox.insert().values(topic=SETTLEMENT_EVENTS.name, message_key=key,
                                               payload=self.codec.encode(record_name, event)))


def _values(rows: Sequence[tuple], row_sql: str) -> tuple[str, list]:
    """Multi-row VALUES: the SQL (`row_sql` once per row, parenthesised) and the flat parameters."""
    return ", ".join([f"({row_sql})"] * len(rows)), [value for row in rows for value in row]


def _object(payload: dict, key: str) -> dict:
    """`payload[key]` as an object ({} when absent): any other shape is refused."""
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Answer(Why.INVALID_INPUT, f"input.{key}: an object")
    return value


def _own_visit(row, hospital: Hospital, mdtrt_id: str):
    """The visit row, if it exists and belongs to the asking hospital; else the answer why not."""
    if row is None:
        raise Answer(Why.VISIT_NOT_FOUND, f"no visit {mdtrt_id}")
    if row.hospital_code != hospital.code:
        raise Answer(Why.VISIT_OF_ANOTHER_HOSPITAL, "this visit belongs to another hospital")
    return row


def settlement_completed_event(result: Settlement, claim: Claim, person: Person, hospital: Hospital, visit, setl_id: str,
                               msgid: str, business_date: date, now: datetime) -> dict:
    return {
        "event_id": uuid.uuid4(), "event_time": now, "producer": PRODUCER, "schema_version": 1,
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
    }


def settlement_reversed_event(row, reversal_id: str, msgid: str, hospital: Hospital, business_date: date,
                              now: datetime) -> dict:
    """The SettlementReversed record of a standing settlement's row: its amounts, taken back."""
    return {
        "event_id": uuid.uuid4(), "event_time": now, "producer": PRODUCER, "schema_version": 1,
        "reversal_id": reversal_id, "settlement_id": row.setl_id, "msgid": msgid, "hospital_code": hospital.code,
        "treatment_pool": row.treatment_pool, "home_pool": row.home_pool, "person_ref": row.person_ref,
        "person_id_masked": row.person_id_masked, "business_date": business_date,
        "original_business_date": row.business_date, "reversed_at": now,
        "medfee_sumamt_fen": row.medfee_sumamt_fen, "hifp_pay_fen": row.hifp_pay_fen,
        "hifmi_pay_fen": row.hifmi_pay_fen, "maf_pay_fen": row.maf_pay_fen,
        "fund_pay_sumamt_fen": row.hifp_pay_fen + row.hifmi_pay_fen + row.maf_pay_fen,
        "psn_part_amt_fen": row.psn_part_amt_fen,
    }
