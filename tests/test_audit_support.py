"""Support for the audit tests (no tests here): a real chDB store in the test process, the real CloudTrail
samples, and records derived from real samples (a real record with a new eventID and the named fields changed)
for the event names no sample has."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from fnscope.collector.formats import cloudtrail
from fnscope.events import AuditEvent
from fnscope.processors.store import open_store
from fnscope.processors.writer import EventWriter
from fnscope.sink import IngestContext

CLOUDTRAIL = Path(__file__).resolve().parents[2] / "shared" / "samples" / "cloudtrail"
STRATUS = CLOUDTRAIL / "stratus_red_team_detonation_logs"
DOC_EXAMPLES = CLOUDTRAIL / "aws_docs_examples" / "cloudtrail_doc_examples.json"


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
