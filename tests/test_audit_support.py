"""Support for the audit tests (no tests here): a real chDB store in the test process, detonation sets (the one
written for the tests, and the third-party corpus's when it is there), and records derived from a set's records
(a copy with a new eventID and the named fields changed) for the event names a set lacks."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from fnscope.collector.formats import cloudtrail
from fnscope.events import AuditEvent
from fnscope.processors.store import open_store
from fnscope.processors.writer import EventWriter
from fnscope.sink import IngestContext
from tests import corpus
from tests.fixtures import cloudtrail_set

CLOUDTRAIL = corpus.SAMPLES / "cloudtrail"
STRATUS = CLOUDTRAIL / "stratus_red_team_detonation_logs"
DOC_EXAMPLES = CLOUDTRAIL / "aws_docs_examples" / "cloudtrail_doc_examples.json"


@dataclass(frozen=True)
class Detonations:
    """A set of attack-technique detonations: the records of each technique, by "tactic.technique" name."""

    name: str
    techniques: tuple[str, ...]
    technique: Callable[[str], list[dict[str, Any]]]

    def all_records(self) -> list[dict[str, Any]]:
        return [r for name in self.techniques for r in self.technique(name)]


FIXTURE_SET = Detonations("fixtures", cloudtrail_set.TECHNIQUES, cloudtrail_set.technique)


def corpus_set() -> Detonations:
    """Stratus Red Team's detonation logs from the corpus (skips, or fails where expected, without it)."""
    corpus.require()
    names = tuple(sorted(path.name[4:-5] for path in STRATUS.glob("aws.*.json")))
    return Detonations("corpus", names, stratus_records)


@contextmanager
def chdb_store(path: Path) -> Iterator[Client]:
    """A real chDB store opened in this process; closed after, so the next test can open its own."""
    client = open_store(f"chdb://{path}")
    try:
        yield client
    finally:
        client.close()


def stratus_records(name: str) -> list[dict[str, Any]]:
    return orjson.loads((STRATUS / f"aws.{name}.json").read_bytes())


def doc_records() -> list[dict[str, Any]]:
    return orjson.loads(DOC_EXAMPLES.read_bytes())


def derive(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of a real record with a fresh eventID and the given top-level fields replaced."""
    out = copy.deepcopy(record)
    out["eventID"] = str(uuid.uuid4())
    out.update(changes)
    return out


def events(records: list[dict[str, Any]], tenant: str = "default") -> list[AuditEvent]:
    parsed = cloudtrail.parse(orjson.dumps(records), IngestContext(tenant=tenant))
    assert parsed.dead == []
    return parsed.events  # type: ignore[return-value]


def write(client: Client, records: list[dict[str, Any]], tenant: str = "default") -> list[AuditEvent]:
    out = events(records, tenant)
    EventWriter(client).write(out)
    return out


def rewrite(client: Client, table: str, tenant: str, event_id: str, **changes: Any) -> None:
    """An edit made inside the store, as someone with access to it would make it. The content hash is in the
    sorting keys, so ClickHouse refuses to UPDATE what it covers: the rows are deleted and written again, changed,
    with everything else (their arrival time too) as it was."""
    columns = [
        name
        for (name,) in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
            "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') ORDER BY position",
            parameters={"t": table},
        ).result_rows
    ]
    where = "tenant = {tenant:String} AND event_id = {id:String}"
    params = {"tenant": tenant, "id": event_id}
    rows = client.query(f"SELECT {', '.join(columns)} FROM {table} WHERE {where}", parameters=params).result_rows
    assert rows, f"no {event_id} in {table}"
    client.command(f"ALTER TABLE {table} DELETE WHERE {where}", parameters=params, settings={"mutations_sync": 2})
    changed = [[changes.get(name, value) for name, value in zip(columns, row, strict=True)] for row in rows]
    client.insert(table, changed, column_names=columns)
