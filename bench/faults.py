"""Fault injection at a larger scale: events sent / acknowledged / stored / lost / duplicated, faults injected.

Two runs of the same length and load: a reference with no faults, then one where collectors, the processor and
the broker are killed with SIGKILL at random moments. The ratio of acknowledged events per second between them
is what the faults cost the senders (measured in the same run, as this machine is shared and noisy).

    python -m bench.faults --duration 120 --senders 4 --faults 8
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from faults.harness import FIGURES as HARNESS_FIGURES
from faults.harness import TARGETS, Result, RunConfig, run

FIGURES = (*HARNESS_FIGURES, "requests")


@click.command()
@click.option("--duration", type=float, default=60.0, show_default=True, help="seconds of load per run")
@click.option("--senders", type=int, default=4, show_default=True)
@click.option("--batch", type=int, default=200, show_default=True, help="records per request")
@click.option("--faults", "fault_count", type=int, default=6, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
def main(duration: float, senders: int, batch: int, fault_count: int, seed: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="fnscope-bench-faults-"))
    common = {"duration_s": duration, "senders": senders, "batch": batch, "seed": seed}
    reference = run(RunConfig(work_dir=work / "reference", faults=0, **common))
    faulted = run(RunConfig(work_dir=work / "faults", faults=fault_count, kinds=TARGETS, **common))

    table = Table(title=f"fault injection: {duration:.0f}s of load, {senders} senders x {batch} CloudTrail records")
    table.add_column("figure")
    table.add_column("no faults (reference)", justify="right")
    table.add_column("with faults", justify="right")
    for name in FIGURES:
        table.add_row(name.replace("_", " "), f"{getattr(reference, name):,}", f"{getattr(faulted, name):,}")
    table.add_row("acked events/s", f"{_rate(reference):,.0f}", f"{_rate(faulted):,.0f}")
    table.add_row("faults injected", "0", ", ".join(f"{f.target}@{f.at_s:.1f}s" for f in faulted.faults))
    table.add_row("refused/failed requests", _refusals(reference), _refusals(faulted))
    Console().print(table)
    print(f"acked events/s with faults / without: {_rate(faulted) / _rate(reference):.2f}")
    print(f"logs and stores: {work}")
    sys.exit(1 if faulted.lost or faulted.duplicates or reference.lost or reference.duplicates else 0)


def _rate(result: Result) -> float:
    return result.acked / result.elapsed_s


def _refusals(result: Result) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(result.refusals.items())) or "0"


if __name__ == "__main__":
    main()
