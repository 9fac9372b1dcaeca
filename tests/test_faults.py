"""The fault-injection harness at small scale: a collector, the processor and the broker are each killed with
SIGKILL under load and restarted; every acknowledged event must be stored once (see faults/harness.py for what
a memory-only broker's restart can and cannot promise)."""

from __future__ import annotations

from pathlib import Path

from faults.harness import TARGETS, RunConfig, run


def test_kill9_of_every_part_under_load_loses_and_doubles_nothing(tmp_path: Path) -> None:
    config = RunConfig(work_dir=tmp_path, duration_s=10, senders=2, batch=100, faults=3, seed=7)
    result = run(config)

    assert sorted(f.target for f in result.faults) == sorted(TARGETS)
    assert result.acked > 0
    assert result.lost == 0, f"acknowledged but not stored: {result.lost_ids}"
    assert result.duplicates == 0
    # The strict check must have had something to check after the broker came back.
    assert result.acked_after_broker_restart > 0
    assert result.stored + result.lost_with_broker_memory == result.acked + result.stored_unacked
