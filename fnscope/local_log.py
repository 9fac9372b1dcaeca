"""The local durable log of `fnscope up`: what the receivers acknowledge, read in order by the processor — the
embedded form of the Kafka topics (same messages: ``fnscope.transport``'s batches of one signal).

Receivers append; a 2xx is sent once the append's transaction committed. The processor reads records after its
committed position, stores them, then commits: the position moves and everything up to it is deleted, in one
transaction. After a crash it reads again from the position, and deterministic event ids make the replay invisible.

Why SQLite (the standard library's ``sqlite3``): in WAL mode with ``synchronous=FULL`` a commit is on disk when it
returns, a crash at any moment leaves either the whole transaction or none of it, and one writer appends while the
reader reads. It is in every Python, kept by one of the most tested code bases there is, and needs no map size
(LMDB) or queue semantics of its own (persist-queue, itself built on SQLite) — only an ordered table and a position.
Appends are group-committed by the caller (one transaction, one fsync, for every request that arrived meanwhile).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fnscope.events import Signal

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY AUTOINCREMENT, signal TEXT NOT NULL, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS position (id INTEGER NOT NULL)",
)


class LogFull(RuntimeError):
    """The log holds its limit (the store is down or slower than the senders): the receivers answer 429."""


@dataclass(frozen=True)
class LogRecord:
    id: int
    signal: Signal
    value: bytes
    decoded: Any = None  # what the appender handed over with it, while the same process still holds it


# An in-process reader gets the appender's objects with each record while they total less than this (by their
# encoded size): `fnscope up`'s processor then doesn't parse again what its receivers just validated. A restarted
# process, or a reader that fell this far behind, decodes the bytes.
RECENT_MAX_BYTES = 64 << 20


class LocalLog:
    """One SQLite file. ``append`` from one thread (the receivers' group commit), ``read``/``commit`` from another
    (the processor); each uses a connection of its own."""

    def __init__(self, path: Path, max_bytes: int, on_held: Callable[[int], None] = lambda _bytes: None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.max_bytes = path, max_bytes
        self._local = threading.local()
        db = self._db()
        with db:
            for statement in _SCHEMA:
                db.execute(statement)
            if db.execute("SELECT count() FROM position").fetchone()[0] == 0:
                db.execute("INSERT INTO position VALUES (0)")
        self._bytes = db.execute("SELECT coalesce(sum(length(value)), 0) FROM records").fetchone()[0]
        self._on_held = on_held
        self._recent: dict[int, tuple[int, Any]] = {}  # id -> (encoded size, decoded form)
        self._recent_bytes = 0
        on_held(self._bytes)
        self._lock = threading.Lock()
        self.appended = threading.Condition()  # notified after each append: an in-process reader wakes at once
        self.committed = threading.Condition()  # notified after each commit: a caller waiting for the store wakes

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # the commit is on disk when it returns: what a 2xx promises
            db.isolation_level = "DEFERRED"
            self._local.db = db
        return db

    @property
    def held_bytes(self) -> int:
        """Bytes of records not yet committed by the processor."""
        return self._bytes

    def append(self, records: Sequence[tuple[Signal, bytes]], decoded: Sequence[Any] | None = None) -> int:
        """Durably append ``records`` in one transaction; returns the id of the last. Raises ``LogFull`` past the
        size limit (a log holding nothing takes any append, so one large request is not refused for ever).
        ``decoded``, one per record, is handed to an in-process reader with it (``RECENT_MAX_BYTES``)."""
        size = sum(len(value) for _, value in records)
        with self._lock:
            if self._bytes and self._bytes + size > self.max_bytes:
                raise LogFull(f"the local log holds {self._bytes} bytes not yet stored")
            self._bytes += size
            self._on_held(self._bytes)
        db = self._db()
        try:
            with db:
                db.executemany("INSERT INTO records (signal, value) VALUES (?, ?)", [(s.value, v) for s, v in records])
                last: int = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        except BaseException:
            with self._lock:
                self._bytes -= size
                self._on_held(self._bytes)
            raise
        if decoded is not None:
            self._remember(last - len(records) + 1, records, decoded)
        with self.appended:
            self.appended.notify_all()
        return last

    def _remember(self, first: int, records: Sequence[tuple[Signal, bytes]], decoded: Sequence[Any]) -> None:
        with self._lock:
            for offset, ((_signal, value), form) in enumerate(zip(records, decoded, strict=True)):
                if self._recent_bytes + len(value) > RECENT_MAX_BYTES:
                    return
                self._recent[first + offset] = (len(value), form)
                self._recent_bytes += len(value)

    def position(self) -> int:
        """The id up to which records are stored (and gone from the log)."""
        return int(self._db().execute("SELECT id FROM position").fetchone()[0])

    def read(self, after: int, max_records: int) -> list[LogRecord]:
        rows = self._db().execute(
            "SELECT id, signal, value FROM records WHERE id > ? ORDER BY id LIMIT ?", (after, max_records)
        )
        with self._lock:
            return [
                LogRecord(id, Signal(signal), value, self._recent.get(id, (0, None))[1]) for id, signal, value in rows
            ]

    def wait(self, after: int, timeout_s: float) -> None:
        """Return when a record after ``after`` may be there, or after ``timeout_s``."""
        with self.appended:
            if self.last_id() <= after:
                self.appended.wait(timeout_s)

    def last_id(self) -> int:
        """The id of the last record ever appended (committed ones included)."""
        row = self._db().execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        return int(row[0]) if row else 0

    def commit(self, upto: int) -> None:
        """Records up to ``upto`` are stored: move the position and drop them, in one transaction."""
        db = self._db()
        with db:
            freed = db.execute("SELECT coalesce(sum(length(value)), 0) FROM records WHERE id <= ?", (upto,)).fetchone()
            db.execute("DELETE FROM records WHERE id <= ?", (upto,))
            db.execute("UPDATE position SET id = max(id, ?)", (upto,))
        with self._lock:
            self._bytes -= freed[0]
            self._on_held(self._bytes)
            for id in [id for id in self._recent if id <= upto]:
                self._recent_bytes -= self._recent.pop(id)[0]
        with self.committed:
            self.committed.notify_all()

    def wait_committed(self, upto: int, timeout_s: float) -> bool:
        """Wait until records up to ``upto`` are stored; False if that took longer than ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self.committed:
            while self.position() < upto:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.committed.wait(min(left, 1.0))
        return True

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
