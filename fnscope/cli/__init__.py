"""The `fnscope` command line. Server roles run in-process; query commands talk to a running instance's API.

Each area has its own module; register its commands here.
"""

from __future__ import annotations

import click

from fnscope.cli import alerts, audit, dashboards, import_cmd, search, serve, stats


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fnscope")
def main() -> None:
    """fnscope: logs, audit and health of serverless functions."""


for command in (
    serve.up,
    serve.collector,
    serve.processor,
    serve.api,
    serve.simulate,
    search.search,
    audit.audit,
    import_cmd.import_,
    stats.stats,
    alerts.alerts,
    dashboards.dashboards,
):
    main.add_command(command)
