"""Versioned schema migrations: one module per version, ``vNNN_what.py``, applied in order by ``schema.migrate``.

Each module has ``DESCRIPTION: str`` and ``statements(retention)``: idempotent DDL (``CREATE ... IF NOT EXISTS``,
``ADD COLUMN IF NOT EXISTS``), or steps ``(client) -> None`` that look at the store before they change it, so a
half-applied migration can run again.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from fnscope.processors.retention import Retention

_NAME = re.compile(r"^v(\d{3})_\w+$")


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: Callable[[Retention], list[str | Callable[[Client], None]]]


def all_migrations() -> list[Migration]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        match = _NAME.match(info.name)
        if match:
            module = importlib.import_module(f"{__name__}.{info.name}")
            found.append(Migration(int(match.group(1)), module.DESCRIPTION, module.statements))
    versions = [m.version for m in found]
    assert len(versions) == len(set(versions)), f"two migrations share a version: {sorted(versions)}"
    return sorted(found, key=lambda m: m.version)
