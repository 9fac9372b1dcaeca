"""What the HTTP hop costs per ingest request, measured in one run: the same Telemetry batches (as Lambda
extensions post them; 2-5 KB) to five servers, each in a process of its own, and each server's CPU:

- bare ASGI under uvicorn: read the body, ``orjson.loads`` it, answer — the floor of any Python HTTP receiver;
- bare ASGI that also parses the batch into validated events and encodes them for the log, as fnscope does: the
  floor of a receiver with fnscope's parsers;
- a minimal FastAPI route with a dependency (the token check's shape), the same work as bare ASGI;
- fnscope's own ingest route (front door, auth, limits, parsing into validated events), handing to a sink that takes
  everything at once: the whole receiver without the log or the store;
- `fnscope up` itself: the receiver, the local log and the processor storing into chDB.

Two shapes of load: ``--requests`` batches from 32 senders as fast as each server answers (CPU per request), and
``--extensions`` senders spread out in time as a fleet's extensions are, one batch a second each (each server's
share of a core, over ``--seconds`` after a warm-up of ``WARMUP_S``).

    python -m bench.http_hop [--requests 3000] [--extensions 300 --seconds 30]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import Depends, FastAPI, Request

from bench.figures import cpu_seconds, percentile
from bench.ingest import payloads
from tests.conftest import FNSCOPE, all_stored, free_port, wait_http


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    body = await _body(receive)
    answer = b'{"accepted":%d,"rejected":0}' % (len(orjson.loads(body)) if scope["path"] != "/healthz" else 0)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer})


async def _body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def parsing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Bare ASGI that parses each batch as fnscope's receiver does (events validated, encoded for the log)."""
    from urllib.parse import parse_qsl

    from fnscope.collector.formats import telemetry
    from fnscope.sink import IngestContext
    from fnscope.transport import encode_messages

    if scope["type"] != "http" or scope["path"] == "/healthz":
        await bare_app(scope, receive, send)
        return
    body = await _body(receive)
    parsed = telemetry.parse(body, IngestContext(params=dict(parse_qsl(scope["query_string"].decode()))))
    list(encode_messages(parsed.events))
    answer = b'{"accepted":%d,"rejected":0}' % len(parsed.events)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer})


def fastapi_app() -> Any:
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})

    def tenant(request: Request) -> str:
        return request.headers.get("authorization", "default")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/ingest/telemetry")
    async def ingest(request: Request, who: str = Depends(tenant)) -> dict[str, int]:
        return {"accepted": len(orjson.loads(await request.body())), "rejected": 0}

    return app


class TakesAll:
    """A sink that takes everything at once: the receiver measured without the log or the store."""

    readiness_name = "sink"
    submit_never_blocks = True  # as the local log's: a small Telemetry batch is parsed on the event loop

    def submit(self, events: list[Any]) -> Future[None]:
        done: Future[None] = Future()
        done.set_result(None)
        return done

    def ready(self) -> bool:
        return True

    def stored(self, timeout_s: float) -> bool:
        return True


def fnscope_receiver() -> Any:
    from fnscope.app.server import build_app
    from fnscope.app.settings import Settings
    from fnscope.telemetry import pipeline_metrics

    return build_app(Settings(), pipeline_metrics(), TakesAll())


def serve(kind: str, port: int) -> None:
    import uvicorn

    from fnscope.app.http import server_options

    apps = {
        "bare": lambda: bare_app,
        "parsing": lambda: parsing_app,
        "fastapi": fastapi_app,
        "receiver": fnscope_receiver,
    }
    app = apps[kind]()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", **server_options())


WARMUP_S = 5  # spread-out senders: every sender's first connection, not measured


@contextmanager
def server(command: list[str], port: int) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    work = Path(tempfile.mkdtemp())
    proc = subprocess.Popen(command, stdout=open(work / "log", "wb"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", proc=proc)
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(30)


def burst(proc: subprocess.Popen[bytes], url: str, bodies: list[bytes], senders: int, stored: bool) -> float:
    """Every body from ``senders`` at once, as fast as the server answers: its CPU ms per request."""

    def send(body: bytes) -> None:
        client.post(f"{url}/ingest/telemetry", params={"function": "hop"}, content=body).raise_for_status()

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=senders)) as client:
        list(ThreadPoolExecutor(senders).map(send, bodies[:200]))  # warm-up: first-request imports
        cpu = cpu_seconds(proc.pid)
        list(ThreadPoolExecutor(senders).map(send, bodies))
        if stored:
            all_stored(url)
        cpu = cpu_seconds(proc.pid) - cpu
    return cpu / len(bodies) * 1000


def spread(proc: subprocess.Popen[bytes], url: str, bodies: list[bytes], extensions: int, seconds: int) -> str:
    """``extensions`` senders, one body a second each at a moment of its own: the server's share of a core and the
    answer's p99 over ``seconds`` after the warm-up."""
    clients = [httpx.Client(timeout=60) for _ in range(extensions)]
    start = time.monotonic() + 0.5
    window = (start + WARMUP_S, start + WARMUP_S + seconds)
    latencies: list[float] = []

    def extension(i: int) -> None:
        phase = random.Random(i).random()
        with clients[i] as client:
            for k in range(WARMUP_S + seconds):
                time.sleep(max(0.0, start + phase + k - time.monotonic()))
                began = time.monotonic()
                body = bodies[(i + k * extensions) % len(bodies)]
                client.post(f"{url}/ingest/telemetry", params={"function": "hop"}, content=body).raise_for_status()
                if window[0] <= began < window[1]:
                    latencies.append((time.monotonic() - began) * 1000)

    threads = [threading.Thread(target=extension, args=(i,)) for i in range(extensions)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, window[0] - time.monotonic()))
    cpu = cpu_seconds(proc.pid)
    time.sleep(max(0.0, window[1] - time.monotonic()))
    cpu = cpu_seconds(proc.pid) - cpu
    for thread in threads:
        thread.join()
    return f"{cpu / seconds:4.0%} of a core, 2xx p99 {percentile(latencies, 0.99):4.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--extensions", type=int, default=0, help="spread-out senders, one batch a second each")
    parser.add_argument("--seconds", type=int, default=30, help="how long the spread-out load is measured")
    parser.add_argument("--serve", choices=["bare", "parsing", "fastapi", "receiver"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    telemetry = [p.body for p in payloads(20_000) if p.path.endswith("/telemetry")]
    bodies = [telemetry[i % len(telemetry)] for i in range(args.requests)]
    size = sum(map(len, bodies)) / len(bodies)
    print(f"{len(bodies)} Telemetry batches of {size / 1000:.1f} KB on average, {args.senders} senders", end="")
    print(f"; then {args.extensions} spread out, one batch a second each" if args.extensions else "")
    figures = {}
    for kind, label in (
        ("bare", "bare ASGI (uvicorn), orjson.loads"),
        ("parsing", "bare ASGI, fnscope's parsing and encoding"),
        ("fastapi", "minimal FastAPI route with a dependency, orjson.loads"),
        ("receiver", "fnscope's ingest route, a sink that takes all"),
        ("up", "fnscope up (receiver, local log, processor, chDB)"),
    ):
        with server(*_command(kind)) as (proc, url):
            figures[kind] = burst(proc, url, bodies, args.senders, stored=kind == "up")
        shared = ""
        if args.extensions:  # a fresh server: nothing left over from the burst (merges, rebuilds) shares the window
            with server(*_command(kind)) as (proc, url):
                shared = spread(proc, url, telemetry, args.extensions, args.seconds)
        print(f"  {label:<58} {figures[kind]:6.2f} ms of CPU per request  {shared}")
    bare = figures["bare"]
    print(
        f"  parsing: +{figures['parsing'] - bare:.2f} ms; FastAPI routing and dependency: +{figures['fastapi'] - bare:.2f}"
        f" ms; fnscope's receiver: +{figures['receiver'] - figures['parsing']:.2f} ms over bare parsing; log, processor "
        f"and store: +{figures['up'] - figures['receiver']:.2f} ms (bare ASGI = {bare:.2f} ms)"
    )


def _command(kind: str) -> tuple[list[str], int]:
    port = free_port()
    if kind == "up":
        return [*FNSCOPE, "up", "--data-dir", str(Path(tempfile.mkdtemp()) / "d"), "--port", str(port)], port
    return [sys.executable, "-m", "bench.http_hop", "--serve", kind, "--port", str(port)], port


if __name__ == "__main__":
    main()
