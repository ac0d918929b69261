"""A hospital's month changed over the interface (3203/3204 clearing applications, 3261/3262
confirmations), each in one transaction of its own: the msgid claimed (a repeat answers as before),
the hospital's month locked, the change decided (hospital_month.py), its HospitalMonthChanged event
and the answer written together. A refusal is remembered with its msgid and changes nothing else."""

from __future__ import annotations

from typing import Callable

from hub.messaging import AvroCodec
from hub.settlement.adapters.repository import Changes, NewClaim, Repository, StoredAnswer
from hub.settlement.service_layer import hospital_month
from hub.settlement.service_layer.envelope import Answer, Reply, Request, canonical_sha256, done, refusal


def change(repository: Repository, codec: AvroCodec, request: Request,
           replay: Callable[[StoredAnswer | None, str, Request], Reply]) -> Reply:
    """3203/3204/3261/3262 in one transaction of their own: the msgid claimed (a repeat answers
    as before), the hospital's month locked, the change, its HospitalMonthChanged event and the
    answer written together. A refusal is remembered with its msgid and changes nothing else."""
    data = hospital_month.node(request)
    if request.infno == "3204":
        number = data.get("clr_appy_evt_id")
        application = repository.application(number) if isinstance(number, str) and number else None
        month, lines = (application.month if application else ""), []
    else:
        month, first, last = hospital_month.month_of(data, request)
        lines = repository.month_lines(request.hospital.code, first, last)
    digest = canonical_sha256(request.infno, request.payload)
    with repository.transaction() as tx:
        loaded = tx.load([NewClaim(*request.key, request.infno, digest)], [], [])
        if request.key in loaded.claimed:
            state = tx.month_state(request.hospital.code, month)
            try:
                if request.infno == "3204":
                    output, change = hospital_month.cancel(request, state.applications.get(data.get("clr_appy_evt_id")))
                else:
                    output, change = hospital_month.decide(request, month, last, lines, state)
                reply = done(output, request.now)
                tx.write_month(change.confirmations, change.removed, change.applications)
                events = [(request.hospital.code, codec.encode("HospitalMonthChanged", change.event))]
            except Answer as exc:
                reply, events = refusal(exc, request.now), []
            tx.write(Changes(outbox=events, answers=[(request.key, reply.body)]))
            return reply
    return replay(repository.answers([request.key]).get(request.key), digest, request)
