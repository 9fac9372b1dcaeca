"""Tamper evidence for the audit store: a hash chain of digests over the audit events, and its verification.

Sealing. Events are sealed in windows of arrival time (``ingested_at``, set by ClickHouse on insert), one digest
per tenant per window that has events, once the window closed ``settle`` seconds ago. Sealing a window writes
one manifest row per event (``audit_seal_entries``: arrival, event id, event time, content hash) and a digest
(``audit_digests``) holding the hash of those entries and the previous digest's hash, optionally signed. Everything
is computed from the stored rows, so it is deterministic: two sealers (several distributed processors) write
identical rows, which the tables' ReplacingMergeTree collapses.

Verifying walks the chain (links, digest hashes, signatures), recomputes each digest's entry hash from its
manifest, and recomputes every stored event's content hash against the manifest, naming each event that was
changed, deleted, inserted into sealed history, or moved (its event time or arrival changed).

The hashes are specified here so anyone can recompute them without ClickHouse (``content_hash``,
``events_hash``, ``digest_hash`` below are the reference; the SQL computes the same bytes):

- content: SHA-256 over the netstrings ``len:bytes`` of CONTENT_FIELDS (text as UTF-8; booleans ``1``/``0``,
  null empty; an array is the concatenation of its elements' netstrings, itself a netstring).
- entry line: ``"{ingested_ms} {time_ms} {len(event_id)}:{event_id} {content}\\n"``; entries sorted by
  (arrival, event id) and hashed per second of arrival: ``sha256(lines)``; a digest's ``events_hash`` is
  SHA-256 over ``"{second} {count} {chunk_hash}\\n"`` for its seconds in order.
- digest: SHA-256 over the sorted-keys compact JSON of its header (version, tenant, seq, window, count,
  events_hash, prev_hash); the first digest's prev_hash is 64 zeros.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import hmac
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

log = logging.getLogger("fnscope.integrity")

GENESIS = "0" * 64
FORMAT_VERSION = 1
FUTURE_SKEW_S = 300  # an arrival time further ahead of the store's clock than this cannot be genuine

# (column, kind). Fixed forever for FORMAT_VERSION 1: a new column must not change the hash of sealed events.
CONTENT_FIELDS: tuple[tuple[str, str], ...] = (
    ("tenant", "str"),
    ("event_id", "str"),
    ("account", "str"),
    ("region", "str"),
    ("source", "str"),
    ("service", "str"),
    ("action", "str"),
    ("principal_type", "str"),
    ("principal_arn", "str"),
    ("principal_name", "str"),
    ("principal_account", "str"),
    ("session_issuer", "str"),
    ("access_key", "str"),
    ("mfa", "bool"),
    ("source_ip", "str"),
    ("user_agent", "str"),
    ("error_code", "str"),
    ("error_message", "str"),
    ("read_only", "bool"),
    ("event_type", "str"),
    ("event_category", "str"),
    ("event_version", "str"),
    ("function", "str"),
    ("resources", "array"),
    ("raw", "str"),
)


# --- the hashes, in Python (the reference) and in SQL (the same bytes, computed where the data is) -------------


def _netstring(data: bytes) -> bytes:
    return str(len(data)).encode() + b":" + data


def _field_bytes(kind: str, value: Any) -> bytes:
    if kind == "bool":
        return b"" if value is None else (b"1" if value else b"0")
    if kind == "array":
        return b"".join(_netstring(str(item).encode()) for item in value or [])
    return str(value if value is not None else "").encode()


def content_hash(row: dict[str, Any]) -> str:
    """The content hash of one stored audit event (a row with the CONTENT_FIELDS columns)."""
    data = b"".join(_netstring(_field_bytes(kind, row[name])) for name, kind in CONTENT_FIELDS)
    return hashlib.sha256(data).hexdigest()


def epoch_ms(value: datetime) -> int:
    """Milliseconds since the epoch, exactly (no float rounding), as the SQL's toUnixTimestamp64Milli."""
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def events_hash(entries: Iterable[tuple[int, str, int, str]]) -> str:
    """``events_hash`` of a digest from its entries ``(ingested_ms, event_id, time_ms, content)``."""
    chunks: dict[int, list[bytes]] = {}
    for ingested_ms, event_id, time_ms, content in sorted(entries, key=lambda e: (e[0], e[1].encode())):
        line = f"{ingested_ms} {time_ms} {len(event_id.encode())}:{event_id} {content}\n".encode()
        chunks.setdefault(ingested_ms // 1000, []).append(line)
    outer = hashlib.sha256()
    for second, lines in sorted(chunks.items()):
        outer.update(f"{second} {len(lines)} {hashlib.sha256(b''.join(lines)).hexdigest()}\n".encode())
    return outer.hexdigest()


def _chunks_to_events_hash(chunks: Iterable[tuple[int, int, str]]) -> str:
    outer = hashlib.sha256()
    for second, count, chunk_hash in chunks:
        outer.update(f"{second} {count} {chunk_hash}\n".encode())
    return outer.hexdigest()


def _sql_field(name: str, kind: str) -> str:
    if kind == "bool":
        text = f"if(isNull({name}), '', if(assumeNotNull({name}), '1', '0'))"
    elif kind == "array":
        text = f"arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), {name}))"
    else:
        text = name
    return f"toString(length({text})), ':', {text}"


CONTENT_SQL = "lower(hex(SHA256(concat({}))))".format(", ".join(_sql_field(n, k) for n, k in CONTENT_FIELDS))

# Per (seq, second of arrival): the entry count and the hash of its sorted entry lines.
_CHUNKS_SQL = """
SELECT seq, toUnixTimestamp(ingested_at) AS second, count() AS n,
    lower(hex(SHA256(arrayStringConcat(arrayMap(
        e -> concat(toString(toUnixTimestamp64Milli(e.1)), ' ', toString(toUnixTimestamp64Milli(e.3)), ' ',
                    toString(length(e.2)), ':', e.2, ' ', e.4, '\n'),
        arraySort(groupArray((ingested_at, event_id, time, toString(content))))))))) AS chunk_hash
FROM audit_seal_entries FINAL
WHERE tenant = {tenant:String} AND seq >= {lo:UInt64} AND seq <= {hi:UInt64}
GROUP BY seq, second
ORDER BY seq, second
"""


@dataclass(frozen=True)
class Digest:
    tenant: str
    seq: int
    window_start_ms: int
    window_end_ms: int
    event_count: int
    events_hash: str
    prev_hash: str
    algorithm: str = ""
    key_id: str = ""
    signature: str = ""

    def header(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "tenant": self.tenant,
            "seq": self.seq,
            "window_start_ms": self.window_start_ms,
            "window_end_ms": self.window_end_ms,
            "event_count": self.event_count,
            "events_hash": self.events_hash,
            "prev_hash": self.prev_hash,
        }

    def digest_hash(self) -> str:
        return hashlib.sha256(orjson.dumps(self.header(), option=orjson.OPT_SORT_KEYS)).hexdigest()


# --- signing --------------------------------------------------------------------------------------------------


class Signer:
    """HMAC-SHA256 with a shared secret, or Ed25519 (a private key signs; a public key alone only verifies)."""

    def __init__(
        self, algorithm: str, key_id: str, secret: bytes | None = None, private: Any = None, public: Any = None
    ):
        self.algorithm, self.key_id = algorithm, key_id
        self._secret, self._private, self._public = secret, private, public

    @property
    def can_sign(self) -> bool:
        return self._secret is not None or self._private is not None

    def sign(self, digest_hash: str) -> str:
        if self._secret is not None:
            return hmac.new(self._secret, digest_hash.encode(), hashlib.sha256).hexdigest()
        return base64.b64encode(self._private.sign(digest_hash.encode())).decode()

    def verify(self, digest_hash: str, signature: str) -> bool:
        if self._secret is not None:
            return hmac.compare_digest(self.sign(digest_hash), signature)
        from cryptography.exceptions import InvalidSignature

        try:
            self._public.verify(base64.b64decode(signature), digest_hash.encode())
            return True
        except (InvalidSignature, ValueError):
            return False


def load_signer(setting: str) -> Signer | None:
    """``audit_signing_key``: empty (no signatures), an HMAC secret, or Ed25519 PEM text or the path of a PEM file."""
    if not setting:
        return None
    text = setting
    if "-----BEGIN" not in setting and len(setting) < 4096:
        path = Path(setting).expanduser()
        if path.is_file():
            text = path.read_text()
    if "-----BEGIN" not in text:
        secret = text.encode()
        return Signer("hmac-sha256", hmac.new(secret, b"fnscope audit key id", hashlib.sha256).hexdigest()[:16], secret)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    private = None
    if "PRIVATE KEY" in text:
        private = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError("audit_signing_key: only Ed25519 private keys are supported")
        public = private.public_key()
    else:
        public = serialization.load_pem_public_key(text.encode())
    if not isinstance(public, Ed25519PublicKey):
        raise ValueError("audit_signing_key: only Ed25519 keys are supported")
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Signer("ed25519", hashlib.sha256(raw).hexdigest()[:16], private=private, public=public)


# --- sealing --------------------------------------------------------------------------------------------------


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


def _server_now_ms(client: Client) -> int:
    return int(client.command("SELECT toUnixTimestamp64Milli(now64(3))"))


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
        cutoff = _server_now_ms(self.client) - self.settle_ms
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
        chunks = _chunks(self.client, tenant, seq, seq).get(seq, [])
        digest = Digest(
            tenant=tenant,
            seq=seq,
            window_start_ms=start,
            window_end_ms=end,
            event_count=sum(count for _, count, _ in chunks),
            events_hash=_chunks_to_events_hash(chunks),
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


def start_audit_sealer(settings: Any, dsn: str) -> Sealer:
    """The hook `fnscope up` and `fnscope processor` call: a sealer thread on its own connection."""
    from processors.store import connect

    sealer = Sealer(
        connect(dsn),
        load_signer(settings.audit_signing_key),
        settings.audit_seal_window_s,
        settings.audit_seal_settle_s,
    ).start()
    # Stopped before the interpreter tears the embedded engine down: a query still running then crashes chDB.
    atexit.register(sealer.stop)
    return sealer


def _chunks(client: Client, tenant: str, lo: int, hi: int) -> dict[int, list[tuple[int, int, str]]]:
    out: dict[int, list[tuple[int, int, str]]] = {}
    rows = client.query(_CHUNKS_SQL, parameters={"tenant": tenant, "lo": lo, "hi": hi}).result_rows
    for seq, second, count, chunk_hash in rows:
        out.setdefault(int(seq), []).append((int(second), int(count), chunk_hash))
    return out


# --- verifying ------------------------------------------------------------------------------------------------


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
    sealed_events: int = 0
    unsealed_events: int = 0
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

_EVENTS_SQL = f"""
SELECT coalesce(l.event_id, s.event_id) AS id,
    multiIf(l.event_id IS NULL, 'deleted', s.event_id IS NULL, 'inserted', l.h != s.h, 'changed', 'reordered'),
    s.sq,
    toUnixTimestamp64Milli(l.ing), toUnixTimestamp64Milli(s.ing),
    toUnixTimestamp64Milli(l.t), toUnixTimestamp64Milli(s.t)
FROM (
    SELECT event_id, argMax({CONTENT_SQL}, ingested_at) AS h, max(ingested_at) AS ing,
        argMax(time, ingested_at) AS t
    FROM audit_events
    WHERE tenant = {{tenant:String}} AND ingested_at >= fromUnixTimestamp64Milli({{horizon:Int64}}, 'UTC')
    GROUP BY event_id
) AS l
FULL OUTER JOIN (
    SELECT event_id, argMax(toString(content), (seq, ingested_at)) AS h,
        argMax(ingested_at, (seq, ingested_at)) AS ing, argMax(time, (seq, ingested_at)) AS t, max(seq) AS sq
    FROM audit_seal_entries FINAL
    WHERE tenant = {{tenant:String}} AND ingested_at >= fromUnixTimestamp64Milli({{horizon:Int64}}, 'UTC')
    GROUP BY event_id
) AS s ON l.event_id = s.event_id
WHERE (l.event_id IS NULL OR l.ing < fromUnixTimestamp64Milli({{watermark:Int64}}, 'UTC'))
  AND (l.event_id IS NULL OR s.event_id IS NULL OR l.h != s.h OR l.t != s.t OR l.ing != s.ing)
ORDER BY coalesce(s.sq, 0), id
LIMIT {{limit:UInt32}}
SETTINGS join_use_nulls = 1
"""


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
    now_ms = _server_now_ms(client)
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
    events = client.query(
        _EVENTS_SQL, parameters={"tenant": tenant, "horizon": horizon, "watermark": watermark, "limit": limit + 1}
    ).result_rows
    report.truncated = len(events) > limit
    report.problems += [_event_problem(row) for row in events[:limit]]
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
    chunks = _chunks(client, tenant, digests[0][0].seq, digests[-1][0].seq)
    for digest, _ in digests:
        found = chunks.get(digest.seq, [])
        count = sum(n for _, n, _ in found)
        if count != digest.event_count or _chunks_to_events_hash(found) != digest.events_hash:
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
    pending, future, future_ids = client.query(
        "SELECT countIf(ingested_at >= fromUnixTimestamp64Milli({wm:Int64}, 'UTC')), "
        "countIf(ingested_at > fromUnixTimestamp64Milli({future:Int64}, 'UTC')), "
        "groupArrayIf(20)(event_id, ingested_at > fromUnixTimestamp64Milli({future:Int64}, 'UTC')) "
        "FROM audit_events WHERE tenant = {tenant:String} AND ingested_at >= fromUnixTimestamp64Milli({wm:Int64}, 'UTC')",
        parameters={"tenant": tenant, "wm": watermark, "future": future_ms},
    ).result_rows[0]
    report.unsealed_events = int(pending) - int(future)
    for event_id in future_ids:
        report.problems.append(Problem("inserted", "stored with an arrival time in the future", event_id))
