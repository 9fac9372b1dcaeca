"""CloudTrail files mapped inside the embedded store: a backfill's records parsed by ClickHouse, not Python.

`fnscope import cloudtrail` sends years of log files; parsing each record in Python (orjson, the mapping, the
event model, JSON again for the insert) cost about ten times decoding it. Here the store reads the body itself
(JSON in C++) and maps each record with the SQL below, which is ``collector.formats.cloudtrail.record_to_event``
written for ClickHouse. The Python mapping stays the reference: the SQL takes only *plain* records, those both
read the same way, and hands every other one back for the parser to map (or dead-letter) as it always does; a
body that is not only log files goes to the parser whole. tests/test_cloudtrail_bulk.py checks that both ways
store identical rows for every CloudTrail sample and for each kind of record that is not plain.

A record is plain when its eventID and eventTime are ordinary (an id that is not all zeros, an ISO time in UTC),
every field the mapping reads holds a string or null where a string is expected (an object where an object is
expected, a boolean or a plain word where a boolean is), it fits the field limit, and it is older than the alert
horizon: recent records go through the Python path so that alert rules see them, as they see every live event. A body
whose first record is that recent (a live delivery) goes to the parser whole without being mapped here.
The stored ``raw`` is the record's text as sent when that is compact (as AWS writes it), else as ClickHouse writes
it back compact: either way the same JSON value the parser stores.
One difference is left: a record that names one key twice (JSON leaves its meaning open, and AWS never writes one)
keeps the first value here and the last in the parser.
"""

from __future__ import annotations

import queue
import re
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from fnscope.decoding.compression import MAX_INFLATED_BYTES, inflate, is_compressed, is_gzip
from fnscope.decoding.errors import BadPayload
from fnscope.decoding.jsontext import compact_json, iter_documents_lenient
from fnscope.events import EARLIEST_TIME, Signal
from fnscope.sink import IngestContext
from fnscope.telemetry import pipeline_metrics
from fnscope.timeparse import parse_iso_utc

# Fields whose value must be a string (or null) for the SQL to read them as the Python mapping does (which
# writes a number as str(), an object as JSON); a key of these names anywhere else with such a value only makes
# the record take the Python path.
_STRING_KEYS = (
    "eventID|eventTime|recipientAccountId|awsRegion|eventSource|eventName|sourceIPAddress|userAgent|errorCode|"
    "errorMessage|eventType|eventCategory|eventVersion|type|arn|accountId|accessKeyId|userName|invokedBy|"
    "functionName|functionArn"
)
_BOOL_KEYS = "readOnly|mfaAuthenticated|MFAUsed"
_OBJECT_KEYS = (
    "userIdentity|sessionContext|attributes|sessionIssuer|additionalEventData|requestParameters|"
    "responseElements|fullyQualifiedArn|relativeId"
)
# Any of these in a record's text sends it to the Python path (matched at once by Vectorscan, multiMatchAny):
# a value that is a number, true/false, an object or an array where a string is read, and so on. (Positive
# classes of what a value may start with: Vectorscan mismatched negated ones here.)
_NUMBER_OR_CONTAINER = r"-0-9{\["
_NOT_PLAIN = [
    rf'"(?:{_STRING_KEYS})"\s*:\s*[{_NUMBER_OR_CONTAINER}tf]',
    rf'"(?:{_BOOL_KEYS})"\s*:\s*[{_NUMBER_OR_CONTAINER}]',
    rf'"(?:{_OBJECT_KEYS})"\s*:\s*[-0-9\["tf]',
    r'"resources"\s*:\s*[-0-9{"tf]',
    rf'"resources"\s*:\s*\[[^\]]*(?:\[|"(?:ARN|arn|ARNPrefix|arnPrefix)"\s*:\s*[{_NUMBER_OR_CONTAINER}tf])',
]

# A key spelled with a \u escape ("event\u0049D"), which the patterns above would not recognise: an escape
# followed, within the same string, by the closing quote and a colon.
_ESCAPED_KEY = r'\\u[0-9A-Fa-f]{4}(?:[^"\\]|\\.)*"\s*:'

_RECORD = (
    "Tuple(eventID Nullable(String), eventTime Nullable(String), recipientAccountId Nullable(String), "
    "awsRegion Nullable(String), eventSource Nullable(String), eventName Nullable(String), "
    "sourceIPAddress Nullable(String), userAgent Nullable(String), errorCode Nullable(String), "
    "errorMessage Nullable(String), readOnly Nullable(String), eventType Nullable(String), "
    "eventCategory Nullable(String), eventVersion Nullable(String), "
    "userIdentity Tuple(type Nullable(String), arn Nullable(String), accountId Nullable(String), "
    "accessKeyId Nullable(String), userName Nullable(String), invokedBy Nullable(String), "
    "sessionContext Tuple(attributes Tuple(mfaAuthenticated Nullable(String)), "
    "sessionIssuer Tuple(arn Nullable(String), userName Nullable(String)))), "
    "additionalEventData Tuple(MFAUsed Nullable(String)), "
    "requestParameters Tuple(functionName Nullable(String), "
    "fullyQualifiedArn Tuple(relativeId Tuple(functionName Nullable(String)))), "
    "responseElements Tuple(functionArn Nullable(String), functionName Nullable(String)), "
    "resources Array(Tuple(ARN Nullable(String), arn Nullable(String), ARNPrefix Nullable(String), "
    "arnPrefix Nullable(String))))"
)


def _bool(value: str) -> str:
    """collector.formats.cloudtrail._bool over a value read as text (JSON true/false read as 'true'/'false')."""
    return f"multiIf(lower({value}) IN ('true', 'yes', '1'), true, lower({value}) IN ('false', 'no', '0'), false, NULL)"


def _function_name(value: str) -> str:
    """collector.formats.arn.function_name (its \\s only matters for text the plain test keeps out)."""
    return (
        f"multiIf({value} = '', '', match({value}, '(^|:)function:[^:/]'), "
        f"extract({value}, '(?:^|:)function:([^:/]+)'), startsWith({value}, 'arn:'), '', "
        f"splitByChar(':', {value})[1])"
    )


_COLUMNS = (
    "tenant, event_id, time, account, region, source, service, action, principal_type, principal_arn, "
    "principal_name, principal_account, session_issuer, access_key, mfa, source_ip, user_agent, error_code, "
    "error_message, read_only, event_type, event_category, event_version, function, resources, raw"
)

# Every record of the log files in the body, mapped to audit_events' columns, with whether it is plain; and each
# document that is not a log file of records (or not JSON), as one row that is not in_log_file. The JSONEachRow
# reader hands each record over as the text sent, at half the cost of JSONExtractArrayRaw, which re-serialises
# every record. Each step is a subquery of its own: ClickHouse copies an alias's expression into every use, which
# made planning this take 100 ms.
_DOCUMENTS = """
SELECT doc, item.1 AS position, item.2 AS text, notEmpty(records) AS in_log_file,
  -- pretty-printed or spaced records are stored compact, as the parser stores them
  if(position(text, '\\n') > 0 OR position(text, '": ') > 0, JSONExtractRaw(text), text) AS r
FROM (SELECT rowNumberInAllBlocks() AS doc, Records AS records,
        arrayJoin(if(empty(records), [(0, '')], arrayZip(arrayEnumerate(records), records))) AS item
      FROM file({path:String}, 'JSONEachRow', 'Records Array(String)'))
"""
# How the reader takes a document: unknown keys skipped, every kind of JSON value read into a String as its text
# (a record that is not an object then fails the mapping's JSONExtract and is not plain).
_READ_SETTINGS = {
    "input_format_skip_unknown_fields": 1,
    "input_format_json_read_objects_as_strings": 1,
    "input_format_json_read_arrays_as_strings": 1,
    "input_format_json_read_numbers_as_strings": 1,
    "input_format_json_read_bools_as_strings": 1,
    "input_format_null_as_default": 1,
}

_FIELDS = f"""
SELECT doc, position, r, in_log_file, x,
  ifNull(x.eventTime, '') AS event_time,
  ifNull(x.eventID, '') AS eid,
  ifNull(x.userIdentity.arn, '') AS p_arn,
  ifNull(x.eventSource, '') AS service,
  arrayFilter(a -> a != '', arrayMap(item -> coalesce(nullIf(item.ARN, ''), nullIf(item.arn, ''),
    nullIf(item.ARNPrefix, ''), ifNull(item.arnPrefix, '')), x.resources)) AS resource_arns,
  -- every reference to the function (text, its name), for Lambda's own events only
  if(service = 'lambda.amazonaws.com', arrayFilter(ref -> ref.2 != '', arrayMap(c -> (c, {_function_name("c")}),
    arrayConcat([ifNull(x.requestParameters.functionName, ''), ifNull(x.responseElements.functionArn, ''),
                 ifNull(x.responseElements.functionName, ''),
                 ifNull(x.requestParameters.fullyQualifiedArn.relativeId.functionName, '')],
                arrayFilter(a -> position(a, ':function:') > 0, resource_arns)))), []) AS refs
FROM (SELECT doc, position, r, in_log_file, JSONExtract(r, '{_RECORD}') AS x FROM ({_DOCUMENTS}))
"""

_FUNCTION = f"""
SELECT *,
  if(empty(refs), '', refs[1].2) AS fn,
  -- the first full ARN naming that function, else the first reference
  if(empty(refs), '', ifNull(nullIf(arrayFirst(ref -> startsWith(ref.1, 'arn:') AND ref.2 = refs[1].2, refs).1, ''),
                             refs[1].1)) AS fn_ref
FROM ({_FIELDS})
"""

_MAPPED = f"""
SELECT {{tenant:String}} AS tenant, eid AS event_id, parseDateTime64BestEffortOrZero(event_time, 3, 'UTC') AS time,
  multiIf(ifNull(x.recipientAccountId, '') != '', x.recipientAccountId,
          ifNull(x.userIdentity.accountId, '') != '', x.userIdentity.accountId, {{account:String}}) AS account,
  if(ifNull(x.awsRegion, '') != '', x.awsRegion, {{region:String}}) AS region,
  'cloudtrail' AS source, service, ifNull(x.eventName, '') AS action, ifNull(x.userIdentity.type, '') AS principal_type,
  p_arn AS principal_arn,
  multiIf(ifNull(x.userIdentity.userName, '') != '', x.userIdentity.userName,
          ifNull(x.userIdentity.sessionContext.sessionIssuer.userName, '') != '',
          x.userIdentity.sessionContext.sessionIssuer.userName,
          p_arn != '', splitByRegexp('[/:]', p_arn)[-1], ifNull(x.userIdentity.invokedBy, '')) AS principal_name,
  ifNull(x.userIdentity.accountId, '') AS principal_account,
  ifNull(x.userIdentity.sessionContext.sessionIssuer.arn, '') AS session_issuer,
  ifNull(x.userIdentity.accessKeyId, '') AS access_key,
  coalesce({_bool("x.userIdentity.sessionContext.attributes.mfaAuthenticated")},
           {_bool("x.additionalEventData.MFAUsed")}) AS mfa,
  ifNull(x.sourceIPAddress, '') AS source_ip, ifNull(x.userAgent, '') AS user_agent,
  ifNull(x.errorCode, '') AS error_code, ifNull(x.errorMessage, '') AS error_message,
  {_bool("x.readOnly")} AS read_only,
  ifNull(x.eventType, '') AS event_type, ifNull(x.eventCategory, '') AS event_category,
  ifNull(x.eventVersion, '') AS event_version, fn AS function,
  arrayDistinct(arrayFilter(a -> a != '', arrayPushBack(resource_arns, fn_ref))) AS resources, r AS raw,
  doc, position, in_log_file,
  -- (half the limit: the parser's JSON of a record may be a little longer than ClickHouse's)
  in_log_file AND length(r) <= {{max_chars:UInt64}} / 2
    AND NOT multiMatchAny(r, {{not_plain:Array(String)}})
    AND (position(r, '\\\\u') = 0 OR NOT match(r, {{escaped_key:String}}))
    AND match(event_time, '^\\d{{4}}-\\d{{2}}-\\d{{2}}T\\d{{2}}:\\d{{2}}:\\d{{2}}(\\.\\d{{1,6}})?Z$')
    AND match(eid, '[^0-]')
    AND formatDateTime(time, '%Y-%m-%dT%H:%i:%S') = substring(event_time, 1, 19)  -- a real day and hour
    AND time >= {{earliest:DateTime64(3)}} AND time < {{older_than:DateTime64(3)}}  -- fnscope.events' window
    AND arrayAll(ref -> match(ref.1, '^[\\x21-\\x7E]*$'), refs)
    AND arrayAll(b -> b IS NULL OR match(b, '^[A-Za-z0-9]*$'), [x.readOnly,
      x.userIdentity.sessionContext.attributes.mfaAuthenticated, x.additionalEventData.MFAUsed]) AS plain
FROM ({_FUNCTION})
"""

_STAGE = f"CREATE TEMPORARY TABLE cloudtrail_batch ENGINE = Memory AS {_MAPPED}"
_TRIAGE = (
    "SELECT countIf(NOT in_log_file), countIf(plain), groupArrayIf((doc, position), NOT plain) FROM cloudtrail_batch"
)
_INSERT = f"INSERT INTO audit_events ({_COLUMNS}) SELECT {_COLUMNS} FROM cloudtrail_batch WHERE plain"
_UNSTAGE = "DROP TEMPORARY TABLE IF EXISTS cloudtrail_batch"
# A ReplacingMergeTree collapses repeated eventIDs of one insert as it writes the part, by a merge that copies row
# by row: for audit_events and its lookup rows that was ~8 us of a backfill's ~50 per record. Left to the
# background merges, as repeats across inserts always are: every reader already keeps one row per eventID.
_INSERT_SETTINGS = {"optimize_on_insert": 0}


# Smaller bodies go straight to the parser: planning the statements below costs ~0.15 s of CPU per body, what the
# parser spends on about a thousand records (a live delivery of a few records would pay it for nothing).
MIN_BYTES = 1 << 20
GZIP_RATIO = 6  # a CloudTrail log file inflates 6-8 times: enough to tell a backfill's body from a live one


class CloudTrailBulk:
    """Stores the plain records of CloudTrail log files through the SQL mapping; gives back the rest.

    Each body is staged in a temporary table of one store handle (a chDB session); a few handles let requests
    arriving together use every core, as ClickHouse runs each of these statements on one thread.
    """

    def __init__(
        self,
        clients: list[Client],
        max_field_chars: int,
        alert_horizon_s: float,
        max_inflated_bytes: int = MAX_INFLATED_BYTES,
        min_bytes: int = MIN_BYTES,
    ) -> None:
        self.min_bytes = min_bytes
        # what staging a body of the largest size the parser takes needs, with room to spare (measured: ~5x)
        self.max_memory = 8 * max_inflated_bytes
        self._clients: queue.SimpleQueue[Client] = queue.SimpleQueue()
        for client in clients:
            self._clients.put(client)
        self.max_field_chars = max_field_chars
        self.alert_horizon_s = alert_horizon_s
        self._metrics = pipeline_metrics()

    def store(self, body: bytes, ctx: IngestContext) -> tuple[int, bytes]:
        """(events stored, what the parser must still read: the body, a log file of records, or nothing).

        Durable once it returns. A body that is not only log files (records alone, a digest, broken JSON,
        compressed data that does not inflate) comes back whole, so the parser answers it as it always did.
        """
        gzipped = is_gzip(body)
        if len(body) * (GZIP_RATIO if gzipped else 1) < self.min_bytes or (is_compressed(body) and not gzipped):
            return 0, body
        first = _first_event_time(body, gzipped)
        if first is not None and first >= datetime.now(UTC) - timedelta(seconds=self.alert_horizon_s):
            return 0, body  # a live delivery: its records are the parser's anyway (alert rules must see them)
        client = self._clients.get()
        try:
            return self._store(client, body, gzipped, ctx)
        finally:
            self._clients.put(client)

    def _store(self, client: Client, body: bytes, gzipped: bool, ctx: IngestContext) -> tuple[int, bytes]:
        started = time.perf_counter()
        # gzip is left to ClickHouse (zlib-ng, several times faster than Python's zlib, and outside the GIL); a
        # decompression bomb meets the statement's memory limit instead of the parser's inflate limit
        with tempfile.NamedTemporaryFile(suffix=".json.gz" if gzipped else ".json") as file:
            file.write(body)
            file.flush()
            params = {
                "path": file.name,
                "tenant": ctx.tenant,
                "account": ctx.param("account"),
                "region": ctx.param("region"),
                "max_chars": self.max_field_chars,
                "not_plain": _NOT_PLAIN,
                "escaped_key": _ESCAPED_KEY,
                "older_than": datetime.now(UTC) - timedelta(seconds=self.alert_horizon_s),
                "earliest": EARLIEST_TIME,
            }
            try:
                try:
                    client.command(
                        _STAGE, parameters=params, settings={**_READ_SETTINGS, "max_memory_usage": self.max_memory}
                    )
                except DatabaseError:  # not JSON ClickHouse can read (or the store failed: the parser will say so)
                    return 0, body
                not_log_files, stored, positions = client.query(_TRIAGE).result_rows[0]
                # not only log files (records alone, a digest, broken JSON), nothing plain (an empty body, only
                # recent records), or records not where ClickHouse saw them: the parser reads it all
                if not_log_files or not stored:
                    return 0, body
                rest = _records_at(body, gzipped, positions) if positions else b""
                if rest is None:
                    return 0, body
                client.command(_INSERT, settings=_INSERT_SETTINGS)
            finally:
                client.command(_UNSTAGE)
        self._metrics.record_insert("embedded", stored, time.perf_counter() - started)
        self._metrics.record_stored({Signal.AUDIT: stored})
        return stored, rest


_EVENT_TIME = re.compile(rb'"eventTime"\s*:\s*"([^"]{1,64})"')
_PEEK_BYTES = 16 << 10


def _first_event_time(body: bytes, gzipped: bool) -> datetime | None:
    """The eventTime of the body's first record, read from its first few KB (None if there is none there).

    A CloudTrail log file spans minutes: a live one's first record is recent, a backfill's is not. Mapping a live
    body in the store (planning alone costs ~0.15 s) only to hand every record back was pure waste.
    """
    try:
        head = zlib.decompressobj(wbits=31).decompress(body[:_PEEK_BYTES], _PEEK_BYTES) if gzipped else body
    except zlib.error:
        return None
    found = _EVENT_TIME.search(head, 0, _PEEK_BYTES)
    try:
        return parse_iso_utc(found.group(1).decode()) if found else None
    except ValueError:  # not a time the parser reads (nor UTF-8): the store path decides as before
        return None


def _records_at(body: bytes, gzipped: bool, positions: list[tuple[int, int]]) -> bytes | None:
    """The records at (document, 1-based position) as one log file, decoded from the body itself: ClickHouse's
    copy of a record is re-serialised (1.0 would come back as 1), and the parser must read what was sent."""
    try:
        documents = list(iter_documents_lenient(inflate(body) if gzipped else body))
        records = [documents[doc]["Records"][position - 1] for doc, position in positions]
        return compact_json({"Records": records}).encode()
    # larger than the parser takes, not where expected, or text UTF-8 cannot hold (a lone surrogate's escape)
    except (BadPayload, IndexError, KeyError, TypeError, UnicodeEncodeError):
        return None
