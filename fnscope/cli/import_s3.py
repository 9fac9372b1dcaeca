"""`fnscope import cloudtrail s3://bucket/prefix`: a trail's log files read where CloudTrail delivers them.

The trail's tree, ``<prefix>/AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/``, is listed with boto3
(the standard credential chain; ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_S3`` are honoured by boto3 itself), one
folder level at a time, so only the date folders from ``--since`` on are ever listed; each day's files go through
the same sending path as a local import. ``CloudTrail-Digest/`` folders in range are read too, and each digest
checked against the log files read in this run, as a local import checks them.

Where it got to is kept in a state file (``$XDG_STATE_HOME/fnscope/cloudtrail-s3.json``, else
``~/.local/state/fnscope/cloudtrail-s3.json``; ``--state`` chooses another), under one entry per instance, token
(its fingerprint, never the token) and source. A date folder whose period ended more than ``DELIVERY_GRACE`` ago and
whose files all went through is done: a re-run lists nothing under it (a done month or year is one entry). A
folder still open keeps the keys already sent, so a re-run reads only files delivered since.
"""

from __future__ import annotations

import calendar
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import click
import orjson
from botocore.exceptions import BotoCoreError, ClientError

from fnscope.auth import fingerprint
from fnscope.cli.cloudtrail_files import (
    LOG_SUFFIXES,
    ContentHash,
    LogFile,
    Sending,
    aws_logs_key,
    check_digests,
    content_sha256,
)
from fnscope.cli.common import without_userinfo
from fnscope.cli.inert import terminal

# CloudTrail delivers a log file within minutes of the calls in it (an average of about 5, not guaranteed): a
# period is taken as complete, never to be listed again, a day after it ended.
DELIVERY_GRACE = timedelta(days=1)
_ACCOUNT = re.compile(r"\d{12}|o-[a-z0-9]{10,32}")
_KINDS = ("CloudTrail", "CloudTrail-Digest")
_DATE_PARTS = {"year": re.compile(r"\d{4}"), "month": re.compile(r"\d\d"), "day": re.compile(r"\d\d")}


@dataclass(frozen=True)
class Source:
    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, url: str) -> Source:
        rest = url.removeprefix("s3://")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ValueError(f"not an S3 location: {url!r} (use s3://bucket or s3://bucket/prefix)")
        return cls(bucket, prefix.strip("/") + "/" if prefix.strip("/") else "")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def root(self) -> tuple[str, list[str]]:
        """The folder to walk from and the levels left below it: a prefix may already reach into the tree."""
        parts = self.prefix.rstrip("/").split("/") if self.prefix else []
        if "AWSLogs" not in parts:
            return f"{self.prefix}AWSLogs/", []
        return self.prefix, parts[parts.index("AWSLogs") + 1 :]


def default_state_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "fnscope" / "cloudtrail-s3.json"


@dataclass
class Progress:
    """One source's entry in the state file: folders done, and keys sent in folders still open."""

    done: set[str] = field(default_factory=set)
    sent: dict[str, set[str]] = field(default_factory=dict)


class StateFile:
    """The state file, written whole (to a temporary file, then renamed) after every folder."""

    def __init__(self, path: Path, entry: str) -> None:
        self.path, self.entry = path, entry
        self.doc: dict[str, Any] = {"version": 1, "sources": {}}
        try:
            if path.exists():
                self.doc = orjson.loads(path.read_bytes())
            saved = self.doc["sources"].get(entry, {})
            done, sent = saved.get("done", []), saved.get("sent", {})
            self.progress = Progress({str(p) for p in done}, {str(k): {str(x) for x in v} for k, v in sent.items()})
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise click.ClickException(
                f"cannot use the state file {terminal(str(path))}: {terminal(str(exc) or type(exc).__name__)} "
                "(move it aside, or choose another with --state)"
            ) from None

    def save(self) -> None:
        self.doc["sources"][self.entry] = {
            "done": sorted(self.progress.done),
            "sent": {k: sorted(v) for k, v in sorted(self.progress.sent.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(self.doc, option=orjson.OPT_INDENT_2))
        os.replace(temporary, self.path)


@dataclass
class S3Counts:
    """What the walk asked of S3, and what it left alone because a run before did it."""

    listings: int = 0
    objects_read: int = 0
    folders_done_before: int = 0


class TrailWalker:
    def __init__(
        self, source: Source, since: datetime | None, state: StateFile, out: Sending, now: datetime | None = None
    ) -> None:
        self.source, self.since, self.state, self.out = source, since, state, out
        self.now = now or datetime.now(UTC)
        self.s3 = boto3.client("s3")
        self.counts = S3Counts()
        self.hashes: dict[str, tuple[str, str]] = {}  # AWSLogs/... key -> (name, content SHA-256), read this run
        self.digests: list[LogFile] = []
        self.lock = threading.Lock()

    # --- S3 ------------------------------------------------------------------------------------------------

    def folders(self, prefix: str) -> Iterator[str]:
        """The names of the folders directly under ``prefix``."""
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.source.bucket, Prefix=prefix, Delimiter="/"
        ):
            self.counts.listings += 1
            for common in page.get("CommonPrefixes", []):
                yield common["Prefix"][len(prefix) :].rstrip("/")

    def objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.source.bucket, Prefix=prefix):
            self.counts.listings += 1
            for item in page.get("Contents", []):
                yield item["Key"], item["Size"]

    def read(self, key: str) -> bytes:
        """One object's bytes (called from the sending threads)."""
        try:
            body = self.s3.get_object(Bucket=self.source.bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:  # the file fails, named; the import goes on
            raise OSError(f"cannot read s3://{self.source.bucket}/{key}: {exc}") from exc
        with self.lock:
            self.counts.objects_read += 1
        return body

    def log_file(self, key: str, size: int, digest: bool) -> LogFile:
        name = f"s3://{self.source.bucket}/{key}"

        def read() -> bytes:
            body = self.read(key)
            if not digest:
                found = (name, content_sha256(body))
                with self.lock:
                    self.hashes[aws_logs_key(key)] = found
            return body

        return LogFile(name, size, key.endswith(".gz"), read)

    # --- the walk ------------------------------------------------------------------------------------------

    def run(self) -> None:
        prefix, given = self.source.root()
        levels = ["account", "kind", "region", "year", "month", "day"]
        # a prefix reaching into the tree fixes the levels it names (an organization id adds one account level)
        if given and given[0].startswith("o-"):
            given = given[1:]
        self.walk(prefix, levels[len(given) :], digest="CloudTrail-Digest" in given, date=_date_of(given))

    def walk(self, prefix: str, levels: list[str], digest: bool, date: tuple[int, ...] = ()) -> bool:
        """Walk below ``prefix``; True when all of it is done (every date folder in it done and closed)."""
        if prefix in self.state.progress.done:
            self.counts.folders_done_before += 1
            return True
        if not levels:
            return self.day(prefix, digest, date)
        level, below = levels[0], levels[1:]
        complete = bool(date)  # only date folders are ever complete; a region always gains new days
        for name in self.folders(prefix):
            child, child_date, child_digest = f"{prefix}{name}/", date, digest
            if level == "account" and name.startswith("o-") and _ACCOUNT.fullmatch(name):
                complete &= self.walk(child, levels, digest, date)  # an organization trail: accounts below
                continue
            if level == "account" and not _ACCOUNT.fullmatch(name):
                continue
            if level == "kind":
                if name not in _KINDS:
                    continue  # CloudTrail-Insight and others: not log or digest files of this trail
                child_digest = name == "CloudTrail-Digest"
            if level in _DATE_PARTS:
                if not _DATE_PARTS[level].fullmatch(name):
                    continue
                child_date = (*date, int(name))
                if self.before_since(child_date):
                    complete = False  # left out on purpose: not done
                    continue
            complete &= self.walk(child, below, child_digest, child_date)
        if complete and date and self.closed(date):
            self.mark_done(prefix)
            return True
        return False

    def day(self, prefix: str, digest: bool, date: tuple[int, ...]) -> bool:
        """One date folder's files not sent before; True when it is done (all went through, and it is closed)."""
        sent = self.state.progress.sent.get(prefix, set())
        listed = [(k, size) for k, size in self.objects(prefix) if k.endswith(LOG_SUFFIXES) and k not in sent]
        files = {self.log_file(key, size, digest): key for key, size in listed}
        if digest:  # read now, checked once every log file of the run has been read
            ok = self.read_digests(list(files))
        else:
            ok = self.out.send(list(files))
        failed = self.out.summary.failed
        sent = sent | {key for file, key in files.items() if file.name not in failed}
        if ok and self.closed(date):
            self.mark_done(prefix)
            return True
        self.state.progress.sent[prefix] = sent
        self.state.save()
        return False

    def read_digests(self, files: list[LogFile]) -> bool:
        ok = True
        for file in files:
            try:
                body = file.read()
            except OSError as exc:
                self.out.summary.failed[file.name] = f"unreadable digest file: {exc}"
                ok = False
                continue
            self.digests.append(LogFile(file.name, file.size, file.gzipped, lambda body=body: body))
        return ok

    def mark_done(self, prefix: str) -> None:
        """One entry for the folder: its own folders' entries go."""
        progress = self.state.progress
        progress.done = {p for p in progress.done if not p.startswith(prefix)} | {prefix}
        progress.sent = {p: keys for p, keys in progress.sent.items() if not p.startswith(prefix)}
        self.state.save()

    def before_since(self, date: tuple[int, ...]) -> bool:
        return self.since is not None and _period_end(date) <= self.since

    def closed(self, date: tuple[int, ...]) -> bool:
        return bool(date) and _period_end(date) + DELIVERY_GRACE <= self.now

    def content_hash(self) -> ContentHash:
        return self.hashes.get


def _date_of(given: list[str]) -> tuple[int, ...]:
    """The date parts a prefix already names (after account, kind and region)."""
    return tuple(int(part) for part in given[3:6] if part.isdigit())


def _period_end(date: tuple[int, ...]) -> datetime:
    """When the year, month or day ``date`` names ends (UTC)."""
    year, month, day = (*date, 0, 0)[:3]
    if not month:
        return datetime(year + 1, 1, 1, tzinfo=UTC)
    if not day:
        return datetime(year, month, calendar.monthrange(year, month)[1], tzinfo=UTC) + timedelta(days=1)
    return datetime(year, month, day, tzinfo=UTC) + timedelta(days=1)


def import_from_s3(
    url: str, since: datetime | None, state_path: Path, api: str, token: str | None, out: Sending
) -> S3Counts:
    """Import the trail's files under ``url`` into the instance, resuming from the state file."""
    source = Source.parse(url)
    state = StateFile(state_path, f"{without_userinfo(api).rstrip('/')} {fingerprint(token or '')} {source}")
    try:
        walker = TrailWalker(source, since, state, out)
        walker.run()
    except (BotoCoreError, ClientError) as exc:  # credentials, no such bucket, endpoint down: one line, not a trace
        raise click.ClickException(f"cannot list {terminal(str(source))}: {terminal(str(exc))}") from None
    check_digests(walker.digests, walker.content_hash(), out.summary)
    return walker.counts
