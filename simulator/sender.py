"""Send rendered payloads to a running fnscope over HTTP, paced in simulated real time, and sum up the run."""

from __future__ import annotations

import email.utils
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import orjson

from fnscope.simulator.scheduler import FunctionSpec, Simulation, simulate
from fnscope.simulator.wire import WireRequest, gzip_bytes, iter_render

DEFAULT_TARGET = "http://127.0.0.1:4318"
USER_AGENT = "fnscope-simulator/1.0"
FIREHOSE_USER_AGENT = "Amazon Kinesis Data Firehose Agent/1.0"
MAX_ATTEMPTS = 5
MAX_RETRY_WAIT_S = 10.0
# A fleet's execution environments, log subscriptions and trails post on their own, not one after another: a
# simulated second's requests go out this many at a time. It also lets the embedded store take them in a few
# inserts instead of one per request (`fnscope up --simulate`: 86 % of a core sending one by one, 33 % like this).
CONCURRENT_REQUESTS = 8


class SendError(RuntimeError):
    """The target could not be reached at all, even after retries."""


@dataclass
class Summary:
    invocations: int = 0
    cold_starts: int = 0
    errors: int = 0
    timeouts: int = 0
    ooms: int = 0
    throttles: int = 0
    requests_sent: int = 0
    requests_failed: int = 0  # answered with a non-2xx status after all retries
    retries: int = 0
    events_sent: int = 0  # telemetry events, log events, access-log lines and CloudTrail records
    events_accepted: int = 0  # sum of "accepted" in the receivers' JSON answers
    events_rejected: int = 0
    firehose_events: int = 0  # Firehose answers {requestId, timestamp}: log events in deliveries it took (2xx)
    requests_by_kind: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @classmethod
    def of(cls, sim: Simulation) -> Summary:
        summary = cls()
        for inv in sim.invocations:
            summary.invocations += 1
            summary.cold_starts += inv.cold_start
            summary.errors += inv.status == "error"
            summary.timeouts += inv.status == "timeout"
            summary.ooms += inv.status == "oom"
            summary.throttles += inv.status == "throttled"
        return summary

    def record(self, req: WireRequest, resp: httpx.Response) -> None:
        self.requests_sent += 1
        self.requests_by_kind[req.kind] += 1
        self.events_sent += req.events
        if not resp.is_success:
            self.requests_failed += 1
            return
        try:
            answer = orjson.loads(resp.content) if resp.content else {}
        except orjson.JSONDecodeError:
            answer = {}
        if isinstance(answer, dict):
            self.events_accepted += int(answer.get("accepted") or 0)
            self.events_rejected += int(answer.get("rejected") or 0)
        if req.kind == "firehose":
            self.firehose_events += req.events

    def render(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.requests_by_kind.items()))
        return "\n".join(
            (
                f"invocations      {self.invocations}",
                f"cold starts      {self.cold_starts}",
                f"errors           {self.errors}",
                f"timeouts         {self.timeouts}",
                f"out of memory    {self.ooms}",
                f"throttles        {self.throttles}",
                f"requests sent    {self.requests_sent} ({kinds}); failed {self.requests_failed}, "
                f"retries {self.retries}",
                f"events sent      {self.events_sent}",
                f"events accepted  {self.events_accepted} (rejected {self.events_rejected}); "
                f"firehose log events delivered {self.firehose_events}",
                f"elapsed          {self.elapsed_s:.1f} s",
            )
        )


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


class Sender:
    """Posts ``WireRequest``s with the right headers, gzip where the receiver takes it, and bounded retries."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        token: str | None = None,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target.rstrip("/")
        self.token = token
        self._client = client or httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0))
        self._own_client = client is None
        self._sleep = sleep
        self.retries = 0
        self._retries_lock = threading.Lock()  # send() is called from several threads at once

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def headers(self, req: WireRequest) -> dict[str, str]:
        headers = {"Content-Type": req.content_type, **dict(req.headers)}
        if req.kind == "firehose":
            headers["User-Agent"] = FIREHOSE_USER_AGENT
            if self.token:
                headers["X-Amz-Firehose-Access-Key"] = self.token
        else:
            headers["User-Agent"] = USER_AGENT
            headers["Content-Encoding"] = "gzip"
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def send(self, req: WireRequest) -> httpx.Response:
        """POST one request; retries 429 and 5xx (honouring Retry-After) and connection errors."""
        body = req.body if req.kind == "firehose" else gzip_bytes(req.body)
        url, headers = f"{self.target}{req.path}", self.headers(req)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            wait: float | None
            try:
                resp = self._client.post(url, params=dict(req.params), content=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt == MAX_ATTEMPTS:
                    raise SendError(f"{url}: {exc}") from exc
                wait = None
            else:
                if not _retryable(resp.status_code) or attempt == MAX_ATTEMPTS:
                    return resp
                wait = _retry_after(resp)
            with self._retries_lock:
                self.retries += 1
            self._sleep(min(MAX_RETRY_WAIT_S, 0.2 * 2 ** (attempt - 1) if wait is None else wait))
        raise AssertionError("unreachable")


def run(
    target: str = DEFAULT_TARGET,
    functions: int = 8,
    rate: float = 20.0,
    duration_s: float = 10.0,
    seed: int = 0,
    token: str | None = None,
    fast: bool = False,
    start: datetime | None = None,
    *,
    quiet: bool = False,
    client: httpx.Client | None = None,
    appsync: bool = False,
    specs: list[FunctionSpec] | None = None,
) -> Summary:
    """Simulate, render and send a run; each simulated second's payloads go out, ``CONCURRENT_REQUESTS`` at a
    time, once that second has passed on the wall clock (all at once with ``fast``). Prints the summary unless
    ``quiet``. ``appsync``: a GraphQL API in front of some functions also writes its logs (wire.appsync_requests).
    ``specs``: the fleet to run (else one drawn from ``seed``)."""
    began = time.monotonic()
    sim = simulate(functions, rate, duration_s, seed, start, specs=specs)
    summary = Summary.of(sim)
    with Sender(target, token, client=client) as sender, ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
        for batch in iter_render(sim, appsync=appsync):
            if not fast and batch:
                # a second's traffic is complete when it ends; later batches (long invocations) flush at the end
                due = began + min(batch[0].due_s + 1, duration_s)
                if (pause := due - time.monotonic()) > 0:
                    time.sleep(pause)
            for req, resp in zip(batch, pool.map(sender.send, batch), strict=True):
                summary.record(req, resp)
        summary.retries = sender.retries
    summary.elapsed_s = time.monotonic() - began
    if not quiet:
        print(summary.render())
    return summary
