"""`fnscope audit report --framework NAME` against a real `fnscope up` holding a known fixture set: per control, the
saved queries that serve it and exactly what they found; `--json` and `GET /api/audit/report` answer the same; an
unknown framework is refused with the known ones named. Also the assurance table itself: every saved query maps to
real controls of each framework it names.

The store holds what ``tests/test_audit_saved_fixtures.py`` pins query by query (the detonation techniques
``SAVED_TECHNIQUES`` and ``saved_records()``), so each count here is that file's exact set of hits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from click.testing import CliRunner

from fnscope.cli import main
from fnscope.dashboards.assurance import FRAMEWORKS, MAPPING
from fnscope.dashboards.saved_queries import BY_NAME, SAVED_QUERIES
from tests.conftest import start_fnscope_up
from tests.fixtures.cloudtrail_lambda import changes
from tests.fixtures.cloudtrail_saved import SAVED_TECHNIQUES, saved_records
from tests.fixtures.cloudtrail_set import technique
from tests.test_audit_saved_fixtures import CASES

RANGE = ["--since", "2024-07-25T00:00:00Z", "--until", "2024-09-01T00:00:00Z"]
GROUPED = {  # query -> (rows, events): the groups test_audit_saved_fixtures pins
    "console-login-failures": (1, 4),
    "access-denied-spike": (2, 25),  # 11 refused EC2 calls, 14 refused Lambda listings
    "new-region-activity": (1, 2),
}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("report")
    url, proc = start_fnscope_up(tmp / "data", tmp / "up.log")
    try:
        records = [r for name in SAVED_TECHNIQUES for r in technique(name)] + list(saved_records().values())
        # the Lambda changes again, as if made yesterday: what the default `--since 30d` sees
        yesterday = datetime.now(UTC) - timedelta(days=1)
        for n, (rec, _) in enumerate(changes().values()):
            recent = {**rec, "eventID": f"recent-{n}", "eventTime": (yesterday + timedelta(seconds=n)).isoformat()}
            records.append(recent)
        r = httpx.post(f"{url}/ingest/cloudtrail?wait=stored", content=orjson.dumps(records), timeout=120)
        assert r.status_code == 200 and r.json()["stored"] is True, r.text
        yield url
    finally:
        proc.stop()


def expected_count(name: str) -> tuple[int, int]:
    if name in GROUPED:
        return GROUPED[name]
    hits = len(CASES[name].hits)
    return hits, hits


def cli(*args: str) -> tuple[int, str]:
    out = CliRunner().invoke(main, ["audit", "report", *args], env={"COLUMNS": "400"})
    return out.exit_code, out.output


def test_every_mapped_control_is_a_control_of_its_framework() -> None:
    assert set(MAPPING) == set(BY_NAME)
    for name, mapped in MAPPING.items():
        assert set(mapped) <= set(FRAMEWORKS) and mapped.get("pci") and mapped.get("hipaa"), name
        for framework, ids in mapped.items():
            known = {c.id for c in FRAMEWORKS[framework].controls}
            assert set(ids) <= known and len(ids) == len(set(ids)), (name, framework, set(ids) - known)
    # each control id is written as its framework writes it
    patterns = {"cis": r"[1-5]\.\d{1,2}", "soc2": r"(CC[6-8]|A1)\.\d", "pci": r"10\.\d(\.\d){1,2}",
                "hipaa": r"164\.3\d\d\(.*"}  # fmt: skip
    for fw in FRAMEWORKS.values():
        assert all(re.fullmatch(patterns[fw.name], c.id) for c in fw.controls), fw.name
    # the saved queries' controls cite them, beside their other references
    assert "PCI DSS 10.2.1.4" in BY_NAME["console-login-failures"].controls
    assert "CIS AWS Foundations 4.3" in BY_NAME["root-account-usage"].controls
    assert "MITRE ATT&CK T1110" in BY_NAME["console-login-failures"].controls


def test_the_pci_report_prints_each_control_with_its_queries_and_exact_counts(url: str) -> None:
    code, output = cli("--framework", "pci", *RANGE, "--api", url)
    assert code == 0, output
    assert output.splitlines()[0].startswith("PCI DSS requirement 10")
    lines = [re.split(r"\s{2,}", line.strip()) for line in output.splitlines()]
    table = {(cells[0], cells[1]): cells[2] for cells in lines if len(cells) >= 3 and cells[0].startswith("10.")}
    expected = {}
    for control in FRAMEWORKS["pci"].controls:
        served = [name for name, mapped in MAPPING.items() if control.id in mapped.get("pci", ())]
        for name in served:
            rows, events = expected_count(name)
            expected[(control.id, name)] = f"{rows:,}" if rows == events else f"{rows:,} ({events:,} events)"
        if not served:
            expected[(control.id, "(no saved query)")] = control.title
    assert table == expected
    assert expected[("10.2.1.4", "access-denied-spike")] == "2 (25 events)"
    assert expected[("10.2.1.6", "cloudtrail-changes")] == "4"
    assert ("10.2.1.1", "(no saved query)") in table  # a gap is shown, not hidden
    # the newest rows of what was found, once per query
    assert "cloudtrail-changes: 4, newest first" in output
    assert output.count("lambda-function-changes: ") == 1


def test_json_is_the_api_answer_with_every_count(url: str) -> None:
    code, output = cli("--framework", "PCI", *RANGE, "--rows", "1", "--json", "--api", url)
    assert code == 0, output
    found = json.loads(output)
    assert found["framework"] == {"name": "pci", "title": FRAMEWORKS["pci"].title, "version": "v4.0"}
    assert [c["id"] for c in found["controls"]] == [c.id for c in FRAMEWORKS["pci"].controls]
    assert set(found["queries"]) == set(BY_NAME)  # every saved query serves 10.4.1.1
    for name, result in found["queries"].items():
        assert (result["rows"], result["events"]) == expected_count(name), name
        assert len(result["first"]) == 1
    assert found["queries"]["cloudtrail-changes"]["first"][0]["action"] == "StartLogging"  # the newest
    api = httpx.get(f"{url}/api/audit/report", params={"framework": "pci", "since": RANGE[1], "until": RANGE[3],
                                                        "rows": 1}, timeout=60).json()  # fmt: skip
    assert api == found


def test_the_default_range_is_the_last_30_days(url: str) -> None:
    found = httpx.get(f"{url}/api/audit/report", params={"framework": "soc2", "rows": 0}, timeout=60).json()
    assert found["queries"]["lambda-function-changes"]["rows"] == len(changes())
    assert found["queries"]["lambda-concurrency-changes"]["rows"] == 4
    assert found["queries"]["iam-policy-changes"]["rows"] == 0
    assert all(result["first"] == [] for result in found["queries"].values())


@pytest.mark.parametrize("framework", ["cis", "soc2", "hipaa"])
def test_each_framework_lists_its_controls_and_only_the_queries_mapped_to_it(url: str, framework: str) -> None:
    found = httpx.get(f"{url}/api/audit/report", params={"framework": framework, "since": RANGE[1],
                                                         "until": RANGE[3], "rows": 0}, timeout=60).json()  # fmt: skip
    mapped = {name for name, fws in MAPPING.items() if framework in fws}
    assert set(found["queries"]) == mapped
    for control in found["controls"]:
        assert all(control["id"] in MAPPING[name][framework] for name in control["queries"])


def test_an_unknown_framework_is_refused_naming_the_known_ones(url: str) -> None:
    code, output = cli("--framework", "iso27001", "--api", url)
    assert code == 1
    assert "framework: unknown 'iso27001'; known: cis, soc2, pci, hipaa" in output
    r = httpx.get(f"{url}/api/audit/report", params={"framework": "nist"}, timeout=60)
    assert r.status_code == 400 and "known: cis, soc2, pci, hipaa" in r.json()["detail"]
    assert httpx.get(f"{url}/api/audit/report", timeout=60).status_code == 422  # framework is required
    assert len(SAVED_QUERIES) == len(MAPPING)
