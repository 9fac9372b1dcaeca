"""`fnscope deploy verdict`: is a function's new version worse than the one it replaces? For deploy scripts and
pipelines, the answer is the exit code: 0 pass, 1 fail, 2 wait (too little traffic yet), 3 no verdict at all
(fnscope unreachable, a refused request or a wrong option), so a script never mistakes a typo for a wait."""

from __future__ import annotations

import json
from typing import Any

import click

from fnscope.cli import human
from fnscope.cli.common import api_get, window_options
from fnscope.cli.inert import terminal
from fnscope.cli.output import Column, print_table, when

EXIT = {"pass": 0, "fail": 1, "wait": 2}
NO_VERDICT = 3

METRIC_COLUMNS = [
    Column("metric", keep=100),
    Column("decision", style=lambda v: {"fail": "bold red", "wait": "yellow", "pass": "green"}.get(v), keep=95),
    Column("new", keep=80, right=True),
    Column("baseline", keep=80, right=True),
    Column(
        "p_value",
        "p",
        show=lambda v: "" if v is None else f"{v:.2g}",
        style=when(lambda v: v < 0.05, "bold"),
        keep=40,
        right=True,
    ),  # fmt: skip
]


class _NoVerdictOnError:
    """Any failure to get a verdict exits 3, a wrong option or command name included, at the group's level as at
    the command's (click's usage errors are 2, which is wait)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc]
        except click.ClickException as exc:
            exc.exit_code = NO_VERDICT
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except click.ClickException as exc:
            exc.exit_code = NO_VERDICT
            raise


class _VerdictCommand(_NoVerdictOnError, click.Command):
    pass


class _DeployGroup(_NoVerdictOnError, click.Group):
    pass


def _rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, m in out.get("metrics", {}).items():
        f = m["figures"]
        if name == "p99_duration":
            new, base = human.millis(f.get("new_p99_ms")), human.millis(f.get("baseline_p99_ms"))
        else:
            new = f"{human.percent(f['new_rate'])} ({f['new']}/{f['new_of']})" if "new_rate" in f else ""
            base = (
                f"{human.percent(f['baseline_rate'])} ({f['baseline']}/{f['baseline_of']})" if "new_rate" in f else ""
            )
        rows.append(
            {"metric": name, "decision": m["decision"], "new": new, "baseline": base, "p_value": f.get("p_value")}
        )
    return rows


@click.group(cls=_DeployGroup)
def deploy() -> None:
    """Safe deploys: is a new version worse than the one it replaces?"""


STAGE_COLUMNS = [
    Column("stage", keep=100),
    Column("release", style=lambda v: "bold" if v == "canary" else None, keep=95),
    Column("deployment_id", "deployment", keep=90),
    Column("requests", show=human.count, keep=90, right=True),
    Column("server_errors", "5xx", show=human.count, style=when(lambda v: v > 0, "red"), keep=85, right=True),
    Column("client_errors", "4xx", show=human.count, keep=60, right=True),
    Column("throttles", show=human.count, style=when(lambda v: v > 0, "red"), keep=70, right=True),
    Column("p50_ms", "p50", show=human.millis, keep=50, right=True),
    Column("p99_ms", "p99", show=human.millis, keep=80, right=True),
    Column("last_seen", "last seen", keep=40, time=True),
]


def _print_verdict(out: dict[str, Any], subject: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(f"{out['verdict'].upper()}: {subject}")
        for reason in out["reasons"]:
            click.echo(f"  - {terminal(reason)}")
        if out.get("metrics"):
            print_table(_rows(out), METRIC_COLUMNS)
    click.get_current_context().exit(EXIT[out["verdict"]])


@deploy.command("verdict", cls=_VerdictCommand)
@click.option("--function", "-f", required=True, help="the function")
@click.option("--version", "-v", "version", required=True, help="the new version")
@click.option("--baseline", "-b", default="", help="the version it replaces (default: the busiest other version)")
@window_options("10m", "compare over this window")
def verdict(
    function: str,
    version: str,
    baseline: str,
    since: str,
    until: str | None,
    as_json: bool,
    api: str,
    token: str | None,
) -> None:
    """pass, fail or wait, with the reasons and each metric's figures. Exit 0 pass, 1 fail, 2 wait, 3 no verdict."""
    params = {"function": function, "version": version, "baseline": baseline, "since": since, "until": until}
    out = api_get(api, token, "/api/deployments/verdict", params)
    base = terminal(out.get("baseline") or "none")
    _print_verdict(out, f"{terminal(function)} version {terminal(version)} against {base}", as_json)


@deploy.command("stage-verdict", cls=_VerdictCommand)
@click.option("--api-id", "api_id", required=True, help="the API Gateway API's id")
@click.option("--stage", "-s", required=True, help="the stage whose canary release is judged")
@window_options("10m", "compare over this window")
def stage_verdict(
    api_id: str, stage: str, since: str, until: str | None, as_json: bool, api: str, token: str | None
) -> None:
    """Is a REST API stage's canary release worse than its base release? Exit 0 pass, 1 fail, 2 wait, 3 none."""
    params = {"api": api_id, "stage": stage, "since": since, "until": until}
    out = api_get(api, token, "/api/deployments/stages/verdict", params)
    _print_verdict(out, f"the canary release of {terminal(api_id)}/{terminal(stage)} against its base release", as_json)


@deploy.command("stages")
@click.option("--api-id", "api_id", required=True, help="the API Gateway API's id")
@click.option("--stage", "-s", default="", help="only this stage")
@window_options("1h", "how far back")
def stages(api_id: str, stage: str, since: str, until: str | None, as_json: bool, api: str, token: str | None) -> None:
    """An API's stages, each release (base, canary) and deployment on a row of its own."""
    out = api_get(
        api, token, "/api/deployments/stages", {"api": api_id, "stage": stage, "since": since, "until": until}
    )
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        print_table(out["stages"], STAGE_COLUMNS)
