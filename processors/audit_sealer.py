"""Sealing the audit store into its hash chain (``fnscope.audit_chain`` defines the hashes).

Events are sealed in windows of arrival time (``ingested_at``, set by ClickHouse on insert), one digest per tenant
per window that has events, once the window closed ``settle`` seconds ago. Sealing a window writes one manifest
row per event (``audit_seal_entries``: arrival, event id, event time, content hash) and a digest
(``audit_digests``) holding the hash of those entries and the previous digest's hash, optionally signed. Everything
is computed from the stored rows, so it is deterministic: two sealers (several distributed processors) write
identical rows, which the tables' ReplacingMergeTree collapses.
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from fnscope.audit_chain import (
    CONTENT_SQL,
    GENESIS,
    Digest,
    Signer,
    chunks_of,
    chunks_to_events_hash,
    server_now_ms,
)

log = logging.getLogger("fnscope.integrity")


@dataclass
class Head:
    seq: int
    window_end_ms: int
    digest_hash: str


def _heads(client: Client) -> dict[str, Head]:
    rows = client.query(
        "SELECT tenant, max(seq), argMax(toUnixTimestamp64Milli(window_end), seq), argMax(digest_hash, seq) "
        "FROM audit_digests FINAL GROUP BY tenant"
    ).result_rows
    return {tenant: Head(int(seq), int(end), digest_hash) for tenant, seq, end, digest_hash in rows}


class Sealer:
    """Seals closed windows of audit events into the hash chain; ``seal_once`` is one pass, ``start`` a thread."""

    def __init__(self, client: Client, signer: Signer | None = None, window_s: float = 60.0, settle_s: float = 15.0):
        self.client = client
        self.signer = signer if signer is not None and signer.can_sign else None
        self.window_ms = max(1, int(window_s * 1000))
        self.settle_ms = max(0, int(settle_s * 1000))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def seal_once(self) -> int:
        """Seal every window that has closed; returns the number of digests written."""
        written = 0
        while True:
            due = self._due()
            if not due:
                return written
            for tenant, head, first_ms in due:
                self._seal(tenant, head, first_ms)
                written += 1

    def _due(self) -> list[tuple[str, Head | None, int]]:
        heads = _heads(self.client)
        cutoff = server_now_ms(self.client) - self.settle_ms
        low = min((h.window_end_ms for h in heads.values()), default=0)
        rows = self.client.query(
            "SELECT tenant, toUnixTimestamp64Milli(min(ingested_at)) FROM audit_events "
            "WHERE ingested_at >= fromUnixTimestamp64Milli({low:Int64}, 'UTC') "
            "AND ingested_at < fromUnixTimestamp64Milli({cutoff:Int64}, 'UTC') "
            "AND toUnixTimestamp64Milli(ingested_at) >= arrayElement(arrayPushFront({ends:Array(Int64)}, 0), "
            "indexOf({tenants:Array(String)}, tenant) + 1) GROUP BY tenant",
            parameters={
                "low": low,
                "cutoff": cutoff,
                "tenants": list(heads),
                "ends": [h.window_end_ms for h in heads.values()],
            },
        ).result_rows
        due = []
        for tenant, first_ms in rows:
            if (int(first_ms) // self.window_ms + 1) * self.window_ms <= cutoff:
                due.append((tenant, heads.get(tenant), int(first_ms)))
        return due

    def _seal(self, tenant: str, head: Head | None, first_ms: int) -> Digest:
        seq = head.seq + 1 if head else 1
        start = head.window_end_ms if head else first_ms // self.window_ms * self.window_ms
        end = (first_ms // self.window_ms + 1) * self.window_ms
        params = {"tenant": tenant, "seq": seq, "start": start, "end": end}
        self.client.command(
            "INSERT INTO audit_seal_entries (tenant, seq, ingested_at, event_id, time, content) "
            f"SELECT tenant, {{seq:UInt64}}, ingested_at, event_id, time, {CONTENT_SQL} FROM audit_events "
            "WHERE tenant = {tenant:String} AND ingested_at >= fromUnixTimestamp64Milli({start:Int64}, 'UTC') "
            "AND ingested_at < fromUnixTimestamp64Milli({end:Int64}, 'UTC')",
            parameters=params,
        )
        chunks = chunks_of(self.client, tenant, seq, seq).get(seq, [])
        digest = Digest(
            tenant=tenant,
            seq=seq,
            window_start_ms=start,
            window_end_ms=end,
            event_count=sum(count for _, count, _ in chunks),
            events_hash=chunks_to_events_hash(chunks),
            prev_hash=head.digest_hash if head else GENESIS,
        )
        digest_hash = digest.digest_hash()
        signature = self.signer.sign(digest_hash) if self.signer else ""
        self.client.insert(
            "audit_digests",
            [
                [
                    tenant,
                    seq,
                    datetime.fromtimestamp(start / 1000, UTC),
                    datetime.fromtimestamp(end / 1000, UTC),
                    digest.event_count,
                    digest.events_hash,
                    digest.prev_hash,
                    digest_hash,
                    self.signer.algorithm if self.signer else "",
                    self.signer.key_id if self.signer else "",
                    signature,
                ]
            ],
            column_names=[
                "tenant",
                "seq",
                "window_start",
                "window_end",
                "event_count",
                "events_hash",
                "prev_hash",
                "digest_hash",
                "algorithm",
                "key_id",
                "signature",
            ],
        )
        return digest

    def start(self, interval_s: float | None = None) -> Sealer:
        interval = interval_s if interval_s is not None else min(max(self.window_ms / 4000, 0.5), 15.0)

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.seal_once()
                except Exception as exc:  # the store is down or busy: the next pass picks up where this one stopped
                    log.warning("audit sealing failed, retrying: %s", exc)

        self._thread = threading.Thread(target=loop, name="audit-sealer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def start_audit_sealer(client: Client, signer: Signer | None, window_s: float, settle_s: float) -> Sealer:
    """The hook `fnscope up` and `fnscope processor` call: a sealer thread on a connection of its own."""
    sealer = Sealer(client, signer, window_s, settle_s).start()
    # Stopped before the interpreter tears the embedded engine down: a query still running then crashes chDB.
    atexit.register(sealer.stop)
    return sealer
