"""`fnscope alerts list|history|test`: alert rules and state, the notification history, a test notification."""

from __future__ import annotations

import json

import click
import httpx

from fnscope.cli.common import API_OPTION, TOKEN_OPTION, api_get, refused, unreachable
from fnscope.cli.flags import table_options
from fnscope.cli.output import Column, print_table, when

_STATE = Column("state", style=lambda v: {"firing": "bold red", "pending": "yellow"}.get(v), keep=95)
_RULE = Column("rule", keep=90)
_FUNCTION = Column("function", keep=85)
ALERT_COLUMNS = [
    _STATE,
    _RULE,
    _FUNCTION,
    Column("value", keep=40, right=True),
    Column("summary", keep=60),
    Column("active_since", "since", time=True, keep=70),
    Column("updated_at", "updated", time=True, keep=30),
]
HISTORY_COLUMNS = [
    Column("time", time=True, keep=100),
    Column("kind", keep=80),
    _RULE,
    Column("summary", keep=50),
    Column("target", keep=60),
    Column("delivery", style=when(lambda v: v != "delivered", "bold red"), keep=70),
    Column("attempts", keep=20, right=True),
    Column("http_status", "http", keep=30, right=True),
    Column("error", keep=40),
]
DELIVERY_COLUMNS = [
    Column("target", keep=100),
    Column("format", keep=40),
    Column("delivery", style=when(lambda v: v != "delivered", "bold red"), keep=90),
    Column("attempts", keep=20, right=True),
    Column("http_status", "http", keep=60, right=True),
    Column("error", keep=70),
    Column("delivery_ms", "ms", keep=10, right=True),
]


@click.group()
def alerts() -> None:
    """Alert rules, their state and history; `test` sends a test notification."""


@alerts.command("list")
@click.option("--all", "show_all", is_flag=True, help="resolved alerts too")
@click.option("--rules", "show_rules", is_flag=True, help="the rules in force instead of the alerts")
@click.option("--function", "-f", default="", help="one function")
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON")
@table_options
@API_OPTION
@TOKEN_OPTION
def list_(show_all: bool, show_rules: bool, function: str, as_json: bool, api: str, token: str | None) -> None:
    """Alerts pending or firing now (with --all, resolved ones too)."""
    states = ["pending", "firing", "resolved"] if show_all else ["pending", "firing"]
    out = api_get(api, token, "/api/alerts", {"state": states, "function": function})
    if as_json:
        click.echo(json.dumps(out["rules"] if show_rules else out["alerts"], indent=2))
    elif show_rules:
        columns = ["name", "kind", "threshold", "window_s", "for_s", "resolve_after_s", "severity", "enabled"]
        print_table(out["rules"], columns)
    elif not out["alerts"]:
        click.echo("no alerts pending or firing")
    else:
        rows = [{**a, "function": a["labels"].get("function", "")} for a in out["alerts"]]
        print_table(rows, ALERT_COLUMNS)


@alerts.command()
@click.option("--since", default="7d", show_default=True, help="15m, 1h, 7d or ISO-8601")
@click.option("--rule", default="", help="one rule")
@click.option("--function", "-f", default="", help="one function")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON")
@table_options
@API_OPTION
@TOKEN_OPTION
def history(since: str, rule: str, function: str, limit: int, as_json: bool, api: str, token: str | None) -> None:
    """Every notification: what fired or resolved, and whether each target got it."""
    params = {"since": since, "rule": rule, "function": function, "limit": limit}
    out = api_get(api, token, "/api/alerts/history", params)
    if as_json:
        click.echo(json.dumps(out["history"], indent=2))
        return
    print_table(out["history"], HISTORY_COLUMNS)


@alerts.command()
@table_options
@API_OPTION
@TOKEN_OPTION
def test(api: str, token: str | None) -> None:
    """Send a test notification to every target (FNSCOPE_ALERT_WEBHOOK_URL and alerts.targets)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.post(f"{api.rstrip('/')}/api/alerts/test", headers=headers, timeout=120)
    except httpx.HTTPError as exc:
        raise unreachable(api, exc) from exc
    if response.status_code >= 400:
        raise refused(response)
    deliveries = response.json()["deliveries"]
    print_table(deliveries, DELIVERY_COLUMNS)
    if any(d["delivery"] != "delivered" for d in deliveries):
        raise click.ClickException("not every target got the test notification")
