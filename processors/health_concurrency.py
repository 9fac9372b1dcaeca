"""Exact concurrency peaks: a sweep over de-duplicated invocation intervals, per second, minute and hour.

An invocation runs over ``[start, end)``: ``start`` is the earliest start any fact states (``platform.start``,
or a report's time minus its duration), ``end`` the earliest report time. Copies of one fact (two delivery
paths, a re-read Kafka batch) are grouped by request id, so duplicates never count twice.

The sweep puts +1 at each start and -1 at each end, nets them per millisecond, adds a 0 "tick" at every
second boundary, and takes a running sum: its value after each millisecond is exactly the number running
then, so a second's peak is the max over its ticks and event instants. Whole minutes are swept, so the
minute rows are exact too; hours are the max of their minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

# Lambda's longest invocation is 15 minutes plus at most 10 s of init: a fact this far outside the window
# cannot belong to an interval that overlaps it.
_MAX_SPAN = "INTERVAL 20 MINUTE"

_SWEEP = f"""
INSERT INTO concurrency_peaks (tenant, scope, key, resolution, bucket, peak, computed_at)
WITH
intervals AS (
    SELECT max(account) AS account, function,
           min(coalesce(start_time, time)) AS s, minIf(time, kind = 'report') AS e
    FROM invocations
    WHERE tenant = {{tenant:String}} AND kind IN ('report', 'start')
      AND time >= {{lo:DateTime64(3)}} - {_MAX_SPAN} AND time < {{hi:DateTime64(3)}} + {_MAX_SPAN}
    GROUP BY function, if(request_id != '', request_id, event_id)
    HAVING countIf(kind = 'report') > 0 AND e > s AND e > {{lo:DateTime64(3)}} AND s < {{hi:DateTime64(3)}}
),
edges AS (
    SELECT sk.1 AS scope, sk.2 AS key, edge.1 AS t, edge.2 AS d
    FROM (
        SELECT arrayJoin([('function', function), ('account', account), ('total', '')]) AS sk,
               arrayJoin([(greatest(s, {{lo:DateTime64(3)}}), 1), (e, -1)]) AS edge
        FROM intervals
    )
    WHERE edge.1 < {{hi:DateTime64(3)}}
),
ticks AS (
    SELECT scope, key, {{lo:DateTime64(3)}} + toIntervalSecond(arrayJoin(range({{seconds:UInt32}}))) AS t, 0 AS d
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
