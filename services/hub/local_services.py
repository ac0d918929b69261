"""Start, check and stop the hub's servers on this machine without a Docker engine.

Apache Kafka runs from its Maven Central jars on the JDK (KRaft, one broker+controller),
Redis and PostgreSQL from Debian's packages. Everything listens on 127.0.0.1 only. State
(data, logs, pid files) lives in a state directory outside the repository, downloads in a
cache directory, so a fresh clone starts fast once the cache is warm.

Each server is started only if it is not already running from the same state directory,
and `down` stops only the processes this launcher started (found by their pid files and
checked by their command line, so a recycled pid is never killed).
"""

from __future__ import annotations

import base64
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hub import settings

KAFKA_VERSION = "4.1.1"
DATABASES = ("hub_registration", "hub_settlement", "hub_clearing")
REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_LOCAL = REPO_ROOT / "deploy" / "local"


class LocalServiceError(RuntimeError):
    """A server could not be installed, started or reached; the message says what to do."""


@dataclass(frozen=True)
class LocalSettings:
    state_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("HUB_STATE_DIR", "/var/tmp/hub-local"))
    )
    cache_dir: Path = field(
        default_factory=lambda: Path(
            os.environ.get("HUB_CACHE_DIR", str(Path.home() / ".cache" / "hub"))
        )
    )
    kafka_port: int = field(default_factory=lambda: settings.local_port("kafka"))
    kafka_controller_port: int = field(default_factory=lambda: settings.local_port("kafka_controller"))
    redis_port: int = field(default_factory=lambda: settings.local_port("redis"))
    postgres_port: int = field(default_factory=lambda: settings.local_port("postgres"))
    start_timeout_s: float = float(os.environ.get("HUB_LOCAL_START_TIMEOUT_S", "120"))
    kafka_heap_mb: int = int(os.environ.get("HUB_LOCAL_KAFKA_HEAP_MB", "768"))
    # 1 broker (the default), or a local KRaft cluster of 3 (`hub services up --brokers 3`): node n
    # listens on kafka_port + 2(n-1), its controller on kafka_controller_port + 2(n-1).
    kafka_brokers: int = field(default_factory=lambda: int(os.environ.get("HUB_LOCAL_KAFKA_BROKERS", "0")) or 0)

    def __post_init__(self) -> None:
        if self.kafka_brokers == 0:  # as `up` last started them in this state directory, else one
            marker = self.state_dir / "kafka.brokers"
            object.__setattr__(self, "kafka_brokers", int(marker.read_text()) if marker.is_file() else 1)
        if self.kafka_brokers not in (1, 3):
            raise LocalServiceError("a local Kafka is 1 broker or a cluster of 3")

    def kafka_ports(self, node: int) -> tuple[int, int]:
        """(client port, controller port) of node 1..kafka_brokers."""
        return self.kafka_port + 2 * (node - 1), self.kafka_controller_port + 2 * (node - 1)

    @property
    def kafka_bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.kafka_ports(n)[0]}" for n in range(1, self.kafka_brokers + 1))

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def postgres_url(self) -> str:
        """Superuser URL of the server; each service has its own database on it."""
        return f"postgresql+psycopg://hub@127.0.0.1:{self.postgres_port}/postgres"

    def environment(self) -> dict[str, str]:
        """The variables that point the hub and its tests at these servers."""
        return {
            "HUB_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "HUB_REDIS_URL": self.redis_url,
            "HUB_POSTGRES_URL": self.postgres_url,
        }


# --------------------------------------------------------------------------- helpers


def _run(cmd: list[str], *, what: str, user: str | None = None, timeout_s: float = 600) -> str:
    if user is not None and os.geteuid() == 0:
        cmd = ["runuser", "-u", user, "--", *cmd]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError as exc:
        raise LocalServiceError(f"{what}: {cmd[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise LocalServiceError(f"{what}: gave no answer within {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-2000:]
        raise LocalServiceError(f"{what} failed (exit {done.returncode}):\n{output}")
    return done.stdout


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid_file: Path, marker: str) -> int | None:
    """The pid in `pid_file` if that process runs and its command line contains `marker`."""
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError, IndexError):
        return None
    return pid if marker in cmdline else None


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


def _wait_until(
    check: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    still_alive: Callable[[], bool],
    log: Path,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if not still_alive():
            raise LocalServiceError(f"{what} exited during start-up. Last lines of {log}:\n{_tail(log)}")
        time.sleep(0.3)
    raise LocalServiceError(
        f"{what} did not answer within {timeout_s:.0f} s. Last lines of {log}:\n{_tail(log)}"
    )


def _apt_install(package: str) -> None:
    if os.geteuid() != 0:
        raise LocalServiceError(f"{package} is missing; install it with: sudo apt-get install -y {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            raise LocalServiceError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")


# --------------------------------------------------------------------------- servers


@dataclass
class ServerState:
    name: str
    running: bool
    started_by_us: bool
    where: str
    detail: str = ""


class Postgres:
    name = "postgresql"

    def __init__(self, settings: LocalSettings):
        self.s = settings
        self.root = settings.state_dir / "postgres"
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"

    def bin(self, tool: str) -> str:
        found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
        if found:
            return found[-1]
        path = shutil.which(tool)
        if path is None:
            raise LocalServiceError(f"PostgreSQL's {tool} not found")
        return path

    def install(self) -> None:
        if not glob.glob("/usr/lib/postgresql/*/bin/postgres") and not shutil.which("postgres"):
            _apt_install("postgresql")

    @property
    def owner(self) -> str | None:
        # PostgreSQL refuses to run as root; Debian's package creates the `postgres` user.
        return "postgres" if os.geteuid() == 0 else None

    def pid(self) -> int | None:
        return _pid_alive(self.data / "postmaster.pid", "postgres")

    def answers(self) -> bool:
        try:
            import psycopg

            with psycopg.connect(
                host="127.0.0.1", port=self.s.postgres_port, user="hub", dbname="postgres", connect_timeout=2
            ) as conn:
                conn.execute("select 1")
            return True
        except Exception:  # any failure means "not yet": the caller times out with the log
            return False

    def start(self) -> bool:
        if self.pid() is not None:
            return False
        if _port_open(self.s.postgres_port):
            raise LocalServiceError(
                f"port {self.s.postgres_port} is taken by a server this launcher did not start; "
                "stop it or set HUB_LOCAL_POSTGRES_PORT"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        if self.owner:
            shutil.chown(self.root, self.owner, self.owner)
        if not (self.data / "PG_VERSION").exists():
            _run(
                [self.bin("initdb"), "-D", str(self.data), "-U", "hub", "--auth=trust", "-E", "UTF8", "--no-locale"],
                what="initdb",
                user=self.owner,
            )
        options = (
            f"-p {self.s.postgres_port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=256MB"
        )
        _run(
            [self.bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
             "-w", "-t", str(int(self.s.start_timeout_s)), "start"],
            what="pg_ctl start",
            user=self.owner,
        )
        _wait_until(self.answers, timeout_s=self.s.start_timeout_s, what="PostgreSQL",
                    still_alive=lambda: self.pid() is not None, log=self.log)
        self.create_databases()
        return True

    def create_databases(self) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.s.postgres_port, user="hub",
                             dbname="postgres", autocommit=True) as conn:
            have = {row[0] for row in conn.execute("select datname from pg_database")}
            for name in DATABASES:
                if name not in have:
                    conn.execute(f'create database "{name}"')

    def stop(self) -> bool:
        if self.pid() is None:
            return False
        _run([self.bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
             what="pg_ctl stop", user=self.owner)
        return True

    def restart(self) -> None:
        """pg_ctl restart -m fast: every session is ended ("terminating connection due to
        administrator command"), as in a real restart or fail-over. For the fault suite."""
        _run([self.bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-m", "fast", "-w", "restart"],
             what="pg_ctl restart", user=self.owner)
        _wait_until(self.answers, timeout_s=self.s.start_timeout_s, what="PostgreSQL",
                    still_alive=lambda: self.pid() is not None, log=self.log)

    def state(self) -> ServerState:
        pid = self.pid()
        return ServerState(self.name, pid is not None and self.answers(), pid is not None,
                           f"127.0.0.1:{self.s.postgres_port}", f"pid {pid}" if pid else "")


class Redis:
    name = "redis"

    def __init__(self, settings: LocalSettings):
        self.s = settings
        self.root = settings.state_dir / "redis"
        self.pid_file = self.root / "redis.pid"
        self.log = self.root / "redis.log"

    def install(self) -> None:
        if not shutil.which("redis-server"):
            _apt_install("redis-server")

    def pid(self) -> int | None:
        return _pid_alive(self.pid_file, "redis-server")

    def answers(self) -> bool:
        try:
            import redis

            return bool(redis.Redis(host="127.0.0.1", port=self.s.redis_port, socket_timeout=2).ping())
        except Exception:  # not yet up: the caller times out with the log
            return False

    def start(self) -> bool:
        if self.pid() is not None:
            return False
        if _port_open(self.s.redis_port):
            raise LocalServiceError(
                f"port {self.s.redis_port} is taken by a server this launcher did not start; "
                "stop it or set HUB_LOCAL_REDIS_PORT"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        # Redis holds only what can be rebuilt from Kafka and PostgreSQL, so no persistence.
        _run(
            ["redis-server", "--port", str(self.s.redis_port), "--bind", "127.0.0.1",
             "--daemonize", "yes", "--pidfile", str(self.pid_file), "--logfile", str(self.log),
             "--dir", str(self.root), "--save", "", "--appendonly", "no"],
            what="redis-server",
        )
        _wait_until(self.answers, timeout_s=self.s.start_timeout_s, what="Redis",
                    still_alive=lambda: self.pid() is not None or not self.pid_file.exists(), log=self.log)
        return True

    def stop(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        _wait_for_exit(pid, self.s.start_timeout_s)
        return True

    def state(self) -> ServerState:
        pid = self.pid()
        return ServerState(self.name, pid is not None and self.answers(), pid is not None,
                           f"127.0.0.1:{self.s.redis_port}", f"pid {pid}" if pid else "")


class Kafka:
    name = "kafka"

    def __init__(self, settings: LocalSettings, node: int = 1):
        self.s = settings
        self.node = node
        self.port, self.controller_port = settings.kafka_ports(node)
        if settings.kafka_brokers > 1:
            self.name = f"kafka-{node}"
        self.root = settings.state_dir / ("kafka" if settings.kafka_brokers == 1 else f"kafka-{node}")
        self.data = self.root / "data"
        self.props = self.root / "server.properties"
        self.pid_file = self.root / "kafka.pid"
        self.log = self.root / "server.log"
        self.stdout_log = self.root / "kafka.out"
        self.libs = settings.cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"

    def install(self) -> None:
        if not shutil.which("java"):
            _apt_install("openjdk-17-jre-headless")
        if list(self.libs.glob("kafka_2.13-*.jar")):
            return
        if not shutil.which("mvn"):
            _apt_install("maven")
        staging = self.libs.with_name("libs.partial")
        shutil.rmtree(staging, ignore_errors=True)
        _run(
            ["mvn", "-B", "-q", "-f", str(DEPLOY_LOCAL / "kafka-pom.xml"),
             f"-Dkafka.version={KAFKA_VERSION}", "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={staging}"],
            what="fetching Kafka's jars from Maven Central",
            timeout_s=1200,
        )
        # Renamed into place only when complete, so an interrupted fetch is never mistaken for a cache.
        staging.rename(self.libs)

    def pid(self) -> int | None:
        return _pid_alive(self.pid_file, str(self.props))

    def answers(self) -> bool:
        if not _port_open(self.port):
            return False
        try:
            from kafka import KafkaAdminClient

            admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{self.port}", request_timeout_ms=3000)
            try:
                admin.list_topics()
            finally:
                admin.close()
            return True
        except Exception:  # not yet ready: the caller times out with the log
            return False

    def _java(self) -> list[str]:
        return ["java", "-Xms256m", f"-Xmx{self.s.kafka_heap_mb}m", "-XX:+UseG1GC",
                f"-Dlog4j2.configurationFile={DEPLOY_LOCAL / 'log4j2.yaml'}",
                f"-Dkafka.logs.dir={self.root}", "-cp", f"{self.libs}/*"]

    def start(self, wait: bool = True, cluster_id: str | None = None) -> bool:
        """Start the node (False: it runs already); `wait` until it answers — a cluster's nodes are
        all started first (they answer only once a majority of controllers runs)."""
        if self.pid() is not None:
            return False
        for port in (self.port, self.controller_port):
            if _port_open(port):
                raise LocalServiceError(
                    f"port {port} is taken by a server this launcher did not start; stop it or set "
                    "HUB_LOCAL_KAFKA_PORT / HUB_LOCAL_KAFKA_CONTROLLER_PORT"
                )
        self.root.mkdir(parents=True, exist_ok=True)
        template = (DEPLOY_LOCAL / "server.properties.template").read_text()
        nodes = range(1, self.s.kafka_brokers + 1)
        self.props.write_text(template.format(
            node_id=self.node, voters=",".join(f"{n}@127.0.0.1:{self.s.kafka_ports(n)[1]}" for n in nodes),
            kafka_port=self.port, controller_port=self.controller_port, log_dir=self.data,
            replication=self.s.kafka_brokers, min_isr=2 if self.s.kafka_brokers >= 3 else 1))
        if not (self.data / "meta.properties").exists():
            _run([*self._java(), "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id or new_cluster_id()}",
                  "-c", str(self.props), "--ignore-formatted"],
                 what="formatting Kafka's KRaft storage", timeout_s=self.s.start_timeout_s)
        with open(self.stdout_log, "ab") as out:
            self.proc = subprocess.Popen([*self._java(), "kafka.Kafka", str(self.props)],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.pid_file.write_text(str(self.proc.pid))
        if wait:
            self.wait()
        return True

    def wait(self) -> None:
        """Until the started node answers (or its start fails, with its log)."""
        proc = getattr(self, "proc", None)
        alive = (lambda: proc.poll() is None) if proc is not None else (lambda: self.pid() is not None)
        try:
            what = "Kafka" if self.s.kafka_brokers == 1 else f"Kafka node {self.node}"
            _wait_until(self.answers, timeout_s=self.s.start_timeout_s, what=what, still_alive=alive, log=self.log)
        except LocalServiceError as exc:
            if proc is not None and proc.poll() is None:
                proc.kill()
            console = _tail(self.stdout_log).strip()
            raise LocalServiceError(f"{exc}\nBroker console:\n{console}" if console else str(exc)) from None

    def stop(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        if not _wait_for_exit(pid, self.s.start_timeout_s):
            os.kill(pid, signal.SIGKILL)
            _wait_for_exit(pid, 10)
        return True

    def state(self) -> ServerState:
        pid = self.pid()
        return ServerState(self.name, pid is not None and self.answers(), pid is not None,
                           f"127.0.0.1:{self.port}", f"pid {pid}, Kafka {KAFKA_VERSION}" if pid else "")


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64 without padding (made here, it saves a
    JVM start of `StorageTool random-uuid`). Like Kafka's own Uuid.randomUuid, never starting with
    '-': the tool's argument parser would take it for an option (seen in CI as "--cluster-id:
    expected one argument")."""
    cluster_id = "-"
    while cluster_id.startswith("-"):
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cluster_id


def _wait_for_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A child of this very process stays a zombie until reaped.
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.2)
    return False


def servers(settings: LocalSettings | None = None) -> list[Postgres | Redis | Kafka]:
    settings = settings or LocalSettings()
    return [Postgres(settings), Redis(settings), *(Kafka(settings, n) for n in range(1, settings.kafka_brokers + 1))]


def up(settings: LocalSettings | None = None, report: Callable[[str], None] = print) -> list[str]:
    """Install what is missing, start what is not running, wait until each answers.

    Returns the names of the servers this call started (empty when all were already up).
    """
    settings = settings or LocalSettings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.state_dir, 0o755)
    started = []
    cluster_id = new_cluster_id()  # one id for every node of a cluster formatted now
    starting: list[tuple[Kafka, float]] = []
    for server in servers(settings):
        t0 = time.monotonic()
        server.install()
        if isinstance(server, Kafka) and settings.kafka_brokers > 1:
            if server.start(wait=False, cluster_id=cluster_id):
                starting.append((server, t0))
            else:
                report(f"{server.name:<11} running   on {server.state().where}")
            continue
        if server.start():
            started.append(server.name)
            report(f"{server.name:<11} started   on {server.state().where}  ({time.monotonic() - t0:.1f} s)")
        else:
            if isinstance(server, Postgres):
                server.create_databases()
            report(f"{server.name:<11} running   on {server.state().where}")
    for server, t0 in starting:  # a cluster answers once a majority of its controllers runs
        server.wait()
        started.append(server.name)
        report(f"{server.name:<11} started   on {server.state().where}  ({time.monotonic() - t0:.1f} s)")
    (settings.state_dir / "kafka.brokers").write_text(str(settings.kafka_brokers))  # what down and status act on
    return started


def down(settings: LocalSettings | None = None, report: Callable[[str], None] = print) -> list[str]:
    """Stop the servers this launcher started; leave anything else alone."""
    stopped = []
    running = servers(settings)
    nodes = [s for s in running if isinstance(s, Kafka)]
    signalled = set()
    if len(nodes) > 1:  # a cluster's nodes are told to stop together: the last alone would wait for a quorum
        for node in nodes:
            if (pid := node.pid()) is not None:
                os.kill(pid, signal.SIGTERM)
                signalled.add(node.name)
    for server in reversed(running):
        if server.stop() or server.name in signalled:
            stopped.append(server.name)
            report(f"{server.name:<11} stopped")
        else:
            report(f"{server.name:<11} was not running from this state directory")
    return stopped


def status(settings: LocalSettings | None = None) -> list[ServerState]:
    return [server.state() for server in servers(settings)]
