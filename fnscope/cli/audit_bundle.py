"""An evidence bundle for auditors: written from a running fnscope (``fnscope audit export``), checked anywhere
(``fnscope audit verify --bundle``, or by hand with the commands its VERIFY.md gives).

The bundle holds every stored version of the events in the range with every field their content hash covers
(events.jsonl, and events.csv whose cells can't run as formulas), each saved query's result (queries/), the manifest
entries of the digests that sealed those events (manifest.jsonl), the tenant's whole chain of digests with their
signatures (digests.jsonl), the Ed25519 public key if the digests are signed with one, and SHA256SUMS over all of
it. Checking it recomputes, from the files alone, each event's content hash and finds it in a manifest, each
digest's events hash from its manifest, each digest's own hash and its link to the one before, and each signature:
an edit anywhere that SHA256SUMS does not catch, the chain does.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fnscope.audit_chain import GENESIS, Digest, content_hash, events_hash, load_signer
from fnscope.cli.inert import csv_cell

SUMS = "SHA256SUMS"
_CSV_COLUMNS = (
    "time", "event_id", "version", "versions", "corrects", "corrected_by", "account", "region", "service", "action",
    "principal_type", "principal_arn", "principal_name", "source_ip", "user_agent", "mfa", "error_code",
    "error_message", "read_only", "function", "resources", "content",
)  # fmt: skip


def write_bundle(directory: Path, export: dict[str, Any], queries: dict[str, dict[str, Any]]) -> list[Path]:
    """Write the bundle; returns its files (SHA256SUMS last)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [
        _lines(directory / "events.jsonl", export["events"]),
        _csv(directory / "events.csv", export["events"]),
        _lines(directory / "manifest.jsonl", export["entries"]),
        _lines(directory / "digests.jsonl", export["digests"]),
    ]
    if export["public_key"]:
        written.append(_text(directory / "public_key.pem", export["public_key"]))
    (directory / "queries").mkdir(exist_ok=True)
    for name, answer in queries.items():
        written.append(_text(directory / "queries" / f"{name}.json", json.dumps(answer, indent=2, sort_keys=True)))
    written.append(_text(directory / "VERIFY.md", _verify_md(export)))
    sums = "".join(f"{_sha256(path)}  {path.relative_to(directory).as_posix()}\n" for path in written)
    written.append(_text(directory / SUMS, sums))
    return written


@dataclass
class BundleReport:
    files: int = 0
    events: int = 0
    digests: int = 0
    signatures: str = "none"
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_bundle(directory: Path) -> BundleReport:
    report = BundleReport()
    sums = directory / SUMS
    if not sums.is_file():
        report.problems.append(f"no {SUMS}: not a bundle")
        return report
    for line in sums.read_text().splitlines():
        expected, _, name = line.partition("  ")
        path = directory / name
        report.files += 1
        if not path.is_file() or _sha256(path) != expected:
            report.problems.append(f"{name}: does not match {SUMS}")
    events = _read_lines(directory / "events.jsonl")
    entries = _read_lines(directory / "manifest.jsonl")
    digests = _read_lines(directory / "digests.jsonl")
    report.events, report.digests = len(events), len(digests)
    sealed: dict[str, set[str]] = {}
    by_seq: dict[int, list[tuple[int, str, int, str]]] = {}
    for entry in entries:
        sealed.setdefault(entry["event_id"], set()).add(entry["content"])
        by_seq.setdefault(int(entry["seq"]), []).append(
            (int(entry["ingested_ms"]), entry["event_id"], int(entry["time_ms"]), entry["content"])
        )
    for event in events:
        recomputed = content_hash(event)
        if recomputed != event["content"] or recomputed not in sealed.get(event["event_id"], set()):
            report.problems.append(f"event {event['event_id']}: its content is not what a digest sealed")
    _check_digests(directory, digests, by_seq, report)
    return report


def _check_digests(
    directory: Path,
    rows: list[dict[str, Any]],
    by_seq: dict[int, list[tuple[int, str, int, str]]],
    report: BundleReport,
) -> None:
    key = directory / "public_key.pem"
    signer = load_signer(key.read_text()) if key.is_file() else None
    previous, signed = GENESIS, 0
    for row in rows:
        digest = Digest(
            row["tenant"], int(row["seq"]), int(row["window_start_ms"]), int(row["window_end_ms"]),
            int(row["event_count"]), row["events_hash"], row["prev_hash"], row["algorithm"], row["key_id"],
            row["signature"],
        )  # fmt: skip
        if row["prev_hash"] != previous:
            report.problems.append(f"digest {digest.seq}: does not link the digest before it")
        if digest.digest_hash() != row["digest_hash"]:
            report.problems.append(f"digest {digest.seq}: its hash does not match its header")
        if digest.seq in by_seq and events_hash(by_seq[digest.seq]) != digest.events_hash:
            report.problems.append(f"digest {digest.seq}: its manifest does not hash to its events hash")
        if signer is not None and digest.signature:
            signed += 1
            if not signer.verify(row["digest_hash"], digest.signature):
                report.problems.append(f"digest {digest.seq}: its signature does not verify")
        previous = row["digest_hash"]
    report.signatures = f"{signed} verified with public_key.pem" if signed else "not checked (no public key)"


def _verify_md(export: dict[str, Any]) -> str:
    signed = bool(export["public_key"])
    return f"""# Checking this evidence bundle

Audit events of tenant `{export["tenant"]}` with event times from {export["since"]} to {export["until"]}: every stored
version of each event, the manifest entries that sealed them and the tenant's whole chain of digests.

1. Every file is as written:

       sha256sum -c SHA256SUMS

2. With fnscope (any install; no store needed), everything below at once:

       fnscope audit verify --bundle .

3. By hand, the chain: each digest's `digest_hash` is SHA-256 over the sorted-keys compact JSON of its header
   (`version` 1, `tenant`, `seq`, `window_start_ms`, `window_end_ms`, `event_count`, `events_hash`, `prev_hash`), and
   each `prev_hash` is the `digest_hash` of the digest before it (64 zeros for the first). A digest's `events_hash`
   is SHA-256 over `"<second> <count> <chunk hash>\\n"` per second of arrival, each chunk hash SHA-256 over its
   manifest lines `"<ingested_ms> <time_ms> <len(event_id)>:<event_id> <content>\\n"` sorted by arrival, event id,
   time, content. An event's `content` is SHA-256 over the netstrings of the fields listed in fnscope's
   `fnscope/audit_chain.py` (CONTENT_FIELDS), in that order.
{_signature_steps() if signed else chr(10) + "4. The digests are signed with a shared secret (HMAC): ask the operator to check the signatures."}
"""


def _signature_steps() -> str:
    return """
4. Signatures (Ed25519, with the public key in this bundle), for each line of digests.jsonl:

       printf %s "<digest_hash>" > hash.txt
       printf %s "<signature>" | base64 -d > sig.bin
       openssl pkeyutl -verify -pubin -inkey public_key.pem -rawin -in hash.txt -sigfile sig.bin
"""


def _lines(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
    return path


def _csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(_CSV_COLUMNS)
        for row in rows:
            values = (row.get(c) for c in _CSV_COLUMNS)
            writer.writerow([csv_cell(json.dumps(v) if isinstance(v, (list, dict)) else v) for v in values])
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
