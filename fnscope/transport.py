"""The Kafka contract between collectors and processors: a topic per signal, batches of events as JSON."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import orjson
from pydantic import TypeAdapter

from fnscope.events import SIGNAL_MODELS, Event, Signal

# Kafka's default message.max.bytes is 1 MB; stay well under it after JSON encoding.
MAX_EVENTS_PER_MESSAGE = 500
MAX_MESSAGE_BYTES = 512 * 1024

_ADAPTERS = {signal: TypeAdapter(list[model]) for signal, model in SIGNAL_MODELS.items()}  # type: ignore[valid-type]


def topic(prefix: str, signal: Signal) -> str:
    return f"{prefix}.{signal.value}"


def all_topics(prefix: str) -> dict[str, Signal]:
    return {topic(prefix, signal): signal for signal in Signal}


def encode_batches(events: list[Event]) -> Iterator[tuple[Signal, str, bytes]]:
    """Group events by signal and partition key, and yield (signal, key, value) messages of bounded size.

    Many events per message is what makes the Kafka hop cheap: kafka-python costs about the same per message
    whatever its size.
    """
    for signal, key, value, _chunk in encode_messages(events):
        yield signal, key, value


def encode_messages(events: list[Event]) -> Iterator[tuple[Signal, str, bytes, list[Event]]]:
    """As ``encode_batches``, each message with the events it holds."""
    groups: dict[tuple[Signal, str], list[Event]] = defaultdict(list)
    for event in events:
        groups[(event.signal, event.partition_key())].append(event)
    for (signal, key), group in groups.items():
        yield from _chunks(signal, key, group)


def _chunks(signal: Signal, key: str, group: list[Event]) -> Iterator[tuple[Signal, str, bytes, list[Event]]]:
    for start in range(0, len(group), MAX_EVENTS_PER_MESSAGE):
        chunk = group[start : start + MAX_EVENTS_PER_MESSAGE]
        value = _encode(signal, chunk)
        if len(value) > MAX_MESSAGE_BYTES and len(chunk) > 1:
            half = len(chunk) // 2
            yield from _chunks(signal, key, chunk[:half])
            yield from _chunks(signal, key, chunk[half:])
        else:
            yield signal, key, value, chunk


def _encode(signal: Signal, chunk: list[Event]) -> bytes:
    """The events as a JSON array that ``decode`` validates back into the same models.

    orjson writes the fields straight from each model (about twice as fast as pydantic's serialiser here);
    dead letters carry raw bytes, which only pydantic writes (as base64), and so does any string orjson
    refuses (a lone surrogate).
    """
    if signal is not Signal.DEAD_LETTER:
        try:
            return orjson.dumps([event.__dict__ for event in chunk])
        except orjson.JSONEncodeError:
            pass
    return _ADAPTERS[signal].dump_json(chunk)


def decode(signal: Signal, value: bytes) -> list[Event]:
    return _ADAPTERS[signal].validate_json(value)
