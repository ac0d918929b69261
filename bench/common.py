"""What the benchmarks share: a scratch database and persons on the local servers, the settle
service started with N workers, wrk, and the CPU each part of the system spends (from /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterator

import httpx
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "services"))
# The benches run the hub on this machine with its sample secrets: the explicit development mode.
os.environ.setdefault("HUB_ENV", "development")

from hub.development import local_services  # noqa: E402
from hub.messaging import AvroCodec, EventProducer, ensure_topics  # noqa: E402
from hub.messaging.topics import REGISTRATION_EVENTS  # noqa: E402
from hub.privacy import mask_person_id, person_ref  # noqa: E402
from hub.registration.entrypoints.reference_load import load_reference  # noqa: E402

PATH = "/fsi/api/rsfComIntfaceService/commInterface"
KEY = b"bench-person-key"


def _part(cmd: str) -> str | None:
    """Which part of the system a process is, by its command line."""
    return ("postgres" if "postgres" in cmd else "redis" if "redis-server" in cmd
            else "load generator" if cmd.startswith(("wrk", "/tmp/billgen", "billgen")) or "/billgen " in cmd
            else "kafka" if "java" in cmd else "hub (HTTP workers)" if "multiprocessing" in cmd
            else "hub (relay, read model)" if "settlement serve" in cmd
            else "hub (clearing consumers)" if "clearing consume" in cmd else None)


def _processes() -> Iterator[tuple[str, str]]:
    """(pid, part) of every process that is a part of the system."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        part = _part(cmd)
        if part:
            yield pid, part


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each part of the system on this machine (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parts: dict[str, float] = {}
    for pid, part in _processes():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parts[part] = parts.get(part, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return parts


def wakeups() -> dict[str, int]:
    """Times each part's threads have gone to sleep so far, and so been woken (the voluntary
    context switches of every live thread, /proc/PID/task/*/status): each is a wait on a socket,
    a futex or a timer, and the cold start after it."""
    parts: dict[str, int] = {}
    for pid, part in _processes():
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                status = Path(f"/proc/{pid}/task/{task}/status").read_text()
            except OSError:
                continue
            line = status[status.index("\nvoluntary_ctxt_switches:") + 1:].split("\n", 1)[0]
            parts[part] = parts.get(part, 0) + int(line.split()[1])
    return parts


def cpu_ms_per(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
    """CPU milliseconds each part spent per unit of work between two `cpu_seconds()`."""
    per = {part: round(1000 * (after[part] - before.get(part, 0.0)) / max(1, count), 3) for part in after}
    per["total"] = round(sum(per.values()), 3)
    return per


def run_wrk(url: str, connections: int, seconds: int, script: Path | None, env: dict) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, env=env, timeout=seconds + 60).stdout
    result: dict = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["per_s"] = float(parts[1])
        elif parts and parts[0] in ("50%", "90%", "99%"):
            value = parts[1]
            ms = float(value[:-2]) if value.endswith("ms") else float(value[:-2]) / 1000 if value.endswith("us") else float(value[:-1]) * 1000
            result[f"p{parts[0][:-1]}_ms"] = ms
        elif "Non-2xx" in line:
            result["errors"] = int(parts[-1])
        elif "requests in" in line:
            result["requests"] = int(parts[0])
    result.setdefault("errors", 0)
    return result


@contextmanager
def scratch(persons: int, filed_to: str | None = None) -> Iterator[tuple[dict, str, list[str]]]:
    """The local servers up, reference data loaded, a scratch settlement database and `persons`
    enrolled 九江 residents (filed to `filed_to` when given) published to registration.events:
    (environment, database, psn_nos). The database is dropped afterwards."""
    local = local_services.LocalSettings()
    local_services.up(local, report=lambda _l: None)
    env = local.environment()
    ensure_topics(env["HUB_KAFKA_BOOTSTRAP"])
    codec = AvroCodec()
    load_reference(REPO / "reference", env["HUB_KAFKA_BOOTSTRAP"], codec)
    run = uuid.uuid4().hex[:8]
    database = f"bench_{run}"
    admin = sa.create_engine(env["HUB_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{database}"'))
    psn_nos = [f"3604{run}{i:06d}" for i in range(persons)]
    now = datetime.now(timezone.utc)
    filings = [{"filing_id": "F-BENCH", "filing_type": "REFERRAL", "target_pool": filed_to,
                "valid_from": date(2026, 1, 1), "valid_to": None, "revoked": False}] if filed_to else []
    with EventProducer(env["HUB_KAFKA_BOOTSTRAP"], codec) as producer:
        for psn in psn_nos:
            ref = person_ref(KEY, psn)
            producer.send(REGISTRATION_EVENTS.name, ref, "RegistrationChanged", {
                "event_id": uuid.uuid4(), "event_time": now, "producer": "bench", "schema_version": 3,
                "person_ref": ref, "person_id_masked": mask_person_id(psn), "home_pool": "360400",
                "registration_version": 1, "change_kind": "ENROLLED",
                "enrolment": {"insurance_type": "RESIDENT", "enrolled_from": date(2015, 1, 1), "enrolled_to": None,
                              "benefits_from": date(2015, 1, 1), "special_populations": []},
                "filings": filings})
        producer.flush()
    try:
        yield env, database, psn_nos
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database "{database}" with (force)'))
        admin.dispose()


@contextmanager
def settle_service(env: dict, database: str, port: int, workers: int, pool_size: int,
                   last_psn_no: str, hospital: str) -> Iterator[str]:
    """`hub settlement serve --workers N` on the scratch database, ready and knowing every person:
    its base URL. Stopped afterwards."""
    server_env = {**os.environ, **env, "HUB_SETTLEMENT_DATABASE": database, "HUB_PERSON_KEY": KEY.decode(),
                  "HUB_LOG_LEVEL": "WARNING", "HUB_SETTLEMENT_DB_POOL": str(pool_size)}
    server = subprocess.Popen([sys.executable, "-m", "hub.cli", "settlement", "serve", "--port", str(port),
                               "--workers", str(workers)], env=server_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(base + "/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                tail = server.stderr.read().decode()[-2000:] if server.poll() is not None else ""
                raise SystemExit(f"the settle service did not start: {tail}")
            time.sleep(0.3)
        headers = {"Authorization": f"Bearer dev-{hospital}"}
        while httpx.post(base + PATH, headers=headers, json={"infno": "1101", "msgid": uuid.uuid4().hex,
                         "input": {"data": {"psn_no": last_psn_no}}}).json().get("infcode") != "0":
            time.sleep(0.3)  # until the last person reached the read model
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
