"""PostgreSQL and Redis from Debian's packages, on loopback, their state in the state directory."""

from __future__ import annotations

import glob
import os
import shutil
import signal


from hub.development.process import (DATABASES, LocalServiceError, LocalSettings, ServerState, _apt_install,
                                    _pid_alive, _port_open, _run, _wait_until, wait_for_exit)


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
        wait_for_exit(pid, self.s.start_timeout_s)
        return True

    def state(self) -> ServerState:
        pid = self.pid()
        return ServerState(self.name, pid is not None and self.answers(), pid is not None,
                           f"127.0.0.1:{self.s.redis_port}", f"pid {pid}" if pid else "")


