"""The contract between the receivers and whatever makes their events durable (the embedded store's group
commit, or Kafka): who sent a request, where its events go, and the backpressure answer a sink may give."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from fnscope.events import Event


@dataclass
class IngestContext:
    """Who sent the request and what its URL said (function, version, region, account, api, stage)."""

    tenant: str = "default"
    params: dict[str, str] = field(default_factory=dict)

    def param(self, name: str, default: str = "") -> str:
        return self.params.get(name) or default


class Sink(Protocol):
    """Where accepted events go: the embedded store's group commit, or Kafka.

    Both methods are called from worker threads and may block briefly; ``ready`` must answer fast (a cached
    state), since it is asked on the event loop before a body is read.
    """

    def submit(self, events: list[Event]) -> Future[None]: ...

    def ready(self) -> bool: ...


class Saturated(RuntimeError):
    """The sink's backlog is full: the receiver answers 429 with Retry-After."""
