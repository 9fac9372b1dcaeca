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
steps of their per-function maximum over families. Whole minutes are swept, so the minute rows are exact
too; hours are the max of their minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

# Lambda's longest invocation is 15 minutes plus at most 10 s of init: a fact this far outside the window
# cannot belong to an interval that overlaps it.
_MAX_SPAN = "INTERVAL 20 MINUTE"

# The family of an init report by where it came from: the paths that carry the same line under the same id
# (CloudWatch subscription and Firehose; Telemetry API and the OpenTelemetry layer) are one family.
INIT_FAMILY = "if(source IN ('cloudwatch', 'firehose'), 'logs', 'telemetry')"
INIT_REPORT_TRIM_MS = 10

_WINDOW = f"time >= {{lo:DateTime64(3)}} - {_MAX_SPAN} AND time < {{hi:DateTime64(3)}} + {_MAX_SPAN}"

_SWEEP = f"""
INSERT INTO concurrency_peaks (tenant, scope, key, resolution, bucket, peak, computed_at)
WITH
requests AS (
    SELECT max(account) AS account, function,
           min(coalesce(start_time, time)) AS s, minIf(time, kind = 'report') AS e,
           maxIf(coalesce(init_duration_ms, 0), kind = 'report') AS init
    FROM invocations
    WHERE tenant = {{tenant:String}} AND kind IN ('report', 'start') AND {_WINDOW}
    GROUP BY function, if(request_id != '', request_id, event_id)
    HAVING countIf(kind = 'report') > 0
),
init_spans AS (
    SELECT account, function, 'report' AS family, s - toIntervalMillisecond(toInt64(round(init))) AS a, s AS b
    FROM requests WHERE init > 0
    UNION ALL
    SELECT account, function, {INIT_FAMILY} AS family, t - toIntervalMillisecond(toInt64(round(dur))) AS a,
           t - toIntervalMillisecond({INIT_REPORT_TRIM_MS}) AS b
    FROM (
        SELECT max(account) AS account, function, any(source) AS source, min(time) AS t,
               max(init_duration_ms) AS dur
        FROM invocations
        WHERE tenant = {{tenant:String}} AND kind = 'init_report' AND init_duration_ms > 0 AND {_WINDOW}
        GROUP BY function, event_id
    )
),
init_edges AS (
    SELECT function, family, edge.1 AS t, edge.2 AS d
    FROM (
        SELECT function, family, arrayJoin([(greatest(a, {{lo:DateTime64(3)}}), toInt64(1)), (b, toInt64(-1))]) AS edge
        FROM init_spans WHERE b > a AND b > {{lo:DateTime64(3)}} AND a < {{hi:DateTime64(3)}}
    )
    WHERE edge.1 < {{hi:DateTime64(3)}}
),
init_levels AS (
    -- each family's count at every instant any family changes, then the most of them
    SELECT function, t, max(n) AS m FROM (
        SELECT function, t,
               sum(d) OVER (PARTITION BY function, family ORDER BY t
                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n
        FROM (
            SELECT function, family, t, sum(d) AS d FROM (
                SELECT function, family, t, d FROM init_edges
                UNION ALL
                SELECT f.function, f.family, i.t, toInt64(0)
                FROM (SELECT DISTINCT function, family FROM init_edges) AS f
                INNER JOIN (SELECT DISTINCT function, t FROM init_edges) AS i ON f.function = i.function
            )
            GROUP BY function, family, t
        )
    )
    GROUP BY function, t
),
init_steps AS (
    SELECT l.function AS function, a.account AS account, l.t AS t,
           l.m - lagInFrame(l.m, 1, toInt64(0)) OVER (PARTITION BY l.function ORDER BY l.t
                                                      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS d
    FROM init_levels AS l
    INNER JOIN (SELECT function, max(account) AS account FROM init_spans GROUP BY function) AS a
        ON l.function = a.function
),
edges AS (
    SELECT sk.1 AS scope, sk.2 AS key, edge.1 AS t, edge.2 AS d
    FROM (
        SELECT arrayJoin([('function', function), ('account', account), ('total', '')]) AS sk,
               arrayJoin([(greatest(s, {{lo:DateTime64(3)}}), toInt64(1)), (e, toInt64(-1))]) AS edge
        FROM requests
        WHERE e > s AND e > {{lo:DateTime64(3)}} AND s < {{hi:DateTime64(3)}}
        UNION ALL
        SELECT arrayJoin([('function', function), ('account', account), ('total', '')]) AS sk, (t, d) AS edge
        FROM init_steps
        WHERE d != 0
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
SELECT {{tenant:String}}, scope, key, resolution, bucket, toUInt32(max(n)), now64(6)
FROM running
ARRAY JOIN [1, 60] AS resolution
GROUP BY scope, key, resolution,
         if(resolution = 1, toDateTime(t, 'UTC'), toStartOfMinute(toDateTime(t, 'UTC'))) AS bucket
HAVING resolution = 60 OR (bucket >= {{first:DateTime}} AND bucket <= {{last:DateTime}})
"""

_HOURS = """
INSERT INTO concurrency_peaks (tenant, scope, key, resolution, bucket, peak, computed_at)
SELECT tenant, scope, key, 3600, toStartOfHour(bucket) AS hour, max(peak), now64(6)
FROM concurrency_peaks FINAL
WHERE tenant = {tenant:String} AND resolution = 60 AND bucket >= {lo:DateTime} AND bucket < {hi:DateTime}
GROUP BY tenant, scope, key, hour
"""


def _at(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def recompute_concurrency(client: Client, tenant: str, first_s: int, last_s: int) -> None:
    """Rewrite the peaks of seconds ``first_s..last_s`` (epoch seconds, inclusive), their minutes and hours."""
    lo, hi = first_s // 60 * 60, (last_s // 60 + 1) * 60
    params = {
        "tenant": tenant,
        "lo": _at(lo),
        "hi": _at(hi),
        "seconds": hi - lo,
        "first": _at(first_s),
        "last": _at(last_s),
    }
    client.command(_SWEEP, parameters=params)
    hour_lo, hour_hi = lo // 3600 * 3600, (hi - 1) // 3600 * 3600 + 3600
    client.command(_HOURS, parameters={"tenant": tenant, "lo": _at(hour_lo), "hi": _at(hour_hi)})
