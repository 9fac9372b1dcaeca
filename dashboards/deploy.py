"""Push datasource, folder, dashboards, alert rules and a webhook contact point into a running Grafana through
its HTTP API (grafana-client). Idempotent: what is already there as we would write it is left alone, so a
second run changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

from fnscope.alerts.rules import BUILTIN_RULES, Rule
from fnscope.dashboards import alert_rules, grafana, provisioning
from fnscope.dashboards.panels import DASHBOARDS


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def note(self, outcome: str, what: str) -> None:
        getattr(self, outcome).append(what)


def _existing(fetch: Callable[[], Any]) -> Any | None:
    try:
        return fetch()
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return None
        raise


def _same(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether everything we would write is already there (Grafana adds ids, versions and defaults)."""
    return all(current.get(key) == value for key, value in wanted.items())


def _datasource(api: GrafanaApi, clickhouse_url: str, report: Report) -> None:
    wanted = provisioning.datasource(clickhouse_url)
    current = _existing(lambda: api.datasource.get_datasource_by_uid(grafana.DATASOURCE_UID))
    # Grafana never returns secureJsonData: the password is sent on create and whenever something else changed.
    visible = {k: v for k, v in wanted.items() if k != "secureJsonData"}
    if current is None:
        api.datasource.create_datasource(wanted)
        report.note("created", f"datasource {grafana.DATASOURCE_UID}")
    elif not _same(current, visible):
        api.datasource.update_datasource_by_uid(grafana.DATASOURCE_UID, wanted)
        report.note("updated", f"datasource {grafana.DATASOURCE_UID}")
    else:
        report.note("unchanged", f"datasource {grafana.DATASOURCE_UID}")


def _folder(api: GrafanaApi, report: Report) -> None:
    if _existing(lambda: api.folder.get_folder(grafana.FOLDER_UID)) is None:
        api.folder.create_folder(grafana.FOLDER_TITLE, uid=grafana.FOLDER_UID)
        report.note("created", f"folder {grafana.FOLDER_UID}")
    else:
        report.note("unchanged", f"folder {grafana.FOLDER_UID}")


def _dashboards(api: GrafanaApi, report: Report) -> None:
    for board in DASHBOARDS:
        wanted = grafana.build(board)
        current = _existing(lambda uid=board.uid: api.dashboard.get_dashboard(uid))
        if current is not None and _same(current["dashboard"], wanted):
            if current.get("meta", {}).get("folderUid") == grafana.FOLDER_UID:
                report.note("unchanged", f"dashboard {board.uid}")
                continue
        api.dashboard.update_dashboard(
            {"dashboard": wanted, "folderUid": grafana.FOLDER_UID, "overwrite": True, "message": "fnscope deploy"}
        )
        report.note("created" if current is None else "updated", f"dashboard {board.uid}")


def _rules(api: GrafanaApi, rules: list[Rule], receiver: str | None, report: Report) -> None:
    for rule in alert_rules.grafana_rules(rules):
        if receiver:  # simplified routing: the rule notifies the contact point directly
            rule["notification_settings"] = {"receiver": receiver}
        uid = rule["uid"]
        current = _existing(lambda uid=uid: api.alertingprovisioning.get_alertrule(uid))
        if current is None:
            api.alertingprovisioning.create_alertrule(rule)
            report.note("created", f"alert rule {uid}")
        elif not _same(current, rule):
            api.alertingprovisioning.update_alertrule(uid, rule)
            report.note("updated", f"alert rule {uid}")
        else:
            report.note("unchanged", f"alert rule {uid}")


def _contact_point(api: GrafanaApi, url: str, report: Report) -> None:
    wanted = alert_rules.contact_point(url)
    existing = [c for c in api.alertingprovisioning.get_contactpoints() if c.get("uid") == wanted["uid"]]
    if not existing:
        api.alertingprovisioning.create_contactpoint(wanted)
        report.note("created", f"contact point {wanted['uid']}")
    elif not _same(existing[0], wanted):
        api.alertingprovisioning.update_contactpoint(wanted["uid"], wanted)
        report.note("updated", f"contact point {wanted['uid']}")
    else:
        report.note("unchanged", f"contact point {wanted['uid']}")


def deploy(api: GrafanaApi, clickhouse_url: str, webhook_url: str = "", rules: list[Rule] | None = None) -> Report:
    """Everything, in dependency order. Without ``webhook_url`` no contact point is made and the rules follow
    Grafana's notification policy."""
    report = Report()
    _datasource(api, clickhouse_url, report)
    _folder(api, report)
    _dashboards(api, report)
    if webhook_url:
        _contact_point(api, webhook_url, report)
    _rules(api, rules or list(BUILTIN_RULES), alert_rules.CONTACT_POINT if webhook_url else None, report)
    return report


def connect(url: str, token: str) -> GrafanaApi:
    return GrafanaApi.from_url(url, credential=token)
