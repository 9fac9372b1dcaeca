"""What the HTTP hop costs per ingest request, measured in one run: the same Telemetry batches (as Lambda
extensions post them; 2-5 KB) from 32 senders to four servers, each in a process of its own, and the server's CPU
seconds per request:

- bare ASGI under uvicorn: read the body, ``orjson.loads`` it, answer — the floor of any Python HTTP receiver;
- a minimal FastAPI route with a dependency (the token check's shape), the same work;
- fnscope's own ingest route (routing, auth, limits, parsing into validated events), handing to a sink that takes
  everything at once: the whole receiver without the log or the store;
- `fnscope up` itself: the receiver, the local log and the processor storing into chDB.

    python -m bench.http_hop [--requests 3000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import Depends, FastAPI, Request

from bench.figures import cpu_seconds
from bench.ingest import payloads
from tests.conftest import FNSCOPE, all_stored, free_port, wait_http


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = b'{"accepted":%d,"rejected":0}' % (len(orjson.loads(body)) if scope["path"] != "/healthz" else 0)
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

    app = {"bare": lambda: bare_app, "fastapi": fastapi_app, "receiver": fnscope_receiver}[kind]()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", **server_options())


def measure(label: str, command: list[str], port: int, bodies: list[bytes], senders: int) -> float:
    work = Path(tempfile.mkdtemp())
    proc = subprocess.Popen(command, stdout=open(work / "log", "wb"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", proc=proc)

        def send(body: bytes) -> None:
            client.post(f"{url}/ingest/telemetry", params={"function": "hop"}, content=body).raise_for_status()

        with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=senders)) as client:
            list(ThreadPoolExecutor(senders).map(send, bodies[:200]))  # warm-up: first-request imports
            cpu = cpu_seconds(proc.pid)
            list(ThreadPoolExecutor(senders).map(send, bodies))
            if label.startswith("fnscope up"):
                all_stored(url)
            cpu = cpu_seconds(proc.pid) - cpu
    finally:
        proc.terminate()
        proc.wait(30)
    per_request = cpu / len(bodies) * 1000
    print(f"  {label:<58} {per_request:6.2f} ms of CPU per request")
    return per_request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--serve", choices=["bare", "fastapi", "receiver"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    telemetry = [p.body for p in payloads(20_000) if p.path.endswith("/telemetry")]
    bodies = [telemetry[i % len(telemetry)] for i in range(args.requests)]
    size = sum(map(len, bodies)) / len(bodies)
    print(f"{len(bodies)} Telemetry batches of {size / 1000:.1f} KB on average, {args.senders} senders")
    me = [sys.executable, "-m", "bench.http_hop"]
    figures = {}
    for kind, label in (
        ("bare", "bare ASGI (uvicorn), orjson.loads"),
        ("fastapi", "minimal FastAPI route with a dependency, orjson.loads"),
        ("receiver", "fnscope's ingest route, a sink that takes all"),
    ):
        port = free_port()
        figures[kind] = measure(label, [*me, "--serve", kind, "--port", str(port)], port, bodies, args.senders)
    port = free_port()
    up = [*FNSCOPE, "up", "--data-dir", str(Path(tempfile.mkdtemp()) / "d"), "--port", str(port)]
    figures["up"] = measure("fnscope up (receiver, local log, processor, chDB)", up, port, bodies, args.senders)
    bare = figures["bare"]
    print(
        f"  FastAPI routing and dependency: +{figures['fastapi'] - bare:.2f} ms; fnscope's receiver: "
        f"+{figures['receiver'] - figures['fastapi']:.2f} ms over that; log, processor and store: "
        f"+{figures['up'] - figures['receiver']:.2f} ms (bare ASGI = {bare:.2f} ms)"
    )


if __name__ == "__main__":
    main()
