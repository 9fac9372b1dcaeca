"""Tamper evidence for the audit store: the hash chain's definitions, shared by the sealer
(``fnscope.processors.audit_sealer``) and the verifier (``fnscope.query.audit_verify``).

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
- entry line: ``"{ingested_ms} {time_ms} {len(event_id)}:{event_id} {content}\\n"``, one per stored version of an
  event; entries sorted by (arrival, event id, event time, content) and hashed per second of arrival:
  ``sha256(lines)``; a digest's ``events_hash`` is SHA-256 over ``"{second} {count} {chunk_hash}\\n"`` for its
  seconds in order.
- digest: SHA-256 over the sorted-keys compact JSON of its header (version, tenant, seq, window, count,
  events_hash, prev_hash); the first digest's prev_hash is 64 zeros.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

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
    # the order the SQL sorts the entry tuples in: arrival, event id, event time, content (two versions of one
    # event may arrive in the same millisecond)
    for ingested_ms, event_id, time_ms, content in sorted(entries, key=lambda e: (e[0], e[1].encode(), e[2], e[3])):
        line = f"{ingested_ms} {time_ms} {len(event_id.encode())}:{event_id} {content}\n".encode()
        chunks.setdefault(ingested_ms // 1000, []).append(line)
    outer = hashlib.sha256()
    for second, lines in sorted(chunks.items()):
        outer.update(f"{second} {len(lines)} {hashlib.sha256(b''.join(lines)).hexdigest()}\n".encode())
    return outer.hexdigest()


def chunks_to_events_hash(chunks: Iterable[tuple[int, int, str]]) -> str:
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
CHUNKS_SQL = """
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

    def public_pem(self) -> str:
        """What a bundle may carry to check signatures: the Ed25519 public key (PEM); nothing for an HMAC secret."""
        if self._public is None:
            return ""
        from cryptography.hazmat.primitives import serialization

        pem = self._public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return pem.decode()

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


def chunks_of(client: Client, tenant: str, lo: int, hi: int) -> dict[int, list[tuple[int, int, str]]]:
    out: dict[int, list[tuple[int, int, str]]] = {}
    rows = client.query(CHUNKS_SQL, parameters={"tenant": tenant, "lo": lo, "hi": hi}).result_rows
    for seq, second, count, chunk_hash in rows:
        out.setdefault(int(seq), []).append((int(second), int(count), chunk_hash))
    return out


def server_now_ms(client: Client) -> int:
    return int(client.command("SELECT toUnixTimestamp64Milli(now64(3))"))
