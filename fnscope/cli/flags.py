"""Output flags any command may take (`fnscope --no-color stats` and `fnscope stats --no-color` alike): kept in
``ctx.meta``, which every context of one run shares; light to import, as the group's own options are."""

from __future__ import annotations

from collections.abc import Callable

import click

NO_COLOR = "fnscope.no_color"
WIDE = "fnscope.wide"


def _remember(key: str) -> Callable[[click.Context, click.Parameter, bool], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.meta[key] = True

    return callback


NO_COLOR_OPTION = click.option(
    "--no-color", is_flag=True, expose_value=False, callback=_remember(NO_COLOR), help="no colours (or NO_COLOR=1)"
)
WIDE_OPTION = click.option(
    "--wide", is_flag=True, expose_value=False, callback=_remember(WIDE), help="every column, whatever the width"
)


def table_options(f: Callable[..., None]) -> Callable[..., None]:
    return NO_COLOR_OPTION(WIDE_OPTION(f))


def flag(key: str) -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(key))
