"""Verifying the audit store's hash chain: walks the chain (links, digest hashes, signatures), recomputes each
digest's entry hash from its manifest, and recomputes every stored event's content hash against the manifest,
naming each event that was changed, deleted, inserted into sealed history, or moved (its event time or arrival
changed). ``fnscope.audit_chain`` defines the hashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from fnscope.audit_chain import (
    CONTENT_SQL,
    FUTURE_SKEW_S,
    GENESIS,
    Digest,
    Signer,
    chunks_of,
    chunks_to_events_hash,
    server_now_ms,
)
from fnscope.timeparse import iso_utc


@dataclass
class Problem:
    kind: str  # changed | deleted | inserted | reordered | future | digest | chain | signature
    detail: str
    event_id: str = ""
    seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "event_id": self.event_id, "seq": self.seq, "detail": self.detail}


@dataclass
class Report:
    tenant: str
    digests: int = 0
    sealed_events: int = 0  # entries in the checked digests (an identical re-delivery may be sealed again)
    unsealed_events: int = 0
    events: int = 0  # unique eventIDs stored in the checked range
    versions: int = 0  # unique versions of them (an event re-sent with other content has two)
    head: dict[str, Any] | None = None
    signatures: str = "none"
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for problem in self.problems:
            counts[problem.kind] = counts.get(problem.kind, 0) + 1
        return {
            "ok": self.ok,
            "tenant": self.tenant,
            "digests": self.digests,
            "sealed_events": self.sealed_events,
            "unsealed_events": self.unsealed_events,
            "events": self.events,
            "versions": self.versions,
            "head": self.head,
            "signatures": self.signatures,
            "problem_counts": counts,
            "problems": [p.as_dict() for p in self.problems],
            "notes": self.notes,
            "truncated": self.truncated,
        }


_DIGEST_COLUMNS = (
    "seq, toUnixTimestamp64Milli(window_start), toUnixTimestamp64Milli(window_end), event_count, events_hash, "
    "prev_hash, digest_hash, algorithm, key_id, signature"
)

# Versions of events first stored in [from, to] (ms), and the store's clock: what arrived new in a span. An identical
# re-delivery collapses into the version it repeats whenever it came, so a second import of the same files adds none.
NEW_VERSIONS_SQL = """
SELECT count() AS new_versions, toUnixTimestamp64Milli(now64(3)) AS now_ms FROM (
    SELECT event_id, content FROM audit_events
    WHERE tenant = {tenant:String} AND event_id IN (
        SELECT event_id FROM audit_events
        WHERE tenant = {tenant:String} AND ingested_at >= fromUnixTimestamp64Milli({from_ms:Int64}, 'UTC')
    )
    GROUP BY event_id, content
    HAVING min(ingested_at) BETWEEN fromUnixTimestamp64Milli({from_ms:Int64}, 'UTC')
        AND fromUnixTimestamp64Milli({to_ms:Int64}, 'UTC')
)
"""

# Every stored version of an event (its content recomputed from its columns) against the versions the manifests
# sealed. A version keeps its first arrival (an identical re-delivery collapses into it): both sides compare that.
_EVENTS_SQL = f"""
SELECT coalesce(l.event_id, s.event_id) AS id,
    multiIf(l.event_id IS NULL, 'deleted', s.event_id IS NULL, 'inserted', 'reordered'),
    s.sq,
    toUnixTimestamp64Milli(l.ing), toUnixTimestamp64Milli(s.ing),
    toUnixTimestamp64Milli(l.t), toUnixTimestamp64Milli(s.t)
FROM (
    SELECT event_id, {CONTENT_SQL} AS h, min(ingested_at) AS ing, any(time) AS t
    FROM audit_events
    WHERE tenant = {{tenant:String}} AND ingested_at >= fromUnixTimestamp64Milli({{horizon:Int64}}, 'UTC')
    GROUP BY event_id, h
) AS l
FULL OUTER JOIN (
    SELECT event_id, toString(content) AS h, min(ingested_at) AS ing, argMin(time, ingested_at) AS t,
        argMin(seq, ingested_at) AS sq
    FROM audit_seal_entries FINAL
    WHERE tenant = {{tenant:String}} AND ingested_at >= fromUnixTimestamp64Milli({{horizon:Int64}}, 'UTC')
    GROUP BY event_id, h
) AS s ON l.event_id = s.event_id AND l.h = s.h
WHERE (l.event_id IS NULL OR l.ing < fromUnixTimestamp64Milli({{watermark:Int64}}, 'UTC'))
  AND (l.event_id IS NULL OR s.event_id IS NULL OR l.t != s.t OR l.ing != s.ing)
ORDER BY coalesce(s.sq, 0), id
LIMIT {{limit:UInt32}}
SETTINGS join_use_nulls = 1
"""


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return iso_utc(datetime.fromtimestamp(ms / 1000, UTC), "milliseconds")


def _event_problem(row: tuple[Any, ...]) -> Problem:
    event_id, kind, seq, live_ing, sealed_ing, live_time, sealed_time = row
    seq = None if seq is None else int(seq)
    if kind == "deleted":
        detail = f"sealed in digest {seq} (arrived {_iso(sealed_ing)}) but no longer stored"
    elif kind == "inserted":
        detail = f"stored with arrival {_iso(live_ing)}, inside sealed history, but in no digest"
    elif kind == "changed":
        detail = f"its stored content no longer matches its hash in digest {seq}"
    elif live_time != sealed_time:
        detail = f"event time moved from {_iso(sealed_time)} to {_iso(live_time)} (digest {seq})"
    else:
        detail = f"arrival moved from {_iso(sealed_ing)} to {_iso(live_ing)} (digest {seq})"
    return Problem(kind, detail, event_id, seq)


def _changed_versions(problems: list[Problem]) -> list[Problem]:
    """A sealed version gone and an unsealed one of the same event in its place: its stored content was changed."""
    kinds: dict[str, set[str]] = {}
    for problem in problems:
        kinds.setdefault(problem.event_id, set()).add(problem.kind)
    out: list[Problem] = []
    for problem in problems:
        both = {"deleted", "inserted"} <= kinds.get(problem.event_id, set())
        if both and problem.kind == "inserted":
            continue
        if both and problem.kind == "deleted":
            problem = Problem("changed", f"its stored content no longer matches its hash in digest {problem.seq}",
                              problem.event_id, problem.seq)  # fmt: skip
        out.append(problem)
    return out


def verify(
    client: Client,
    tenant: str,
    signer: Signer | None = None,
    retention_days: int | None = None,
    since_ms: int | None = None,
    limit: int = 1000,
) -> Report:
    """Check the tenant's chain, manifests and events; ``since_ms`` checks only what arrived since then."""
    report = Report(tenant)
    now_ms = server_now_ms(client)
    horizon = max(now_ms - retention_days * 86_400_000 if retention_days else 0, since_ms or 0)
    rows = client.query(
        f"SELECT {_DIGEST_COLUMNS} FROM audit_digests WHERE tenant = {{tenant:String}} ORDER BY seq",
        parameters={"tenant": tenant},
    ).result_rows
    digests = _distinct_digests(tenant, rows, report)
    report.digests = len(digests)
    _check_chain(digests, signer, report)
    watermark = digests[-1][0].window_end_ms if digests else 0
    if digests:
        head, head_hash = digests[-1]
        report.head = {"seq": head.seq, "digest_hash": head_hash, "sealed_until": _iso(head.window_end_ms)}
        _check_manifests(client, tenant, [d for d in digests if d[0].window_start_ms >= horizon], report)
        report.sealed_events = sum(d.event_count for d, _ in digests if d.window_start_ms >= horizon)
    ((report.events, report.versions),) = client.query(
        "SELECT uniqExact(event_id), uniqExact(event_id, content) FROM audit_events WHERE tenant = {tenant:String} "
        "AND ingested_at >= fromUnixTimestamp64Milli({horizon:Int64}, 'UTC')",
        parameters={"tenant": tenant, "horizon": horizon},
    ).result_rows
    events = client.query(
        _EVENTS_SQL, parameters={"tenant": tenant, "horizon": horizon, "watermark": watermark, "limit": limit + 1}
    ).result_rows
    report.truncated = len(events) > limit
    report.problems += _changed_versions([_event_problem(row) for row in events[:limit]])
    _check_future_and_pending(client, tenant, watermark, now_ms, report)
    if horizon > 0 and since_ms is None:
        report.notes.append(f"events that arrived before {_iso(horizon)} are past retention and not checked")
    elif since_ms is not None:
        report.notes.append(f"only what arrived since {_iso(since_ms)} was checked (and the whole chain of digests)")
    return report


def _distinct_digests(tenant: str, rows: list[tuple[Any, ...]], report: Report) -> list[tuple[Digest, str]]:
    """One digest per seq; two different digests with one seq (a fork) is a problem."""
    by_seq: dict[int, dict[str, tuple[Digest, str]]] = {}
    for seq, start, end, count, ev_hash, prev, digest_hash, algorithm, key_id, signature in rows:
        digest = Digest(tenant, int(seq), int(start), int(end), int(count), ev_hash, prev, algorithm, key_id, signature)
        by_seq.setdefault(int(seq), {})[digest_hash + signature] = (digest, digest_hash)
    out = []
    for seq in sorted(by_seq):
        variants = list(by_seq[seq].values())
        if len(variants) > 1:
            report.problems.append(Problem("digest", f"{len(variants)} different digests claim seq {seq}", seq=seq))
        out.append(variants[0])
    return out


def _check_chain(digests: list[tuple[Digest, str]], signer: Signer | None, report: Report) -> None:
    previous_hash, previous_seq, signed_seen = GENESIS, 0, False
    verified = unsigned = 0
    for digest, stored_hash in digests:
        if digest.seq != previous_seq + 1:
            missing = (
                f"{previous_seq + 1}" if digest.seq == previous_seq + 2 else f"{previous_seq + 1}-{digest.seq - 1}"
            )
            report.problems.append(Problem("chain", f"digest(s) {missing} missing", seq=digest.seq))
        if digest.prev_hash != previous_hash:
            report.problems.append(
                Problem("chain", f"digest {digest.seq} does not link the digest before it", seq=digest.seq)
            )
        if digest.digest_hash() != stored_hash:
            report.problems.append(
                Problem("digest", f"digest {digest.seq} was altered: its hash does not match", seq=digest.seq)
            )
        if digest.signature:
            signed_seen = True
            if signer is None:
                pass
            elif digest.key_id != signer.key_id:
                report.problems.append(
                    Problem(
                        "signature", f"digest {digest.seq} is signed by key {digest.key_id}, not ours", seq=digest.seq
                    )
                )
            elif not signer.verify(stored_hash, digest.signature):
                report.problems.append(Problem("signature", f"digest {digest.seq}: bad signature", seq=digest.seq))
            else:
                verified += 1
        else:
            unsigned += 1
            if signed_seen and signer is not None:
                report.problems.append(
                    Problem("signature", f"digest {digest.seq} is unsigned after signed ones", seq=digest.seq)
                )
        previous_hash, previous_seq = stored_hash, digest.seq
    if signer is None:
        report.signatures = "not checked: no key configured" if signed_seen else "none"
    else:
        report.signatures = f"{verified} verified ({signer.algorithm}, key {signer.key_id}), {unsigned} unsigned"


def _check_manifests(client: Client, tenant: str, digests: list[tuple[Digest, str]], report: Report) -> None:
    if not digests:
        return
    chunks = chunks_of(client, tenant, digests[0][0].seq, digests[-1][0].seq)
    for digest, _ in digests:
        found = chunks.get(digest.seq, [])
        count = sum(n for _, n, _ in found)
        if count != digest.event_count or chunks_to_events_hash(found) != digest.events_hash:
            report.problems.append(
                Problem(
                    "digest",
                    f"the manifest of digest {digest.seq} was altered ({count} entries, the digest covers "
                    f"{digest.event_count})",
                    seq=digest.seq,
                )
            )


def _check_future_and_pending(client: Client, tenant: str, watermark: int, now_ms: int, report: Report) -> None:
    future_ms = now_ms + FUTURE_SKEW_S * 1000
    future_ids = client.query(
        "SELECT groupArray(20)(event_id) FROM audit_events WHERE tenant = {tenant:String} "
        "AND ingested_at > fromUnixTimestamp64Milli({future:Int64}, 'UTC')",
        parameters={"tenant": tenant, "future": future_ms},
    ).result_rows[0][0]
    # versions, not rows: an identical re-delivery waiting for its merge is no event to seal
    report.unsealed_events = int(
        client.query(
            NEW_VERSIONS_SQL, parameters={"tenant": tenant, "from_ms": watermark, "to_ms": future_ms}
        ).result_rows[0][0]
    )
    for event_id in future_ids:
        report.problems.append(Problem("inserted", "stored with an arrival time in the future", event_id))
