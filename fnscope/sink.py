"""The contract between the receivers and whatever makes their events durable (`fnscope up`'s local log, or
Kafka): who sent a request, where its events go, and the backpressure answer a sink may give."""

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
    # The sender's token may send audit events: only then do CloudTrail records found in a log payload (a trail's
    # CloudWatch Logs group) become audit events; otherwise they stay log lines, so the telemetry token every
    # function's environment holds cannot forge audit history.
    audit: bool = False

    def param(self, name: str, default: str = "") -> str:
        return self.params.get(name) or default


class Sink(Protocol):
    """Where accepted events go: `fnscope up`'s local durable log, or Kafka.

    ``submit`` is called from worker threads and may block briefly, unless the sink says ``submit_never_blocks``
    (then a small request may call it on the event loop); ``ready`` must answer fast (a cached state), since it is
    asked on the event loop before a body is read. The future ends when the events are durable (the processor stores
    them later; a record the store then refuses becomes a dead letter there). A caller that stops waiting cancels it.
    """

    submit_never_blocks: bool = False

    def submit(self, events: list[Event]) -> Future[None]: ...

    def ready(self) -> bool: ...

    def stored(self, timeout_s: float) -> bool:
        """Wait until everything this sink acknowledged so far is in the store (a request's ``?wait=stored``:
        read your writes); False when that took longer than ``timeout_s``, or the sink can't tell (Kafka)."""
        ...


class Saturated(RuntimeError):
    """The sink's backlog is full: the receiver answers 429 with Retry-After ("store busy")."""


class StoreUnavailable(RuntimeError):
    """The sink could not make the events durable at all (store or Kafka down, disk full): 503 with Retry-After,
    saying "store full" or "store unavailable". The cause stays in the log, not in the answer."""

    def __init__(self, message: str, full: bool = False) -> None:
        super().__init__(message)
        self.full = full


def plain_refusal(exc: BaseException) -> str:
    """What a sender is told when its events could not be made durable: plain words, no internals."""
    return "store full, retry later" if getattr(exc, "full", False) else "store unavailable, retry later"
