"""`stats` latency over 24 h of invocations, beside a plain GROUP BY over the raw table in the same run.

    python -m bench.stats [--invocations 10000000] [--functions 50] [--repeat 20]

Loads ``--invocations`` REPORT facts spread over 24 h (Poisson-ish arrivals, lognormal durations, a skewed
share per function) straight into the raw ``invocations`` table with Arrow, builds the health tables with
the same rebuild code the processor runs (hour by hour, as a backfill would), then times, p50/p95 over
``--repeat`` runs each:

- ``stats`` (the `/api/stats` query code) for one function over 24 h, and for the whole fleet;
- the reference: a plain ``GROUP BY function`` with quantiles over the raw table for the same range
  (what you'd write without aggregates; it has no exact concurrency at all);
- the concurrency sweep at query time over the raw rows for one function (the alternative to precomputing).

Everything runs in this process on chDB, on a machine shared with other work: compare the ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.figures import timed
from fnscope.processors.health_concurrency import recompute_concurrency
from fnscope.processors.health_minutes import recompute_minutes
from fnscope.processors.store import open_store
from fnscope.query.runner import QueryRunner
from fnscope.query.stats import StatsRequest, stats

ROOT = Path(__file__).resolve().parents[1]

DAY = 24 * 3600
START = datetime(2026, 11, 1, tzinfo=UTC)
TENANT = "default"

RAW_GROUP_BY = """
SELECT function, count() AS invocations, countIf(status != 'success') AS errors,
       quantiles(0.5, 0.9, 0.99)(duration_ms) AS q, sum(billed_duration_ms / 1000 * memory_size_mb / 1024) AS gb_s
FROM invocations
WHERE tenant = {tenant:String} AND kind = 'report' AND time >= {since:DateTime64(3)} AND time < {until:DateTime64(3)}
  AND ({function:String} = '' OR function = {function:String})
GROUP BY function"""

RAW_SWEEP = """
SELECT max(n) FROM (
    SELECT sum(d) OVER (ORDER BY t, d ROWS UNBOUNDED PRECEDING) AS n FROM (
        SELECT start_time AS t, 1 AS d FROM invocations
        WHERE tenant = {tenant:String} AND function = {function:String} AND kind = 'report'
          AND time >= {since:DateTime64(3)} AND time < {until:DateTime64(3)}
        UNION ALL
        SELECT time AS t, -1 AS d FROM invocations
        WHERE tenant = {tenant:String} AND function = {function:String} AND kind = 'report'
          AND time >= {since:DateTime64(3)} AND time < {until:DateTime64(3)}
    )
)"""


def generate(n: int, functions: int, seed: int, chunk: int) -> list[pa.Table]:
    """Time-ordered chunks of REPORT facts: what a day of traffic looks like in the raw table."""
    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0.0, 1.0, functions)
    weights /= weights.sum()
    names = np.array([f"fn-{i:03d}" for i in range(functions)])
    memory = rng.choice([128, 256, 512, 1024, 1769], functions)
    median_ms = rng.lognormal(np.log(120), 0.8, functions)
    starts_ms = np.sort(rng.integers(0, DAY * 1000, n))
    tables = []
    base_ms = int(START.timestamp() * 1000)
    for lo in range(0, n, chunk):
        k = min(chunk, n - lo)
        fn = rng.choice(functions, k, p=weights)
        duration = np.round(rng.lognormal(np.log(median_ms[fn]), 0.6), 2)
        start = base_ms + starts_ms[lo : lo + k]
        end = start + np.ceil(duration).astype(np.int64)
        status = np.where(rng.random(k) < 0.02, "error", "success")
        cold = rng.random(k) < 0.01
        ids = pa.array(np.arange(lo, lo + k)).cast(pa.string())
        ts = pa.timestamp("ms", tz="UTC")
        tables.append(
            pa.table(
                {
                    "tenant": pa.array([TENANT] * k),
                    "event_id": ids,
                    "time": pa.array(end, ts),
                    "account": pa.array(["123456789012"] * k),
                    "region": pa.array(["us-east-1"] * k),
                    "source": pa.array(["bench"] * k),
                    "function": pa.array(names[fn]),
                    "version": pa.array(["$LATEST"] * k),
                    "request_id": ids,
                    "kind": pa.array(["report"] * k),
                    "status": pa.array(status),
                    "error_type": pa.array([""] * k),
                    "start_time": pa.array(start, ts),
                    "duration_ms": pa.array(duration),
                    "billed_duration_ms": pa.array(np.ceil(duration)),
                    "memory_size_mb": pa.array(memory[fn].astype(np.uint32)),
                    "max_memory_used_mb": pa.array((memory[fn] * 0.4).astype(np.uint32)),
                    "init_duration_ms": pa.array(np.where(cold, 350.0, np.nan), from_pandas=True),
                    "restore_duration_ms": pa.array([None] * k, pa.float64()),
                    "cold_start": pa.array(cold),
                    "trace_id": pa.array([""] * k),
                }
            )
        )
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invocations", type=int, default=10_000_000)
    parser.add_argument("--functions", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fnscope-bench-stats-") as tmp:
        client = open_store(f"chdb://{tmp}/store")
        t = time.perf_counter()
        rows = 0
        for table in generate(args.invocations, args.functions, args.seed, chunk=500_000):
            client.insert_arrow("invocations", table)
            rows += table.num_rows
        load_s = time.perf_counter() - t
        print(f"loaded {rows:,} invocations over 24 h, {args.functions} functions, in {load_s:.1f} s")

        t = time.perf_counter()
        functions = {f"fn-{i:03d}" for i in range(args.functions)}
        first_s = int(START.timestamp())
        for hour in range(24):
            lo = first_s + hour * 3600
            recompute_concurrency(client, TENANT, lo, lo + 3599)
            recompute_minutes(client, TENANT, functions, lo // 60, (lo + 3599) // 60)
        build_s = time.perf_counter() - t
        print(
            f"built the health tables (hour by hour, as the processor's rebuild does) in {build_s:.1f} s "
            f"({rows / build_s:,.0f} invocations/s)"
        )

        runner = QueryRunner(client)
        since, until = START, START + timedelta(days=1)
        busiest = runner.rows("SELECT function FROM invocations GROUP BY function ORDER BY count() DESC LIMIT 1", {})[
            0
        ]["function"]
        raw = {"tenant": TENANT, "since": since, "until": until}

        one = timed(lambda: stats(runner, StatsRequest(TENANT, since, until, busiest)), args.repeat)
        fleet = timed(lambda: stats(runner, StatsRequest(TENANT, since, until)), args.repeat)
        raw_one = timed(lambda: runner.rows(RAW_GROUP_BY, {**raw, "function": busiest}), args.repeat)
        raw_fleet = timed(lambda: runner.rows(RAW_GROUP_BY, {**raw, "function": ""}), args.repeat)
        sweep_one = timed(lambda: runner.rows(RAW_SWEEP, {**raw, "function": busiest}), max(3, args.repeat // 4))

        print(f"\n{'query (24 h)':<58}{'p50 ms':>10}{'p95 ms':>10}")
        for name, (p50, p95, _) in (
            (f"stats, one function ({busiest})", one),
            ("stats, whole fleet", fleet),
            ("reference: GROUP BY over raw rows, one function", raw_one),
            ("reference: GROUP BY over raw rows, whole fleet", raw_fleet),
            ("alternative: concurrency sweep over raw rows, one function", sweep_one),
        ):
            print(f"{name:<58}{p50:>10.1f}{p95:>10.1f}")
        print(
            f"\np95 ratio stats / raw GROUP BY: one function {one[1] / raw_one[1]:.2f}, "
            f"whole fleet {fleet[1] / raw_fleet[1]:.2f}  (goal: stats p95 <= 100 ms)"
        )
        client.close()


if __name__ == "__main__":
    main()
