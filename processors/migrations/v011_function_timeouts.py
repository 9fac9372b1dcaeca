"""Each function's configured timeout, from the audit trail: what the fleet page holds p99 duration against.

``CreateFunction`` and ``UpdateFunctionConfiguration`` name the timeout in seconds: the response carries the whole
configuration after the call (so an update that changed only the memory still says the timeout), the request only
what was set; the response's figure is taken when there is one. Like ``concurrency_limits`` (v002), a materialized
view over ``audit_events`` keeps the newest by the CloudTrail event's own time, whatever order events arrive in,
and what the trail already holds is filled in once.
"""

from __future__ import annotations

from fnscope.processors.retention import Retention

DESCRIPTION = "each function's configured timeout, from CreateFunction / UpdateFunctionConfiguration"

_TIMEOUTS_SELECT = """SELECT tenant, function, account,
    if(JSONExtractFloat(raw, 'responseElements', 'timeout') > 0, JSONExtractFloat(raw, 'responseElements', 'timeout'),
       JSONExtractFloat(raw, 'requestParameters', 'timeout')) AS timeout_s,
    time AS changed_at, event_id
FROM audit_events
WHERE error_code = '' AND function != ''
  AND (action LIKE 'CreateFunction%' OR action LIKE 'UpdateFunctionConfiguration%')
  AND timeout_s > 0"""


def statements(r: Retention) -> list[str]:
    return [
        """CREATE TABLE IF NOT EXISTS function_timeouts (
    tenant LowCardinality(String),
    function String,
    account LowCardinality(String),
    timeout_s Float64,
    changed_at DateTime64(3, 'UTC'),
    event_id String
) ENGINE = ReplacingMergeTree(changed_at)
ORDER BY (tenant, function)""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS function_timeouts_mv TO function_timeouts AS
{_TIMEOUTS_SELECT}""",
        f"INSERT INTO function_timeouts {_TIMEOUTS_SELECT}",
    ]
