"""Apache Kafka from its Maven Central jars on the JDK (KRaft): one broker+controller, or a local
cluster of three."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import uuid


from hub.development.process import (DEPLOY_LOCAL, KAFKA_VERSION, LocalServiceError, LocalSettings, ServerState,
                                    _apt_install, _pid_alive, _port_open, _run, _tail, _wait_until, wait_for_exit)


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
        if not wait_for_exit(pid, self.s.start_timeout_s):
            os.kill(pid, signal.SIGKILL)
            wait_for_exit(pid, 10)
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



