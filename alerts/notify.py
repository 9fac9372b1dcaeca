"""Webhook notifications: generic JSON or Slack-compatible text, retried with backoff, each delivery recorded."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from fnscope.alerts.cloudwatch_alarm import AlarmHolders, ClientFactory, boto3_client, set_alarm_state
from fnscope.alerts.config import Target
from fnscope.alerts.instances import Instance, Notice
from fnscope.alerts.store import AlertStore, Delivery
from fnscope.timeparse import iso_utc

log = logging.getLogger("fnscope.alerts")


class _Retryable(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text[:200]}")
        self.status = status


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else iso_utc(datetime.fromtimestamp(epoch, UTC))


def links(base_url: str, notice: Notice) -> dict[str, str]:
    """Where to look next: the function's log lines and health around the alert, in this fnscope."""
    inst, base = notice.instance, base_url.rstrip("/")
    function = inst.values.get("function") or inst.labels.get("function", "")
    since = _iso((inst.active_since or notice.at) - 300) or ""
    out: dict[str, str] = {}
    if function:
        out["search"] = f"{base}/api/search?" + urlencode({"q": f"function:{function}", "since": since})
        out["errors"] = f"{base}/api/search?" + urlencode({"q": f"function:{function} level:error", "since": since})
        out["stats"] = f"{base}/api/stats?" + urlencode({"function": function, "since": since, "step": "1m"})
    principal = inst.values.get("principal") or inst.labels.get("principal")
    if principal:
        out["audit"] = f"{base}/api/audit?" + urlencode({"principal": principal, "since": since})
    out["alerts"] = f"{base}/api/alerts/history?" + urlencode({"rule": inst.rule})
    return out


def payload(notice: Notice, base_url: str) -> dict[str, Any]:
    inst = notice.instance
    return {
        "status": "resolved" if notice.kind == "resolved" else "firing",
        "kind": notice.kind,
        "rule": inst.rule,
        "severity": notice.severity,
        "summary": inst.summary,
        "function": inst.values.get("function") or inst.labels.get("function", ""),
        "labels": inst.labels,
        "value": inst.value,
        "values": inst.values,
        "started_at": _iso(inst.active_since),
        "fired_at": _iso(inst.fired_at),
        "resolved_at": _iso(inst.resolved_at),
        "sent_at": _iso(time.time()),
        "fingerprint": inst.fingerprint,
        "links": links(base_url, notice),
    }


def slack_escape(text: object) -> str:
    """Text as Slack (and Teams' Slack-compatible hooks) shows it literally: a function named
    ``x<!channel>`` or ``<https://evil|Reset>`` must reach the channel as text, not as a mention or a link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(body: dict[str, Any]) -> str:
    icon = {"resolved": ":white_check_mark:", "test": ":information_source:"}.get(body["kind"], ":rotating_light:")
    rule, summary = slack_escape(body["rule"]), slack_escape(body["summary"])
    head = f"{icon} *{body['status'].upper()}* `{rule}` ({slack_escape(body['severity'])}): {summary}"
    values = ", ".join(
        f"{slack_escape(k)}={slack_escape(v)}" for k, v in body["values"].items() if k not in ("function", "functions")
    )
    link_text = " | ".join(f"<{url}|{name}>" for name, url in body["links"].items())
    return "\n".join(line for line in (head, values and f"values: {values}", link_text) if line)


def target_label(target: Target) -> str:
    """How a target shows in the history: its name, or only scheme and host (the path may be a secret)."""
    if target.name:
        return target.name
    if target.format == "cloudwatch_alarm":
        return f"cloudwatch-alarm:{target.alarm_name}"
    parts = urlsplit(target.url)
    return f"{parts.scheme}://{parts.netloc}"


class Notifier:
    """Delivers notices one after another (so an alert's resolve never overtakes its firing) on its own thread."""

    def __init__(
        self,
        targets: list[Target],
        store: AlertStore,
        base_url: str,
        attempts: int = 4,
        timeout_s: float = 5.0,
        cloudwatch: ClientFactory = boto3_client,
    ) -> None:
        self.targets, self.store, self.base_url, self.cloudwatch = targets, store, base_url, cloudwatch
        self._holders = {id(t): AlarmHolders() for t in targets if t.format == "cloudwatch_alarm"}
        self.attempts, self.timeout_s = attempts, timeout_s
        self._queue: queue.Queue[Notice | None] = queue.Queue()
        self._client = httpx.Client(timeout=timeout_s)
        self._thread: threading.Thread | None = None

    def start(self) -> Notifier:
        self._thread = threading.Thread(target=self._run, name="alert-notifier", daemon=True)
        self._thread.start()
        return self

    def restore(self, instances: Iterable[Instance]) -> None:
        """Alerts still firing from before a restart: they keep their alarms in ALARM until they resolve."""
        firing = [(i.rule, i.fingerprint, i.labels) for i in instances if i.state == "firing"]
        for target in self.targets:
            if id(target) in self._holders:
                self._holders[id(target)].restore(target, firing)

    def submit(self, notice: Notice) -> None:
        self._queue.put(notice)

    def close(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        stopping = False
        while not stopping and (notice := self._queue.get()) is not None:
            # everything already waiting goes out now, in order, and into the history in one insert: under load
            # alerts change with every stored batch, and an insert per notice was a visible share of the CPU
            batch = [notice]
            while not stopping:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                stopping = waiting is None
                if waiting is not None:
                    batch.append(waiting)
            try:
                self.send_all(batch)
            except Exception:  # recording failed (store down): the notifier must keep going
                log.exception("alert notifications failed: %s", ", ".join(f"{n.instance.rule}/{n.kind}" for n in batch))

    def send(self, notice: Notice) -> list[Delivery]:
        """Deliver to every target (or record why not) and write one history row per target."""
        return self.send_all([notice])[0]

    def send_all(self, notices: list[Notice]) -> list[list[Delivery]]:
        """``send`` for several notices, one after another, with their history rows written together."""
        results = [self._deliver_all(notice) for notice in notices]
        self.store.record_all([(notice, d) for notice, ds in zip(notices, results, strict=True) for d in ds])
        return results

    def _deliver_all(self, notice: Notice) -> list[Delivery]:
        if notice.silenced_by:
            return [Delivery("", "", "silenced", error=notice.silenced_by)]
        targets = [t for t in self.targets if notice.kind == "test" or t.wants(notice.instance.rule)]
        if not targets:
            return [Delivery("", "", "no_target", error="no webhook configured (FNSCOPE_ALERT_WEBHOOK_URL)")]
        body = payload(notice, self.base_url)
        return [self.deliver(target, body) for target in targets]

    def deliver(self, target: Target, body: dict[str, Any]) -> Delivery:
        if target.format == "cloudwatch_alarm":
            return set_alarm_state(target, body, target_label(target), self.cloudwatch, self._holders.get(id(target)))
        content = {"text": slack_text(body)} if target.format == "slack" else body
        started, attempts, status = time.perf_counter(), 0, 0

        def post() -> None:
            nonlocal attempts, status
            attempts += 1
            response = self._client.post(target.url, json=content)
            status = response.status_code
            if status == 429 or status >= 500:
                raise _Retryable(status, response.text)
            response.raise_for_status()  # other 4xx: the target refuses this payload; retrying won't help

        delivery = Delivery(target_label(target), target.format, "delivered")
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.25, max=5),
                retry=retry_if_exception_type((_Retryable, httpx.TransportError)),
                reraise=True,
            ):
                with attempt:
                    post()
        except (httpx.HTTPError, _Retryable, RetryError) as exc:
            delivery.delivery, delivery.error = "failed", str(exc) or type(exc).__name__
            log.warning("alert webhook %s failed after %d attempt(s): %s", delivery.target, attempts, exc)
        delivery.attempts, delivery.http_status = attempts, status
        delivery.delivery_ms = round((time.perf_counter() - started) * 1000, 1)
        return delivery
