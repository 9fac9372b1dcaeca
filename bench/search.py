"""Log search latency over N lines, through the API, beside the bare ClickHouse query and `grep -F`, same run.

    python bench/search.py [--lines 10000000] [--runs 30] [--data-dir DIR] [--keep]

Lines are generated as Arrow batches in the real `function_logs` schema (bench/search_data.py) and inserted
straight into chDB with the real migrations applied. The same lines are exported as NDJSON for grep.
Queries: a needle token, a phrase, a structured-log field, and "errors of one function in the last hour".

- API: `GET /api/search` of the real app (`build_app`, as `fnscope api` serves it) under uvicorn on loopback,
  over one keep-alive HTTP connection: parsing, SQL, ClickHouse, JSON, HTTP.
- bare: the same SQL and parameters straight to ClickHouse (clickhouse-connect on the same chDB store).
- grep: `grep -F` (with -i where the search is case-insensitive) over the NDJSON export.
Goals at 10M lines: needle p95 <= 100 ms, >= 50x faster than grep, API overhead < 20% of the bare query.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import search_data  # noqa: E402

from fnscope.config import Settings  # noqa: E402
from fnscope.server import build_app  # noqa: E402
from fnscope.telemetry import pipeline_metrics  # noqa: E402
from fnscope.timeparse import parse_time  # noqa: E402
from processors.store import open_store  # noqa: E402
from query.runner import QueryRunner  # noqa: E402
from query.search import SearchRequest, search_sql  # noqa: E402

SPAN = timedelta(hours=24)


@dataclass
class Case:
    name: str
    params: dict[str, str]
    grep: list[list[str]]  # a pipeline of grep commands


CASES = [
    Case("needle token", {"q": search_data.NEEDLE_TOKEN, "since": "25h"}, [["-F", "-i", search_data.NEEDLE_TOKEN]]),
    Case(
        "phrase",
        {"q": f'"{search_data.NEEDLE_PHRASE}"', "since": "25h"},
        [["-F", "-i", search_data.NEEDLE_PHRASE]],
    ),
    Case("field user.id:4242", {"q": "user.id:4242", "since": "25h"}, [["-F", '"user.id":"4242"']]),
    Case(
        "errors of fn-03, last 1h",
        {"function": "fn-03", "level": "error", "since": "1h"},
        [["-F", '"function":"fn-03"'], ["-F", '"level":"ERROR"']],
    ),
]


def build(data_dir: Path, lines: int) -> tuple[QueryRunner, float]:
    client = open_store(f"chdb://{data_dir}")
    began = time.perf_counter()
    with tqdm(total=lines + search_data.NEEDLES * 2, unit="line", desc="insert") as bar:
        for batch in search_data.batches(lines, end=datetime.now(UTC), span=SPAN):
            client.insert_arrow("function_logs", batch)
            bar.update(batch.num_rows)
    return QueryRunner(client), time.perf_counter() - began


def export_ndjson(runner: QueryRunner, path: Path) -> None:
    runner.client.command(
        "SELECT * EXCEPT (ingested_at) FROM function_logs "
        f"INTO OUTFILE '{path}' TRUNCATE FORMAT JSONEachRow"  # our temp path, not a user value
    )


def serve(runner: QueryRunner) -> tuple[str, uvicorn.Server]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = build_app(Settings(), pipeline_metrics(), runner=runner)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    return url, server


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def time_api(http: httpx.Client, url: str, params: dict[str, str], runs: int) -> tuple[list[float], int]:
    samples, count = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        r = http.get(f"{url}/api/search", params={**params, "limit": "100"})
        samples.append(time.perf_counter() - t)
        r.raise_for_status()
        count = len(r.json()["results"])
    return samples, count


def time_bare(runner: QueryRunner, params: dict[str, str], runs: int) -> tuple[list[float], int]:
    samples, count = [], 0
    for _ in range(runs):
        req = SearchRequest(
            "default",
            params.get("q", ""),
            since=parse_time(params["since"]),
            function=params.get("function", ""),
            level=params.get("level", ""),
            limit=100,
        )
        sql, bound = search_sql(req)
        t = time.perf_counter()
        result = runner.client.query(sql, parameters=bound)
        samples.append(time.perf_counter() - t)
        count = len(result.result_rows)
    return samples, count


def time_grep(pipeline: list[list[str]], path: Path, runs: int) -> tuple[list[float], int]:
    samples, count = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        first = subprocess.Popen(["grep", *pipeline[0], str(path)], stdout=subprocess.PIPE)
        procs = [first]
        for args in pipeline[1:]:
            procs.append(subprocess.Popen(["grep", *args], stdin=procs[-1].stdout, stdout=subprocess.PIPE))
        out = procs[-1].communicate()[0]
        for p in procs:
            p.wait()
        samples.append(time.perf_counter() - t)
        count = out.count(b"\n")
    return samples, count


def explain(runner: QueryRunner, params: dict[str, str]) -> str:
    req = SearchRequest("default", params["q"], since=parse_time(params["since"]), limit=100)
    sql, bound = search_sql(req)
    rows = runner.client.query(f"EXPLAIN indexes = 1 {sql}", parameters=bound).result_rows
    return "\n".join(r[0] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=30, help="timed runs per query (grep: a third, at least 3)")
    ap.add_argument("--data-dir", type=Path, default=None, help="default: a temporary directory")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()

    work = args.data_dir or Path(tempfile.mkdtemp(prefix="fnscope-bench-search-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        runner, insert_s = build(work / "store", args.lines)
        ndjson = work / "lines.ndjson"
        export_ndjson(runner, ndjson)
        size_mb = ndjson.stat().st_size / 1e6
        print(
            f"\n{args.lines:,} lines: inserted in {insert_s:.1f}s ({args.lines / insert_s:,.0f} lines/s); NDJSON {size_mb:,.0f} MB"
        )
        print("\nEXPLAIN indexes = 1 for the needle search:")
        print(explain(runner, CASES[0].params))

        url, server = serve(runner)
        grep_runs = max(3, args.runs // 10)
        print(
            f"\n{'query':28} {'API p50':>9} {'API p95':>9} {'bare p50':>9} {'bare p95':>9} {'grep p50':>9}"
            f" {'rows':>5} {'grep rows':>9} {'grep/API p95':>12} {'API overhead':>12}"
        )
        with httpx.Client(timeout=120) as http:
            for case in CASES:
                time_api(http, url, case.params, 3)  # warm caches the same for all three
                api, api_rows = time_api(http, url, case.params, args.runs)
                bare, bare_rows = time_bare(runner, case.params, args.runs)
                grep, grep_rows = time_grep(case.grep, ndjson, grep_runs)
                api50, api95, bare50, bare95 = (pct(api, 0.5), pct(api, 0.95), pct(bare, 0.5), pct(bare, 0.95))
                grep50 = statistics.median(grep)
                overhead = (api50 - bare50) / bare50
                print(
                    f"{case.name:28} {api50 * 1e3:8.1f}ms {api95 * 1e3:8.1f}ms {bare50 * 1e3:8.1f}ms "
                    f"{bare95 * 1e3:8.1f}ms {grep50 * 1e3:8.0f}ms {api_rows:5d} {grep_rows:9d} "
                    f"{grep50 / api95:11.0f}x {overhead * 100:11.0f}%"
                )
                assert bare_rows in (api_rows, api_rows + 1), "the API and the bare query disagree"
        server.should_exit = True
        print(
            "\n'rows' are the API's first page (limit 100); grep counts every matching line (no time range)."
            "\nTargets at 10M lines: needle API p95 <= 100 ms; grep/API p95 >= 50x; API overhead < 20%."
        )
    finally:
        if not args.keep and args.data_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
