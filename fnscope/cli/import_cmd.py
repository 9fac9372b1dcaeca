"""`fnscope import cloudtrail PATH...`: backfill CloudTrail log files into a running instance.

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
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
import orjson
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential
from tqdm import tqdm

from fnscope.cli.common import API_OPTION, TOKEN_OPTION, api_get, check_reachable

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

    def send_file(self, path: Path) -> tuple[int, int]:
        body = path.read_bytes()
        try:
            answer = self.post(body)
            return answer.get("accepted", 0), answer.get("rejected", 0)
        except TooBig:
            return self._send_in_chunks(body)

    def send_batch(self, paths: list[Path]) -> tuple[int, int]:
        """Several files in one request (all gzip, or all plain); raises as ``post`` does."""
        bodies = [path.read_bytes() for path in paths]
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


def batches(paths: list[Path], limit: int = BATCH_BYTES) -> list[list[Path]]:
    """The files grouped into requests, in order: gzip with gzip, plain with plain, up to ``limit`` bytes each."""
    out: list[list[Path]] = []
    open_batches: dict[bool, tuple[list[Path], int]] = {}
    for path in paths:
        with path.open("rb") as f:
            gzipped = _is_gzip(f.read(2))
        size = path.stat().st_size
        current, total = open_batches.get(gzipped, ([], 0))
        if current and total + size > limit:
            out.append(current)
            current, total = [], 0
        open_batches[gzipped] = ([*current, path], total + size)
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


def check_digests(digests: list[Path], logs: list[Path], summary: Summary) -> None:
    """Each digest lists log files (S3 keys) with the SHA-256 of their uncompressed content: compare."""
    by_key: dict[str, Path] = {}
    for path in logs:
        parts = path.resolve().parts
        if "AWSLogs" in parts:
            by_key["/".join(parts[parts.index("AWSLogs") :])] = path
    for digest_path in digests:
        summary.digests += 1
        try:
            digest = orjson.loads(_plain(digest_path.read_bytes()))
        except (OSError, ValueError) as exc:
            summary.failed[str(digest_path)] = f"unreadable digest file: {exc}"
            continue
        for entry in digest.get("logFiles") or []:
            key = str(entry.get("s3Object", ""))
            local = by_key.get(key[key.find("AWSLogs") :] if "AWSLogs" in key else key)
            if local is None:
                summary.digest_log_files_not_imported += 1
                continue
            actual = hashlib.sha256(_plain(local.read_bytes())).hexdigest()
            if actual == str(entry.get("hashValue", "")).lower():
                summary.digest_log_files_verified += 1
            else:
                summary.digest_log_files_mismatched.append(str(local))


# --- the command ------------------------------------------------------------------------------------------------


def _send(sender: Sender, batch: list[Path]) -> list[tuple[Path, tuple[int, int] | Exception]]:
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
    return [(batch[0], (accepted, rejected)), *((path, (0, 0)) for path in batch[1:])]


def import_cloudtrail(
    paths: list[Path], api: str, token: str | None, workers: int, progress: bool, batch_bytes: int = BATCH_BYTES
) -> Summary:
    summary = Summary()
    logs, digests = find_files(paths, summary)
    sender = Sender(api, token)
    total = sum(path.stat().st_size for path in logs)
    with (
        tqdm(total=total, unit="B", unit_scale=True, desc="cloudtrail", disable=not progress) as bar,
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
    ):
        futures = {pool.submit(_send, sender, batch): batch for batch in batches(logs, batch_bytes)}
        for future in as_completed(futures):
            try:
                outcomes = future.result()
            except click.ClickException:
                pool.shutdown(cancel_futures=True)
                raise
            except (httpx.HTTPError, Retryable, ValueError, OSError) as exc:
                outcomes = [(path, exc) for path in futures[future]]
            for path, outcome in outcomes:
                if isinstance(outcome, Exception):
                    summary.failed[str(path)] = str(outcome)
                else:
                    summary.files += 1
                    summary.events += outcome[0]
                    summary.rejected += outcome[1]
                bar.update(path.stat().st_size)
            bar.set_postfix(events=summary.events, refresh=False)
    check_digests(digests, logs, summary)
    return summary


@click.group(name="import")
def import_() -> None:
    """Backfill data into a running fnscope."""


@import_.command(name="cloudtrail")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--workers", type=int, default=4, show_default=True, help="files sent at the same time")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.option("--quiet", is_flag=True, help="no progress bar")
@API_OPTION
@TOKEN_OPTION
def cloudtrail(paths: tuple[Path, ...], workers: int, as_json: bool, quiet: bool, api: str, token: str | None) -> None:
    """CloudTrail log files: .json, .json.gz, or S3-style trees (AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/).

    Importing the same files again adds nothing twice. Digest files are checked against the log files imported
    beside them (their signatures need AWS's public keys and are not checked here).
    """
    check_reachable(api)
    began = _arrivals(api, token, {})
    summary = import_cloudtrail(list(paths), api, token, workers, progress=not quiet and not as_json)
    if began is not None and (after := _arrivals(api, token, {"since_ms": began["now_ms"]})) is not None:
        summary.new_versions = after["new_versions"]
    if as_json:
        click.echo(json.dumps(asdict(summary)))
    else:
        _print_summary(summary)
    if summary.failed or summary.digest_log_files_mismatched:
        raise SystemExit(1)


def _arrivals(api: str, token: str | None, params: dict[str, Any]) -> dict[str, Any] | None:
    """The store's clock, or the versions new since a moment by it; None when this token may not read them."""
    try:
        answer: dict[str, Any] = api_get(api, token, "/api/audit/arrivals", params)
    except click.ClickException:
        return None
    return answer


def _print_summary(summary: Summary) -> None:
    sent = f"{summary.events} events from {summary.files} files ({summary.rejected} rejected records)"
    if summary.new_versions is None:
        click.echo(f"sent {sent}; an event already stored is kept once")
    elif summary.new_versions == 0 and summary.events:
        click.echo(f"added nothing new: the {sent} were all stored already")
    else:
        click.echo(f"sent {sent}; the store gained {summary.new_versions} new event versions meanwhile "
                   "(live deliveries included, repeats of stored events not)")  # fmt: skip
    if summary.digests:
        click.echo(
            f"digests: {summary.digests} files; log files verified {summary.digest_log_files_verified}, "
            f"mismatched {len(summary.digest_log_files_mismatched)}, "
            f"not among the imported files {summary.digest_log_files_not_imported}"
        )
        for path in summary.digest_log_files_mismatched:
            click.echo(f"  MISMATCH {path}: its content is not what CloudTrail's digest recorded", err=True)
    if summary.skipped:
        click.echo(f"skipped {len(summary.skipped)} files that are not CloudTrail logs (e.g. {summary.skipped[0]})")
    for path, reason in summary.failed.items():
        click.echo(f"  FAILED {path}: {reason}", err=True)
