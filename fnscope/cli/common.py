"""What the CLI commands share: API and token options, calling a running instance, printing tables."""

from __future__ import annotations

from typing import Any

import click
import httpx
from rich.console import Console
from rich.table import Table

from fnscope.cli.inert import markup

API_OPTION = click.option(
    "--api",
    envvar="FNSCOPE_API",
    default="http://127.0.0.1:4318",
    show_default=True,
    help="URL of a running fnscope (env FNSCOPE_API)",
)
TOKEN_OPTION = click.option("--token", envvar="FNSCOPE_TOKEN", default=None, help="API token (env FNSCOPE_TOKEN)")
CONFIG_OPTION = click.option(
    "--config", type=click.Path(dir_okay=False), default=None, help="fnscope.yaml (env FNSCOPE_CONFIG)"
)


def api_get(api_url: str, token: str | None, path: str, params: dict[str, Any]) -> Any:
    return api_call("GET", api_url, token, path, params)


def api_call(method: str, api_url: str, token: str | None, path: str, params: dict[str, Any], body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    clean = {k: v for k, v in params.items() if v not in (None, "", False)}
    try:
        url = f"{api_url.rstrip('/')}{path}"
        response = httpx.request(method, url, params=clean, json=body, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach fnscope at {api_url}: {exc} (is `fnscope up` running?)") from exc
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise click.ClickException(f"{response.status_code}: {detail}")
    return response.json()


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    table = Table(show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else markup(str(row.get(c))) for c in columns))
    Console().print(table)
