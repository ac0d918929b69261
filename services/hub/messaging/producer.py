"""An idempotent Avro producer: acks=all, broker-side de-duplication of retried batches."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer

from hub.messaging.codec import AvroCodec

Headers = list[tuple[str, bytes]]


class EventProducer:
    """Publishes records as Avro single-object messages.

    `publish` returns only when the broker has the message on all in-sync replicas, which is
    what an outbox relay or a dead-letter write needs before it marks its own work done.
    """

    def __init__(
        self,
        bootstrap: str,
        codec: AvroCodec,
        *,
        client_id: str = "hub",
        linger_ms: int = 5,
        request_timeout_ms: int = 30_000,
        delivery_timeout_ms: int = 120_000,
    ):
        self.codec = codec
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            max_in_flight_requests_per_connection=5,
            linger_ms=linger_ms,
            request_timeout_ms=request_timeout_ms,
            delivery_timeout_ms=delivery_timeout_ms,
        )
        self._send_timeout_s = delivery_timeout_ms / 1000

    def send(self, topic: str, key: str | bytes | None, record_name: str, record: dict[str, Any],
             headers: Headers | None = None):
        """Queue one record; returns the future. Call `flush` before relying on it."""
        return self.send_bytes(topic, key, self.codec.encode(record_name, record), headers)

    def send_bytes(self, topic: str, key: str | bytes | None, value: bytes | None, headers: Headers | None = None):
        key_bytes = key.encode() if isinstance(key, str) else key
        return self._producer.send(topic, key=key_bytes, value=value, headers=headers or [])

    def publish(self, topic: str, key: str | bytes | None, record_name: str, record: dict[str, Any],
                headers: Headers | None = None):
        """Send one record and wait for the broker's acknowledgement; returns its metadata."""
        return self.send(topic, key, record_name, record, headers).get(timeout=self._send_timeout_s)

    def flush(self, timeout_s: float | None = None) -> None:
        self._producer.flush(timeout=timeout_s if timeout_s is not None else self._send_timeout_s)

    def close(self, timeout_s: float = 10) -> None:
        self._producer.close(timeout=timeout_s)

    def __enter__(self) -> "EventProducer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
