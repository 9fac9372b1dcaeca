"""`fnscope dashboards deploy` through grafana-client, at the HTTP level.

STAND-IN: no Grafana server can be installed here (STACK.md), so this test runs a small stand-in for the
Grafana HTTP API on 127.0.0.1 (http.server): only the endpoints deploy uses, keeping what it is sent in
memory, answering 404 for what does not exist and 409 for a uid created twice, as Grafana does. It records
every call, so the test can assert what deploy created and that a second deploy changes nothing.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from fnscope.cli import main
from fnscope.dashboards import alert_rules, grafana
from fnscope.dashboards.panels import DASHBOARDS

TOKEN = "glsa_test_token"


@dataclass
class FakeGrafanaState:
    calls: list[tuple[str, str]] = field(default_factory=list)
    auth: set[str] = field(default_factory=set)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    contact_points: dict[str, dict[str, Any]] = field(default_factory=dict)

    def writes(self) -> list[tuple[str, str]]:
        return [call for call in self.calls if call[0] != "GET"]


def _handler(state: FakeGrafanaState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length)) if length else None

        def _route(self, method: str) -> None:
            state.calls.append((method, self.path))
            state.auth.add(self.headers.get("Authorization", ""))
            path, body = self.path.split("?")[0], self._body() if method in ("POST", "PUT") else None
            store, key = self._store(path)
            if store is None:
                return self._send(404, {"message": f"stand-in has no {method} {path}"})
            if method == "GET":
                if key is None:  # a list (contact points)
                    return self._send(200, list(store.values()))
                if key not in store:
                    return self._send(404, {"message": "not found"})
                item = store[key]
                if store is state.dashboards:
                    return self._send(200, {"dashboard": item["dashboard"], "meta": {"folderUid": item["folderUid"]}})
                return self._send(200, item)
            if method == "POST":
                if store is state.dashboards:
                    uid = body["dashboard"]["uid"]
                    version = state.dashboards.get(uid, {}).get("dashboard", {}).get("version", 0) + 1
                    state.dashboards[uid] = {
                        "dashboard": {**body["dashboard"], "id": 7, "version": version},
                        "folderUid": body["folderUid"],
                    }
                    return self._send(200, {"uid": uid, "status": "success", "version": version})
                if body["uid"] in store:
                    return self._send(409, {"message": "already exists"})
                store[body["uid"]] = {**body, "id": len(store) + 1}
                return self._send(200 if store is not state.rules else 201, store[body["uid"]])
            if method == "PUT" and key in store:
                store[key] = {**store[key], **body}
                return self._send(200, store[key])
            return self._send(404, {"message": "not found"})

        def _store(self, path: str) -> tuple[dict[str, Any] | None, str | None]:
            routes = [
                (r"/api/datasources(?:/uid/([^/]+))?", state.datasources),
                (r"/api/folders(?:/([^/]+))?", state.folders),
                (r"/api/dashboards/(?:uid/([^/]+)|db)", state.dashboards),
                (r"/api/v1/provisioning/alert-rules(?:/([^/]+))?", state.rules),
                (r"/api/v1/provisioning/contact-points(?:/([^/]+))?", state.contact_points),
            ]
            for pattern, store in routes:
                match = re.fullmatch(pattern, path)
                if match:
                    return store, match.group(1)
            return None, None

        def do_GET(self) -> None:  # noqa: N802
            self._route("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._route("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._route("PUT")

    return Handler


@pytest.fixture
def fake_grafana() -> Iterator[tuple[str, FakeGrafanaState]]:
    state = FakeGrafanaState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def _deploy(url: str, *extra: str) -> None:
    args = ["dashboards", "deploy", "--grafana-url", url, "--grafana-token", TOKEN]
    args += ["--clickhouse", "http://fnscope:pw@clickhouse:8123/fnscope", "--webhook-url", "http://hooks.test/a"]
    main.main([*args, *extra], standalone_mode=False)


def test_deploy_creates_everything_then_changes_nothing(fake_grafana: tuple[str, FakeGrafanaState]) -> None:
    url, state = fake_grafana
    _deploy(url)
    assert state.auth == {f"Bearer {TOKEN}"}
    (source,) = state.datasources.values()
    assert source["uid"] == grafana.DATASOURCE_UID and source["type"] == grafana.PLUGIN
    assert source["jsonData"]["host"] == "clickhouse" and source["secureJsonData"] == {"password": "pw"}
    assert set(state.folders) == {grafana.FOLDER_UID}
    assert set(state.dashboards) == {board.uid for board in DASHBOARDS}
    assert all(d["folderUid"] == grafana.FOLDER_UID for d in state.dashboards.values())
    assert set(state.rules) == {rule["uid"] for rule in alert_rules.grafana_rules()}
    for rule in state.rules.values():
        assert rule["folderUID"] == grafana.FOLDER_UID
        assert rule["notification_settings"] == {"receiver": alert_rules.CONTACT_POINT}
    (point,) = state.contact_points.values()
    assert point["type"] == "webhook" and point["settings"] == {"url": "http://hooks.test/a"}
    first_writes = state.writes()
    assert len(first_writes) == 1 + 1 + len(DASHBOARDS) + len(state.rules) + 1

    state.calls.clear()
    _deploy(url)
    assert state.writes() == [], "a second deploy changes nothing"
    assert len(state.dashboards) == len(DASHBOARDS) and len(state.contact_points) == 1
    assert all(d["dashboard"]["version"] == 1 for d in state.dashboards.values())


def test_deploy_updates_only_what_changed(fake_grafana: tuple[str, FakeGrafanaState]) -> None:
    url, state = fake_grafana
    _deploy(url)
    state.dashboards["fnscope-api"]["dashboard"]["title"] = "edited by hand"
    state.calls.clear()
    main.main(
        [
            "dashboards", "deploy", "--grafana-url", url, "--grafana-token", TOKEN,
            "--clickhouse", "http://fnscope:pw@clickhouse:8123/fnscope", "--webhook-url", "http://hooks.test/b",
        ],
        standalone_mode=False,
    )  # fmt: skip
    assert sorted(state.writes()) == sorted(
        [
            ("POST", "/api/dashboards/db"),
            ("PUT", f"/api/v1/provisioning/contact-points/{alert_rules.CONTACT_POINT_UID}"),
        ]
    )
    assert state.dashboards["fnscope-api"]["dashboard"]["title"] == "fnscope: API"
    assert state.contact_points[alert_rules.CONTACT_POINT_UID]["settings"] == {"url": "http://hooks.test/b"}


def test_deploy_says_what_is_wrong(fake_grafana: tuple[str, FakeGrafanaState]) -> None:
    import click

    url, state = fake_grafana
    with pytest.raises(click.ClickException, match="expected http"):
        main.main(
            ["dashboards", "deploy", "--grafana-url", url, "--grafana-token", TOKEN, "--clickhouse", "chdb:///x"],
            standalone_mode=False,
        )
    assert state.writes() == []
    with pytest.raises(click.ClickException, match="127.0.0.1:1"):
        main.main(["dashboards", "deploy", "--grafana-url", "http://127.0.0.1:1", "--grafana-token", TOKEN],
                  standalone_mode=False)  # fmt: skip
