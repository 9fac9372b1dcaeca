"""compose.yaml wiring. There is no Docker engine here (STACK.md), so the file is parsed and checked, not run:
every fnscope role's command must parse with the real CLI and point at services that exist, on their ports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fnscope.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_stack_has_every_component_with_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "clickhouse", "grafana", "collector", "processor", "api"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    for name in ("kafka", "clickhouse", "grafana", "collector", "api"):
        assert services[name]["healthcheck"]["test"], f"{name} needs a healthcheck"
    for name in ("kafka", "clickhouse", "grafana"):
        volume = services[name]["volumes"][0].split(":")[0]
        assert volume in compose["volumes"], f"{name} keeps its data in a named volume"


def test_roles_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["collector"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["processor"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["processor"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert services["processor"]["deploy"]["replicas"] >= 2, "processors scale out as a consumer group"


@pytest.mark.parametrize("role", ["collector", "processor", "api"])
def test_role_commands_parse_and_point_at_real_services(compose: dict[str, Any], role: str) -> None:
    services = compose["services"]
    command = services[role]["command"]
    assert command[0] == role
    main.make_context("fnscope", list(command))  # the real CLI accepts these arguments
    if "--kafka" in command:
        host, port = _arg(command, "--kafka").split(":")
        assert host in services
        assert f"PLAINTEXT://{host}:{port}" == services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    if "--clickhouse" in command:
        url = _arg(command, "--clickhouse")
        match = re.match(r"http://(\w+):[^@]+@(\w+):(\d+)/(\w+)$", url)
        assert match, url
        user, host, port, db = match.groups()
        env = services["clickhouse"]["environment"]
        assert host == "clickhouse" and f"{port}:{port}" in services["clickhouse"]["ports"]
        assert (user, db) == (env["CLICKHOUSE_USER"], env["CLICKHOUSE_DB"])
    if "--port" in command:
        port = _arg(command, "--port")
        assert f"{port}:{port}" in services[role]["ports"]
        assert f"localhost:{port}/readyz" in " ".join(services[role]["healthcheck"]["test"])
        assert _arg(command, "--host") == "0.0.0.0"
        assert "FNSCOPE_TOKENS" in services[role]["environment"], "a non-loopback bind requires tokens"


def test_image_installs_the_wheel(compose: dict[str, Any]) -> None:
    """The image's runtime stage installs the wheel built from the source, and nothing copied beside it."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    assert len(stages) == 2, "a build stage for the wheel, then the runtime image"
    build, runtime = stages
    assert re.search(r"^RUN pip wheel .*--no-deps .*\.$", build, re.M)
    assert re.findall(r"^COPY (.*)$", runtime, re.M) == ["--from=wheel /dist/ /dist/"]
    assert re.search(r"^RUN pip install .*/dist/fnscope-\*\.whl", runtime, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "fnscope-data", ".git"} <= set(ignored)
    assert compose["services"]["collector"]["build"] == "."


def test_clickhouse_server_is_the_release_the_tests_run_and_plugins_are_pinned(compose: dict[str, Any]) -> None:
    """compose's ClickHouse server runs the engine chDB runs here (the schema uses that release's syntax, the
    `text` index among it): major.minor must agree. Grafana's plugin is pinned to a version."""
    import chdb

    engine = chdb.query("SELECT version()", "CSV").bytes().decode().strip().strip('"')
    image = compose["services"]["clickhouse"]["image"]
    assert image.startswith("clickhouse/clickhouse-server:")
    assert image.rsplit(":", 1)[1].split(".")[:2] == engine.split(".")[:2], (image, engine)
    plugins = compose["services"]["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    assert re.fullmatch(r"grafana-clickhouse-datasource \d+\.\d+\.\d+", plugins), plugins


def test_the_processor_has_a_health_endpoint_and_a_healthcheck(compose: dict[str, Any]) -> None:
    processor = compose["services"]["processor"]
    port = processor["environment"]["FNSCOPE_METRICS_PORT"]
    assert f"localhost:{port}/readyz" in " ".join(processor["healthcheck"]["test"])
    assert processor["environment"]["FNSCOPE_TOKENS"]  # the shared settings still apply
