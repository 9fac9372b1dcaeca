"""What one request may cost to decode: records and bytes inflated from payloads inside it, counted as decoding
goes, so that a small request that expands (gzip inside gzip, one record that inflates to a million lines) is
refused at the first limit instead of after it has filled memory.

The budget belongs to the request being decoded: the receiver sets it around the parser (``limited``), and the
decoding helpers and parsers charge it (``take_records``, ``inflate``'s ``charge_inflated``). Without one set
(a parser called directly, in a test or a benchmark) nothing is counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


class RequestTooLarge(Exception):
    """The request expands past a limit: answered 413. Not a ValueError, so no per-record handler takes it."""


@dataclass
class Budget:
    records: int
    inflated_bytes: int

    def take_records(self, count: int) -> None:
        self.records -= count
        if self.records < 0:
            raise RequestTooLarge("the request holds more records than one request may")

    def take_inflated(self, size: int) -> None:
        self.inflated_bytes -= size
        if self.inflated_bytes < 0:
            raise RequestTooLarge("payloads inside the request decompress to more than one request may")


_current: ContextVar[Budget | None] = ContextVar("fnscope_decoding_budget", default=None)


@contextmanager
def limited(budget: Budget) -> Iterator[Budget]:
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def take_records(count: int) -> None:
    """Charge ``count`` records (elements, log events, lines) to the request being decoded, before reading them."""
    budget = _current.get()
    if budget is not None:
        budget.take_records(count)


def inflate_allowance(limit: int) -> int:
    """How many bytes a payload may still inflate to: ``limit``, or less if the request's budget has less left."""
    budget = _current.get()
    return limit if budget is None else max(0, min(limit, budget.inflated_bytes))


def charge_inflated(size: int) -> None:
    budget = _current.get()
    if budget is not None:
        budget.take_inflated(size)
