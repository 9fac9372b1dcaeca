"""Load with known identities: CloudTrail log files whose records carry fresh `eventID`s, sent like a real
shipper sends them (a refused or failed request is retried, same body, until acknowledged)."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

RETRY_PAUSE_S = 0.2
FUNCTIONS = 8  # the records name functions fn-0 .. fn-7


def cloudtrail_file(count: int, sender: int, serial: int) -> tuple[bytes, list[str]]:
    """A CloudTrail log file of `count` records, each with a new eventID; returns (body, ids)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ids = [str(uuid.uuid4()) for _ in range(count)]
    records = [
        {
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLE",
                "arn": f"arn:aws:iam::111122223333:user/loader-{sender}",
                "accountId": "111122223333",
                "userName": f"loader-{sender}",
            },
            "eventTime": now,
            "eventSource": "lambda.amazonaws.com",
            "eventName": "UpdateFunctionConfiguration20150331v2",
            "awsRegion": "eu-west-1",
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "faults-harness",
            "requestParameters": {"functionName": f"fn-{serial % FUNCTIONS}"},
            "eventID": event_id,
            "readOnly": False,
            "eventType": "AwsApiCall",
            "recipientAccountId": "111122223333",
        }
        for event_id in ids
    ]
    return json.dumps({"Records": records}).encode(), ids


@dataclass
class Ledger:
    """What the senders know: every id sent, and which were acknowledged (monotonic clock)."""

    sent: set[str] = field(default_factory=set)
    acked: dict[str, float] = field(default_factory=dict)  # id -> start of the attempt that got the 2xx
    requests: int = 0
    refusals: dict[str, int] = field(default_factory=dict)  # status or error name -> count
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refused(self, why: str) -> None:
        with self.lock:
            self.refusals[why] = self.refusals.get(why, 0) + 1


class Load:
    """`senders` threads, each posting `batch`-record files round-robin over the collectors until stopped."""

    def __init__(self, collectors: list[str], senders: int, batch: int, ledger: Ledger, grace_s: float = 30) -> None:
        self.collectors, self.senders, self.batch, self.ledger = collectors, senders, batch, ledger
        self.grace_s = grace_s
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(senders)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """No new files; a file still being retried gets `grace_s` to be acknowledged."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.grace_s + 15)

    def _run(self, sender: int) -> None:
        targets = itertools.cycle(self.collectors[sender % len(self.collectors) :] + self.collectors)
        with httpx.Client(timeout=httpx.Timeout(30, connect=2)) as client:
            for serial in itertools.count():
                if self._stop.is_set():
                    return
                body, ids = cloudtrail_file(self.batch, sender, serial)
                with self.ledger.lock:
                    self.ledger.sent.update(ids)
                self._deliver(client, targets, body, ids)

    def _deliver(self, client: httpx.Client, targets: itertools.cycle[str], body: bytes, ids: list[str]) -> None:
        give_up_at: float | None = None
        while True:
            if self._stop.is_set() and give_up_at is None:
                give_up_at = time.monotonic() + self.grace_s
            if give_up_at is not None and time.monotonic() > give_up_at:
                return
            url = next(targets)
            try:
                with self.ledger.lock:
                    self.ledger.requests += 1
                started = time.monotonic()
                response = client.post(f"{url}/ingest/cloudtrail", content=body)
            except httpx.HTTPError as exc:
                self.ledger.refused(type(exc).__name__)
                time.sleep(RETRY_PAUSE_S)
                continue
            if response.status_code == 200:
                with self.ledger.lock:
                    for event_id in ids:
                        self.ledger.acked.setdefault(event_id, started)
                return
            self.ledger.refused(str(response.status_code))
            time.sleep(RETRY_PAUSE_S)
