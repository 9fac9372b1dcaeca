"""The five dashboards as panel definitions (see ``dashboards/model.py``): one definition of each panel.

Health panels read the processor's health tables (``function_minutes``, ``concurrency_peaks``,
``throttle_minutes``, ``concurrency_limits``: v002) like ``fnscope stats`` does; API, audit and pipeline panels
read the raw tables (v001). The audit dashboard's compliance panels are the saved queries of
``dashboards/saved_queries.py``, their bound parameters mapped onto Grafana's time range and variables.
"""

from __future__ import annotations

import re

from fnscope.config import DEFAULT_ACCOUNT_CONCURRENCY_LIMIT as ACCOUNT_LIMIT
from fnscope.config import DEFAULT_PRICE_PER_GB_SECOND as PRICE_GB_S
from fnscope.config import DEFAULT_PRICE_PER_REQUEST as PRICE_REQUEST
from fnscope.dashboards.model import Dashboard, Kind, Panel, Row, Variable
from fnscope.dashboards.saved_queries import FINAL_SETTINGS, SAVED_QUERIES, SavedQuery
from fnscope.store import LEVELS

TENANT = "tenant = ${tenant:singlequote}"
FUNCTION = "function = ${function:singlequote}"
VERSION = "(${version:singlequote} = '' OR version = ${version:singlequote})"
API = "(${api:singlequote} = '' OR api_id = ${api:singlequote})"


def _tenant_variable(table: str) -> Variable:
    return Variable("tenant", "Tenant", f"SELECT DISTINCT tenant FROM {table} ORDER BY tenant")


# --- shared SQL ------------------------------------------------------------------------------------------

# Each source (API Gateway, CloudTrail Invoke) sees the throttles on its own path: per function and bucket the
# largest count is a lower bound on distinct throttles, as `fnscope stats` reports it.
_THROTTLES_BY_BUCKET = f"""
    SELECT function, bucket, max(n) AS throttles FROM (
        SELECT function, bucket, source, sum(throttles) AS n FROM throttle_minutes FINAL
        WHERE {TENANT} AND $__timeFilter(bucket) {{extra}}
        GROUP BY function, bucket, source)
    GROUP BY function, bucket"""


def _throttles_by_bucket(extra: str = "") -> str:
    return _THROTTLES_BY_BUCKET.replace("{extra}", extra)


# The limit each function runs against: its reserved concurrency, else the account's unreserved pool.
_LIMITS = f"""(
    SELECT function, argMax(reserved, changed_at) AS reserved FROM concurrency_limits FINAL
    WHERE {TENANT} GROUP BY function)"""
_POOL = f"greatest(0, {ACCOUNT_LIMIT} - (SELECT sum(reserved) FROM {_LIMITS} WHERE reserved > 0))"
_DISABLED = f"(SELECT function FROM {_LIMITS} WHERE reserved = 0)"

# Each function's timeout in seconds: as last configured in the audit trail (v011), else the longest `Task timed out
# after N seconds` it wrote in the range (a function whose configuration predates the trail fnscope holds).
_TIMEOUTS = f"""(
    SELECT function, if(any(c.timeout_s) > 0, any(c.timeout_s), max(o.timeout_s)) AS timeout_s FROM (
        SELECT function, argMax(timeout_s, changed_at) AS timeout_s FROM function_timeouts FINAL
        WHERE {TENANT} GROUP BY function) AS c
    FULL JOIN (
        SELECT function, max(duration_ms) / 1000 AS timeout_s FROM invocations
        WHERE {TENANT} AND kind = 'timeout' AND duration_ms > 0 AND $__timeFilter(time) GROUP BY function) AS o
    USING (function)
    GROUP BY function)"""

# Finer stored resolutions for shorter intervals: the peak of a bucket is the max of the peaks inside it.
_RESOLUTION = "multiIf($__interval_s >= 3600, 3600, $__interval_s >= 60, 60, 1)"

_QUANTILES = f"quantilesTDigestMerge({LEVELS})(duration)"
_COST = f"sum(gb_seconds) * {PRICE_GB_S} + sum(invocations) * {PRICE_REQUEST}"


# What "wrong" means on the fleet page: each table's state column (ok, warning, critical), sorted on and coloured
# by the console (and mappable to colours in Grafana); thresholds here only.
ERROR_RATE_WARN, ERROR_RATE_CRITICAL = 0.01, 0.05
THROTTLE_RATE_CRITICAL = 0.01  # of the calls made (run + throttled); any throttle at all is a warning
UTILISATION_WARN_PCT = 80  # of the concurrency limit; 100 % is critical
P99_OF_TIMEOUT_WARN, P99_OF_TIMEOUT_CRITICAL = 0.80, 0.95  # p99 duration as a share of the function's timeout
# Worst first; a disabled function (reserved concurrency 0) runs nothing: after the critical ones, it is why.
STATE_ORDER = ("critical", "disabled", "warning", "ok")


def _state(critical: str, warning: str) -> str:
    return f"multiIf({critical}, 'critical', {warning}, 'warning', 'ok')"


def _near_timeout(share: float) -> str:
    return f"(timeout > 0 AND n > 0 AND q[4] >= {share} * timeout * 1000)"


_FUNCTION_STATE = "if(disabled, 'disabled', {})".format(
    _state(
        critical=f"e >= {ERROR_RATE_CRITICAL} * greatest(n, 1) OR t >= {THROTTLE_RATE_CRITICAL} * greatest(n + t, 1) "
        f"OR {_near_timeout(P99_OF_TIMEOUT_CRITICAL)}",
        warning=f"e >= {ERROR_RATE_WARN} * greatest(n, 1) OR t > 0 OR {_near_timeout(P99_OF_TIMEOUT_WARN)}",
    )
)
_STATE_ORDER = "[" + ", ".join(f"'{s}'" for s in STATE_ORDER) + "]"

# --- Fleet overview --------------------------------------------------------------------------------------

_MINUTES = f"FROM function_minutes FINAL WHERE {TENANT} AND $__timeFilter(bucket)"

FLEET = Dashboard(
    uid="fnscope-fleet",
    title="fnscope: Fleet overview",
    description="Every function: invocations, errors, throttles, concurrency against its limit, cost.",
    variables=(_tenant_variable("function_minutes"),),
    items=(
        Panel("Invocations", f"SELECT sum(invocations) AS invocations {_MINUTES}", Kind.STAT, width=6, height=4),
        Panel("Errors", f"SELECT sum(errors) AS errors {_MINUTES}", Kind.STAT, width=6, height=4),
        Panel(
            "Throttles",
            f"SELECT sum(throttles) AS throttles FROM ({_throttles_by_bucket()})",
            Kind.STAT,
            description="Throttled calls, as API Gateway or CloudTrail Invoke saw them (the larger per function).",
            width=6,
            height=4,
        ),
        Panel(
            "Estimated cost",
            f"SELECT {_COST} AS cost_usd {_MINUTES}",
            Kind.STAT,
            description=f"GB-seconds at ${PRICE_GB_S}/GB-s plus ${PRICE_REQUEST} per request (public x86 prices).",
            unit="currencyUSD",
            width=6,
            height=4,
        ),
        Panel(
            "Invocations, errors and timeouts",
            f"""SELECT $__timeInterval(bucket) AS time, sum(invocations) AS invocations, sum(errors) AS errors,
    sum(timeouts) AS timeouts, sum(cold_starts) AS cold_starts
{_MINUTES}
GROUP BY time ORDER BY time""",
            Kind.TIMESERIES,
            ("invocations", "errors", "timeouts", "cold_starts"),
        ),
        Panel(
            "Throttled calls",
            f"""SELECT $__timeInterval(bucket) AS time, sum(throttles) AS throttles
FROM ({_throttles_by_bucket()})
GROUP BY time ORDER BY time""",
            Kind.TIMESERIES,
            ("throttles",),
        ),
        Panel(
            "Concurrency against the account limit",
            f"""SELECT toStartOfInterval(bucket, INTERVAL $__interval_s second) AS time, max(peak) AS peak_concurrency,
    {ACCOUNT_LIMIT} AS account_limit
FROM concurrency_peaks FINAL
WHERE {TENANT} AND scope = 'total' AND resolution = {_RESOLUTION} AND $__timeFilter(bucket)
GROUP BY time ORDER BY time""",
            Kind.TIMESERIES,
            ("peak_concurrency", "account_limit"),
            description="Most executions running at one instant, all functions together.",
        ),
        Panel(
            "Concurrency against limits, per function",
            f"""SELECT function, peak_concurrency, concurrency_limit, limit_source, utilisation_pct,
    {_state(critical="utilisation_pct >= 100", warning=f"utilisation_pct >= {UTILISATION_WARN_PCT}")} AS state
FROM (
    SELECT p.function AS function, p.peak AS peak_concurrency,
        if(l.function != '' AND l.reserved >= 0, l.reserved, {_POOL}) AS concurrency_limit,
        if(l.function != '' AND l.reserved >= 0, 'reserved', 'account') AS limit_source,
        round(100 * peak_concurrency / greatest(concurrency_limit, 1), 1) AS utilisation_pct
    FROM (
        SELECT key AS function, max(peak) AS peak FROM concurrency_peaks FINAL
        WHERE {TENANT} AND scope = 'function' AND resolution = 60 AND $__timeFilter(bucket)
        GROUP BY key) AS p
    LEFT JOIN {_LIMITS} AS l ON l.function = p.function)
ORDER BY utilisation_pct DESC, function""",
            Kind.TABLE,
            ("function", "peak_concurrency", "concurrency_limit", "limit_source", "utilisation_pct", "state"),
            description=f"Peak concurrency per function and the limit it runs against: warning from "
            f"{UTILISATION_WARN_PCT}%, critical at 100% (throttling starts).",
        ),
        Panel(
            "Functions",
            f"""SELECT function, n AS invocations, e AS errors, round(e / greatest(n, 1), 4) AS error_rate,
    t AS throttles, c AS cold_starts, if(n > 0, round(q[4], 1), NULL) AS p99_ms,
    if(timeout > 0, timeout * 1000, NULL) AS timeout_ms, round(gb, 3) AS gb_seconds,
    round(cost, 6) AS cost_usd, {_FUNCTION_STATE} AS state
FROM (
    SELECT f.function AS function, ifNull(m.n, 0) AS n, ifNull(m.e, 0) AS e, ifNull(m.c, 0) AS c, m.q AS q,
        ifNull(m.gb, 0) AS gb, ifNull(m.cost, 0) AS cost, ifNull(th.t, 0) AS t, ifNull(tm.timeout_s, 0) AS timeout,
        f.function IN {_DISABLED} AS disabled
    FROM (
        SELECT DISTINCT function FROM (
            SELECT function {_MINUTES} AND invocations > 0 UNION ALL SELECT function FROM {_DISABLED})) AS f
    LEFT JOIN (
        SELECT function, sum(invocations) AS n, sum(errors) AS e, sum(cold_starts) AS c, {_QUANTILES} AS q,
            sum(gb_seconds) AS gb, {_COST} AS cost
        {_MINUTES}
        GROUP BY function) AS m ON m.function = f.function
    LEFT JOIN (SELECT function, sum(throttles) AS t FROM ({_throttles_by_bucket()}) GROUP BY function) AS th
        ON th.function = f.function
    LEFT JOIN {_TIMEOUTS} AS tm ON tm.function = f.function)
ORDER BY indexOf({_STATE_ORDER}, state), errors + throttles DESC, invocations DESC, function""",
            Kind.TABLE,
            (
                "function",
                "invocations",
                "errors",
                "error_rate",
                "throttles",
                "cold_starts",
                "p99_ms",
                "timeout_ms",
                "gb_seconds",
                "cost_usd",
                "state",
            ),
            description=f"Worst first. Critical: errors in {ERROR_RATE_CRITICAL:.0%} of invocations or more, "
            f"throttles in {THROTTLE_RATE_CRITICAL:.0%} of calls, or p99 at {P99_OF_TIMEOUT_CRITICAL:.0%} of the "
            f"timeout; warning: errors in {ERROR_RATE_WARN:.0%}, any throttle, or p99 at "
            f"{P99_OF_TIMEOUT_WARN:.0%} of the timeout (as configured in the audit trail, else the longest "
            "`Task timed out after` seen). Disabled: reserved concurrency 0.",
            width=24,
        ),
        Row("Per function"),
        Panel(
            "p99 duration per function",
            f"""SELECT $__timeInterval(bucket) AS time, function, round({_QUANTILES}[4], 1) AS p99_ms
{_MINUTES}
GROUP BY time, function ORDER BY time, function""",
            Kind.TIMESERIES,
            ("function", "p99_ms"),
            unit="ms",
            series_by="function",
        ),
        Panel(
            "Errors per function",
            f"""SELECT $__timeInterval(bucket) AS time, function, sum(errors) AS errors
{_MINUTES}
GROUP BY time, function ORDER BY time, function""",
            Kind.TIMESERIES,
            ("function", "errors"),
            description="Errors, timeouts and out-of-memory exits included.",
            series_by="function",
        ),
        Panel(
            "Throttles per function",
            f"""SELECT $__timeInterval(bucket) AS time, function, sum(throttles) AS throttles
FROM ({_throttles_by_bucket()})
GROUP BY time, function ORDER BY time, function""",
            Kind.TIMESERIES,
            ("function", "throttles"),
            series_by="function",
        ),
        Panel(
            "Concurrency against its limit, per function",
            f"""SELECT p.time AS time, p.function AS function,
    round(100 * p.peak / greatest(if(l.function != '' AND l.reserved >= 0, l.reserved, {_POOL}), 1), 1)
        AS utilisation_pct
FROM (
    SELECT toStartOfInterval(bucket, INTERVAL $__interval_s second) AS time, key AS function, max(peak) AS peak
    FROM concurrency_peaks FINAL
    WHERE {TENANT} AND scope = 'function' AND resolution = {_RESOLUTION} AND $__timeFilter(bucket)
    GROUP BY time, function) AS p
LEFT JOIN {_LIMITS} AS l ON l.function = p.function
ORDER BY time, function""",
            Kind.TIMESERIES,
            ("function", "utilisation_pct"),
            description="Peak concurrency as a share of the limit it runs against: throttling starts at 100%.",
            unit="percent",
            series_by="function",
        ),
    ),
)


# --- Function detail -------------------------------------------------------------------------------------

_ONE = f"{TENANT} AND {FUNCTION} AND {VERSION}"
_ONE_MINUTES = f"FROM function_minutes FINAL WHERE {_ONE} AND $__timeFilter(bucket)"

FUNCTION_DETAIL = Dashboard(
    uid="fnscope-function",
    title="fnscope: Function detail",
    description="One function (and version): latency percentiles, concurrency, cold starts, memory, recent logs.",
    variables=(
        _tenant_variable("function_minutes"),
        Variable(
            "function",
            "Function",
            f"SELECT DISTINCT function FROM function_minutes WHERE {TENANT} AND $__timeFilter(bucket) ORDER BY function",
        ),
        Variable(
            "version",
            "Version",
            f"SELECT DISTINCT version FROM function_minutes WHERE {TENANT} AND {FUNCTION} AND $__timeFilter(bucket) "
            "ORDER BY version",
            include_all=True,
        ),
    ),
    items=(
        Panel(
            "Duration percentiles",
            f"""SELECT time, q[1] AS p50_ms, q[2] AS p90_ms, q[3] AS p95_ms, q[4] AS p99_ms FROM (
    SELECT $__timeInterval(bucket) AS time, {_QUANTILES} AS q
    {_ONE_MINUTES}
    GROUP BY time)
ORDER BY time""",
            Kind.TIMESERIES,
            ("p50_ms", "p90_ms", "p95_ms", "p99_ms"),
            unit="ms",
        ),
        Panel(
            "Invocations, errors, timeouts",
            f"""SELECT $__timeInterval(bucket) AS time, sum(invocations) AS invocations, sum(errors) AS errors,
    sum(timeouts) AS timeouts, sum(out_of_memory) AS out_of_memory
{_ONE_MINUTES}
GROUP BY time ORDER BY time""",
            Kind.TIMESERIES,
            ("invocations", "errors", "timeouts", "out_of_memory"),
        ),
        Panel(
            "Concurrency against its limit",
            f"""SELECT toStartOfInterval(bucket, INTERVAL $__interval_s second) AS time, max(peak) AS peak_concurrency,
    (SELECT if(count() > 0 AND any(reserved) >= 0, any(reserved), {_POOL})
     FROM {_LIMITS} WHERE {FUNCTION}) AS concurrency_limit
FROM concurrency_peaks FINAL
WHERE {TENANT} AND scope = 'function' AND key = ${{function:singlequote}} AND resolution = {_RESOLUTION}
  AND $__timeFilter(bucket)
GROUP BY time ORDER BY time""",
            Kind.TIMESERIES,
            ("peak_concurrency", "concurrency_limit"),
            description="All versions together: Lambda counts concurrency per function.",
        ),
        Panel(
            "Throttles",
            f"""SELECT $__timeInterval(bucket) AS time, sum(throttles) AS throttles
FROM ({_throttles_by_bucket("AND " + FUNCTION)})
GROUP BY time ORDER BY time""",
            Kind.TIMESERIES,
            ("throttles",),
        ),
        Panel(
            "Cold starts",
            f"""SELECT $__timeInterval(bucket) AS time, sum(cold_starts) AS cold_starts
{_ONE_MINUTES}
GROUP BY time ORDER BY time""",
            Kind.TIMESERIES,
            ("cold_starts",),
            width=6,
        ),
        Panel(
            "Init duration",
            f"""SELECT $__timeInterval(bucket) AS time,
    if(sum(init_count) > 0, round(sum(init_sum) / sum(init_count), 1), NULL) AS avg_init_ms
{_ONE_MINUTES}
GROUP BY time ORDER BY time""",
            Kind.TIMESERIES,
            ("avg_init_ms",),
            description="Average Init Duration of the cold starts (a count and milliseconds get an axis each).",
            unit="ms",
            width=6,
        ),
        Panel(
            "Memory used",
            f"""SELECT $__timeInterval(bucket) AS time,
    round(100 * sum(memory_ratio_sum) / greatest(sum(memory_count), 1), 1) AS avg_pct,
    round(100 * max(memory_ratio_max), 1) AS max_pct
{_ONE_MINUTES}
GROUP BY time ORDER BY time""",
            Kind.TIMESERIES,
            ("avg_pct", "max_pct"),
            description="Max memory used as a share of the memory size, from the REPORT lines.",
            unit="percent",
        ),
        Panel(
            "Versions",
            f"""SELECT version, sum(invocations) AS invocations, sum(errors) AS errors, sum(cold_starts) AS cold_starts,
    round({_QUANTILES}[1], 1) AS p50_ms, round({_QUANTILES}[4], 1) AS p99_ms
FROM function_minutes FINAL WHERE {TENANT} AND {FUNCTION} AND $__timeFilter(bucket)
GROUP BY version ORDER BY version""",
            Kind.TABLE,
            ("version", "invocations", "errors", "cold_starts", "p50_ms", "p99_ms"),
            width=24,
            height=6,
        ),
        Panel(
            "Recent logs",
            f"""SELECT time AS timestamp, level, message AS body, request_id
FROM function_logs FINAL WHERE {_ONE} AND $__timeFilter_ms(time)
ORDER BY time DESC LIMIT 1000""",
            Kind.LOGS,
            ("level", "body", "request_id"),
            width=24,
            height=12,
        ),
    ),
)


# --- API -------------------------------------------------------------------------------------------------

_REQUESTS = f"FROM api_access FINAL WHERE {TENANT} AND {API} AND $__timeFilter_ms(time)"

API_DASHBOARD = Dashboard(
    uid="fnscope-api",
    title="fnscope: API",
    description="API Gateway access logs: requests, status codes, latency, routes.",
    variables=(
        _tenant_variable("api_access"),
        Variable(
            "api",
            "API",
            f"SELECT DISTINCT api_id FROM api_access WHERE {TENANT} AND $__timeFilter_ms(time) ORDER BY api_id",
            include_all=True,
        ),
    ),
    items=(
        Panel("Requests", f"SELECT count() AS requests {_REQUESTS}", Kind.STAT, width=8, height=4),
        Panel(
            "5xx rate",
            f"SELECT round(countIf(status >= 500) / greatest(count(), 1), 4) AS error_rate {_REQUESTS}",
            Kind.STAT,
            unit="percentunit",
            width=8,
            height=4,
        ),
        Panel(
            "Throttled requests", f"SELECT countIf(throttled) AS throttled {_REQUESTS}", Kind.STAT, width=8, height=4
        ),
        Panel(
            "Requests by status class",
            f"""SELECT $__timeInterval(time) AS time, countIf(status < 400) AS ok, countIf(status >= 400 AND status < 500)
    AS client_errors, countIf(status >= 500) AS server_errors, countIf(throttled) AS throttled
{_REQUESTS}
GROUP BY time ORDER BY time""",
            Kind.TIMESERIES,
            ("ok", "client_errors", "server_errors", "throttled"),
        ),
        Panel(
            "Latency",
            f"""SELECT time, q[1] AS p50_ms, q[2] AS p90_ms, q[3] AS p99_ms, iq AS integration_p99_ms FROM (
    SELECT $__timeInterval(time) AS time, quantiles(0.5, 0.9, 0.99)(latency_ms) AS q,
        quantile(0.99)(integration_latency_ms) AS iq
    {_REQUESTS}
    GROUP BY time)
ORDER BY time""",
            Kind.TIMESERIES,
            ("p50_ms", "p90_ms", "p99_ms", "integration_p99_ms"),
            unit="ms",
        ),
        Panel(
            "Status codes",
            f"SELECT toString(status) AS status, count() AS requests {_REQUESTS} GROUP BY status ORDER BY status",
            Kind.TABLE,
            ("status", "requests"),
            width=8,
        ),
        Panel(
            "Routes",
            f"""SELECT api_id, route, method, count() AS requests, countIf(status >= 500) AS server_errors,
    countIf(throttled) AS throttled, round(quantile(0.99)(latency_ms), 1) AS p99_ms, any(function) AS function
{_REQUESTS}
GROUP BY api_id, route, method ORDER BY requests DESC LIMIT 100""",
            Kind.TABLE,
            ("api_id", "route", "method", "requests", "server_errors", "throttled", "p99_ms", "function"),
            width=16,
        ),
    ),
)


# --- Audit -----------------------------------------------------------------------------------------------

# Grafana's ClickHouse plugin fills in its macros and dashboard variables only, never ClickHouse's own {name:Type}
# query parameters: the tenant goes in as the dashboard variable.
_VISIBLE = f"FROM audit_events FINAL WHERE {TENANT} AND $__timeFilter_ms(time)"  # every version of every event
_SAVED_PARAM = re.compile(r"\{(\w+):([\w()]+)\}")


def saved_query_sql(query: SavedQuery, limit: int = 1000) -> str:
    """A saved compliance query for Grafana: ``since``/``until`` are the dashboard's time range, ``tenant``
    its variable, the query's own parameters their defaults."""
    fixed = {
        "tenant": "${tenant:singlequote}",
        "since": "$__fromTime_ms",
        "until": "$__toTime_ms",
        "limit": str(limit),
    } | {name: str(int(default)) for name, (_, default) in query.params.items()}

    def one(match: re.Match[str]) -> str:
        if match.group(1) not in fixed:
            raise ValueError(f"saved query {query.name}: no Grafana value for parameter {match.group(0)}")
        return fixed[match.group(1)]

    return f"{_SAVED_PARAM.sub(one, query.sql)} {FINAL_SETTINGS}"


def _saved_columns(query: SavedQuery) -> tuple[str, ...]:
    head = query.sql.split(" FROM ", 1)[0].removeprefix("SELECT ")
    return tuple(part.strip().split(" AS ")[-1].split(".")[-1] for part in _split_top_level(head))


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _compliance_panel(query: SavedQuery) -> Panel:
    description = f"{query.description} Controls: {'; '.join(query.controls)}. (`fnscope audit run {query.name}`)"
    return Panel(query.title, saved_query_sql(query), Kind.TABLE, _saved_columns(query), description, width=24)


AUDIT = Dashboard(
    uid="fnscope-audit",
    title="fnscope: Audit",
    description="CloudTrail: who did what, from where; failed calls; the saved compliance queries.",
    time_from="now-7d",
    variables=(_tenant_variable("audit_events"),),
    items=(
        Panel(
            "Calls",
            f"""SELECT $__timeInterval(time) AS time, count() AS calls, countIf(error_code != '') AS failed,
    countIf(read_only = false) AS changes
{_VISIBLE}
GROUP BY time ORDER BY time""",
            Kind.TIMESERIES,
            ("calls", "failed", "changes"),
            width=24,
        ),
        Panel(
            "Actions",
            f"""SELECT service, action, count() AS calls, countIf(error_code != '') AS failed,
    uniqExact(principal_arn) AS principals
{_VISIBLE}
GROUP BY service, action ORDER BY calls DESC LIMIT 100""",
            Kind.TABLE,
            ("service", "action", "calls", "failed", "principals"),
        ),
        Panel(
            "Principals",
            f"""SELECT principal_name, principal_type, count() AS calls, countIf(error_code != '') AS failed,
    countIf(read_only = false) AS changes, countIf(mfa = true) AS with_mfa, uniqExact(source_ip) AS source_ips
{_VISIBLE}
GROUP BY principal_name, principal_type ORDER BY calls DESC LIMIT 100""",
            Kind.TABLE,
            ("principal_name", "principal_type", "calls", "failed", "changes", "with_mfa", "source_ips"),
        ),
        Panel(
            "Changes (not read-only)",
            f"""SELECT time, principal_name, action, function, source_ip, mfa, error_code
{_VISIBLE} AND read_only = false AND action NOT LIKE 'Invoke%'
ORDER BY time DESC LIMIT 500""",
            Kind.TABLE,
            ("time", "principal_name", "action", "function", "source_ip", "mfa", "error_code"),
            width=24,
        ),
        Panel(
            "Failed calls",
            f"""SELECT time, principal_name, action, error_code, error_message, source_ip, function
{_VISIBLE} AND error_code != ''
ORDER BY time DESC LIMIT 500""",
            Kind.TABLE,
            ("time", "principal_name", "action", "error_code", "error_message", "source_ip", "function"),
            width=24,
        ),
        Row("Compliance queries"),
        *(_compliance_panel(query) for query in SAVED_QUERIES),
    ),
)


# --- Pipeline health -------------------------------------------------------------------------------------

_SIGNALS = ("invocations", "function_logs", "api_access", "audit_events", "dead_letters")
_ARRIVALS = " UNION ALL ".join(
    f"SELECT '{table}' AS signal, time, ingested_at FROM {table} WHERE $__timeFilter_ms(ingested_at)"
    for table in _SIGNALS
)

PIPELINE = Dashboard(
    uid="fnscope-pipeline",
    title="fnscope: Pipeline health",
    description="The pipeline itself: what is stored per second, how late it arrives, what could not be parsed.",
    time_from="now-1h",
    items=(
        Panel(
            "Stored events per second",
            "SELECT toStartOfInterval(ingested_at, INTERVAL $__interval_s second) AS time, "
            + ", ".join(f"countIf(signal = '{t}') / $__interval_s AS {t}" for t in _SIGNALS)
            + f"\nFROM ({_ARRIVALS})\nGROUP BY time ORDER BY time",
            Kind.TIMESERIES,
            _SIGNALS,
            description="Rows stored per second by arrival time (ingested_at), re-deliveries included.",
            width=24,
        ),
        Panel(
            "Delivery delay (event time to stored)",
            f"""SELECT time, q[1] AS p50_s, q[2] AS p99_s, mx AS max_s FROM (
    SELECT toStartOfInterval(ingested_at, INTERVAL $__interval_s second) AS time,
        quantiles(0.5, 0.99)(dateDiff('millisecond', time, ingested_at) / 1000) AS q,
        max(dateDiff('millisecond', time, ingested_at) / 1000) AS mx
    FROM ({_ARRIVALS}) WHERE signal IN ('invocations', 'function_logs', 'api_access')
    GROUP BY time)
ORDER BY time""",
            Kind.TIMESERIES,
            ("p50_s", "p99_s", "max_s"),
            description="ingested_at minus the event's own time: source buffering (Firehose, CloudWatch), Kafka, "
            "processor batching and the insert. Consumer lag is exported on /metrics, not stored.",
            unit="s",
        ),
        Panel(
            "Dead letters",
            """SELECT toStartOfInterval(ingested_at, INTERVAL $__interval_s second) AS time, count() AS dead_letters
FROM dead_letters WHERE $__timeFilter_ms(ingested_at)
GROUP BY time ORDER BY time""",
            Kind.TIMESERIES,
            ("dead_letters",),
        ),
        Panel(
            "Dead letters by source and reason",
            """SELECT tenant, source, substring(reason, 1, 200) AS reason, count() AS records,
    max(ingested_at) AS last_seen
FROM dead_letters FINAL WHERE $__timeFilter_ms(ingested_at)
GROUP BY tenant, source, reason ORDER BY records DESC LIMIT 200""",
            Kind.TABLE,
            ("tenant", "source", "reason", "records", "last_seen"),
            description="Records kept with their raw bytes because they could not be parsed (GET /api/dead-letters).",
            width=24,
        ),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (FLEET, FUNCTION_DETAIL, API_DASHBOARD, AUDIT, PIPELINE)
