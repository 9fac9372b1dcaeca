"""Where the third-party sample corpus is, if anywhere, and what a corpus test does without it.

The corpus (real payloads from public repositories, each folder naming its source and licence) is not part of
this repository. Tests that read it run when it is there: at ``$FNSCOPE_SAMPLES``, or at ``../shared/samples``
beside the checkout as on this team's machines. Without it they are skipped with the reason in pytest's summary
and a line at the end of the run; with ``FNSCOPE_SAMPLES`` set to a folder that does not exist they fail, so a
CI run that expects the corpus can't pass quietly without it. Every behaviour those tests pin is also pinned by a
fixture in ``tests/fixtures``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGURED = os.environ.get("FNSCOPE_SAMPLES", "")
SAMPLES = Path(CONFIGURED) if CONFIGURED else ROOT.parent / "shared" / "samples"
PRESENT = SAMPLES.is_dir()
MISSING = f"third-party sample corpus not found at {SAMPLES} (set FNSCOPE_SAMPLES to run the corpus tests)"


def require() -> Path:
    """The corpus folder; skips the calling test without it, or fails it when FNSCOPE_SAMPLES names no folder."""
    if PRESENT:
        return SAMPLES
    if CONFIGURED:
        pytest.fail(f"FNSCOPE_SAMPLES={CONFIGURED} is not a folder: the corpus tests were expected to run")
    pytest.skip(MISSING)


# For module-level use: pytestmark = corpus.needed, and parametrize only over files that exist.
needed = pytest.mark.corpus


def each(paths: list[Path]) -> list[object]:
    """Parameters over corpus files: the files, or without the corpus one parameter that skips (fails if expected)."""
    if PRESENT:
        return list(paths)
    return [pytest.param(None, marks=needed, id="no-corpus")]
