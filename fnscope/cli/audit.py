"""`fnscope audit`: who did what, to what, from where; saved compliance queries; the store's integrity."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from fnscope.cli.audit_bundle import verify_bundle, write_bundle
from fnscope.cli.common import API_OPTION, DEFAULT_API, TOKEN_OPTION, api_call, api_get, api_url
from fnscope.cli.flags import table_options
from fnscope.cli.inert import csv_cell, markup, terminal
from fnscope.cli.output import Column, print_table, when

EVENT_COLUMNS = [
    Column("time", time=True, keep=100),
    Column("principal_name", "principal", keep=90),
    Column("action", keep=95),
    Column("function", keep=70),
    Column("source_ip", "source", keep=60),
    Column("mfa", style=when(lambda v: v is False, "yellow"), keep=50),
    Column("error_code", "error", style=when(bool, "red"), keep=65),
    Column("region", keep=20),
    Column("history", keep=40),
]


def history(row: dict[str, Any]) -> str:
    """An event's place in its append-only history: another version beside it, a correction it names or is
    named by (empty for an ordinary event)."""
    notes = []
    if row.get("versions", 1) > 1:
        notes.append(f"version {row['version']} of {row['versions']}")
    if row.get("corrects"):
        notes.append(f"corrects {row['corrects']}")
    if row.get("corrected_by"):
        notes.append(f"corrected by {', '.join(row['corrected_by'])}")
    return "; ".join(notes)


def output(rows: list[dict[str, Any]], columns: list[Column | str], as_json: bool, as_csv: bool) -> None:
    """Rows as a table, JSON lines, or CSV with every field."""
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else [_key(c) for c in columns])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: csv_cell(json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in row.items()})
    else:
        print_table([{**row, "history": history(row)} for row in rows], columns)


def _key(column: Column | str) -> str:
    return column.key if isinstance(column, Column) else column


FORMAT_OPTIONS = [
    click.option("--json", "as_json", is_flag=True, help="one JSON object per line"),
    click.option("--csv", "as_csv", is_flag=True, help="CSV with every field"),
    table_options,
]


def _formats(f: Any) -> Any:
    for option in reversed(FORMAT_OPTIONS):
        f = option(f)
    return f


@click.group(invoke_without_command=True)
@click.option("--principal", default="", help="part of a principal ARN or user name, or an access key id")
@click.option("--action", default="", help="event name or its start (UpdateFunctionCode finds ...20150331v2)")
@click.option("--resource", default="", help="a function name, a resource ARN, or the name at the end of one")
@click.option("--source", default="", help="source IP or user agent")
@click.option("--failed", is_flag=True, help="only calls that failed (errorCode set)")
@click.option("--changes", is_flag=True, help="only calls that change something (readOnly false)")
@click.option("--account", default="")
@click.option("--region", default="")
@click.option("--since", default="90d", show_default=True)
@click.option("--until", default=None, help="end of the range (default: now)")
@click.option("--limit", type=int, default=100, show_default=True)
@_formats
@API_OPTION
@TOKEN_OPTION
@click.pass_context
def audit(
    ctx: click.Context,
    principal: str,
    action: str,
    resource: str,
    source: str,
    failed: bool,
    changes: bool,
    account: str,
    region: str,
    since: str,
    until: str | None,
    limit: int,
    as_json: bool,
    as_csv: bool,
    api: str,
    token: str | None,
) -> None:
    """Who did what, to what, from where. Subcommands: saved compliance queries and the integrity check."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"api": api, "token": token}
        return
    params = {
        "principal": principal,
        "action": action,
        "resource": resource,
        "source": source,
        "failed": "true" if failed else None,
        "changes": "true" if changes else None,
        "account": account,
        "region": region,
        "since": since,
        "until": until,
        "limit": limit,
    }
    output(api_get(api, token, "/api/audit", params)["results"], EVENT_COLUMNS, as_json, as_csv)


def _connection(ctx: click.Context, api: str | None, token: str | None) -> tuple[str, str | None]:
    """--api/--token given after the subcommand win over those given before it."""
    parent = ctx.obj or {}
    return api or parent.get("api", DEFAULT_API), token or parent.get("token")


SUB_API = click.option(
    "--api", default=None, envvar="FNSCOPE_API", callback=api_url, help="URL of a running fnscope (env FNSCOPE_API)"
)
SUB_TOKEN = click.option("--token", default=None, envvar="FNSCOPE_TOKEN", help="API token (env FNSCOPE_TOKEN)")


@audit.command()
@click.option("--json", "as_json", is_flag=True)
@table_options
@SUB_API
@SUB_TOKEN
@click.pass_context
def queries(ctx: click.Context, as_json: bool, api: str | None, token: str | None) -> None:
    """List the saved compliance queries and the controls they serve."""
    api, token = _connection(ctx, api, token)
    found = api_get(api, token, "/api/audit/queries", {})["queries"]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    rows = [
        {
            "name": q["name"],
            "finds": q["title"],
            "controls": "; ".join(q["controls"]),
            "params": ", ".join(f"{k}={v['default']}" for k, v in q["params"].items()),
        }
        for q in found
    ]
    print_table(rows, [Column("name", keep=100), Column("finds", keep=90), Column("controls", keep=40), "params"])


@audit.command()
@click.argument("name")
@click.option("--since", default="90d", show_default=True)
@click.option("--until", default=None, help="end of the range (default: now)")
@click.option("--limit", type=int, default=1000, show_default=True)
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="the query's own parameters")
@_formats
@SUB_API
@SUB_TOKEN
@click.pass_context
def run(
    ctx: click.Context,
    name: str,
    since: str,
    until: str | None,
    limit: int,
    params: tuple[str, ...],
    as_json: bool,
    as_csv: bool,
    api: str | None,
    token: str | None,
) -> None:
    """Run saved compliance query NAME (see `fnscope audit queries`)."""
    api, token = _connection(ctx, api, token)
    extra: dict[str, Any] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--param")
        extra[key] = value
    answer = api_get(
        api, token, f"/api/audit/queries/{name}", {**extra, "since": since, "until": until, "limit": limit}
    )
    rows = answer["results"]
    columns: list[Column | str] = EVENT_COLUMNS if not rows or "action" in rows[0] else list(rows[0])
    columns = [c for c in columns if _key(c) != "event_ids"]
    output(rows, columns, as_json, as_csv)
    if not as_json and not as_csv:
        click.echo(f"{len(rows)} rows: {answer['query']['title']} ({'; '.join(answer['query']['controls'])})")


@audit.command()
@click.option("--framework", required=True, help="cis, soc2, pci or hipaa")
@click.option("--since", default="30d", show_default=True)
@click.option("--until", default=None, help="end of the range (default: now)")
@click.option("--rows", type=click.IntRange(0, 100), default=3, show_default=True, help="newest rows shown per query")
@click.option("--json", "as_json", is_flag=True)
@table_options
@SUB_API
@SUB_TOKEN
@click.pass_context
def report(
    ctx: click.Context,
    framework: str,
    since: str,
    until: str | None,
    rows: int,
    as_json: bool,
    api: str | None,
    token: str | None,
) -> None:
    """Per control of an assurance framework: the saved queries that serve it and what they found."""
    api, token = _connection(ctx, api, token)
    found = api_get(api, token, "/api/audit/report", {"framework": framework, "since": since, "until": until,
                                                      "rows": str(rows)})  # fmt: skip
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    _print_assurance(found)


def _print_assurance(found: dict[str, Any]) -> None:
    fw, queries = found["framework"], found["queries"]
    click.echo(terminal(f"{fw['title']} ({fw['version']}), {found['since']} to {found['until']}"))
    table = [
        {"control": c["id"], "query": name, "found": _counted(queries[name]), "title": c["title"]}
        if name
        else {"control": c["id"], "query": "(no saved query)", "found": "", "title": c["title"]}
        for c in found["controls"]
        for name in c["queries"] or [""]
    ]
    print_table(
        table,
        [Column("control", keep=100), Column("query", keep=95),
         Column("found", right=True, style=when(lambda v: v != "0", "yellow"), keep=90), Column("title", keep=10)],
    )  # fmt: skip
    for name, result in queries.items():
        if result["first"]:
            click.echo(terminal(f"\n{name}: {_counted(result)}, newest first"))
            first = result["first"]
            columns: list[Column | str] = EVENT_COLUMNS if "action" in first[0] else list(first[0])
            output(first, [c for c in columns if _key(c) != "event_ids"], False, False)


def _counted(result: dict[str, Any]) -> str:
    rows, events = result["rows"], result["events"]
    return f"{rows:,}" if rows == events else f"{rows:,} ({events:,} events)"


@audit.command()
@click.option("--reason", default="", help="why (required to hold or lift: it is recorded)")
@click.option("--lift", is_flag=True, help="lift the hold: retention applies again")
@click.option("--show", is_flag=True, help="only show whether the trail is held, and every hold and lift")
@SUB_API
@SUB_TOKEN
@click.pass_context
def hold(ctx: click.Context, reason: str, lift: bool, show: bool, api: str | None, token: str | None) -> None:
    """Legal hold: keep the tenant's audit trail past its retention until lifted (admin token); each is recorded."""
    api, token = _connection(ctx, api, token)
    if show:
        state = api_get(api, token, "/api/audit/hold", {})
    elif not reason:
        raise click.UsageError("--reason is required to hold or lift (it is recorded); --show to look")
    elif lift:
        state = api_call("DELETE", api, token, "/api/audit/hold", {"reason": reason})
    else:
        state = api_call("POST", api, token, "/api/audit/hold", {}, {"reason": reason})
    click.echo(f"audit trail of {state['tenant']}: {'ON LEGAL HOLD' if state['held'] else 'not held'}")
    for past in state["history"]:
        click.echo(
            terminal(f"  {past['at']}  {'held' if past['held'] else 'lifted'} by {past['by']}: {past['reason']}")
        )


@audit.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--since", default="90d", show_default=True, help="event time from")
@click.option("--until", default=None, help="event time to (default: now)")
@click.option("--query", "names", multiple=True, help="a saved query whose result goes in (repeat; default: all)")
@SUB_API
@SUB_TOKEN
@click.pass_context
def export(
    ctx: click.Context,
    directory: Path,
    since: str,
    until: str | None,
    names: tuple[str, ...],
    api: str | None,
    token: str | None,
) -> None:
    """Write an evidence bundle to DIRECTORY: every version of the events in the range, the saved queries' results,
    the digests and signatures covering them, SHA256SUMS and VERIFY.md (checkable without fnscope)."""
    api, token = _connection(ctx, api, token)
    found = api_get(api, token, "/api/audit/export", {"since": since, "until": until})
    wanted = names or tuple(q["name"] for q in api_get(api, token, "/api/audit/queries", {})["queries"])
    results = {
        name: api_get(api, token, f"/api/audit/queries/{name}", {"since": since, "until": until, "limit": 100_000})
        for name in wanted
    }
    files = write_bundle(directory, found, results)
    click.echo(f"wrote {len(files)} files to {directory}: {len(found['events'])} event versions, "
               f"{len(found['digests'])} digests; check it with `fnscope audit verify --bundle {directory}`")  # fmt: skip
    if found["unsealed"]:
        click.echo(f"{found['unsealed']} event versions in the range are not sealed yet and were left out: "
                   "export again once `fnscope audit verify` shows none unsealed")  # fmt: skip


@audit.command()
@click.option("--since", default=None, help="check only what arrived since then (the whole chain is still walked)")
@click.option("--limit", type=int, default=1000, show_default=True, help="most problems listed")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--bundle",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="check an evidence bundle (`fnscope audit export`) instead of the store: no fnscope needs to run",
)
@SUB_API
@SUB_TOKEN
@click.pass_context
def verify(
    ctx: click.Context,
    since: str | None,
    limit: int,
    as_json: bool,
    bundle: Path | None,
    api: str | None,
    token: str | None,
) -> None:
    """Check the audit store's hash chain; exits 1 and names each changed, deleted, inserted or moved event."""
    if bundle is not None:
        checked = verify_bundle(bundle)
        verdict = "intact" if checked.ok else "TAMPERED"
        click.echo(
            f"bundle {verdict}: {checked.files} files, {checked.events} event versions, {checked.digests} digests; "
            f"signatures: {checked.signatures}"
        )
        for problem in checked.problems:
            click.echo(terminal(problem))
        raise SystemExit(0 if checked.ok else 1)
    api, token = _connection(ctx, api, token)
    report = api_get(api, token, "/api/audit/verify", {"since": since, "limit": limit})
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_report(report)
    if not report["ok"]:
        raise SystemExit(1)


def _print_report(report: dict[str, Any]) -> None:
    console = Console()
    head = report["head"] or {}
    verdict = "[green]intact[/green]" if report["ok"] else "[red]TAMPERED[/red]"
    console.print(
        f"audit store {verdict}: {report['events']} events ({report['versions']} versions) in "
        f"{report['digests']} digests, {report['unsealed_events']} not sealed yet; signatures: {report['signatures']}"
    )
    if head:
        console.print(f"head: digest {head['seq']} {head['digest_hash']} (sealed until {head['sealed_until']})")
    for note in report["notes"]:
        console.print(f"note: {markup(note)}")
    if report["problems"]:
        counts = ", ".join(f"{n} {kind}" for kind, n in report["problem_counts"].items())
        console.print(f"[red]{counts}[/red]" + (" (list truncated)" if report["truncated"] else ""))
        for problem in report["problems"]:  # plain lines: ids stay whole, whatever the terminal's width
            click.echo(terminal(f"{problem['kind']:<10} {problem['event_id'] or '-'}  {problem['detail']}"))
