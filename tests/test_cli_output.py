"""The CLI as an on-call engineer runs it, against a real `fnscope up` fed by `fnscope simulate`: in an 80-column
terminal (a real pseudo-terminal), piped into another program, with NO_COLOR, and when things go wrong."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import termios
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import FNSCOPE, ROOT, Process, all_stored, free_port, start_fnscope_up, wait_http
from tests.fixtures import cloudtrail_set

ANSI = re.compile(r"\x1b\[[0-9;]*m")
COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-7]m|\x1b\[[0-9;]*3[0-7];")  # a foreground colour, not bold alone
BOX = re.compile(r"[\u2500-\u257f]")
ACCOUNT = "123456789012"  # the simulated fleet's account


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FNSCOPE_API")}
    return {**env, **(extra or {})}


def in_terminal(args: list[str], columns: int = 80, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the CLI with its output on a real pseudo-terminal ``columns`` wide: (exit code, what it showed)."""
    main, replica = pty.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(
        [*FNSCOPE, *args], stdout=replica, stderr=replica, stdin=subprocess.DEVNULL, env=_env(env), cwd=ROOT
    )
    os.close(replica)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the replica side closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    return proc.wait(60), b"".join(chunks).decode().replace("\r\n", "\n")


def piped(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FNSCOPE, *args], capture_output=True, text=True, env=_env(env), cwd=ROOT, timeout=120)


def _concurrency_limit(function: str, limit: int) -> bytes:
    """A CloudTrail PutFunctionConcurrency record, as AWS writes it, lowering ``function``'s reserved limit."""
    return json.dumps({"Records": [{
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/ops", "accountId": ACCOUNT,
                         "userName": "ops"},
        "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "lambda.amazonaws.com",
        "eventName": "PutFunctionConcurrency20171031",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": {"functionName": function, "reservedConcurrentExecutions": limit},
        "responseElements": {"reservedConcurrentExecutions": limit},
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
    }]}).encode()  # fmt: skip


def settled_stats(url: str) -> list[dict]:
    """`stats --json` once what was sent is stored and the health tables, rebuilt in the background a moment after
    each insert, stopped changing."""
    all_stored(url)
    last: list[dict] = []
    deadline = time.monotonic() + 60
    while (now := json.loads(piped(["stats", "--api", url, "--json", "--since", "1h"]).stdout)) != last:
        assert time.monotonic() < deadline, "the health tables never settled"
        last = now
        time.sleep(1)
    return now


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[dict]]]:
    """`fnscope up` with a simulated fleet's traffic sent by `fnscope simulate --api`, one function squeezed under
    a reserved limit below its peak (negative headroom); yields the URL and `stats --json`."""
    tmp = tmp_path_factory.mktemp("cli")
    url, proc = start_fnscope_up(tmp / "data", tmp / "up.log")
    try:
        sent = piped(["simulate", "--api", url, "--duration", "20s", "--rate", "40", "--fast"])
        assert sent.returncode == 0, sent.stderr
        functions = settled_stats(url)
        busiest = max(functions, key=lambda f: f["peak_concurrency"])
        assert busiest["peak_concurrency"] >= 2
        r = httpx.post(f"{url}/ingest/cloudtrail", content=_concurrency_limit(busiest["function"], 1), timeout=30)
        assert r.status_code == 200, r.text
        functions = settled_stats(url)
        yield url, functions
    finally:
        proc.stop()


def test_stats_fits_an_80_column_terminal_with_names_whole(fleet: tuple[str, list[dict]]) -> None:
    url, functions = fleet
    code, shown = in_terminal(["stats", "--api", url, "--since", "1h"])
    assert code == 0, shown
    lines = ANSI.sub("", shown).splitlines()
    assert max(len(line) for line in lines) <= 80, shown
    assert BOX.search(shown), "a terminal gets a table with rules"
    for f in functions:
        assert any(line.startswith(f["function"] + " ") for line in lines), f"{f['function']} cut: {shown}"
    assert "--wide shows all" in " ".join(shown.split())  # what was left out is said


def test_stats_wide_shows_every_column(fleet: tuple[str, list[dict]]) -> None:
    url, _ = fleet
    code, shown = in_terminal(["stats", "--api", url, "--since", "1h", "--wide"])
    assert code == 0, shown
    header = ANSI.sub("", shown).splitlines()[0]
    for title in ("invocations", "timeouts", "cold starts", "p50", "p99", "peak conc.", "limit", "GB-s", "cost"):
        assert title in header


def test_a_very_narrow_terminal_gets_one_field_a_line(fleet: tuple[str, list[dict]]) -> None:
    url, functions = fleet
    code, shown = in_terminal(["stats", "--api", url, "--since", "1h"], columns=30)
    assert code == 0, shown
    lines = ANSI.sub("", shown).splitlines()
    assert sum(1 for line in lines if line.startswith("function ")) == len(functions)
    assert max(len(line) for line in lines) <= 30
    assert not BOX.search(shown)


def test_piped_output_is_plain_with_human_numbers(fleet: tuple[str, list[dict]]) -> None:
    url, functions = fleet
    out = piped(["stats", "--api", url, "--since", "1h"])
    assert out.returncode == 0, out.stderr
    assert not BOX.search(out.stdout) and "\x1b" not in out.stdout
    lines = out.stdout.splitlines()
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) >= {f["function"] for f in functions}  # every function, one line each
    for f in functions:
        assert not re.search(r"\de-\d", rows[f["function"]]), "no scientific notation"
        cost = f"${f['estimated_cost_usd']:.10f}".rstrip("0")[:5]
        assert cost in rows[f["function"]], (cost, rows[f["function"]])


def test_piped_with_columns_set_fits_it(fleet: tuple[str, list[dict]]) -> None:
    url, functions = fleet
    out = piped(["stats", "--api", url, "--since", "1h"], {"COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    assert max(len(line) for line in out.stdout.splitlines()) <= 80
    assert {line.split()[0] for line in out.stdout.splitlines()} >= {f["function"] for f in functions}


def test_negative_headroom_is_flagged_in_words_and_red(fleet: tuple[str, list[dict]]) -> None:
    url, functions = fleet
    over = [f for f in functions if f["headroom"] < 0]
    assert over, "the fixture squeezed one function under its peak"
    code, shown = in_terminal(["stats", "--api", url, "--since", "1h"])
    for f in over:
        line = next(line for line in shown.splitlines() if ANSI.sub("", line).startswith(f["function"] + " "))
        assert f"{f['headroom']} OVER" in ANSI.sub("", line)
        assert "\x1b[1;31m" in line, "bold red on a terminal"
    fine = [f for f in functions if f["headroom"] >= 0]
    assert all("OVER" not in line for line in shown.splitlines() for f in fine if line.startswith(f["function"]))


@pytest.mark.parametrize("how", [{"env": {"NO_COLOR": "1"}}, {"args": ["--no-color"]}, {"before": ["--no-color"]}])
def test_no_color_and_the_flag_turn_colour_off(fleet: tuple[str, list[dict]], how: dict) -> None:
    url, functions = fleet
    args = [*how.get("before", []), "stats", "--api", url, "--since", "1h", *how.get("args", [])]
    assert any(f["throttles"] or f["headroom"] < 0 for f in functions)  # something a terminal colours
    _, coloured = in_terminal(["stats", "--api", url, "--since", "1h"])
    assert COLOUR.search(coloured)
    code, shown = in_terminal(args, env=how.get("env"))
    assert code == 0, shown
    assert not COLOUR.search(shown), shown
    assert any(f["function"] in shown for f in functions)


def test_times_read_relative_on_a_terminal_and_exact_when_piped(fleet: tuple[str, list[dict]]) -> None:
    url, _ = fleet
    code, shown = in_terminal(["alerts", "list", "--all", "--api", url])
    assert code == 0, shown
    assert re.search(r"\b(just now|\d+ (s|min|h|d) ago)\b", shown), shown
    out = piped(["alerts", "list", "--all", "--api", url])
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", out.stdout) and " ago" not in out.stdout


def test_search_prints_the_newest_lines_oldest_first_as_its_help_says(fleet: tuple[str, list[dict]]) -> None:
    url, _ = fleet
    assert "printed oldest to newest" in " ".join(piped(["search", "--help"]).stdout.split())
    until = datetime.now(UTC).isoformat()  # simulated lines may carry times a little ahead: a fixed range
    newest = httpx.get(f"{url}/api/search", params={"since": "1h", "until": until, "limit": 30}).json()["results"]
    out = piped(["search", "--api", url, "--since", "1h", "--until", until, "--limit", "30", "--json"])
    printed = [json.loads(line) for line in out.stdout.splitlines()]
    assert [row["ref"] for row in printed] == [row["ref"] for row in reversed(newest)]
    assert [row["time"] for row in printed] == sorted(row["time"] for row in printed)
    assert "older lines: --cursor" in out.stderr


def test_mistakes_get_one_line_errors_and_exit_codes(fleet: tuple[str, list[dict]]) -> None:
    url, _ = fleet
    port = free_port()  # nothing listens there
    cases = [
        (["simulate", "--api", f"http://127.0.0.1:{port}", "--duration", "2s"], 1, "cannot reach fnscope"),
        (["simulate", "--api", url, "--duration", "10x"], 2, "not a duration: '10x'"),
        (["stats", "--api", url.removeprefix("http://")], 2, f"did you mean {url}?"),
        (["simulate", "--target", url.removeprefix("http://")], 2, f"did you mean {url}?"),
        (["search", "--api", f"http://127.0.0.1:{port}"], 1, "cannot reach fnscope"),
    ]
    for args, code, message in cases:
        out = piped(args)
        assert out.returncode == code, (args, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert len([line for line in out.stderr.splitlines() if line.startswith("Error")]) == 1


def test_simulate_still_takes_target_as_the_old_name_of_api(fleet: tuple[str, list[dict]]) -> None:
    url, _ = fleet
    out = piped(["simulate", "--target", url, "--duration", "1s", "--rate", "5", "--fast"])
    assert out.returncode == 0, out.stderr
    assert "--target" not in piped(["simulate", "--help"]).stdout  # --api is the one name shown


def test_up_on_a_busy_port_fails_before_its_banner(fleet: tuple[str, list[dict]], tmp_path: Path) -> None:
    url, _ = fleet
    out = piped(["up", "--data-dir", str(tmp_path / "data"), "--port", url.rsplit(":", 1)[1]])
    assert out.returncode != 0
    assert "fnscope up:" not in out.stdout and "Traceback" not in out.stderr
    assert "address already in use" in out.stderr and "--port" in out.stderr
    assert not (tmp_path / "data").exists(), "nothing was started"


def test_ctrl_c_on_up_simulate_stops_without_a_traceback(tmp_path: Path) -> None:
    port = free_port()
    proc = Process([*FNSCOPE, "up", "--simulate", "--data-dir", str(tmp_path / "d"), "--port", str(port)],
                   tmp_path / "up.log").start()  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc=proc.proc)
    deadline = time.monotonic() + 60
    while not httpx.get(f"{url}/api/stats", params={"since": "1h"}).json()["functions"]:
        assert time.monotonic() < deadline, "the demo traffic never arrived"
        time.sleep(0.5)
    assert proc.stop() == 0
    assert "Traceback" not in proc.output() and "Exception in thread" not in proc.output(), proc.output()


def test_a_second_import_says_it_added_nothing_and_verify_counts_once(
    embedded: tuple[str, Process], tmp_path: Path
) -> None:
    url, _ = embedded
    names = list(cloudtrail_set.TECHNIQUES)[:6]
    for i, name in enumerate(names):
        (tmp_path / f"{i}.json").write_bytes(cloudtrail_set.technique_file(name))
    records = {r["eventID"] for name in names for r in json.loads(cloudtrail_set.technique_file(name))}
    first = piped(["import", "cloudtrail", "--quiet", "--api", url, str(tmp_path)])
    assert first.returncode == 0, first.stderr
    assert f"the store gained {len(records)} new event versions" in first.stdout
    second = piped(["import", "cloudtrail", "--quiet", "--api", url, str(tmp_path)])
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("added nothing new"), second.stdout
    assert (
        json.loads(piped(["import", "cloudtrail", "--quiet", "--json", "--api", url, str(tmp_path)]).stdout)[
            "new_versions"
        ]
        == 0
    )
    report = json.loads(piped(["audit", "verify", "--json", "--api", url]).stdout)
    assert report["ok"]
    assert report["events"] == report["versions"] == len(records)
    sealed_versions = report["versions"] - report["unsealed_events"]
    assert 0 <= sealed_versions <= len(records) and report["unsealed_events"] <= len(records)


def test_a_password_in_the_api_url_is_never_printed() -> None:
    port = free_port()  # nothing listens there
    for command in (["stats"], ["search"], ["deploy", "verdict", "-f", "x", "-v", "2"]):
        out = piped([*command, "--api", f"http://ops:s3cret@127.0.0.1:{port}"])
        assert out.returncode in (1, 3) and f"cannot reach fnscope at http://127.0.0.1:{port}:" in out.stderr
        assert "s3cret" not in out.stderr + out.stdout and "ops@" not in out.stderr


class _HostileProxy(BaseHTTPRequestHandler):
    """What may stand at --api instead of fnscope: a proxy answering every request with an error page that
    tries to steer the terminal (retitle it, hide what follows)."""

    body = b"bad gateway \x1b]0;pwned\x07\x1b[8m hidden"

    def _answer(self) -> None:
        self.send_response(502)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def test_an_error_answer_never_reaches_the_terminal_as_control_characters() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostileProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for command in (["stats"], ["alerts", "test"], ["search", "--follow"]):
            out = piped([*command, "--api", api])
            assert out.returncode == 1 and "Traceback" not in out.stderr, (command, out.stderr)
            assert "502: bad gateway \\x1b]0;pwned\\x07\\x1b[8m hidden" in out.stderr, (command, out.stderr)
            assert "\x1b" not in out.stderr + out.stdout and "\x07" not in out.stderr
    finally:
        server.shutdown()
