"""Log search latency over N lines, through the API, beside the bare ClickHouse query and `grep -F`, same run.

    python -m bench.search [--lines 10000000] [--runs 30] [--data-dir DIR] [--keep]

Lines are generated as Arrow batches in the real `function_logs` schema (bench/search_data.py) and inserted
straight into chDB with the real migrations applied. The same lines are exported as NDJSON for grep.
Queries: a needle token, a phrase, a structured-log field, and "errors of one function in the last hour".

- API: `GET /api/search` of the real app (`build_app`, as `fnscope api` serves it) under uvicorn on loopback, timed
  by a client in another process (as a user's client is; in this process it would contend for the GIL) over one
  keep-alive HTTP connection (stdlib http.client): parsing, SQL, ClickHouse, JSON, HTTP.
- bare: exactly the statement and parameters the API sends (`query.search.page_query`), on the same
  clickhouse-connect client the API uses, in the process that owns the store.
- grep: `grep -F` (with -i where the search is case-insensitive) over the NDJSON export.
API and bare runs alternate in rounds, so a burst of load on a shared machine hits both alike.
The store is timed at rest: after the insert, background merges are let finish (bounded by --settle).
Goals at 10M lines: needle p95 <= 100 ms, >= 50x faster than grep, API overhead < 20% of the bare query.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import queue
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import orjson
import pyarrow as pa
import uvicorn
from clickhouse_connect.driver.client import Client
from tqdm import tqdm

from bench import search_data
from bench.figures import percentile
from fnscope.app.server import build_app
from fnscope.app.settings import Settings
from fnscope.processors.store import open_store
from fnscope.query.runner import QueryRunner
from fnscope.query.search import SearchRequest, page_query
from fnscope.store import connect
from fnscope.telemetry import pipeline_metrics
from fnscope.timeparse import parse_time

ROOT = Path(__file__).resolve().parents[1]

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


def prefetched(items: Iterator[pa.Table], pool: ThreadPoolExecutor) -> Iterator[pa.Table]:
    """The items of ``items``, the next one made in ``pool`` while the caller works on the current one."""
    pending = pool.submit(next, items, None)
    while (item := pending.result()) is not None:
        pending = pool.submit(next, items, None)
        yield item


def build(data_dir: Path, lines: int, writers: int = 2) -> tuple[QueryRunner, float]:
    """Insert generated lines in 1M-line Arrow blocks, ``writers`` inserts at a time (each on a chDB handle of its
    own: a handle runs one statement at a time), the next block generated meanwhile."""
    dsn = f"chdb://{data_dir}"
    client = open_store(dsn)
    handles: queue.SimpleQueue[Client] = queue.SimpleQueue()
    for handle in [client, *(connect(dsn) for _ in range(writers - 1))]:
        handles.put(handle)

    def insert(batch: pa.Table) -> int:
        handle = handles.get()
        try:
            # every generated event id is unique: ReplacingMergeTree's de-duplication of each inserted block
            # (optimize_on_insert) would find nothing, and costs about half the insert time
            handle.insert_arrow("function_logs", batch, settings={"optimize_on_insert": 0})
        finally:
            handles.put(handle)
        return batch.num_rows

    batches = search_data.batches(lines, end=datetime.now(UTC), span=SPAN)
    began = time.perf_counter()
    with (
        tqdm(total=lines + search_data.NEEDLES * 2, unit="line", desc="insert") as bar,
        ThreadPoolExecutor(1) as gen,
        ThreadPoolExecutor(writers) as write,
    ):
        inflight: set[Future[int]] = set()
        for batch in prefetched(batches, gen):
            if len(inflight) >= writers:
                done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                bar.update(sum(f.result() for f in done))
            inflight.add(write.submit(insert, batch))
        bar.update(sum(f.result() for f in inflight))
    elapsed = time.perf_counter() - began
    while not handles.empty():
        if (handle := handles.get()) is not client:
            handle.close()
    return QueryRunner(client), elapsed


def settle(runner: QueryRunner, limit_s: float) -> tuple[float, int]:
    """Let background merges and index builds finish, as in a store at rest; seconds waited and parts left."""
    began = time.perf_counter()
    busy = "SELECT (SELECT count() FROM system.merges) + (SELECT count() FROM system.mutations WHERE NOT is_done)"
    while time.perf_counter() - began < limit_s and runner.client.command(busy):
        time.sleep(1)
    parts = runner.client.command("SELECT count() FROM system.parts WHERE active AND table = 'function_logs'")
    return time.perf_counter() - began, int(parts)


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


_http: http.client.HTTPConnection | None = None  # the client process's keep-alive connection, kept between rounds


def time_api(url: str, params: dict[str, str], runs: int) -> tuple[list[float], int]:
    """Runs in the client process. The standard library's client: about a millisecond leaner per request than
    httpx here, so what is measured is the server's cost rather than the client library's."""
    path = f"/api/search?{urlencode({**params, 'limit': '100'})}"
    samples, count = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        status, body = _get(url, path)
        samples.append(time.perf_counter() - t)
        if status != 200:
            raise RuntimeError(f"/api/search answered {status}: {body[:500]!r}")
        count = len(orjson.loads(body)["results"])
    return samples, count


def _get(url: str, path: str) -> tuple[int, bytes]:
    global _http
    for attempt in (1, 2):
        if _http is None:
            parsed = urlsplit(url)
            _http = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=120)
        try:
            _http.request("GET", path)
            response = _http.getresponse()
            return response.status, response.read()
        except (http.client.RemoteDisconnected, ConnectionError):
            # the server closes a connection left idle past its keep-alive (grep runs between cases): reconnect
            _http.close()
            _http = None
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def request(params: dict[str, str]) -> SearchRequest:
    return SearchRequest(
        "default",
        params.get("q", ""),
        since=parse_time(params["since"]),
        function=params.get("function", ""),
        level=params.get("level", ""),
        limit=100,
    )


def time_bare(runner: QueryRunner, params: dict[str, str], runs: int) -> tuple[list[float], int]:
    samples, count = [], 0
    for _ in range(runs):
        statement, bound = page_query(request(params))
        t = time.perf_counter()
        result = runner.client.query(statement, parameters=bound)
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
    statement, bound = page_query(request(params))
    rows = runner.client.query(f"EXPLAIN indexes = 1 {statement}", parameters=bound).result_rows
    return "\n".join(r[0] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=30, help="timed runs per query (grep: a tenth, at least 3)")
    ap.add_argument("--data-dir", type=Path, default=None, help="default: a temporary directory")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--settle", type=float, default=900, help="seconds at most to let merges finish before timing")
    ap.add_argument("--writers", type=int, default=2, help="inserts running at once while building the store")
    ap.add_argument("--rounds", type=int, default=10, help="API and bare runs alternate in this many rounds")
    args = ap.parse_args()

    work = args.data_dir or Path(tempfile.mkdtemp(prefix="fnscope-bench-search-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        reuse = (work / "store").exists()
        if reuse:  # --data-dir of an earlier --keep run: time the queries again on the same lines
            runner, insert_s = QueryRunner(open_store(f"chdb://{work / 'store'}")), 0.0
        else:
            runner, insert_s = build(work / "store", args.lines, args.writers)
        settle_s, parts = settle(runner, args.settle)
        stored = runner.client.command("SELECT count() FROM function_logs")
        ndjson = work / "lines.ndjson"
        if not ndjson.exists():
            export_ndjson(runner, ndjson)
        size_mb = ndjson.stat().st_size / 1e6
        inserted = f"inserted in {insert_s:.1f}s ({stored / insert_s:,.0f} lines/s)" if insert_s else "reused"
        print(
            f"\n{stored:,} lines: {inserted}; merges settled in {settle_s:.0f}s, {parts} parts; NDJSON {size_mb:,.0f} MB"
        )
        print("\nEXPLAIN indexes = 1 for the needle search:")
        print(explain(runner, CASES[0].params))

        url, server = serve(runner)
        grep_runs = max(3, args.runs // 10)
        per_round = max(1, args.runs // args.rounds)
        print(
            f"\n{'query':28} {'API p50':>9} {'API p95':>9} {'bare p50':>9} {'bare p95':>9} {'grep p50':>9}"
            f" {'rows':>5} {'grep rows':>9} {'grep/API p95':>12} {'API overhead':>17}"
        )
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as client:
            for case in CASES:
                client.submit(time_api, url, case.params, 3).result()  # warm caches the same for both
                time_bare(runner, case.params, 3)
                api: list[float] = []
                bare: list[float] = []
                for _ in range(args.rounds):
                    samples, api_rows = client.submit(time_api, url, case.params, per_round).result()
                    api += samples
                    samples, bare_rows = time_bare(runner, case.params, per_round)
                    bare += samples
                grep, grep_rows = time_grep(case.grep, ndjson, grep_runs)
                api50, api95, bare50, bare95 = (
                    percentile(api, 0.5),
                    percentile(api, 0.95),
                    percentile(bare, 0.5),
                    percentile(bare, 0.95),
                )
                grep50 = statistics.median(grep)
                overhead = (api50 - bare50) / bare50
                print(
                    f"{case.name:28} {api50 * 1e3:8.1f}ms {api95 * 1e3:8.1f}ms {bare50 * 1e3:8.1f}ms "
                    f"{bare95 * 1e3:8.1f}ms {grep50 * 1e3:8.0f}ms {api_rows:5d} {grep_rows:9d} "
                    f"{grep50 / api95:11.0f}x {overhead * 100:6.0f}% ({(api50 - bare50) * 1e3:+.1f}ms)"
                )
                assert bare_rows in (api_rows, api_rows + 1), "the API and the bare query disagree"
        server.should_exit = True
        print(
            f"\n{len(api)} API and bare runs per query, {grep_runs} grep runs; 'rows' are the API's first page (limit"
            " 100); grep counts every matching line (no time range)."
            "\nTargets at 10M lines: needle API p95 <= 100 ms; grep/API p95 >= 50x; API overhead < 20%."
        )
    finally:
        if not args.keep and args.data_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
