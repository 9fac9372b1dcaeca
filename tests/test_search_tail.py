"""The live tail is exact: while simulated fleet traffic flows into a real `fnscope up` in real time, with every
function line delivered twice (its Telemetry API and CloudWatch-through-Firehose copies share one id) and whole
requests re-delivered as a sender does after a timeout, the API stream and `fnscope search --follow --json` each
give every stored line once, in time order (a line arriving after a later one was sent is marked late, not
dropped), and nothing else."""

from __future__ import annotations

import json
import queue
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import sync_playwright

from fnscope.query.tail_order import Sequencer
from fnscope.simulator.scheduler import simulate
from fnscope.simulator.sender import Sender
from fnscope.simulator.wire import iter_render
from tests.conftest import FNSCOPE, ROOT, start_fnscope_up
from tests.test_console import CHROMIUM_ARGS

SECONDS = 12


def _stream_api(url: str, out: queue.Queue[dict[str, Any]], stop: threading.Event) -> None:
    with httpx.stream("GET", f"{url}/api/search/tail", timeout=httpx.Timeout(30, read=None)) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.strip():
                out.put(json.loads(line))
            if stop.is_set():
                return


def _read_cli(proc: subprocess.Popen[str], out: queue.Queue[dict[str, Any]]) -> None:
    assert proc.stdout is not None
    for line in iter(proc.stdout.readline, ""):
        if line.strip():
            out.put(json.loads(line))


def _send_live_with_redeliveries(url: str, seed: int, rate: float = 12.0) -> set[str]:
    """A simulated fleet sent second by second on the wall clock; a fifth of each second's requests sent again
    with the next second's (a re-delivery). Answers the functions that logged."""
    sim = simulate(functions=4, rate=rate, duration_s=SECONDS, seed=seed, start=datetime.now(UTC))
    rng = random.Random(seed)
    began, again = time.monotonic(), []
    with Sender(url) as sender, ThreadPoolExecutor(4) as pool:
        for batch in iter_render(sim):
            if batch and (pause := began + min(batch[0].due_s + 1, SECONDS) - time.monotonic()) > 0:
                time.sleep(pause)
            sending = batch + again
            assert all(r.status_code < 300 for r in pool.map(sender.send, sending))
            again = [req for req in batch if rng.random() < 0.2]
        assert all(r.status_code < 300 for r in pool.map(sender.send, again))
    return {i.function for i in sim.invocations if i.status != "throttled"}


def _stored(url: str, since: datetime) -> dict[str, dict[str, Any]]:
    """Every line the store holds from ``since`` on, paged through the search API."""
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        params = {"since": since.isoformat(), "limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{url}/api/search", params=params, timeout=30).json()
        found |= {row["event_id"]: row for row in page["results"]}
        if not (cursor := page["next_cursor"]):
            return found


def _settled(url: str, since: datetime) -> dict[str, dict[str, Any]]:
    """What the store holds once it stops changing: a 2xx means durable, and the insert follows a moment later."""
    deadline, before = time.monotonic() + 60, None
    while (now := _stored(url, since)).keys() != (before or {}).keys() and time.monotonic() < deadline:
        before = now
        time.sleep(3)
    return now


def _drain(got: queue.Queue[dict[str, Any]], into: list[dict[str, Any]], want: set[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not want <= {row["event_id"] for row in into} and time.monotonic() < deadline:
        try:
            into.append(got.get(timeout=1))
        except queue.Empty:
            pass
    end = time.monotonic() + 3  # anything sent after the last expected line (a duplicate would be) is caught too
    while time.monotonic() < end:
        try:
            into.append(got.get(timeout=0.5))
        except queue.Empty:
            pass


def _assert_exact(rows: list[dict[str, Any]], stored: dict[str, dict[str, Any]], who: str) -> None:
    ids = Counter(row["event_id"] for row in rows)
    assert [i for i, n in ids.items() if n > 1] == [], f"{who}: lines sent more than once"
    assert set(ids) == set(stored), f"{who}: {len(set(stored) - set(ids))} stored lines missing"
    times = [(row["time"], row["event_id"]) for row in rows if not row["late"]]
    assert times == sorted(times), f"{who}: lines not marked late came out of time order"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    url, proc = start_fnscope_up(tmp_path / "data", tmp_path / "up.log")
    yield url
    proc.stop()


def test_tail_and_follow_send_each_line_once_in_time_order_under_redelivery(server: str) -> None:
    url = server
    api_rows: queue.Queue[dict[str, Any]] = queue.Queue()
    cli_rows: queue.Queue[dict[str, Any]] = queue.Queue()
    stop = threading.Event()
    started = datetime.now(UTC) - timedelta(seconds=1)
    api = threading.Thread(target=_stream_api, args=(url, api_rows, stop), daemon=True)
    api.start()
    cli = subprocess.Popen(
        [*FNSCOPE, "search", "--follow", "--json", "--limit", "0", "--api", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        threading.Thread(target=_read_cli, args=(cli, cli_rows), daemon=True).start()
        time.sleep(2)  # both followers are polling before the first line is sent
        functions = _send_live_with_redeliveries(url, seed=21)
        stored = _settled(url, started)
        assert {row["function"] for row in stored.values()} == functions
        got_api: list[dict[str, Any]] = []
        got_cli: list[dict[str, Any]] = []
        _drain(api_rows, got_api, set(stored), 90)
        _drain(cli_rows, got_cli, set(stored), 30)
    finally:
        stop.set()
        cli.terminate()
        cli.wait(10)
    _assert_exact(got_api, stored, "API tail")
    _assert_exact(got_cli, stored, "fnscope search --follow --json")


def test_console_live_tail_shows_each_line_once_in_order_with_count_and_histogram_moving(server: str) -> None:
    url = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        started = datetime.now(UTC) - timedelta(seconds=1)
        page.goto(f"{url}/#/search?range=15m")
        page.wait_for_selector(".status:has-text('matching lines')")
        page.get_by_label("Live tail").check()
        counts: list[str] = []
        sender = threading.Thread(target=_send_live_with_redeliveries, args=(url, 7, 5.0))
        sender.start()
        while sender.is_alive():  # what the user sees while the traffic flows
            counts.append(page.locator(".status").inner_text())
            time.sleep(0.5)
        stored = _settled(url, started)
        want = f"{len(stored)} matching lines in the last 15m"
        page.wait_for_function(
            "want => document.querySelector('.status').textContent === want", arg=want, timeout=90_000
        )
        page.wait_for_function(
            "n => document.querySelector('.histogram').dataset.total === String(n)", arg=len(stored), timeout=10_000
        )
        lines = page.eval_on_selector_all(
            "ol.results li.line", "items => items.map(li => [Number(li.dataset.ms), li.dataset.eventId])"
        )
        browser.close()
    assert not errors
    assert len({count for count in counts if count.endswith("15m")}) > 2, f"the count never moved: {counts}"
    ids = [event_id for _ms, event_id in lines]
    assert sorted(ids) == sorted(stored), "each stored line is on screen exactly once"
    assert lines == sorted(lines, reverse=True), "newest first, in time order, late lines in their place"


def test_copies_are_sent_once_and_due_lines_oldest_first() -> None:
    order = Sequencer()
    row = {"message": "x"}
    order.hold((1_000, "b"), 1_500, row)
    order.hold((1_000, "b"), 1_600, row)  # the other copy, read in the same poll
    order.hold((900, "a"), 1_550, row)
    assert order.release(1_700) == []  # neither has waited long enough after its time
    assert [late for _row, late in order.release(10_000)] == [False, False]
    order.hold((950, "c"), 10_100, row)  # after (1_000, "b") was sent
    order.hold((1_000, "b"), 10_100, row)  # a re-delivery
    assert [late for _row, late in order.release(20_000)] == [True]
