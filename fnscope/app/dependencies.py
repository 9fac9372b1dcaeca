"""Roles start in any order (an orchestrator starts them together): a role waits for what it needs — Kafka, the
store — retrying with backoff and saying why in its log, until it answers or the role is told to stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type, wait_exponential

log = logging.getLogger("fnscope")

T = TypeVar("T")

MAX_WAIT_S = 10.0  # between attempts, once the backoff has grown


class Stopped(Exception):
    """The role was told to stop while it waited."""


def wait_for(what: str, attempt: Callable[[], T], stopping: threading.Event, max_wait_s: float = MAX_WAIT_S) -> T:
    """``attempt()``'s result once it succeeds; any exception counts as "not there yet"."""

    def say_why(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("waiting for %s (attempt %d): %s", what, state.attempt_number, error)

    retrying = Retrying(
        retry=retry_if_exception_type(Exception),
        wait=wait_exponential(multiplier=0.25, max=max_wait_s),
        stop=lambda _state: stopping.is_set(),
        sleep=stopping.wait,
        before_sleep=say_why,
    )
    try:
        result = retrying(attempt)
    except RetryError as exc:
        raise Stopped(what) from exc
    if stopping.is_set():
        raise Stopped(what)
    return result
