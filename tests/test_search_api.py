"""Log search through a real `fnscope up` (tokens on, two tenants): language, pages, marks, histogram, limits,
correlation, live tail and the CLI."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from clickhouse_connect.driver.client import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import search_data
from fnscope.query.runner import QueryRunner
from fnscope.query.search import page_query, search
from fnscope.simulator.sender import run as simulate_and_send
from fnscope.store import connect
from tests.conftest import FNSCOPE, ROOT, Process, all_stored, start_fnscope_up

A, B = "tok-acme", "tok-globex"
NOW = datetime.now(UTC)


def _at(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _structured(message: str, level: str, user: int, amount: int) -> dict:
    return {"level": level, "message": message, "user": {"id": user}, "amount_cents": amount}


LINES = [
    (300, _structured("Payment FAILED: card declined for order 42", "ERROR", 42, 700)),
    (290, _structured("Payment captured for order 43", "INFO", 7, 300)),
    (280, "declined card on retry"),
    (270, _structured("Timeout talking to warehouse", "WARN", 9, 0)),
    (260, "timeouts happen, retrying"),
    *[(200 - i, f"page line {i} marker") for i in range(25)],
]


def _telemetry(lines: list[tuple[float, object]]) -> bytes:
    return json.dumps([{"time": _at(ago), "type": "function", "record": rec} for ago, rec in lines]).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("search")
    url, proc = start_fnscope_up(tmp / "data", tmp / "up.log", {"FNSCOPE_TOKENS": f"{A}:acme,{B}:globex"})

    def post(token: str, function: str, body: bytes) -> None:
        r = httpx.post(f"{url}/ingest/telemetry?function={function}", content=body, headers=_auth(token), timeout=30)
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text

    post(A, "checkout", _telemetry(LINES))
    post(A, "refunds", _telemetry([(250, _structured("card declined by issuer", "ERROR", 42, 900))]))
    post(B, "checkout", _telemetry([(300, "globex secret: card declined")]))
    # a simulated fleet: invocations, API access logs and CloudTrail changes to correlate with
    simulate_and_send(
        url,
        functions=3,
        rate=4,
        duration_s=15,
        seed=11,
        token=A,
        fast=True,
        quiet=True,
        start=NOW - timedelta(minutes=40),
    )
    yield url
    proc.stop()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _search(url: str, q: str, token: str = A, **params: object) -> httpx.Response:
    # a window fixed around NOW (module import), not "10m" before the request: a long suite may reach these tests
    # several minutes after NOW was taken
    params = {"q": q, "since": _at(600), "until": _at(-60), **params}
    return httpx.get(f"{url}/api/search", params=params, headers=_auth(token), timeout=30)


def _messages(url: str, q: str, **params: object) -> list[str]:
    r = _search(url, q, **params)
    assert r.status_code == 200, r.text
    return [row["message"] for row in r.json()["results"]]


def test_words_are_case_insensitive_whole_words(server: str) -> None:
    assert _messages(server, "TIMEOUT") == ["Timeout talking to warehouse"]  # not "timeouts"
    assert set(_messages(server, "declined card", function="checkout")) == {
        "Payment FAILED: card declined for order 42",
        "declined card on retry",
    }


def test_phrases_keep_word_order(server: str) -> None:
    assert _messages(server, '"card declined"', function="checkout") == ["Payment FAILED: card declined for order 42"]


def test_boolean_operators(server: str) -> None:
    assert set(_messages(server, "(captured OR failed) -captured")) == {"Payment FAILED: card declined for order 42"}
    assert set(_messages(server, "declined NOT function:refunds")) == {
        "Payment FAILED: card declined for order 42",
        "declined card on retry",
    }


def test_field_filters_and_numeric_comparison(server: str) -> None:
    assert set(_messages(server, "user.id:42")) == {
        "Payment FAILED: card declined for order 42",
        "card declined by issuer",
    }
    assert set(_messages(server, "amount_cents:>500")) == {
        "Payment FAILED: card declined for order 42",
        "card declined by issuer",
    }
    assert _messages(server, "level:error function:checkout declined") == ["Payment FAILED: card declined for order 42"]
    assert set(_messages(server, "level:>=warn function:checkout")) == {
        "Payment FAILED: card declined for order 42",
        "Timeout talking to warehouse",
    }


def test_regex(server: str) -> None:
    assert _messages(server, r"/time(d|out)\s+talking/i") == ["Timeout talking to warehouse"]
    r = _search(server, "/(unclosed/")
    assert r.status_code == 400 and "regular expression" in r.json()["detail"]


def test_newest_first_cursor_pages_cover_everything_once(server: str) -> None:
    seen: list[dict] = []
    cursor = None
    for _ in range(10):
        r = _search(server, "marker", limit=10, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        page = r.json()
        seen += page["results"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [row["message"] for row in seen] == [f"page line {i} marker" for i in reversed(range(25))]
    assert [len(seen[:10]), len(seen[10:20]), len(seen[20:])] == [10, 10, 5]


def test_matched_terms_are_marked(server: str) -> None:
    page = _search(server, 'payment "CARD DECLINED"', function="checkout").json()
    (row,) = page["results"]
    assert [row["message"][a:b] for a, b in row["highlights"]] == ["Payment", "card declined"]
    assert page["terms"] == ["payment", "CARD DECLINED"]


def test_histogram_counts_matches_over_time(server: str) -> None:
    r = httpx.get(
        f"{server}/api/search/histogram", params={"q": "marker", "since": "1h", "buckets": 30}, headers=_auth(A)
    )
    assert r.status_code == 200, r.text
    hist = r.json()
    assert hist["total"] == 25
    assert hist["interval_seconds"] == 120  # 1h in at most 30 round buckets
    assert len(hist["buckets"]) in (30, 31)
    assert sum(b["count"] for b in hist["buckets"]) == 25


def test_results_are_scoped_to_the_callers_tenant(server: str) -> None:
    assert _messages(server, "globex") == []
    r = _search(server, "declined", token=B)
    assert [row["message"] for row in r.json()["results"]] == ["globex secret: card declined"]
    assert _search(server, "declined", token="nope").status_code == 401


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"q": "(oops"}, 400, "unclosed ("),
        ({"q": "/x+/", "since": "60d"}, 400, "at most 7 days"),
        ({"q": "x", "since": "1h", "until": "2h"}, 400, "since must be before until"),
        ({"q": "x", "cursor": "garbage!"}, 400, "cursor"),
        ({"q": "x", "limit": 100000}, 422, "limit"),
    ],
)
def test_bad_requests_are_clear_400s(server: str, params: dict, status: int, says: str) -> None:
    r = httpx.get(f"{server}/api/search", params={"since": "1h", **params}, headers=_auth(A))
    assert r.status_code == status
    assert says in json.dumps(r.json())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.sampled_from(['"', "(", ")", "OR", "NOT", "-", "user.id:", ">", "*", "/", "a", "é", "'", "\\", " ", "{x}"]),
        max_size=12,
    ).map("".join)
)
def test_fuzzed_queries_answer_200_or_400_never_500(server: str, query: str) -> None:
    r = _search(server, query)
    assert r.status_code in (200, 400), (query, r.text)


def test_a_line_leads_to_its_invocation_api_request_and_recent_changes(server: str) -> None:
    # a simulated function's failure: its REPORT, the API request that got the 5xx, the deploys before it
    r = _search(server, "level:error request_id:* -REPORT", since="2h", limit=50)
    rows = [row for row in r.json()["results"] if row["request_id"]]
    assert rows, "the simulated fleet logged errors"
    found = None
    for row in rows:
        ctx = httpx.get(f"{server}/api/search/context", params={"ref": row["ref"]}, headers=_auth(A)).json()
        if ctx["invocation"] and ctx["invocation"]["status"] in ("error", "timeout", "failure"):
            found = ctx
            break
    assert found is not None
    inv = found["invocation"]
    assert inv["request_id"] == found["line"]["request_id"]
    assert inv["duration_ms"] > 0 and inv["memory_size_mb"] > 0 and inv["max_memory_used_mb"] > 0
    api = found["api_requests"]
    assert api and api[0]["match"] == "request_id" and api[0]["status"] >= 500
    assert inv["request_id"] in api[0]["error_message"]
    changes = found["changes"]
    line_time = found["line"]["time"]
    assert all(c["time"] <= line_time for c in changes)
    assert all(
        c["action"].startswith(("Update", "Put", "Delete", "Publish", "Create", "Add", "Remove")) for c in changes
    )
    # another tenant cannot open the line
    assert httpx.get(f"{server}/api/search/context", params={"ref": row["ref"]}, headers=_auth(B)).status_code == 404


def _reader(lines: Iterator[str], out: queue.Queue) -> None:
    try:
        for line in lines:
            if line.strip():
                out.put(line)
    except httpx.HTTPError:
        pass  # the test closed the stream


def test_live_tail_streams_a_line_after_it_is_ingested(embedded: tuple[str, Process]) -> None:
    url, _ = embedded
    got: queue.Queue[str] = queue.Queue()
    with httpx.stream("GET", f"{url}/api/search/tail", params={"q": "tailneedle"}, timeout=httpx.Timeout(30)) as r:
        assert r.status_code == 200
        threading.Thread(target=_reader, args=(r.iter_lines(), got), daemon=True).start()
        body = json.dumps([{"time": _now(), "type": "function", "record": "first TailNeedle arrives"}]).encode()
        assert httpx.post(f"{url}/ingest/telemetry?function=tailfn", content=body).status_code == 200
        row = json.loads(got.get(timeout=30))
    assert row["message"] == "first TailNeedle arrives" and row["function"] == "tailfn"
    assert [row["message"][a:b] for a, b in row["highlights"]] == ["TailNeedle"]


def test_cli_search_and_follow(server: str) -> None:
    url, cli = server, ["--api", server, "--token", A]
    old = json.dumps([{"time": _now(), "type": "function", "record": "cliword before follow"}]).encode()
    assert httpx.post(f"{url}/ingest/telemetry?function=clifn", content=old, headers=_auth(A)).status_code == 200
    all_stored(url, _auth(A)["Authorization"])
    out = subprocess.run(
        [*FNSCOPE, "search", "cliword", *cli, "--json"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["message"] for line in out.stdout.splitlines()] == ["cliword before follow"]

    follow = subprocess.Popen(
        [*FNSCOPE, "search", "cliword", "--follow", "--limit", "5", *cli],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        got: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_reader, args=(iter(follow.stdout.readline, ""), got), daemon=True).start()
        assert "cliword before follow" in got.get(timeout=30)  # the backlog first
        new = json.dumps([{"time": _now(), "type": "function", "record": "cliword while following"}]).encode()
        r = httpx.post(f"{url}/ingest/telemetry?function=clifn", content=new, headers=_auth(A))
        assert r.status_code == 200
        assert "cliword while following" in got.get(timeout=30)
    finally:
        follow.terminate()
        follow.wait(10)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_cli_errors_are_clear(server: str) -> None:
    out = subprocess.run(
        [*FNSCOPE, "search", "(oops", "--api", server, "--token", A],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode != 0 and "unclosed (" in out.stderr


def test_search_help_documents_the_language() -> None:
    out = subprocess.run([*FNSCOPE, "search", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "user.id:42" in out.stdout and "--follow" in out.stdout


def test_search_page_documents_its_shape_and_can_carry_the_histogram(server: str) -> None:
    schema = httpx.get(f"{server}/openapi.json").json()
    documented = schema["paths"]["/api/search"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    page = schema["components"]["schemas"][documented["$ref"].rsplit("/", 1)[-1]]
    assert {"results", "next_cursor", "terms", "histogram"} <= set(page["properties"])

    r = _search(server, "marker", histogram="true", limit=5)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert len(body["results"]) == 5 and body["next_cursor"]
    assert body["histogram"]["total"] == 25 == sum(b["count"] for b in body["histogram"]["buckets"])


class RecordingRunner(QueryRunner):
    """A real runner on chDB that also remembers each statement it ran."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.ran: list[tuple[str, dict]] = []

    def rows(self, sql: str, params: dict) -> list[dict]:
        self.ran.append((sql, params))
        return super().rows(sql, params)


def _token_re(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])")


def test_benchmark_lines_are_found_as_grep_finds_them_and_the_bare_query_is_the_apis(tmp_path: Path) -> None:
    """bench/search.py's store (generated lines, its insert path) answers each benchmark search like a scan of
    every stored line does, and the statement it times as "bare" is the one search() sends."""
    from bench.search import CASES, build, request

    runner, _ = build(tmp_path / "store", 20_000)
    recorder = RecordingRunner(runner.client)
    try:
        stored = runner.rows("SELECT message, fields, function, level, time FROM function_logs", {})
        assert len(stored) == 20_000 + 2 * search_data.NEEDLES
        user = next(row["fields"]["user.id"] for row in stored if "user.id" in row["fields"])
        needle, phrase = _token_re(search_data.NEEDLE_TOKEN), search_data.NEEDLE_PHRASE
        expected = {
            "needle": [r for r in stored if needle.search(r["message"].lower())],
            "phrase": [r for r in stored if phrase in r["message"].lower()],
            "user": [r for r in stored if r["fields"].get("user.id") == user],
        }
        cases = {"needle": CASES[0].params, "phrase": CASES[1].params, "user": {"q": f"user.id:{user}", "since": "25h"}}
        for name, params in cases.items():
            req = request(params)
            page = search(recorder, req)
            assert recorder.ran[-1] == page_query(req), "the benchmark's bare statement is what the API runs"
            assert sorted(r["message"] for r in page["results"]) == sorted(r["message"] for r in expected[name])
            assert expected[name], name
        assert len(expected["needle"]) == len(expected["phrase"]) == search_data.NEEDLES

        errors = request(CASES[3].params)  # one function's errors in the last hour
        hour_ago = errors.since.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        want = [r for r in stored if r["function"] == "fn-03" and r["level"] == "ERROR" and r["time"] >= hour_ago]
        assert len(search(recorder, errors)["results"]) == len(want)
    finally:
        runner.client.close()


def test_rows_come_back_json_ready(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'store'}")
    try:
        rows = QueryRunner(client).rows(
            "SELECT toDateTime64('2026-01-02 03:04:05.678', 3, 'UTC') AS t, nan AS f, 1.5 AS g, toUInt8(7) AS u, "
            "'é' AS s, map('a', 'b') AS m, CAST(NULL AS Nullable(DateTime64(3, 'UTC'))) AS n, [1, 2] AS a "
            "FROM numbers(2) WHERE number < {n:UInt8}",
            {"n": 2},
        )
        assert QueryRunner(client).rows("SELECT 1 AS x WHERE 0", {}) == []
    finally:
        client.close()
    row = {
        "t": "2026-01-02T03:04:05.678Z",
        "f": None,
        "g": 1.5,
        "u": 7,
        "s": "é",
        "m": {"a": "b"},
        "n": None,
        "a": [1, 2],
    }
    assert rows == [row, row]
    assert orjson.loads(orjson.dumps(rows)) == rows
