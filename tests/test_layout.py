"""The package's shape: one import root, layers that point one way, no import circles, and a wheel that ships
exactly the product (every module, the console's files, the provisioning files, every migration; no test tooling).

The import graph is read from the source (every ``import`` statement, those inside functions too), so a lazy
import can't hide an arrow that points the wrong way.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from fnscope.app.settings import Settings
from fnscope.audit_chain import CONTENT_SQL
from fnscope.cli import main
from fnscope.processors.migrations import v002_health, v008_audit_versions
from fnscope.store import LEVELS
from tests.conftest import free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]

# What each part may import besides itself and the core. The core is every module of fnscope/ outside the roof.
COMPONENTS: dict[str, set[str]] = {
    "fnscope.collector": set(),
    "fnscope.processors": set(),
    "fnscope.alerts": set(),
    "fnscope.simulator": set(),
    "fnscope.console": set(),
    "fnscope.deploy": set(),
    "fnscope.dashboards": {"fnscope.alerts"},
    "fnscope.query": {"fnscope.alerts", "fnscope.dashboards"},
}
ROOF = ("fnscope.app", "fnscope.cli")


def _modules() -> dict[str, Path]:
    """Every module of the product, by import name, from the folders pyproject maps onto import paths."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGE_DIRS.items():
        base = ROOT / folder
        for path in base.rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The fnscope modules ``name`` imports (a ``from X import y`` counts as X.y when X.y is a module)."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    return {target for target in out if target in MODULES and target != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _part(module: str) -> str:
    for prefix in (*COMPONENTS, *ROOF):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return "core"


def test_every_module_imports_as_fnscope() -> None:
    assert all(name == "fnscope" or name.startswith("fnscope.") for name in MODULES)
    assert set(PACKAGE_DIRS) == {"fnscope", *COMPONENTS}
    # the design card's top-level folders are still where it puts them
    for folder in ("collector", "processors", "dashboards", "tests"):
        assert (ROOT / folder).is_dir()
    assert (ROOT / "compose.yaml").is_file()


def test_layers_point_one_way() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        part = _part(module)
        if part in ROOF:
            continue
        allowed = {"core", part} | COMPONENTS.get(part, set())
        wrong += [f"{module} -> {target}" for target in sorted(targets) if _part(target) not in allowed]
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_circles() -> None:
    """Tarjan's strongly connected components over the module graph: every component must be one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                circles.append(sorted(members))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in GRAPH:
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


def test_migrations_keep_their_own_copies_of_shared_definitions() -> None:
    """Migrations are frozen, so they keep literals; what the runtime uses must be the same: the quantile levels
    (v002) and the audit content hash (v008, which the hash chain seals)."""
    assert v002_health.LEVELS == LEVELS
    assert v008_audit_versions.CONTENT_SQL == CONTENT_SQL


def test_every_setting_is_described_and_listed_by_help() -> None:
    """Each component's settings carry their documentation, which the server commands' --help shows."""
    undocumented = []

    def walk(model: type[BaseModel], path: str) -> None:
        for name, info in model.model_fields.items():
            if not info.description:
                undocumented.append(f"{path}{name}")
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
                walk(info.annotation, f"{path}{name}.")

    walk(Settings, "")
    assert not undocumented
    shown = CliRunner().invoke(main, ["up", "--help"], terminal_width=200).output
    assert "FNSCOPE_LIMITS__MAX_FIELD_CHARS [262144]: longer strings" in shown
    assert "FNSCOPE_RETENTION__AUDIT [2555]: audit events" in shown


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel built from a clean copy of the source (no build/ left over from an earlier build can leak in)."""
    source, out = tmp_path_factory.mktemp("source") / "fnscope", tmp_path_factory.mktemp("wheel")
    leftovers = ("build", "dist", "*.egg-info", ".git", ".venv", "fnscope-data", "__pycache__", "test-artifacts")
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*leftovers))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        cwd=out,
    )
    (built,) = out.glob("fnscope-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_has_one_top_level_package_and_everything_it_needs(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"fnscope"}
    shipped = {name.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for name in names}
    missing = sorted(module for module in MODULES if module not in shipped)
    assert not missing, f"modules left out of the wheel: {missing}"
    for folder in ("console/static", "dashboards/provisioning", "deploy/aws"):
        package = f"fnscope/{folder}"
        files = sorted(p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("*") if p.is_file())
        assert files, folder
        absent = [f for f in files if f"{package}/{f}" not in names]
        assert not absent, f"{folder} files left out of the wheel: {absent}"
    assert not any(name.startswith(("faults/", "bench/", "tests/", "fnscope/faults")) for name in names)


def test_only_fnscope_is_importable_from_an_installed_wheel(wheel: zipfile.ZipFile, tmp_path: Path) -> None:
    """Installed alone (no source tree on the path), the wheel answers to fnscope.* and to nothing else."""
    target = tmp_path / "site"
    wheel.extractall(target)
    probe = (
        "import importlib.util, sys; "
        "import fnscope.app.roles, fnscope.query.api, fnscope.dashboards.panels, fnscope.console; "
        "print(fnscope.console.STATIC.is_dir(), "
        "[n for n in ('collector','processors','query','dashboards','alerts','simulator','faults','console') "
        "if importlib.util.find_spec(n)])"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert result.stdout.strip() == "True []"


def test_every_role_starts_from_the_installed_wheel(wheel: zipfile.ZipFile, broker: str, tmp_path: Path) -> None:
    """What the image does: the wheel installed in a fresh venv outside the source tree (its dependencies taken
    from this environment's site-packages, as the image's pip would install them), and each role started from it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel.filename)]
    subprocess.run(pip, check=True, cwd=tmp_path)
    fnscope = str(venv / "bin" / "fnscope")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    ports = {"collector": free_port(), "api": free_port(), "processor": free_port()}
    roles = {
        "collector": [fnscope, "collector", "--kafka", broker, "--port", str(ports["collector"])],
        "api": [fnscope, "api", "--clickhouse", f"chdb://{tmp_path / 'api-store'}", "--port", str(ports["api"])],
        "processor": [fnscope, "processor", "--kafka", broker, "--clickhouse", f"chdb://{tmp_path / 'store'}"],
    }
    started = []
    try:
        for name, args in roles.items():
            role_env = {**env, "FNSCOPE_METRICS_PORT": str(ports["processor"])} if name == "processor" else env
            process = subprocess.Popen(args, cwd=tmp_path, env=role_env, stdout=open(tmp_path / f"{name}.log", "wb"),
                                       stderr=subprocess.STDOUT)  # fmt: skip
            started.append(process)
        for port in ports.values():
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout=90)
            wait_http(f"http://127.0.0.1:{port}/readyz", timeout=90)
        assert httpx.get(f"http://127.0.0.1:{ports['api']}/").status_code == 200  # the console's files came along
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
