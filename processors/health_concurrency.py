"""Exact concurrency peaks as Lambda counts them: running invocations plus initialising environments, per
second, minute and hour, from a sweep over de-duplicated intervals.

An invocation runs over ``[start, end)``: ``start`` is the earliest start any fact states (``platform.start``,
or a report's time minus its duration), ``end`` the earliest report time. Copies of one fact (two delivery
paths, a re-read Kafka batch) are grouped by request id, so duplicates never count twice.

An environment's initialisation occupies concurrency too. Three families of facts state one, each complete
on its own and de-duplicated within itself:

- ``report``: a REPORT (or ``platform.report``) with an Init Duration: the init ran over ``[start - init, start)``
  in the environment that then ran this invocation (grouped by request id, like the invocation);
- ``telemetry``: ``platform.initReport`` records (Telemetry API, the OpenTelemetry layer): ``[time - duration, time)``;
- ``logs``: ``INIT_REPORT`` lines and JSON-format ``platform.initReport`` lines through CloudWatch Logs or
  Firehose: the same.

The same init is usually stated by two or three families (no fact names its environment, so they can't be
joined), so a function's initialising environments at an instant are the most any one family shows then,
never their sum. That is exact when each family alone saw every init, and a lower bound when each saw only
some. ``platform.initStart`` alone says an init began but not for how long: it is not counted until its
report comes.

An init report's end is the moment its environment's first invocation starts, but that start is known from
other facts (``platform.start``, a REPORT's time less its duration), each to the millisecond and a millisecond
or so apart: an init report's span ends ``INIT_REPORT_TRIM_MS`` early, so it never overlaps the start of the
invocation it preceded (which would count the environment twice for that instant). The REPORT family needs no
trim: its init ends exactly where its own invocation starts.

The sweep puts +1 at each start and -1 at each end, nets them per millisecond, adds a 0 "tick" at every
second boundary, and takes a running sum: its value after each millisecond is exactly the number running
then, so a second's peak is the max over its ticks and event instants. The inits enter the sweep as the
steps of their per-function maximum over families (``init_steps``). Only the seconds a batch's facts can change are
swept; a minute's peak is then the most of its stored seconds' peaks, and an hour's the most of its minutes'.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import groupby

from clickhouse_connect.driver.binding import format_query_value
from clickhouse_connect.driver.client import Client

# Lambda's longest invocation is 15 minutes plus at most 10 s of init: a report this far after the window cannot end
# an interval that overlaps it.
_MAX_SPAN = "INTERVAL 20 MINUTE"
# How far before the window facts are read. An interval that began before the window counts from the window's start,
# so a fact from long before it changes nothing: every report states its own start (its time less its duration), and
# a start fact differs from that by a clock's skew, far less than this. Copies of one report stamped further apart
# than this (a raw Firehose text record is stamped with its arrival) can end its interval at the later copy in a
# rebuild that misses the earlier one, as copies more than the minute apart read before could. Reading a few seconds
# back, not the longest invocation back, makes a rebuild read the seconds it covers rather than 20 minutes of facts;
# a live fleet's rebuild of its last few seconds read a minute back before (60 -> 10 s: a third off the concurrency
# sweeps, bench.health).
# Only a report without a duration (its start unknown) needs its start fact from as far back as the longest
# invocation: while the window holds one, the rebuild reads ``MAX_SPAN_S`` back.
BACK_S = 10
MAX_SPAN_S = 20 * 60

# The family of an init report by where it came from: the paths that carry the same line under the same id
# (CloudWatch subscription and Firehose; Telemetry API and the OpenTelemetry layer) are one family.
INIT_FAMILY = "if(source IN ('cloudwatch', 'firehose'), 'logs', 'telemetry')"
INIT_REPORT_TRIM_MS = 10

_WINDOW = (
    f"time >= {{lo:DateTime64(3)}} - toIntervalSecond({{back:UInt32}}) AND time < {{hi:DateTime64(3)}} + {_MAX_SPAN}"
)

_STARTLESS_REPORTS = f"""
SELECT count() FROM invocations
WHERE tenant = {{tenant:String}} AND kind = 'report' AND start_time IS NULL AND {_WINDOW}"""

# Every init span that can overlap the window, by family: few rows (cold starts are few). The per-function maximum
# over families is taken in Python (``init_steps``) and handed to the sweep as steps: the same in SQL, with its
# window functions and joins, cost more than the whole sweep on a busy minute.
_INIT_SPANS = f"""
SELECT function, account, 'report' AS family, s - toIntervalMillisecond(toInt64(round(init))) AS a, s AS b
FROM (
    SELECT function, max(account) AS account, min(coalesce(start_time, time)) AS s,
           maxIf(coalesce(init_duration_ms, 0), kind = 'report') AS init
    FROM invocations
    WHERE tenant = {{tenant:String}} AND kind IN ('report', 'start') AND {_WINDOW}
      AND if(request_id != '', request_id, event_id) IN (
          SELECT if(request_id != '', request_id, event_id) FROM invocations
          WHERE tenant = {{tenant:String}} AND kind = 'report' AND init_duration_ms > 0 AND {_WINDOW})
    GROUP BY function, if(request_id != '', request_id, event_id)
    HAVING countIf(kind = 'report') > 0 AND init > 0
)
WHERE b > {{lo:DateTime64(3)}} AND a < {{hi:DateTime64(3)}}
UNION ALL
SELECT function, account, {INIT_FAMILY} AS family, t - toIntervalMillisecond(toInt64(round(dur))) AS a,
       t - toIntervalMillisecond({INIT_REPORT_TRIM_MS}) AS b
FROM (
    SELECT max(account) AS account, function, any(source) AS source, min(time) AS t, max(init_duration_ms) AS dur
    FROM invocations
    WHERE tenant = {{tenant:String}} AND kind = 'init_report' AND init_duration_ms > 0 AND {_WINDOW}
    GROUP BY function, event_id
)
WHERE b > {{lo:DateTime64(3)}} AND a < {{hi:DateTime64(3)}}
"""

_SWEEP = f"""
INSERT INTO concurrency_peaks (tenant, scope, key, resolution, bucket, peak, computed_at)
WITH
intervals AS (
    SELECT max(account) AS account, function,
           min(coalesce(start_time, time)) AS s, minIf(time, kind = 'report') AS e
    FROM invocations
    WHERE tenant = {{tenant:String}} AND kind IN ('report', 'start') AND {_WINDOW}
    GROUP BY function, if(request_id != '', request_id, event_id)
    HAVING countIf(kind = 'report') > 0 AND e > s AND e > {{lo:DateTime64(3)}} AND s < {{hi:DateTime64(3)}}
),
edges AS (
    SELECT sk.1 AS scope, sk.2 AS key, edge.1 AS t, edge.2 AS d
    FROM (
        SELECT arrayJoin([('function', function), ('account', account), ('total', '')]) AS sk,
               arrayJoin([(greatest(s, {{lo:DateTime64(3)}}), toInt64(1)), (e, toInt64(-1))]) AS edge
        FROM intervals
        UNION ALL
        SELECT arrayJoin([('function', step.1), ('account', step.2), ('total', '')]) AS sk, (step.3, step.4) AS edge
        FROM (SELECT arrayJoin(__INIT_STEPS__) AS step)
    )
    WHERE edge.1 < {{hi:DateTime64(3)}}
),
ticks AS (
    SELECT scope, key, {{lo:DateTime64(3)}} + toIntervalSecond(arrayJoin(range({{seconds:UInt32}}))) AS t,
           toInt64(0) AS d
    FROM (SELECT DISTINCT scope, key FROM edges)
),
running AS (
    SELECT scope, key, t,
           sum(d) OVER (PARTITION BY scope, key ORDER BY t ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n
    FROM (SELECT scope, key, t, sum(d) AS d FROM (SELECT * FROM edges UNION ALL SELECT * FROM ticks)
          GROUP BY scope, key, t)
)
SELECT {{tenant:String}}, scope, key, 1, toDateTime(t, 'UTC') AS bucket, toUInt32(max(n)), now64(6)
FROM running
GROUP BY scope, key, bucket
"""

# A minute's peak is the most of its seconds' peaks, and an hour's the most of its minutes': each from the rows
# already stored, so a rebuild sweeps only the seconds its facts touched. Every second anything ran in was swept
# by the rebuild of some fact that ran then, so its row is there.
_ROLL_UP = """
INSERT INTO concurrency_peaks (tenant, scope, key, resolution, bucket, peak, computed_at)
SELECT tenant, scope, key, {to:UInt32}, toStartOfInterval(bucket, toIntervalSecond({to:UInt32})) AS coarse, max(peak),
       now64(6)
FROM concurrency_peaks FINAL
WHERE tenant = {tenant:String} AND resolution = {of:UInt32} AND bucket >= {lo:DateTime} AND bucket < {hi:DateTime}
GROUP BY tenant, scope, key, coarse
"""


def init_steps(
    spans: Iterable[tuple[str, str, str, datetime, datetime]], lo: datetime
) -> list[tuple[str, str, datetime, int]]:
    """(function, account, family, start, end) spans -> (function, account, instant, step): per function, the
    changes of the most environments any one family shows initialising, spans cut at ``lo``."""
    edges: dict[str, list[tuple[datetime, str, int]]] = defaultdict(list)
    accounts: dict[str, str] = {}
    for function, account, family, a, b in spans:
        a, b = _utc(a), _utc(b)
        a = max(a, lo)
        if b <= a:
            continue
        edges[function] += [(a, family, 1), (b, family, -1)]
        accounts[function] = max(accounts.get(function, ""), account)
    steps: list[tuple[str, str, datetime, int]] = []
    for function, changes in edges.items():
        changes.sort(key=lambda c: c[0])
        counts: dict[str, int] = defaultdict(int)
        level = 0
        for at, group in groupby(changes, key=lambda c: c[0]):
            for _, family, d in group:
                counts[family] += d
            most = max(counts.values())
            if most != level:
                steps.append((function, accounts[function], at, most - level))
                level = most
    return steps


def _steps_literal(steps: list[tuple[str, str, datetime, int]]) -> str:
    """The init steps as an array literal in the statement's text. Not as query parameters: those travel in the
    request's URL, which a busy minute's thousands of cold starts would take past ClickHouse's 1 MiB limit (and
    a proxy's far lower one). Strings are escaped as clickhouse-connect's own client-side binding escapes them;
    times go as epoch milliseconds (its datetime literals drop the milliseconds)."""
    functions = format_query_value([r[0] for r in steps])
    accounts = format_query_value([r[1] for r in steps])
    times = format_query_value([round(r[2].timestamp() * 1000) for r in steps])
    changes = format_query_value([r[3] for r in steps])
    return (
        f"arrayZip(CAST({functions} AS Array(String)), CAST({accounts} AS Array(String)), "
        f"arrayMap(ms -> fromUnixTimestamp64Milli(ms, 'UTC'), CAST({times} AS Array(Int64))), "
        f"CAST({changes} AS Array(Int64)))"
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _at(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def recompute_concurrency(client: Client, tenant: str, first_s: int, last_s: int) -> None:
    """Rewrite the peaks of seconds ``first_s..last_s`` (epoch seconds, inclusive), then their minutes and hours."""
    lo, hi = first_s, last_s + 1
    params = {"tenant": tenant, "lo": _at(lo), "hi": _at(hi), "seconds": hi - lo, "back": BACK_S}
    if client.command(_STARTLESS_REPORTS, parameters=params):
        params["back"] = MAX_SPAN_S
    steps = init_steps(client.query(_INIT_SPANS, parameters=params).result_rows, _at(lo))
    client.command(_SWEEP.replace("__INIT_STEPS__", _steps_literal(steps)), parameters=params)
    for of, to in ((1, 60), (60, 3600)):  # the minutes the seconds are in, then the hours those minutes are in
        lo, hi = lo // to * to, (hi - 1) // to * to + to
        params = {"tenant": tenant, "lo": _at(lo), "hi": _at(hi), "of": of, "to": to}
        client.command(_ROLL_UP, parameters=params)
