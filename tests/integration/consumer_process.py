"""A consumer run as its own process by the crash and signal tests.

Its effect is the pattern every hub consumer uses: in one database transaction, record the
event id (unique) and apply the amount only if the id is new. `attempts` counts deliveries,
so a test can tell "handled again" from "applied again".

    python -m tests.integration.consumer_process BOOTSTRAP TOPIC GROUP DB_URL MODE

MODE: `crash-after-effect` kills itself with SIGKILL after the first batch's effect is
committed but before the offsets are; `until-idle` stops after 5 s without messages;
`until-signal` runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import os
import signal
import sys

import sqlalchemy as sa

from hub.messaging import AvroCodec, ConsumerLoop, ConsumerSettings, EventProducer, Message

SCHEMA = """
create table if not exists attempts (event_id text not null, attempted_at timestamptz default now());
create table if not exists applied_events (event_id text primary key);
create table if not exists balances (pool text primary key, amount_fen bigint not null);
"""


def main(bootstrap: str, topic: str, group: str, db_url: str, mode: str) -> None:
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(SCHEMA)

    def handle(batch: list[Message]) -> None:
        with engine.begin() as conn:
            for msg in batch:
                event_id = str(msg.value["event_id"])
                conn.execute(sa.text("insert into attempts (event_id) values (:e)"), {"e": event_id})
                fresh = conn.execute(
                    sa.text("insert into applied_events values (:e) on conflict do nothing returning event_id"),
                    {"e": event_id},
                ).first()
                if fresh:
                    conn.execute(
                        sa.text("insert into balances values (:p, :a) on conflict (pool) "
                                "do update set amount_fen = balances.amount_fen + excluded.amount_fen"),
                        {"p": msg.value["home_pool"], "a": msg.value["hifp_pay_fen"]},
                    )
        if mode == "crash-after-effect":
            os.kill(os.getpid(), signal.SIGKILL)

    codec = AvroCodec()
    with EventProducer(bootstrap, codec) as dead_letters:
        loop = ConsumerLoop(bootstrap, ConsumerSettings(group_id=group, topics=(topic,)), handle, codec, dead_letters)
        if mode == "until-signal":
            loop.stop_on_signals()
            print("ready", flush=True)
            loop.run()
        else:
            loop.run(max_idle_s=5)
    print(f"handled {loop.handled}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:6])
