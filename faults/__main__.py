"""`python -m faults`: one fault-injection run, figures printed as a table (or JSON)."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from faults.harness import FIGURES, TARGETS, Result, RunConfig, run


def print_result(result: Result, config: RunConfig) -> None:
    table = Table(title=f"fault injection: {config.duration_s:.0f}s, {config.senders} senders x {config.batch} records")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name in FIGURES:
        table.add_row(name.replace("_", " "), f"{getattr(result, name):,}")
    table.add_row("requests", f"{result.requests:,}")
    table.add_row("refused/failed requests (retried)", ", ".join(f"{k}: {v}" for k, v in result.refusals.items()))
    table.add_row("faults injected", ", ".join(f"{f.target}@{f.at_s:.1f}s" for f in result.faults))
    table.add_row("acked events/s", f"{result.acked / result.elapsed_s:,.0f}")
    Console().print(table)


@click.command()
@click.option("--duration", type=float, default=20.0, show_default=True, help="seconds of load")
@click.option("--senders", type=int, default=3, show_default=True)
@click.option("--batch", type=int, default=100, show_default=True, help="records per request")
@click.option("--collectors", type=int, default=2, show_default=True)
@click.option("--faults", "fault_count", type=int, default=3, show_default=True)
@click.option("--kinds", default=",".join(TARGETS), show_default=True, help="what may be killed")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--work-dir", type=click.Path(path_type=Path), default=None, help="logs and store (default: temp)")
@click.option("--json", "as_json", is_flag=True)
def main(
    duration: float,
    senders: int,
    batch: int,
    collectors: int,
    fault_count: int,
    kinds: str,
    seed: int,
    work_dir: Path | None,
    as_json: bool,
) -> None:
    """Load a distributed fnscope, kill -9 its collectors, processor and broker, and count every event."""
    config = RunConfig(
        work_dir=work_dir or Path(tempfile.mkdtemp(prefix="fnscope-faults-")),
        duration_s=duration,
        senders=senders,
        batch=batch,
        collectors=collectors,
        faults=fault_count,
        kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()),
        seed=seed,
    )
    result = run(config)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(result), default=str))
    else:
        print_result(result, config)
        click.echo(f"logs and store: {config.work_dir}")
    raise SystemExit(1 if result.lost or result.duplicates else 0)


if __name__ == "__main__":
    main()
