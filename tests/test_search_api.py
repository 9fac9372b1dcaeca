"""Log search through a real `fnscope up` (tokens on, two tenants): language, pages, marks, histogram, limits,
correlation, live tail and the CLI."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.sender import run as simulate_and_send
from tests.conftest import FNSCOPE, ROOT, Process, free_port, wait_http

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
    port = free_port()
    proc = Process(
        [*FNSCOPE, "up", "--data-dir", str(tmp / "data"), "--port", str(port)],
        tmp / "up.log",
        env={"FNSCOPE_TOKENS": f"{A}:acme,{B}:globex"},
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc=proc.proc)

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
