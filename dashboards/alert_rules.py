"""The alerting issue's rules (``alerts/rules.py``) as Grafana unified-alerting rules.

Each rule becomes a ClickHouse query that returns one row per (tenant, function): the string columns are the
alert's labels, ``value`` is what the rule measures over its window (Grafana numeric "table" data), and a
math expression ``$A >= threshold`` is the condition, as fnscope's own evaluator states it. The window is the
query's relative time range; health tables are per minute, so the range reaches one minute further back to
include the last complete minute.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from grafana_foundation_sdk.builders import alerting, expr
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.alerting import RelativeTimeRange
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from fnscope.alerts.rules import BUILTIN_RULES, Rule
from fnscope.dashboards.grafana import DATASOURCE_UID, FOLDER_UID, ClickHouseQuery, ClickHouseQueryBuilder
from fnscope.dashboards.model import Format
from fnscope.dashboards.panels import ACCOUNT_LIMIT
from fnscope.store import LEVELS

RULE_GROUP = "fnscope"
CONTACT_POINT = "fnscope-webhook"
CONTACT_POINT_UID = "fnscope-webhook"
EVALUATE_EVERY = "1m"

_MINUTES = "FROM function_minutes FINAL WHERE $__timeFilter(bucket)"

_THROTTLES = """SELECT tenant, function, toFloat64(max(n)) AS value FROM (
    SELECT tenant, function, source, sum(throttles) AS n FROM throttle_minutes FINAL WHERE $__timeFilter(bucket)
    GROUP BY tenant, function, source)
GROUP BY tenant, function"""

_LIMITS = """(SELECT tenant, function, argMax(reserved, changed_at) AS reserved
    FROM concurrency_limits FINAL GROUP BY tenant, function)"""

_CONCURRENCY = f"""SELECT p.tenant AS tenant, p.function AS function,
    toFloat64(p.peak / greatest(if(l.function != '' AND l.reserved >= 0, l.reserved,
        greatest(0, {ACCOUNT_LIMIT} - r.reserved_total)), 1)) AS value
FROM (SELECT tenant, key AS function, max(peak) AS peak FROM concurrency_peaks FINAL
      WHERE scope = 'function' AND resolution = 1 AND $__timeFilter(bucket) GROUP BY tenant, key) AS p
LEFT JOIN {_LIMITS} AS l ON l.tenant = p.tenant AND l.function = p.function
LEFT JOIN (SELECT tenant, sum(reserved) AS reserved_total FROM {_LIMITS} WHERE reserved > 0 GROUP BY tenant) AS r
    ON r.tenant = p.tenant"""


def _per_function(value: str, min_invocations: int) -> str:
    return (
        f"SELECT tenant, function, toFloat64({value}) AS value {_MINUTES} GROUP BY tenant, function "
        f"HAVING sum(invocations) >= {int(min_invocations)}"
    )


def rule_sql(rule: Rule) -> str | None:
    """The query measuring this rule per function, or None for a kind Grafana rules do not cover here."""
    if rule.kind == "throttles":
        return _THROTTLES
    if rule.kind == "concurrency":
        return _CONCURRENCY
    if rule.kind == "error_rate":
        return _per_function("sum(errors) / sum(invocations)", max(rule.min_invocations, 1))
    if rule.kind == "p99_duration":
        return _per_function(f"quantilesTDigestMerge({LEVELS})(duration)[4]", max(rule.min_invocations, 1))
    if rule.kind == "timeouts":
        return _per_function("sum(timeouts)", rule.min_invocations)
    if rule.kind == "audit":
        return _audit(rule)
    return None


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _audit(rule: Rule) -> str:
    """CloudTrail records that match the rule, counted as they arrived (CloudTrail delivers minutes late), per
    tenant and account: the same records fnscope's own evaluator alerts on."""
    conditions = []
    for field, wanted in sorted(rule.match.items()):
        if isinstance(wanted, list):
            conditions.append(f"{field} IN ({', '.join(_literal(v) for v in wanted)})")
        else:
            conditions.append(f"{field} = {_literal(wanted)}")
    return (
        "SELECT tenant, account, principal_arn AS principal, action, toFloat64(count()) AS value "
        f"FROM audit_events FINAL WHERE $__timeFilter_ms(ingested_at) AND {' AND '.join(conditions)} "
        "GROUP BY tenant, account, principal, action"
    )


def alert_queries(rules: Iterable[Rule] = BUILTIN_RULES) -> list[tuple[Rule, str]]:
    return [(rule, sql) for rule in rules if rule.enabled and (sql := rule_sql(rule)) is not None]


def _seconds(value: float) -> str:
    return f"{int(value)}s"


def _rule(rule: Rule, sql: str, datasource_uid: str) -> dict[str, Any]:
    window = int(rule.window_s) + 60
    query = ClickHouseQuery("A", sql, Format.TABLE, "table", datasource_uid)
    condition = (
        expr.TypeMath()
        .ref_id("B")
        .expression(f"$A >= {rule.threshold:g}")
        .datasource(DataSourceRef(type_val="__expr__", uid="__expr__"))
    )
    built = (
        alerting.Rule(rule.name)
        .uid(f"fnscope-{rule.name}")
        .folder_uid(FOLDER_UID)
        .rule_group(RULE_GROUP)
        .org_id(1)
        .condition("B")
        .with_query(
            alerting.Query("A")
            .datasource_uid(datasource_uid)
            .relative_time_range(RelativeTimeRange(from_val=window, to=0))
            .model(ClickHouseQueryBuilder(query))
        )
        .with_query(
            alerting.Query("B")
            .datasource_uid("__expr__")
            .relative_time_range(RelativeTimeRange(from_val=0, to=0))
            .model(condition)
        )
        .for_val(_seconds(rule.for_s))
        .no_data_state("OK")
        .exec_err_state("Error")
        .labels({"severity": rule.severity, "source": "fnscope"})
        .annotations({"summary": _grafana_summary(rule), "description": f"{rule.kind} >= {rule.threshold:g}"})
    )
    return json.loads(json.dumps(built.build(), cls=JSONEncoder))


def _grafana_summary(rule: Rule) -> str:
    return f"{rule.name}: {{{{ $labels.function }}}} ({{{{ $labels.tenant }}}}) measured {{{{ $values.A }}}}"


def grafana_rules(rules: Iterable[Rule] = BUILTIN_RULES, datasource_uid: str = DATASOURCE_UID) -> list[dict[str, Any]]:
    """Rules as the alerting provisioning API takes them (``POST /api/v1/provisioning/alert-rules``)."""
    return [_rule(rule, sql, datasource_uid) for rule, sql in alert_queries(rules)]


def contact_point(url: str) -> dict[str, Any]:
    built = alerting.ContactPoint().uid(CONTACT_POINT_UID).name(CONTACT_POINT).type("webhook").settings({"url": url})
    return json.loads(json.dumps(built.build(), cls=JSONEncoder))


def provisioning_file(rules: Iterable[Rule] = BUILTIN_RULES) -> dict[str, Any]:
    """The same rules as a Grafana alerting provisioning file (``provisioning/alerting/*.yaml``)."""
    file_rules = []
    for rule in grafana_rules(rules):
        # The file format names the folder and group on the group, not on each rule.
        file_rules.append({k: v for k, v in rule.items() if k not in ("folderUID", "ruleGroup", "orgID")})
    return {
        "apiVersion": 1,
        "groups": [
            {"orgId": 1, "name": RULE_GROUP, "folder": "fnscope", "interval": EVALUATE_EVERY, "rules": file_rules}
        ],
    }
