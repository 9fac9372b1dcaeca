"""`fnscope aws`: what connects an AWS account to fnscope (the CloudFormation templates of deploy/aws)."""

from __future__ import annotations

import click

from fnscope.deploy.templates import PATHS, access_log_formats, render_yaml


@click.group()
def aws() -> None:
    """Connect an AWS account: CloudFormation templates and API Gateway access-log settings."""


@aws.command()
@click.option(
    "--path",
    "path",
    type=click.Choice(list(PATHS)),
    default="all",
    show_default=True,
    help="logs: CloudWatch Logs via Firehose; cloudtrail: a trail's log group via Firehose; all: both",
)
@click.option("--url", help="fnscope's public https:// base URL, filled in as the FnscopeUrl parameter's default")
def template(path: str, url: str | None) -> None:
    """Print the CloudFormation template for PATH (deploy it with `aws cloudformation deploy`)."""
    try:
        click.echo(render_yaml(path, url), nl=False)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--url") from None


@aws.command(name="access-log-format")
@click.option("--api", type=click.Choice(["rest", "http"]), default="http", show_default=True)
def access_log_format(api: str) -> None:
    """Print the API Gateway access-log format fnscope reads best, for a stage's access-log settings."""
    click.echo(access_log_formats()[api])
