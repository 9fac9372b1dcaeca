"""What the CLI commands share: API and token options, calling a running instance, printing tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
import httpx

from fnscope.cli.flags import table_options
from fnscope.cli.inert import terminal

Command = TypeVar("Command", bound=Callable[..., Any])

DEFAULT_API = "http://127.0.0.1:4318"
MAX_ERROR_TEXT = 1000  # of an error answer, printed


def api_url(ctx: click.Context | None, param: click.Parameter | None, value: str | None) -> str | None:
    """A running fnscope's URL, checked before anything is sent: `127.0.0.1:4318` alone gets the fix spelled out."""
    if value is None:
        return None
    url = httpx.URL(value) if "://" in value else None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        shown = terminal(value)
        hint = f"; did you mean http://{shown}" if "://" not in value else ""
        raise click.BadParameter(f"{shown!r} is not an http:// or https:// URL{hint}?", ctx, param)
    return value


API_OPTION = click.option(
    "--api",
    envvar="FNSCOPE_API",
    default=DEFAULT_API,
    show_default=True,
    callback=api_url,
    help="URL of a running fnscope (env FNSCOPE_API)",
)
TOKEN_OPTION = click.option("--token", envvar="FNSCOPE_TOKEN", default=None, help="API token (env FNSCOPE_TOKEN)")


def window_options(since: str, since_help: str = "how far back") -> Callable[[Command], Command]:
    """What a command printing one API answer over a time window takes: --since/--until, --json, the table
    flags, --api and --token (the command receives since, until, as_json, api and token)."""
    options = (
        click.option("--since", default=since, show_default=True, help=f"{since_help} (10m, 1h or ISO-8601)"),
        click.option("--until", default=None, help="end of the window (default now)"),
        click.option("--json", "as_json", is_flag=True, help="print the API's JSON"),
        table_options,
        API_OPTION,
        TOKEN_OPTION,
    )

    def decorate(f: Command) -> Command:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


CONFIG_OPTION = click.option(
    "--config", type=click.Path(dir_okay=False), default=None, help="fnscope.yaml (env FNSCOPE_CONFIG)"
)


class Duration(click.ParamType):
    """A length of time as the CLI takes it (30s, 5m, 1h, 7d): a wrong one is a usage error, not a traceback."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        from fnscope.timeparse import parse_duration

        try:
            return parse_duration(str(value)).total_seconds()
        except ValueError as exc:
            self.fail(terminal(str(exc)), param, ctx)


def without_userinfo(url: str) -> str:
    """``url`` without a ``user:password@`` part: what is printed or stored of an --api URL."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def unreachable(api_url: str, exc: Exception) -> click.ClickException:
    shown = terminal(without_userinfo(api_url))
    return click.ClickException(f"cannot reach fnscope at {shown}: {terminal(str(exc))} (is `fnscope up` running?)")


def check_reachable(api_url: str) -> None:
    """Fail at once, in one line, when nothing answers at ``api_url`` (rather than after a sender's retries)."""
    try:
        httpx.get(f"{api_url.rstrip('/')}/healthz", timeout=5)
    except httpx.HTTPError as exc:
        raise unreachable(api_url, exc) from exc


def api_get(api_url: str, token: str | None, path: str, params: dict[str, Any]) -> Any:
    return api_call("GET", api_url, token, path, params)


def api_call(method: str, api_url: str, token: str | None, path: str, params: dict[str, Any], body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    clean = {k: v for k, v in params.items() if v not in (None, "", False)}
    try:
        url = f"{api_url.rstrip('/')}{path}"
        response = httpx.request(method, url, params=clean, json=body, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        raise unreachable(api_url, exc) from exc
    if response.status_code >= 400:
        raise refused(response)
    return response.json()


def refused(response: httpx.Response) -> click.ClickException:
    """An error answer, terminal-safe: fnscope's JSON ``detail``, else the text of whatever answered (a proxy's
    error page), cut short."""
    try:
        answer = response.json()
        detail = answer.get("detail", response.text) if isinstance(answer, dict) else response.text
    except ValueError:
        detail = response.text
    text = str(detail)
    return click.ClickException(f"{response.status_code}: {terminal(text[:MAX_ERROR_TEXT])}")
