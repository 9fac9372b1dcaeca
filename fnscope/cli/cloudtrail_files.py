"""CloudTrail log files sent to a running instance, wherever they are read from (local files here; S3 in
import_s3.py), for `fnscope import cloudtrail` (import_cmd.py).

The files go to the instance's `POST /ingest/cloudtrail` as they are (gzip included), several at a time; the
instance parses and stores them (in embedded mode only `fnscope up` may open the store, and it maps large bodies
of log files in ClickHouse itself: processors/cloudtrail_bulk.py). Small files (CloudTrail
delivers one per region every few minutes, often a handful of records) travel several to a request: gzip files
back to back are one valid gzip stream of several members, and plain files one after another are concatenated
JSON documents, both of which the endpoint takes. A request refused (a file in it unusable, or the lot too big)
is sent again in halves, down to single files, so every outcome is still reported per file. Re-importing adds
nothing twice: events are keyed by their CloudTrail eventID. Digest files (`CloudTrail-Digest/`) are not events:
each one's log-file hashes are checked against the log files being imported, and the outcome reported.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
import orjson
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential
from tqdm import tqdm

LOG_SUFFIXES = (".json", ".json.gz", ".ndjson", ".jsonl", ".gz")
CHUNK_RECORDS = 5_000  # records per request when a file is too big for one
# Files sent in one request up to this size as stored (a file larger goes alone). Large: the embedded store pays
# ~0.15 s of query planning per request, and each request is a part its merges rewrite (400 files: 4 MB requests
# cost 60 us of CPU per record, 8 MB 43). 8 MB of gzip (~50,000 records) inflates to ~55 MB, under the 64 MB a
# server takes; a body refused as too big is sent again in halves.
BATCH_BYTES = 8 << 20


class Retryable(Exception):
    """The instance is busy or briefly unreachable (429/503, a dropped connection): send again."""


class TooBig(Exception):
    """The instance refused the file as too large (413): send it in chunks of records."""


@dataclass(frozen=True)
class LogFile:
    """One CloudTrail log file wherever it lives (a local path, an S3 object): its name in reports, its size,
    whether it is gzip, and how to read it (called in a sending thread, again if its request is split)."""

    name: str
    size: int
    gzipped: bool
    read: Callable[[], bytes] = field(compare=False, repr=False)

    @classmethod
    def local(cls, path: Path) -> LogFile:
        with path.open("rb") as f:
            gzipped = _is_gzip(f.read(2))
        return cls(str(path), path.stat().st_size, gzipped, path.read_bytes)


@dataclass
class Summary:
    files: int = 0
    events: int = 0
    rejected: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    digests: int = 0
    digest_log_files_verified: int = 0
    digest_log_files_mismatched: list[str] = field(default_factory=list)
    digest_log_files_not_imported: int = 0
    # versions the store gained while the import ran (a repeat of a stored one is none; live deliveries count);
    # None when the token may not read it (an `audit`-only token)
    new_versions: int | None = None


# --- finding the files ------------------------------------------------------------------------------------------


def is_digest_path(path: Path) -> bool:
    return "CloudTrail-Digest" in path.parts or "_CloudTrail-Digest_" in path.name


def find_files(paths: list[Path], summary: Summary) -> tuple[list[Path], list[Path]]:
    """(log files, digest files) under the named paths; nothing outside them, whatever a symlink says."""
    logs: list[Path] = []
    digests: list[Path] = []
    for named in paths:
        root = named.resolve()
        candidates = [named] if named.is_file() else sorted(_walk(named))
        for path in candidates:
            if named.is_dir() and not path.resolve().is_relative_to(root):
                summary.skipped.append(f"{path} (a link out of {named})")
                continue
            if not path.name.endswith(LOG_SUFFIXES):
                summary.skipped.append(str(path))
            elif is_digest_path(path):
                digests.append(path)
            else:
                logs.append(path)
    return list(dict.fromkeys(logs)), list(dict.fromkeys(digests))


def _walk(directory: Path) -> Iterator[Path]:
    for top, dirs, files in os.walk(directory, followlinks=False):
        dirs.sort()
        for name in files:
            yield Path(top) / name


# --- sending ----------------------------------------------------------------------------------------------------


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (Retryable, httpx.TransportError))


class Sender:
    def __init__(self, api: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=api.rstrip("/"), headers=headers, timeout=120)
        self.url = "/ingest/cloudtrail"

    @retry(
        retry=retry_if_exception(_retryable),
        wait=wait_exponential(multiplier=0.5, max=15),
        stop=stop_after_attempt(8),
        reraise=True,
    )
    def post(self, body: bytes) -> dict[str, Any]:
        response = self.client.post(self.url, content=body, headers={"Content-Type": "application/json"})
        if response.status_code in (429, 502, 503, 504):
            raise Retryable(f"{response.status_code}: {response.text[:200]}")
        if response.status_code == 413:
            raise TooBig(response.text[:200])
        if response.status_code == 401:
            raise click.ClickException("401: the instance wants a token (--token or FNSCOPE_TOKEN)")
        if response.status_code == 400:
            detail = _detail(response)
            if isinstance(detail, dict) and "rejected" in detail:  # every record bad: they are dead-lettered
                return {"accepted": 0, "rejected": detail["rejected"], "errors": detail.get("errors", [])}
            raise ValueError(str(detail))
        response.raise_for_status()
        return response.json()

    def send_file(self, file: LogFile) -> tuple[int, int]:
        body = file.read()
        try:
            answer = self.post(body)
            return answer.get("accepted", 0), answer.get("rejected", 0)
        except TooBig:
            return self._send_in_chunks(body)

    def send_batch(self, files: list[LogFile]) -> tuple[int, int]:
        """Several files in one request (all gzip, or all plain); raises as ``post`` does."""
        bodies = [file.read() for file in files]
        answer = self.post(b"".join(bodies) if _is_gzip(bodies[0]) else b"\n".join(bodies))
        return answer.get("accepted", 0), answer.get("rejected", 0)

    def _send_in_chunks(self, body: bytes) -> tuple[int, int]:
        records = _records(body)
        accepted = rejected = 0
        for start in range(0, len(records), CHUNK_RECORDS):
            answer = self.post(orjson.dumps(records[start : start + CHUNK_RECORDS]))
            accepted += answer.get("accepted", 0)
            rejected += answer.get("rejected", 0)
        return accepted, rejected


def _detail(response: httpx.Response) -> Any:
    try:
        return response.json().get("detail", response.text)
    except ValueError:
        return response.text


def _is_gzip(body: bytes) -> bool:
    return body[:2] == b"\x1f\x8b"


def _plain(body: bytes) -> bytes:
    return gzip.decompress(body) if _is_gzip(body) else body


def batches(files: list[LogFile], limit: int = BATCH_BYTES) -> list[list[LogFile]]:
    """The files grouped into requests, in order: gzip with gzip, plain with plain, up to ``limit`` bytes each."""
    out: list[list[LogFile]] = []
    open_batches: dict[bool, tuple[list[LogFile], int]] = {}
    for file in files:
        current, total = open_batches.get(file.gzipped, ([], 0))
        if current and total + file.size > limit:
            out.append(current)
            current, total = [], 0
        open_batches[file.gzipped] = ([*current, file], total + file.size)
    out += [batch for batch, _ in open_batches.values() if batch]
    return out


def _records(body: bytes) -> list[Any]:
    doc = orjson.loads(_plain(body))
    if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
        return doc["Records"]
    if isinstance(doc, list):
        return doc
    raise ValueError('too big to send at once, and not a {"Records": [...]} file or a JSON array to split')


# --- digests ----------------------------------------------------------------------------------------------------


def aws_logs_key(name: str) -> str:
    """A log file's key from ``AWSLogs/`` on (as digests name it), whatever bucket, prefix or folder holds it."""
    parts = name.split("/")
    return "/".join(parts[parts.index("AWSLogs") :]) if "AWSLogs" in parts else name


# A log file imported now, by its ``AWSLogs/...`` key: (its name in reports, the SHA-256 of its uncompressed content).
ContentHash = Callable[[str], tuple[str, str] | None]


def check_digests(digests: list[LogFile], content_hash: ContentHash, summary: Summary) -> None:
    """Each digest lists log files (S3 keys) with the SHA-256 of their uncompressed content: compare."""
    for digest_file in digests:
        summary.digests += 1
        try:
            digest = orjson.loads(_plain(digest_file.read()))
        except (OSError, ValueError) as exc:
            summary.failed[digest_file.name] = f"unreadable digest file: {exc}"
            continue
        for entry in digest.get("logFiles") or []:
            found = content_hash(aws_logs_key(str(entry.get("s3Object", ""))))
            if found is None:
                summary.digest_log_files_not_imported += 1
            elif found[1] == str(entry.get("hashValue", "")).lower():
                summary.digest_log_files_verified += 1
            else:
                summary.digest_log_files_mismatched.append(found[0])


def local_hashes(logs: list[Path]) -> ContentHash:
    """Local log files under an ``AWSLogs/`` folder by their key (each read when a digest names it)."""
    by_key = {aws_logs_key(path.resolve().as_posix()): path for path in logs if "AWSLogs" in path.resolve().parts}

    def content_hash(key: str) -> tuple[str, str] | None:
        path = by_key.get(key)
        return None if path is None else (str(path), content_sha256(path.read_bytes()))

    return content_hash


def content_sha256(body: bytes) -> str:
    return hashlib.sha256(_plain(body)).hexdigest()


# --- the command ------------------------------------------------------------------------------------------------


def _send(sender: Sender, batch: list[LogFile]) -> list[tuple[LogFile, tuple[int, int] | Exception]]:
    """Each file's (accepted, rejected) or error: the batch in one request; if it is refused (a file in it is
    unusable, or the lot too big), each half again, down to single files, so a bad file is named on its own."""
    if len(batch) == 1:
        try:
            return [(batch[0], sender.send_file(batch[0]))]
        except click.ClickException:
            raise
        except (httpx.HTTPError, Retryable, ValueError, OSError) as exc:
            return [(batch[0], exc)]
    try:
        accepted, rejected = sender.send_batch(batch)
    except (ValueError, TooBig):
        half = len(batch) // 2
        return _send(sender, batch[:half]) + _send(sender, batch[half:])
    # the answer counts the whole request: it is credited to its first file, the others add nothing
    return [(batch[0], (accepted, rejected)), *((file, (0, 0)) for file in batch[1:])]


@dataclass
class Sending:
    """What sending files needs, open for one import: the instance, the threads, the progress bar, the tally."""

    sender: Sender
    pool: ThreadPoolExecutor
    bar: tqdm
    summary: Summary
    batch_bytes: int = BATCH_BYTES

    def send(self, files: list[LogFile]) -> bool:
        """Send the files, several to a request and several requests at a time; True when none failed."""
        failed = False
        futures = {self.pool.submit(_send, self.sender, batch): batch for batch in batches(files, self.batch_bytes)}
        for future in as_completed(futures):
            try:
                outcomes = future.result()
            except click.ClickException:
                self.pool.shutdown(cancel_futures=True)
                raise
            except (httpx.HTTPError, Retryable, ValueError, OSError) as exc:
                outcomes = [(file, exc) for file in futures[future]]
            for file, outcome in outcomes:
                if isinstance(outcome, Exception):
                    self.summary.failed[file.name] = str(outcome)
                    failed = True
                else:
                    self.summary.files += 1
                    self.summary.events += outcome[0]
                    self.summary.rejected += outcome[1]
                self.bar.update(file.size)
            self.bar.set_postfix(events=self.summary.events, refresh=False)
        return not failed


@contextmanager
def sending(
    api: str, token: str | None, workers: int, progress: bool, total: int | None, batch_bytes: int = BATCH_BYTES
) -> Iterator[Sending]:
    with (
        tqdm(total=total, unit="B", unit_scale=True, desc="cloudtrail", disable=not progress) as bar,
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
    ):
        yield Sending(Sender(api, token), pool, bar, Summary(), batch_bytes)


def import_cloudtrail(
    paths: list[Path], api: str, token: str | None, workers: int, progress: bool, batch_bytes: int = BATCH_BYTES
) -> Summary:
    found = Summary()
    logs, digests = find_files(paths, found)
    files = [LogFile.local(path) for path in logs]
    with sending(api, token, workers, progress, sum(f.size for f in files), batch_bytes) as out:
        out.summary.skipped = found.skipped
        out.send(files)
    check_digests([LogFile.local(path) for path in digests], local_hashes(logs), out.summary)
    return out.summary
