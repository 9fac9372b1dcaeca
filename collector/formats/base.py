"""What every format parser takes and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from fnscope.events import DeadLetter, Event, dead_letter
from fnscope.sink import IngestContext


@dataclass
class Parsed:
    """A parser's result: good events, dead letters for the bad parts, and format-specific answers."""

    events: list[Event] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    stored: int = 0  # events the store already took itself, before the parser (see collector.routes.StoreFirst)

    def reject(self, ctx: IngestContext, source: str, reason: str, raw: bytes | str) -> None:
        self.dead.append(dead_letter(source, reason, raw, tenant=ctx.tenant))

    def collect(self, ctx: IngestContext, source: str, raw: bytes | str, make: Callable[[], list[Event]]) -> None:
        """The events ``make`` builds from one record, or, if that record can't be read or a value of it can't be
        stored (out of range, not finite), a dead letter for the record alone: never an error for the batch."""
        try:
            self.events.extend(make())
        except (ValueError, OverflowError, RecursionError) as exc:  # pydantic's ValidationError is a ValueError
            self.reject(ctx, source, error_reason(exc), raw)

    def extend(self, other: Parsed) -> None:
        self.events.extend(other.events)
        self.dead.extend(other.dead)


def error_reason(exc: BaseException) -> str:
    """A one-line dead-letter reason; pydantic errors name the field rather than the model."""
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        return f"invalid {'.'.join(str(part) for part in first['loc'])}: {first['msg'].removeprefix('Value error, ')}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
