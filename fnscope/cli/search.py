"""`fnscope search`: the newest matching log lines, printed oldest to newest as `tail` does; `--follow` tails live;
`--context REF` explains a line."""

from __future__ import annotations

import json
from typing import Any

import click
import httpx

from fnscope.cli.common import API_OPTION, TOKEN_OPTION, api_get, refused, without_userinfo
from fnscope.cli.flags import NO_COLOR_OPTION
from fnscope.cli.inert import terminal
from fnscope.cli.output import color_enabled

HELP = """Find function log lines: the newest --limit lines, printed oldest to newest so the newest is next to
the prompt (as tail does); --cursor pages back to older ones, --follow keeps printing new ones.

\b
QUERY language:
  payment failed         both words, any case (whole words)
  "card declined"        a phrase
  timeout OR oom         either; NOT retry / -retry excludes; ( ) groups
  function:checkout      also level:error, level:>=warn, request_id:ID, version:7
  user.id:42             a field of a JSON structured log; amount_cents:>500 compares numbers
  function:check*        prefix; user.id:* means the field is present
  /time(d|out)/i         a regular expression (slower: bounded in time)
"""


def _bold(message: str, spans: list[list[int]]) -> str:
    out, at = [], 0
    for start, end in spans:
        out.append(terminal(message[at:start]))
        out.append(click.style(terminal(message[start:end]), bold=True, fg="yellow"))
        at = end
    out.append(terminal(message[at:]))
    return "".join(out)


def _print_line(row: dict[str, Any], as_json: bool, color: bool) -> None:
    if as_json:
        click.echo(json.dumps(row))
        return
    message = _bold(row["message"], row.get("highlights", [])) if color else terminal(row["message"])
    head = terminal(f"{row['time']} {row['function']} {row['request_id'][:8]:8} {row['level'] or '-':5}")
    if row.get("late"):  # --follow: it arrived after a later line was printed
        head += " " + (click.style("late", dim=True) if color else "late")
    click.echo(f"{head} {message}")


def _follow(api: str, token: str | None, params: dict[str, Any], as_json: bool, color: bool) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    clean = {k: v for k, v in params.items() if v not in (None, "", False)}
    url = f"{api.rstrip('/')}/api/search/tail"
    try:
        with httpx.stream("GET", url, params=clean, headers=headers, timeout=httpx.Timeout(10, read=None)) as r:
            if r.status_code >= 400:
                r.read()
                raise refused(r)
            for line in r.iter_lines():
                if line:
                    row = json.loads(line)
                    if "error" in row:
                        raise click.ClickException(terminal(str(row["error"])))
                    _print_line(row, as_json, color)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"lost fnscope at {terminal(without_userinfo(api))}: {terminal(str(exc))}") from exc


def _echo(text: str) -> None:
    """A line that carries sent data (messages, names, ids): printed without its control characters."""
    click.echo(terminal(text))


def _print_context(found: dict[str, Any]) -> None:
    line, inv = found["line"], found["invocation"]
    _echo(f"line        {line['time']} {line['function']} {line['level'] or '-'} {line['message']}")
    if inv:
        _echo(
            f"invocation  {inv['request_id']} status={inv['status'] or '?'} duration={inv['duration_ms']}ms "
            f"memory={inv['max_memory_used_mb']}/{inv['memory_size_mb']}MB cold_start={inv['cold_start']}"
            + (f" init={inv['init_duration_ms']}ms" if inv["init_duration_ms"] is not None else "")
        )
    else:
        _echo("invocation  (none found)")
    for api in found["api_requests"]:
        _echo(
            f"api         {api['time']} {api['method']} {api['path']} -> {api['status']} "
            f"{api['latency_ms']}ms request {api['request_id']} (matched by {api['match']})"
        )
    for change in found["changes"]:
        _echo(
            f"changed     {change['time']} {change['action']}: {change.get('summary', '')} "
            f"by {change['principal_arn'] or change['principal_name']} from {change['source_ip']} mfa={change['mfa']}"
            + (f" FAILED {change['error_code']}" if change["error_code"] else "")
        )


@click.command(help=HELP)
@click.argument("query", default="")
@click.option("--function", "-f", default="")
@click.option("--since", default="15m", show_default=True)
@click.option("--until", default=None)
@click.option("--level", default="")
@click.option("--request-id", default="")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--cursor", default=None, help="the page of older lines before a previous page (it prints the cursor)")
@click.option(
    "--follow",
    is_flag=True,
    help="after the newest lines, keep printing new ones: each once, in time order, a few seconds behind (a line "
    "arriving after a later one is printed when it comes, marked late)",
)
@click.option("--context", "ref", default=None, help="a line's ref: its invocation, API request, recent changes")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@NO_COLOR_OPTION
@API_OPTION
@TOKEN_OPTION
def search(
    query: str,
    function: str,
    since: str,
    until: str | None,
    level: str,
    request_id: str,
    limit: int,
    cursor: str | None,
    follow: bool,
    ref: str | None,
    as_json: bool,
    api: str,
    token: str | None,
) -> None:
    color = color_enabled()
    if ref:
        found = api_get(api, token, "/api/search/context", {"ref": ref})
        if as_json:
            click.echo(json.dumps(found))
        else:
            _print_context(found)
        return
    filters = {"q": query, "function": function, "level": level, "request_id": request_id}
    if follow:
        _follow(api, token, {**filters, "backlog": min(limit, 1000), "backlog_since": since}, as_json, color)
        return
    page = api_get(
        api, token, "/api/search", {**filters, "since": since, "until": until, "limit": limit, "cursor": cursor}
    )
    rows = page["results"]
    for row in reversed(rows):  # the API answers newest first; printed oldest first, the newest next to the prompt
        _print_line(row, as_json, color)
    if page["next_cursor"]:
        click.echo(f"(older lines: --cursor {terminal(page['next_cursor'])})", err=True)
