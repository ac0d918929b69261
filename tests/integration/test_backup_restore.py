"""The restore drill (issue 28, item 3's second half): what only a service's database holds is
backed up with pg_dump and restored with pg_restore, and the service carries on from it as if
nothing happened. Here clearing, whose closed days (statements, the advance ledger, anomaly flags)
and the bureaus' confirmations are its database's: after the restore the day's files render
byte for byte as before, the schema is at its history's head with nothing left to run, a repeated
deposit is still recognised, and the next day closes on the restored advances."""

from __future__ import annotations

import subprocess
import uuid
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa

from hub import migrations
from hub.clearing.adapters import database as db
from hub.clearing.bootstrap import Settings, bootstrap
from hub.clearing.domain.events import ClearingEvent
from hub.development.local_services import LocalSettings, Postgres

from .settlement_helpers import REPO, lose_database

DAY = date(2026, 2, 10)
JJ, GZ, SH = "360400", "440100", "310000"


def bill(n: int, home: str, treatment: str, fund: int, day: date = DAY) -> ClearingEvent:
    ms = int(datetime(day.year, day.month, day.day, 4, tzinfo=timezone.utc).timestamp() * 1000)
    return ClearingEvent(f"e{n}-{uuid.uuid4().hex[:6]}", False, f"S{n}", None, day, home, treatment, "H1",
                         "3604**********1234", fund * 2, fund, 0, 0, ms, "settlement.events", 0, n, "RESIDENT",
                         f"P{n}", "INPATIENT", day, day)


def libpq(url: str) -> str:
    """The URL as pg_dump and pg_restore take it (no SQLAlchemy driver name)."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def clearing_on(url: str, out_dir, now: list[datetime]):
    settings = Settings(postgres_url=url, database=sa.make_url(url).database, out_dir=out_dir, grace_s=0,
                        bureaus_file=REPO / "reference" / "bureaus.yaml")
    c = bootstrap(settings)
    c.service.clock = lambda: now[0]
    return c


def test_a_clearing_database_dumped_and_restored_carries_on(servers, scratch_database, tmp_path):
    now = [datetime(2026, 2, 11, 2, tzinfo=timezone.utc)]
    c = clearing_on(scratch_database, tmp_path / "before", now)
    c.service.apply([bill(1, JJ, GZ, 600_000), bill(2, GZ, JJ, 250_000), bill(3, SH, JJ, 80_000)])
    c.service.close_day(DAY)
    deposited = c.service.deposit(JJ, "BANK-7", 5_000_000, "ops")
    c.service.confirm(DAY, GZ, "B440100")
    before = c.service.render_day(DAY)
    c.engine.dispose()

    pg = Postgres(LocalSettings())
    dump = tmp_path / "hub_clearing.dump"
    subprocess.run([pg.bin("pg_dump"), "--format=custom", "--file", str(dump), libpq(scratch_database)], check=True)
    lose_database(servers.postgres_url, scratch_database)
    subprocess.run([pg.bin("pg_restore"), "--no-owner", "--dbname", libpq(scratch_database), str(dump)], check=True)

    after = clearing_on(scratch_database, tmp_path / "after", now)  # no files on disk: rendered from the database
    try:
        assert migrations.current(after.engine) == migrations.head(db.MIGRATIONS)
        assert after.service.render_day(DAY) == before
        assert after.service.day_summary(DAY, GZ)["confirmed_by"] == "B440100"
        assert after.service.deposit(JJ, "BANK-7", 5_000_000, "ops") == deposited  # recognised, not booked twice
        assert len(after.service.advance(JJ)["ledger"]) == 2  # the day's draw and the one deposit
        now[0] += timedelta(days=1)
        after.service.apply([bill(4, JJ, SH, 10_000, DAY + timedelta(days=1))])
        closed = after.service.close_day(DAY + timedelta(days=1))
        assert sum(p.net_fen for p in closed.netting.positions) == 0
        assert after.service.advance(JJ)["balance_fen"] == 600_000 * -1 + 250_000 + 80_000 + 5_000_000 - 10_000
    finally:
        after.engine.dispose()
