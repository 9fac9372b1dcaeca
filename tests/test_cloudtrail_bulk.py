"""The embedded store's own CloudTrail mapping (processors/cloudtrail_bulk.py) against the Python one.

Every body goes both ways into one real chDB store, under two tenants: through the parser alone
(``collector.formats.cloudtrail.parse``, the reference), and through ``CloudTrailBulk`` with the parser taking
whatever it hands back. Each test then compares every stored column of both tenants, so a record the SQL maps
differently, or a record it should have left to the parser, fails here.
"""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from clickhouse_connect.driver.client import Client

from fnscope.collector.field_limits import truncate_fields
from fnscope.collector.formats import cloudtrail
from fnscope.decoding.errors import UnusableBody
from fnscope.processors.cloudtrail_bulk import MIN_BYTES, CloudTrailBulk
from fnscope.processors.writer import EventWriter
from fnscope.sink import IngestContext
from tests import corpus
from tests.conftest import all_stored
from tests.test_audit_support import CLOUDTRAIL, DOC_EXAMPLES, FIXTURE_SET, STRATUS, chdb_store, derive

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MAX_CHARS = 8_000  # small, so that a long field is easy to make
HORIZON_S = 86_400.0


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    with chdb_store(tmp_path_factory.mktemp("bulk") / "store") as client:
        yield client


def all_sample_records() -> list[dict[str, Any]]:
    """Every CloudTrail record in the third-party corpus, each eventID once (two doc examples share one: which of two
    different records with one id survives is up to the store's merge, on either path)."""
    records: list[Any] = [r for path in sorted(STRATUS.glob("*.json")) for r in orjson.loads(path.read_bytes())]
    records += orjson.loads(DOC_EXAMPLES.read_bytes())
    for path in sorted((CLOUDTRAIL / "single_event_fixtures").rglob("*.json")):
        doc = orjson.loads(path.read_bytes())
        records += doc.get("Records", [doc]) if isinstance(doc, dict) else doc
    seen: set[str] = set()
    out = []
    for record in records:
        event_id = record.get("eventID") if isinstance(record, dict) else None
        if event_id not in seen or event_id is None:
            out.append(record)
            seen.add(event_id)
    return out


def log_file(records: list[Any], indent: bool = False) -> bytes:
    text = json.dumps({"Records": records}, indent=2) if indent else orjson.dumps({"Records": records}).decode()
    return gzip.compress(text.encode())


def write(client: Client, parsed_events: list[Any], dead: list[Any]) -> None:
    truncate_fields(parsed_events, MAX_CHARS)  # as the receiver does
    EventWriter(client).write([*parsed_events, *dead])


def both_ways(client: Client, body: bytes, tag: str) -> tuple[int, bytes]:
    """The body through the parser alone (tenant TAG-py) and through the store first (TAG-sql)."""
    try:
        parsed = cloudtrail.parse(body, IngestContext(tenant=f"{tag}-py"))
        write(client, parsed.events, parsed.dead)
    except UnusableBody:
        pass
    bulk = CloudTrailBulk([client], MAX_CHARS, HORIZON_S, min_bytes=0)
    ctx = IngestContext(tenant=f"{tag}-sql")
    stored, rest = bulk.store(body, ctx)
    if rest:
        try:
            parsed = cloudtrail.parse_rest(rest, ctx) if stored else cloudtrail.parse(rest, ctx)
            write(client, parsed.events, parsed.dead)
        except UnusableBody:
            assert not stored
    return stored, rest


def stored_rows(client: Client, tenant: str) -> dict[str, dict[str, Any]]:
    columns = [
        name
        for (name,) in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'audit_events' "
            "AND name NOT IN ('tenant', 'ingested_at', 'content', 'first_kept')"  # hashes of tenant and arrival
        ).result_rows
    ]
    rows = client.query(
        f"SELECT {', '.join(columns)} FROM audit_events FINAL WHERE tenant = {{t:String}}", parameters={"t": tenant}
    ).named_results()
    out = {}
    for row in rows:
        if not row["raw"].endswith("more characters]"):  # a truncated record is text on both paths
            row["raw"] = json.loads(row["raw"])  # the same record; the SQL writes it compact as ClickHouse does
        out[row["event_id"]] = row
    return out


def dead_reasons(client: Client, tenant: str) -> list[str]:
    rows = client.query(
        "SELECT reason FROM dead_letters FINAL WHERE tenant = {t:String} ORDER BY reason", parameters={"t": tenant}
    ).result_rows
    return [reason for (reason,) in rows]


def assert_same(client: Client, tag: str) -> dict[str, dict[str, Any]]:
    reference, bulk = stored_rows(client, f"{tag}-py"), stored_rows(client, f"{tag}-sql")
    assert sorted(bulk) == sorted(reference)
    for event_id, row in reference.items():
        different = {k: (v, bulk[event_id][k]) for k, v in row.items() if bulk[event_id][k] != v}
        assert not different, f"{event_id}: (parser, store) {different}"
    assert dead_reasons(client, f"{tag}-sql") == dead_reasons(client, f"{tag}-py")
    return reference


@pytest.mark.parametrize("indent", [False, True], ids=["compact", "pretty-printed"])
def test_every_detonation_record_is_stored_as_the_parser_stores_it(store: Client, indent: bool) -> None:
    records = FIXTURE_SET.all_records()
    stored, rest = both_ways(store, log_file(records, indent), f"fixtures-{indent}")
    rows = assert_same(store, f"fixtures-{indent}")
    assert len(rows) == len(records) == stored  # ordinary records: the store maps every one itself
    assert not rest


@corpus.needed
@pytest.mark.parametrize("indent", [False, True], ids=["compact", "pretty-printed"])
def test_every_sample_record_is_stored_as_the_parser_stores_it(store: Client, indent: bool) -> None:
    records = all_sample_records()
    stored, rest = both_ways(store, log_file(records, indent), f"samples-{indent}")
    rows = assert_same(store, f"samples-{indent}")
    assert len(rows) > 300
    # most real records are plain; some (placeholder ids, an object where a string is read) are the parser's
    assert len(records) * 0.9 < stored < len(records)
    assert rest


def lambda_record() -> dict[str, Any]:
    (record,) = FIXTURE_SET.technique("persistence.lambda-backdoor-function")
    return derive(record)


def _set(path: str, value: Any) -> Any:
    def change(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = record
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value

    return change


UNUSUAL = {
    "number where a string is read": _set("eventName", 20150331),
    "object where a string is read": _set("errorMessage", {"code": "x"}),
    "float where a string is read": _set("recipientAccountId", 1.5e12),
    "userIdentity an array": _set("userIdentity", ["IAMUser"]),
    "resources an object": _set("resources", {"ARN": "arn:aws:lambda:us-east-1:1:function:x"}),
    "resource ARN a number": _set("resources", [{"ARN": 7}, {"arn": "arn:aws:s3:::b"}]),
    "resource an array": _set("resources", [["arn:aws:s3:::b"]]),
    "readOnly a number": _set("readOnly", 1),
    "readOnly padded": _set("readOnly", " true "),
    "MFA padded": _set("userIdentity.sessionContext.attributes.mfaAuthenticated", "yes\t"),
    "MFA unreadable, MFAUsed given": lambda r: (
        _set("userIdentity.sessionContext.attributes.mfaAuthenticated", "maybe")(r),
        _set("additionalEventData.MFAUsed", "Yes")(r),
    ),
    "placeholder eventID": _set("eventID", "00000000-0000-0000-0000-000000000000"),
    "eventTime with an offset": _set("eventTime", "2024-08-01T15:52:02+02:00"),
    "eventTime recent enough to alert": _set("eventTime", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
    "eventTime not a time": _set("eventTime", "yesterday"),
    "eventTime on a day that does not exist": _set("eventTime", "2024-02-30T10:00:00Z"),
    "eventTime at hour 25": _set("eventTime", "2024-02-28T25:00:00Z"),
    "non-ASCII text": _set("userAgent", "caf\u00e9 \u2603"),
    "field longer than the limit": _set("errorMessage", "x" * (MAX_CHARS + 10)),
    "function name with a space": _set("requestParameters.functionName", "my function"),
    "function ARN with a qualifier": _set(
        "requestParameters.functionName", "arn:aws:lambda:us-east-1:111122223333:function:fn-9:live"
    ),
}


STILL_PLAIN = {
    "function ARN with a qualifier",
    "non-ASCII text",
    "MFA unreadable, MFAUsed given",
}  # unusual to the eye, plain to the SQL


@pytest.mark.parametrize("case", list(UNUSUAL))
def test_records_the_sql_does_not_read_as_python_does_are_left_to_the_parser(store: Client, case: str) -> None:
    plain = lambda_record()
    unusual = copy.deepcopy(lambda_record())
    UNUSUAL[case](unusual)
    tag = "unusual-" + case.replace(" ", "-")
    stored, _ = both_ways(store, log_file([plain, unusual]), tag)
    rows = assert_same(store, tag)
    assert plain["eventID"] in rows
    # the plain one is the store's; the unusual one the parser's, unless it is plain after all
    assert stored == (2 if case in STILL_PLAIN else 1), f"{case}: stored {stored} of 2 in the store"


def test_escaped_characters_read_alike_and_a_lone_surrogate_goes_to_the_parser(store: Client) -> None:
    plain, escaped = lambda_record(), lambda_record()
    escaped["userAgent"] = 'caf\u00e9 \u2603 "quoted" \t tab'
    body = gzip.compress(json.dumps({"Records": [plain, escaped]}, ensure_ascii=True).encode())
    assert both_ways(store, body, "escaped")[0] == 2
    assert_same(store, "escaped")
    # a lone surrogate (json writes it as \ud800; orjson refuses it): the file is left whole to the parser
    surrogate = lambda_record()
    surrogate["userAgent"] = "lone \ud800 half"
    body = gzip.compress(json.dumps({"Records": [lambda_record(), surrogate]}, ensure_ascii=True).encode())
    assert both_ways(store, body, "surrogate")[0] == 0
    assert_same(store, "surrogate")


def test_a_key_spelled_with_an_escape_is_left_to_the_parser(store: Client) -> None:
    plain, escaped = lambda_record(), lambda_record()
    # "eventNam\u0065" is eventName to both readers, but the patterns that find a number where a string is read
    # look for the key as written
    text = orjson.dumps({"Records": [plain, escaped]}).decode()
    name = f'"eventName":"{escaped["eventName"]}"'
    assert text.count(name) == 2
    text = text[: text.rindex(name)] + '"eventNam\\u0065":20150331' + text[text.rindex(name) + len(name) :]
    assert both_ways(store, gzip.compress(text.encode()), "escaped-key")[0] == 1
    rows = assert_same(store, "escaped-key")
    assert rows[escaped["eventID"]]["action"] == "20150331"


def test_records_are_stored_compact_whatever_their_spacing(store: Client) -> None:
    records = [lambda_record() for _ in range(3)]
    spaced = json.dumps({"Records": records[:2]}) + json.dumps({"Records": records[2:]}, indent=2)
    assert both_ways(store, gzip.compress(spaced.encode()), "spacing")[0] == 3
    assert_same(store, "spacing")
    raw = store.query("SELECT raw FROM audit_events WHERE tenant = 'spacing-sql'").result_columns[0]
    assert len(raw) == 3
    assert all(text == orjson.dumps(orjson.loads(text)).decode() for text in raw)


def test_bodies_that_are_not_only_log_files_go_whole_to_the_parser(store: Client) -> None:
    record = lambda_record()
    bulk = CloudTrailBulk([store], MAX_CHARS, HORIZON_S, min_bytes=0)
    ctx = IngestContext(tenant="whole")
    digest = orjson.loads((FIXTURES / "cloudtrail" / "digest.json").read_bytes())
    bodies = {
        "a bare array of records": orjson.dumps([record]),
        "NDJSON records": orjson.dumps(record) + b"\n" + orjson.dumps(derive(record)),
        "a log file and a digest": orjson.dumps({"Records": [record]}) + b"\n" + orjson.dumps(digest),
        "a log file and broken JSON": orjson.dumps({"Records": [record]}) + b'\n{"Records": [{"eventTime": ',
        "a log file and an empty one": orjson.dumps({"Records": [record]}) + b'\n{"Records": []}',
        "not JSON": b"hello, world",
        "empty": b"",
    }
    for name, body in bodies.items():
        assert bulk.store(body, ctx) == (0, body), name
    assert bulk.store(b"\x1f\x8b\x08 not gzip", ctx) == (0, b"\x1f\x8b\x08 not gzip")
    gzipped = gzip.compress(orjson.dumps([record]))
    assert bulk.store(gzipped, ctx) == (0, gzipped)
    truncated = log_file([record, derive(record)])[:-10]
    assert bulk.store(truncated, ctx) == (0, truncated)
    assert stored_rows(store, "whole") == {}


def test_a_decompression_bomb_meets_the_memory_limit(store: Client) -> None:
    records = [derive(lambda_record()) for _ in range(3000)]
    body = b"".join(log_file(records) for _ in range(10))  # ~40 MB of JSON; this store stages 8 MB at most
    bulk = CloudTrailBulk([store], MAX_CHARS, HORIZON_S, max_inflated_bytes=1 << 20, min_bytes=0)
    assert bulk.store(body, IngestContext(tenant="bomb")) == (0, body)
    assert stored_rows(store, "bomb") == {}  # the body is the parser's, with its own inflate limit
    roomy = CloudTrailBulk([store], MAX_CHARS, HORIZON_S, min_bytes=0)
    assert roomy.store(body, IngestContext(tenant="bomb-control"))[0] == 30_000  # the limit, not the body, refused


def test_one_event_whichever_way_it_came_and_however_often(store: Client) -> None:
    records = [lambda_record() for _ in range(3)]
    body = log_file(records)
    bulk = CloudTrailBulk([store], MAX_CHARS, HORIZON_S, min_bytes=0)
    ctx = IngestContext(tenant="twice")
    parsed = cloudtrail.parse(body, ctx)
    write(store, parsed.events, parsed.dead)
    assert bulk.store(body, ctx)[0] == 3
    assert bulk.store(body, ctx)[0] == 3
    assert sorted(stored_rows(store, "twice")) == sorted(r["eventID"] for r in records)


def test_small_bodies_go_straight_to_the_parser(store: Client) -> None:
    body = log_file([lambda_record()])
    assert CloudTrailBulk([store], MAX_CHARS, HORIZON_S).store(body, IngestContext()) == (0, body)


def test_a_live_delivery_is_left_whole_to_the_parser_by_its_first_record(store: Client) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = [lambda_record() for _ in range(4)]
    live = copy.deepcopy(lambda_record())
    live["eventTime"] = now
    bulk = CloudTrailBulk([store], MAX_CHARS, HORIZON_S, min_bytes=0)
    # first record recent: a live file, the parser's whole (the old records after it too)
    body = log_file([live, *old])
    assert bulk.store(body, IngestContext(tenant="live")) == (0, body)
    assert bulk.store(gzip.decompress(body), IngestContext(tenant="live"))[0] == 0
    # first record old: a backfill's, mapped by the store, which hands back only the recent record
    stored, rest = both_ways(store, log_file([*old[:2], live, *old[2:]]), "backfill-then-live")
    assert stored == 4
    assert [r["eventID"] for r in orjson.loads(rest)["Records"]] == [live["eventID"]]
    assert_same(store, "backfill-then-live")


def test_a_partly_bad_backfill_file_through_fnscope_up(embedded: tuple[str, Any], tmp_path: Path) -> None:
    url, _ = embedded
    count = MIN_BYTES // len(orjson.dumps(lambda_record())) + 100  # over the size the store maps itself
    good = [lambda_record() for _ in range(count)]
    bad = {"eventVersion": "1.08", "eventName": "NoTime", "eventID": "bad-1"}
    body = log_file([*good, bad])
    assert len(gzip.decompress(body)) > MIN_BYTES
    answer = httpx.post(f"{url}/ingest/cloudtrail", content=body, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": count, "rejected": 1, "errors": ["not a CloudTrail record: no eventTime"]}
    all_stored(url)
    found = httpx.get(
        f"{url}/api/audit", params={"principal": good[0]["userIdentity"]["arn"], "since": "3650d", "limit": 5000}
    )
    assert {row["event_id"] for row in found.json()["results"]} >= {r["eventID"] for r in good}
    letters = httpx.get(f"{url}/api/dead-letters", params={"source": "cloudtrail"}).json()
    assert any("no eventTime" in letter["reason"] for letter in letters["results"])
