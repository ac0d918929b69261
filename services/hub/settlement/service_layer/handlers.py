"""The settle-at-treatment service: a request in the national envelope in, an answer out.

Every transaction that writes (and pre-settlement, which reads what they write) is decided in a
**group**: the requests that arrive while one group is in the database go together in the next
one (`group_commit.py`), in one transaction of three round trips (`adapters/repository.py`, on
PostgreSQL in `adapters/postgres.py`).
A single request is a group of one; there is no other path.

Mutating transactions are idempotent by (hospital, msgid): the first request claims the msgid
row, later ones wait for it and answer the stored response — or refuse when the same msgid
comes with different content (SHA-256 of the canonical `infno` + `input`).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from hub.messaging import AvroCodec
from hub.settlement.adapters.read_model import ReadModel
from hub.settlement.adapters.repository import NewClaim, Repository, StoredAnswer
from hub.settlement.domain.engine import decide_filing
from hub.settlement.domain.model import ACCUMULATOR_FIELDS, Claim, FeeLine
from hub.settlement.service_layer import (convention, files, hospital_month, inputs, month_change, off_site,
                                          reconciliation)
from hub.settlement.service_layer.batch import Batch
from hub.settlement.service_layer.envelope import (
    CATALOGUE_FILES,
    FILES,
    GROUPED,
    KNOWN,
    LOOKUP,
    MONTH_CHANGES,
    MONTH_LINES,
    MUTATING,
    OFF_SITE_QUERIES,
    QUERY,
    SHANGHAI,
    SIGN,
    UNDO,
    Answer,
    Reply,
    Request,
    canonical_sha256,
    data_of,
    done,
    not_ready,
    refusal,
    refused,
    reveal,
    succeeded,
)
from hub.settlement.service_layer.identity import Hospital, person_ref
from hub.settlement.service_layer.people import CredentialError, credential, credential_person, opened, shown
from hub.settlement.service_layer.pricing import ReferenceCache
from hub.settlement.service_layer.reasons import Why, reason_of
from hub.settlement.service_layer.transactions import Touches, Transactions
from hub.privacy import Key

log = logging.getLogger(__name__)


class SettlementService:
    def __init__(self, repository: Repository, read_model: ReadModel, codec: AvroCodec, person_key: Key,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 limits: convention.Limits = convention.DEFAULT_LIMITS, voucher_key: bytes = b""):
        self.repository = repository
        self.voucher_key = voucher_key
        self.limits = limits
        self.read_model = read_model
        self.reference = ReferenceCache(read_model)
        self.codec = codec
        self.person_key = person_key
        self.clock = clock
        self.transactions = Transactions(codec, self.reference, person_key, self._ready_now, limits, voucher_key)
        self._ready_until = 0.0

    # ------------------------------------------------------------------ the envelope

    def check(self, hospital: Hospital, envelope: Any) -> Request | Reply:
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
            payload = inputs.checked(infno, payload)  # the declared kinds: nothing else reaches the service layer
        except convention.ConventionError as exc:
            return refused(exc.reason, exc.message, now)
        except Answer as exc:
            return refusal(exc, now)
        return Request(hospital, infno, msgid, payload, now)

    def handle(self, hospital: Hospital, envelope: Any) -> Reply:
        """One request in the national envelope; always answers in the envelope."""
        request = self.check(hospital, envelope)
        if isinstance(request, Reply):
            return request
        if request.infno in GROUPED:
            return self.run_group([request])[0]  # a group of one raises rather than returns its exception
        return self.answer(request)

    # ------------------------------------------------------------------ groups

    def run_group(self, requests: Sequence[Request]) -> list[Reply | Exception]:
        """Decide several requests in one database transaction: group commit.

        Each request is decided exactly as it would be alone — its own msgid claim, its own
        answer remembered with it, refusals leave nothing but that answer — in arrival order,
        each against what the earlier ones left (a person's accumulators, a visit's status).
        If the group's transaction fails as a whole (a deadlock, a lost connection, one bill the
        database refuses), each request is retried on its own, so one bad apple costs the others
        only time: its own place in the list is then the exception it raised alone.
        """
        if not requests:
            return []
        try:
            return self._group(requests)
        except Exception as exc:
            if len(requests) == 1:
                raise
            log.warning("a group of %d requests failed (%s); deciding each on its own", len(requests),
                        type(exc).__name__)
        replies: list[Reply | Exception] = []
        for request in requests:
            try:
                replies.append(self._group([request])[0])
            except Exception as exc:  # this one alone fails: the caller answers it, the others stand
                replies.append(exc)
        return replies

    def _group(self, requests: Sequence[Request]) -> list[Reply]:
        if not self._ready():
            return [refusal(not_ready(), r.now) for r in requests]
        digests = {i: canonical_sha256(r.infno, r.payload) for i, r in enumerate(requests) if r.infno in MUTATING}
        first: dict[tuple[str, str], int] = {}
        for i in digests:
            first.setdefault(requests[i].key, i)
        claims = [NewClaim(*key, requests[i].infno, digests[i]) for key, i in first.items()]
        undoing = {i: key for i, r in enumerate(requests) if r.infno in UNDO and (key := Transactions.undone_key(r))}
        replies: list[Reply | None] = [None] * len(requests)
        with self.repository.transaction() as tx:
            originals = tx.requests(sorted(set(undoing.values()))) if undoing else {}
            named = [Transactions.undone_names(originals.get(undoing[i])) if i in undoing
                     else self.transactions.names(r) for i, r in enumerate(requests)]
            loaded = tx.load(claims, [v for v, _ in named if v], [s for _, s in named if s])
            loaded.originals = originals
            deciding = [i for i, r in enumerate(requests)
                        if i not in digests or (first[r.key] == i and r.key in loaded.claimed)]
            touches = Touches()
            for i in deciding:
                self.transactions.touches(requests[i], loaded, touches)
            batch = Batch(loaded, tx.accumulators(sorted(touches.lock), sorted(touches.read)),
                          self.read_model.registrations_bytes(sorted(touches.people)))
            for i in deciding:
                replies[i] = self._decide(batch, requests[i])
            tx.write(batch.changes())
        replayed = [i for i, reply in enumerate(replies) if reply is None]
        stored = self.repository.answers([requests[i].key for i in replayed])
        for i in replayed:
            replies[i] = self._replay(stored.get(requests[i].key), digests[i], requests[i])
        return [reveal(reply, request.payload, self._open) for reply, request in zip(replies, requests)]  # type: ignore[arg-type]

    def _open(self, sealed: str) -> dict[str, str]:
        """The sealed person details an answer of the asking hospital's carries, opened."""
        return opened(self.person_key, sealed)

    def _decide(self, batch: Batch, request: Request) -> Reply:
        """One request of a group, its answer remembered with its msgid (unless the hub was not
        ready to decide it: then its claim is released and a retry decides afresh)."""
        mutating = request.infno in MUTATING
        try:
            reply = done(self.transactions.decide(batch, request), request.now)
        except Answer as exc:
            reply = refusal(exc, request.now)
            if exc.reason is Why.HUB_NOT_READY:
                if mutating:
                    batch.forget(request.key)
                return reply
        if mutating:
            batch.remember(request.key, reply.body)
        return reply

    def _replay(self, stored: StoredAnswer | None, digest: str, request: Request) -> Reply:
        """The remembered answer to a msgid seen before — or the refusal when its content differs."""
        if stored is None or stored.status_code == 0:  # its first request was released unanswered
            return refusal(not_ready(), request.now)
        response = stored.response
        if response.get("err_code") == Why.TRANSACTION_UNDONE.code:  # undone by a 2601, whatever it held
            return Reply(Why.TRANSACTION_UNDONE, response)
        if stored.request_sha256 != digest:
            return refused(Why.MSGID_REUSED, f"msgid {request.msgid} was already used for a different request",
                           request.now)
        return Reply(None if succeeded(response) else reason_of(response["err_code"]), response)

    def _ready(self) -> bool:
        """Readiness, trusted for a second once seen; a missing registration re-checks it
        (`_ready_now`), so a flushed Redis never turns into a wrong refusal."""
        return time.monotonic() < self._ready_until or self._ready_now()

    def _ready_now(self) -> bool:
        if self.read_model.ready():
            self._ready_until = time.monotonic() + 1.0
            return True
        self._ready_until = 0.0
        return False

    # ------------------------------------------------------------------ reads outside groups

    def answer(self, request: Request) -> Reply:
        """Sign-in and out (9001/9002), person lookup (1101), queries (5203/5204/5206), files
        (9101/9102, 1301-1307) and reconciliation (3201/3202): they take no group's time."""
        try:
            try:
                if request.infno in SIGN:
                    return done(_sign(request), request.now)
                if request.infno in QUERY:
                    return reveal(done(self._query(request), request.now), request.payload, self._open)
                if request.infno in LOOKUP:
                    if not self._ready():
                        raise not_ready()
                    return reveal(done(self._lookup(request), request.now), request.payload)
                if request.infno == "9102":
                    return self._download(request)
                if request.infno in FILES:
                    return done(self._upload(request), request.now)
                if request.infno in CATALOGUE_FILES:
                    return done(self._catalogue_file(request), request.now)
                if request.infno in OFF_SITE_QUERIES:
                    return reveal(done(self._off_site(request), request.now), request.payload, self._open)
                if request.infno in MONTH_LINES:
                    return done(self._month_lines(request), request.now)
                if request.infno in MONTH_CHANGES:
                    return self._month_change(request)
                return done(self._reconcile(request), request.now)
            except convention.ConventionError as exc:
                raise Answer(exc.reason, exc.message) from None
            except (CredentialError, files.FileError) as exc:
                raise Answer(exc.reason, exc.message) from None
        except Answer as exc:
            return refusal(exc, request.now)

    # ------------------------------------------------------------------ files (9101, 9102, 1301-1307)

    def _upload(self, request: Request) -> dict:
        """9101: keep the hospital's file; answer the number it is downloaded and referred to by."""
        return self._keep(request, *files.upload_content(data_of(request.payload, "fsUploadIn")))

    def _keep(self, request: Request, filename: str, content: bytes) -> dict:
        """Keep a file of the asking hospital's (uploaded, or a 3202 result); what names it (the
        convention's file_qury_no, filename and dld_endtime)."""
        stored = files.StoredFile(f"F{uuid.uuid4().hex[:24].upper()}", request.hospital.code, filename, content,
                                  request.now)
        self.repository.put_file(stored)
        return {"file_qury_no": stored.file_qury_no, "filename": filename,
                "dld_endtime": files.download_end(request.now.astimezone(SHANGHAI))}

    def _download(self, request: Request) -> Reply:
        """9102: a file the hospital uploaded or the hub made for it, as its bytes; a catalogue
        file (1301-1307) is made anew from the treatment pool's catalogue."""
        node = data_of(request.payload, "fsDownloadIn")
        number = node.get("file_qury_no")
        if not isinstance(number, str) or not 1 <= len(number) <= 64:
            raise Answer(Why.INVALID_FIELD, "fsDownloadIn.file_qury_no: the number 9101, 3202 or 1301-1307 answered")
        catalogue = files.parse_catalogue_query_no(number)
        if catalogue is not None:
            infno, pool, version, since = catalogue
            current = self.reference.current()[1].get(pool)
            if pool != request.hospital.pool or current is None or current.catalogue_version != version:
                raise Answer(Why.FILE_NOT_FOUND, "no such catalogue file (ask 1301-1307 again for the current one)")
            text = files.catalogue_text(current, files.catalogue_codes(current, files.CATALOGUE_DOWNLOADS[infno], since))
            return Reply(None, done({}, request.now).body, (f"{number}.zip", files.zipped(f"{number}.txt", text)))
        stored = self.repository.file(number)
        if stored is None or stored.hospital_code != request.hospital.code:  # another's: as if there were none
            raise Answer(Why.FILE_NOT_FOUND, f"file_qury_no: no file {number} of this hospital's")
        return Reply(None, done({}, request.now).body, (stored.filename, stored.content))

    def _catalogue_file(self, request: Request) -> dict:
        """1301-1307: the number of the treatment pool's catalogue as a file, rows newer than `ver`."""
        data = data_of(request.payload)
        since = data.get("ver") or ""
        if not isinstance(since, str) or len(since) > 32 or not convention.is_code(since or "0"):
            raise Answer(Why.INVALID_FIELD, "ver: the catalogue version the hospital holds (\"\" or absent: none)")
        current = self.reference.current()[1].get(request.hospital.pool)
        version = current.catalogue_version if current is not None else "none"
        count = len(files.catalogue_codes(current, files.CATALOGUE_DOWNLOADS[request.infno], since))  # not rendered
        number = files.catalogue_query_no(request.infno, request.hospital.pool, version, since)
        return {"file_qury_no": number, "filename": "plc", "dld_end_time": files.download_end(
            request.now.astimezone(SHANGHAI)), "data_cn": str(count), "ver": version}

    def _identify(self, request: Request, data: dict) -> tuple[str, str]:
        """1101: the person a request names — by the credential it shows (01 e-voucher, 02 resident
        id number, 03 social-security card), else by `psn_no`, else by `certno` — as (person_ref,
        the psn_no sent or "")."""
        cred = credential(data)
        if cred is None and data.get("certno") and not data.get("psn_no"):
            cred = credential({"mdtrt_cert_type": "02", "mdtrt_cert_no": data["certno"]})
        if cred is not None:
            return credential_person(self.person_key, self.voucher_key, cred, request.now.timestamp(),
                                     self.read_model.person_of_credential), ""
        psn_no = self.transactions.person_number(data.get("psn_no"))
        return person_ref(self.person_key, psn_no), psn_no

    def _lookup(self, request: Request) -> dict:
        """1101: the person's identity, insurance and special populations, as the platform answers
        them — in clear, to the hospital that asked (and to nobody else: nothing is stored)."""
        hospital, data = request.hospital, data_of(request.payload)
        day = request.now.astimezone(SHANGHAI).date()
        ref, psn_no = self._identify(request, data)
        held = self._registered(ref)
        value = self.transactions.registration(held, ref)
        person = self.transactions.person(held, ref, day)
        holder = shown(value, self.person_key, day, psn_no)
        filing = decide_filing(person, Claim(convention.VisitType.INPATIENT, hospital.level, hospital.pool, day, day, ()))
        enrolment = value["enrolment"]
        return {
            "baseinfo": {**{k: v for k, v in holder.clear().items() if k != "psn_type"}, "exp_content": ""},
            "insuinfo": [{
                "balc": "0.00", "insutype": convention.INSUTYPE_CODES[person.insurance_type],
                "psn_type": holder.psn_type, "psn_insu_stas": "1" if person.enrolled_to is None or person.enrolled_to >= day else "0",
                "psn_insu_date": person.enrolled_from.isoformat(), "paus_insu_date": _iso(person.enrolled_to),
                "cvlserv_flag": "0", "insuplc_admdvs": person.home_pool, "emp_name": holder.emp_name,
                "benefits_from": person.benefits_from.isoformat(),
            }],
            "idetinfo": [{"psn_idet_type": i["population"], "psn_type_lv": "", "memo": "",
                          "begntime": _stamp(i.get("begins") or person.enrolled_from),
                          "endtime": _stamp(i.get("ends") or person.enrolled_to, end=True)}
                         for i in idetinfo(enrolment)],
            "filing": {"status": filing.status.value if filing.status else "IN_POOL", "filing_id": filing.filing_id,
                       "mdtrtarea_admvs": hospital.pool},
        }

    def _query(self, request: Request) -> dict | list:
        """5203: one of the hospital's settlements as it was answered (and whether it stands);
        5204: its fee lines (or an open visit's); 5206: the person's accumulators in the year of
        `cum_ym` (yyyyMM), one `cuminfo` row each."""
        data = data_of(request.payload)
        if request.infno == "5204":
            return self._fee_details(request, data)
        if request.infno == "5203":
            setl_id = data.get("setl_id")
            stored = self.repository.settlement(setl_id) if isinstance(setl_id, str) else None
            if stored is None:
                raise Answer(Why.SETTLEMENT_NOT_FOUND, f"setl_id: no settlement {setl_id}")
            if stored.hospital_code != request.hospital.code:
                raise Answer(Why.SETTLEMENT_OF_ANOTHER_HOSPITAL, "setl_id: a hospital queries only its own settlements")
            return {**stored.output, "hub_status": stored.status}
        psn_no = self.transactions.person_number(data.get("psn_no"))
        cum_ym = str(data.get("cum_ym") or request.now.astimezone(SHANGHAI).strftime("%Y%m"))
        if not (len(cum_ym) == 6 and cum_ym.isdigit()):
            raise Answer(Why.INVALID_FIELD, "cum_ym: yyyyMM")
        ref = person_ref(self.person_key, psn_no)
        acc = self.repository.year_accumulators(ref, int(cum_ym[:4]))
        insutype = convention.insutype_of(self.transactions.registration(self._registered(ref), ref))
        # As HIS code stores a row: its month (cum_ym) and insurance type beside the type and amount.
        return {"cuminfo": [{"cum_ym": cum_ym, "insutype": insutype, "year": cum_ym[:4], "cum_type_code": name,
                             "cum": str(value) if name == "admissions" else convention.fen_to_yuan(value)}
                            for name, value in ((f, getattr(acc, f)) for f in ACCUMULATOR_FIELDS)]}

    def _fee_details(self, request: Request, data: dict) -> list[dict]:
        """5204: the fee lines of a settlement (`setl_id`) or a visit (`mdtrt_id`) of the asking
        hospital's, each with its split as the treatment pool's catalogue classifies it (as the
        upload answered; the settlement's own figures are 5203's)."""
        setl_id, mdtrt_id = data.get("setl_id"), data.get("mdtrt_id")
        if isinstance(setl_id, str) and setl_id:
            stored = self.repository.settlement(setl_id)
            if stored is None:
                raise Answer(Why.SETTLEMENT_NOT_FOUND, f"setl_id: no settlement {setl_id}")
            if stored.hospital_code != request.hospital.code:
                raise Answer(Why.SETTLEMENT_OF_ANOTHER_HOSPITAL, "setl_id: a hospital queries only its own settlements")
            mdtrt_id = stored.mdtrt_id
        elif not isinstance(mdtrt_id, str) or not mdtrt_id:
            raise Answer(Why.INVALID_FIELD, "setl_id or mdtrt_id: the settlement or visit whose fee lines to list")
        visit = self.repository.visit(mdtrt_id)
        if visit is None:
            raise Answer(Why.VISIT_NOT_FOUND, f"mdtrt_id: no visit {mdtrt_id}")
        if visit.hospital_code != request.hospital.code:
            raise Answer(Why.VISIT_OF_ANOTHER_HOSPITAL, "mdtrt_id: a hospital queries only its own visits")
        catalogue = self.reference.current()[1].get(request.hospital.pool)
        rows = []
        for n, (sn, f) in enumerate(sorted(visit.fees.items()), 1):
            item = catalogue.get(f.med_list_codg) if catalogue is not None else None
            rows.append({**self.transactions.split(catalogue, FeeLine(n, f.med_list_codg, f.cnt, f.pric_fen,
                                                                      f.amount_fen), sn),
                         "mdtrt_id": visit.mdtrt_id, "setl_id": setl_id or "", "med_type": visit.med_type,
                         "hilist_code": f.med_list_codg if item else "", "hilist_name": item.item_name if item else ""})
        return rows

    def _registered(self, ref: str) -> dict[str, bytes]:
        """The person's registration as a group holds it: {ref: bytes}, or {} when the read model has none."""
        raw = self.read_model.registration_bytes(ref)
        return {ref: raw} if raw else {}

    # ------------------------------------------------------------------ around an off-site patient

    def _off_site(self, request: Request) -> dict:
        """2001, 5301-5304, 5269/5270 (service_layer/off_site.py)."""
        data = hospital_month.node(request)
        if request.infno in off_site.SLIPS:
            field = "mdtrtRegno" if data.get("setl_id") in (None, "") and "mdtrtRegno" in data else "setl_id"  # hsa-his's name
            setl_id = data.get(field)
            stored = self.repository.settlement(setl_id) if isinstance(setl_id, str) and setl_id else None
            if stored is None:
                raise Answer(Why.SETTLEMENT_NOT_FOUND, f"{field}: no settlement {setl_id!r}")
            return off_site.slip(request.infno, stored, request.hospital.code)
        psn_no = self.transactions.person_number(data.get("psn_no"))
        ref = person_ref(self.person_key, psn_no)
        if request.infno == "5301":
            return {"feedetail": []}  # the hub keeps no chronic-disease filings
        if request.infno == "5303":
            return {"data": [dict(row, psn_no=psn_no) for row in off_site.stays(self.repository.open_stays(request.hospital.code, ref))]}
        held = self._registered(ref)
        value = self.transactions.registration(held, ref)
        if request.infno in ("5302", "5304"):
            rows = [dict(row, psn_no=psn_no) for row in off_site.filings(value or {}, request.infno == "5304")]
            return {"psnfixmedin" if request.infno == "5302" else "refmedin": rows}
        begn = convention.parse_day(data.get("begntime")) or request.now.astimezone(SHANGHAI).date()
        end = convention.parse_day(data.get("endtime")) or begn
        med_type = str(data.get("med_type") or "21")
        if med_type not in convention.MED_TYPES or end < begn:
            raise Answer(Why.INVALID_FIELD, f"med_type {med_type!r}, begntime, endtime: a medical type "
                                            f"({', '.join(sorted(convention.MED_TYPES))}) and a period")
        person = self.transactions.person(held, ref, end)
        claim = Claim(convention.MED_TYPES[med_type], request.hospital.level, request.hospital.pool, begn, end, (),
                      emergency_admission=med_type in convention.EMERGENCY_ADMISSION_MED_TYPES)
        policies, catalogues = self.reference.current()
        return {"trtinfo": [dict(row, psn_no=psn_no) for row in
                            off_site.benefits(person, policies, catalogues.get(request.hospital.pool), claim)]}

    # ------------------------------------------------------------------ the hospital's month

    def _month_lines(self, request: Request) -> dict:
        """3260: a page of the month's 清分 lines, with the hospital's confirmations so far."""
        month, first, last = hospital_month.month_of(hospital_month.node(request), request)
        lines = self.repository.month_lines(request.hospital.code, first, last)
        return hospital_month.lines_page(request, lines, self.repository.month_view(request.hospital.code, month),
                                         self._open)

    def _month_change(self, request: Request) -> Reply:
        """3203/3204/3261/3262 (month_change.py)."""
        return month_change.change(self.repository, self.codec, request, self._replay)

    def _reconcile(self, request: Request) -> dict:
        """3201 totals / 3202 detail (reconciliation.py)."""
        return reconciliation.reconcile(self.repository, request, self._keep)


def idetinfo(enrolment: dict) -> list[dict]:
    """The special populations with their periods (a v1 registration's: the whole enrolment)."""
    if enrolment.get("identities"):
        return sorted(enrolment["identities"], key=lambda i: i["population"])
    return [{"population": p} for p in sorted(enrolment.get("special_populations") or ())]


def _iso(day) -> str:
    return day.isoformat() if day else ""


def _stamp(day, end: bool = False) -> str:
    """A date as the convention's yyyy-MM-dd HH:mm:ss (the last second of an end day)."""
    return f"{day.isoformat()} {'23:59:59' if end else '00:00:00'}" if day else ""


def _sign(request: Request) -> dict:
    """9001 gives the operator a sign_no for the envelopes that follow (the hub accepts any, as
    authentication is the gateway's); 9002 signs out."""
    stamp = request.now.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    if request.infno == "9001":
        return {"signinoutb": {"sign_time": stamp, "sign_no": uuid.uuid4().hex}}
    return {"signoutoutb": {"sign_time": stamp}}
