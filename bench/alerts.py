"""Throttle-to-page latency: from a throttle event's HTTP ingest to the webhook's arrival, p50/p99 over many runs.

    python -m bench.alerts [--runs 200]

Starts a real `fnscope up` (fresh data dir) with FNSCOPE_ALERT_WEBHOOK_URL pointing at a local receiver
(http.server in a thread). Each run throttles a new function: a CloudTrail log file with its ``Invoke``
data events, ``TooManyRequestsException`` among them, rendered by the simulator before the clock starts.
Measured per run, in the same process and run:

- page latency: POST sent → the alert's webhook arrives at the receiver;
- the reference: the bare ingest round trip of that same POST (the 2xx means stored).

Goal: p99 page latency ≤ 5 s (a CloudWatch alarm on Throttles: ≥ 60 s, one period).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.figures import percentile
from fnscope.simulator.scheduler import FunctionSpec, simulate
from fnscope.simulator.sender import Sender
from fnscope.simulator.wire import WireRequest, render
from tests.conftest import FNSCOPE, Process, free_port, wait_http
from tests.test_alerts_support import Receiver

ROOT = Path(__file__).resolve().parents[1]


def throttle_request(function: str, seed: int) -> WireRequest:
    spec = FunctionSpec(function, reserved_concurrency=1, burst_mean=5.0, median_ms=2000.0)
    for attempt in range(100):  # a bursty second throttles almost always; try the next seed if not
        sim = simulate(rate=20, duration_s=1, seed=seed * 100 + attempt, specs=[spec])
        for request in render(sim):
            if request.kind == "cloudtrail" and b"TooManyRequestsException" in request.body:
                return request
    raise RuntimeError("the simulated runs did not throttle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {"FNSCOPE_ALERT_WEBHOOK_URL": f"{receiver.url}/hook", "FNSCOPE_CONFIG": str(Path(tmp) / "none.yaml")}
        proc = Process([*FNSCOPE, "up", "--data-dir", f"{tmp}/data", "--port", str(port)], Path(tmp) / "up.log", env)
        proc.start()
        try:
            wait_http(f"{url}/healthz", proc=proc.proc)
            page, ingest = [], []
            with Sender(url, client=httpx.Client(timeout=30)) as sender:
                for i in range(args.runs):
                    function = f"bench-throttled-{i}"
                    request = throttle_request(function, seed=i)
                    sent = time.time()
                    assert sender.send(request).is_success
                    ingest.append(time.time() - sent)
                    got = receiver.wait_for(
                        "/hook", lambda b, f=function: b.get("rule") == "function-throttled" and b.get("function") == f
                    )
                    page.append(got[0].at - sent)
        finally:
            proc.stop()
            receiver.close()

    print(f"throttle → webhook over {args.runs} runs (one new throttled function each; 2 shared cores)")
    print(f"  page latency   p50 {percentile(page, 0.5) * 1000:8.1f} ms   p99 {percentile(page, 0.99) * 1000:8.1f} ms")
    print(
        f"  ingest RTT     p50 {percentile(ingest, 0.5) * 1000:8.1f} ms   p99 {percentile(ingest, 0.99) * 1000:8.1f} ms  (reference)"
    )
    print(
        f"  ratio page/ingest   p50 {percentile(page, 0.5) / percentile(ingest, 0.5):5.2f}x   p99 {percentile(page, 0.99) / percentile(ingest, 0.99):5.2f}x"
    )
    print(
        f"  mean page latency {statistics.mean(page) * 1000:.1f} ms; goal p99 ≤ 5000 ms (CloudWatch alarm ≥ 60000 ms)"
    )
    print(f"  p99 goal met: {percentile(page, 0.99) <= 5.0}")


if __name__ == "__main__":
    main()
