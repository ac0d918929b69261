"""The hub's messaging kernel, shared by every service: Avro single-object codec, topic
table, idempotent producer and the commit-after-effect consumer loop. It imports no service."""

from hub.messaging.codec import AvroCodec, Decoded, SchemaRegistry
from hub.messaging.consumer import ConsumerLoop, ConsumerSettings, Message, send_dead_letter
from hub.messaging.errors import HandlerFailed, MessagingError, UndecodableMessage, UnencodableRecord
from hub.messaging.producer import EventProducer
from hub.messaging.topics import ALL_TOPICS, Topic, dead_letter_topic, ensure_topics

__all__ = [
    "ALL_TOPICS", "AvroCodec", "ConsumerLoop", "ConsumerSettings", "Decoded", "EventProducer",
    "HandlerFailed", "Message", "MessagingError", "SchemaRegistry", "Topic", "UndecodableMessage",
    "UnencodableRecord", "dead_letter_topic", "ensure_topics", "send_dead_letter",
]
