"""The local launcher's settings and what every server shares: running a command, waiting for a port
or a pid, installing a Debian package, a server's state."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hub import settings

KAFKA_VERSION = "4.1.1"
DATABASES = ("hub_registration", "hub_settlement", "hub_clearing")
REPO_ROOT = Path(__file__).resolve().parents[3]
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


def free_ports(first: int, size: int) -> int:
    """The first port, from `first` on in steps of 10 and below Linux's ephemeral range (32768), of
    `size` consecutive ports nothing listens on or holds: a throwaway cluster's (a fixed block in the
    ephemeral range failed in CI: one of its ports was some connection's source port)."""
    for base in range(first, 32768 - size, 10):
        if all(_bindable(port) for port in range(base, base + size)):
            return base
    raise LocalServiceError(f"no {size} free consecutive ports from {first} up to 32768")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


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


def wait_for_exit(pid: int, timeout_s: float) -> bool:
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
