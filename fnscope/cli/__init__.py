"""The `fnscope` command line. Server roles run in-process; query commands talk to a running instance's API.

Each area has its own module; register its commands in ``COMMANDS``. A command's module is imported only when
that command runs (click's documented lazy-group pattern): `fnscope import cloudtrail` or `fnscope search`
should not pay for the server's imports (pydantic settings, clickhouse-connect) before doing anything.
"""

from __future__ import annotations

import importlib

import click

from fnscope.cli.flags import NO_COLOR_OPTION

COMMANDS = {
    "up": "fnscope.cli.serve:up",
    "collector": "fnscope.cli.serve:collector",
    "processor": "fnscope.cli.serve:processor",
    "api": "fnscope.cli.serve:api",
    "simulate": "fnscope.cli.serve:simulate",
    "search": "fnscope.cli.search:search",
    "audit": "fnscope.cli.audit:audit",
    "import": "fnscope.cli.import_cmd:import_",
    "stats": "fnscope.cli.stats:stats",
    "alerts": "fnscope.cli.alerts:alerts",
    "dashboards": "fnscope.cli.dashboards:dashboards",
    "aws": "fnscope.cli.aws:aws",
    "deploy": "fnscope.cli.deploy:deploy",
    "appsync": "fnscope.cli.appsync:appsync",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name].split(":")
        command: click.Command = getattr(importlib.import_module(module), name)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fnscope")
@NO_COLOR_OPTION
def main() -> None:
    """fnscope: logs, audit and health of serverless functions."""
