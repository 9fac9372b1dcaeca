"""`fnscope import cloudtrail` and the audit commands end to end: a real `fnscope up`, the CLI as a user runs
it, the real detonation records laid out as CloudTrail delivers them to S3 (gzip, `{"Records": [...]}`,
`AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/`), with a CloudTrail digest file beside them."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import FNSCOPE, ROOT, Process, start_fnscope_up
from tests.fixtures.cloudtrail_set import ACCOUNT, REGION
from tests.test_audit_support import FIXTURE_SET, chdb_store, derive, rewrite

technique = FIXTURE_SET.technique
FILES, EVENTS = len(FIXTURE_SET.techniques), len(FIXTURE_SET.all_records())

SEAL_ENV = {"FNSCOPE_AUDIT_SEAL_WINDOW_S": "0.5", "FNSCOPE_AUDIT_SEAL_SETTLE_S": "0.2"}


def start_up(data: Path, log: Path, env: dict[str, str] | None = None) -> tuple[str, Process]:
    """`fnscope up` sealing audit windows within a second, so verify has digests to check."""
    return start_fnscope_up(data, log, {**SEAL_ENV, **(env or {})})


def cli(url: str, *args: str, token: str = "") -> subprocess.CompletedProcess[str]:
    env = {"FNSCOPE_API": url, "PATH": "", **({"FNSCOPE_TOKEN": f"tok-{token}"} if token else {})}
    return subprocess.run([*FNSCOPE, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def s3_key(records: list[dict[str, Any]], n: int) -> str:
    first = records[0]
    account, region = first["recipientAccountId"], first["awsRegion"]
    t = datetime.fromisoformat(first["eventTime"].replace("Z", "+00:00"))
    return (
        f"AWSLogs/{account}/CloudTrail/{region}/{t:%Y/%m/%d}/"
        f"{account}_CloudTrail_{region}_{t:%Y%m%dT%H%MZ}_{n:016x}.json.gz"
    )


def build_tree(root: Path) -> tuple[list[str], list[Path]]:
    """Every detonation file as a delivered log file, and a digest covering two of them. (event ids, log files)"""
    ids: list[str] = []
    logs: list[Path] = []
    for n, name in enumerate(FIXTURE_SET.techniques):
        records = technique(name)
        ids += [r["eventID"] for r in records]
        target = root / s3_key(records, n)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.compress(orjson.dumps({"Records": records})))
        logs.append(target)
    digest = {
        "awsAccountId": ACCOUNT,
        "digestStartTime": "2024-08-01T13:00:00Z",
        "digestEndTime": "2024-08-01T14:00:00Z",
        "digestS3Bucket": "trail-bucket",
        "digestSignatureAlgorithm": "SHA256withRSA",
        "logFiles": [
            {
                "s3Bucket": "trail-bucket",
                "s3Object": str(log.relative_to(root)),
                "hashValue": hashlib.sha256(gzip.decompress(log.read_bytes())).hexdigest(),
                "hashAlgorithm": "SHA-256",
            }
            for log in logs[:2]
        ],
    }
    digest_path = root / f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/{REGION}/2024/08/01/digest.json.gz"
    digest_path.parent.mkdir(parents=True)
    digest_path.write_bytes(gzip.compress(orjson.dumps(digest)))
    return ids, logs


TOKENS = ("import", "digest", "correction", "outputs", "small")


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `fnscope up` for the module; each test is its own tenant (token `tok-<name>`), so its own data."""
    tmp = tmp_path_factory.mktemp("up")
    env = {"FNSCOPE_TOKENS": ",".join(f"tok-{name}:{name}" for name in TOKENS)}
    url, proc = start_up(tmp / "data", tmp / "up.log", env)
    yield url
    proc.stop()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer tok-{token}"} if token else {}


def all_audit(url: str, token: str) -> list[dict[str, Any]]:
    params = {"since": "20000d", "limit": 100_000}
    return httpx.get(f"{url}/api/audit", params=params, headers=_auth(token), timeout=60).json()["results"]


def wait_sealed(url: str, token: str = "", timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        report = httpx.get(f"{url}/api/audit/verify", headers=_auth(token), timeout=60).json()
        if report["unsealed_events"] == 0 and report["digests"] > 0 or time.monotonic() > deadline:
            return report
        time.sleep(0.3)


def test_import_tree_twice_doubles_nothing_and_checks_the_digest(instance: str, tmp_path: Path) -> None:
    url, t = instance, "import"
    tree = tmp_path / "bucket"
    ids, _ = build_tree(tree)
    outside = tmp_path / "elsewhere.json"
    outside.write_bytes(orjson.dumps([derive(technique("defense-evasion.cloudtrail-stop")[0])]))
    (tree / "AWSLogs" / "link.json").symlink_to(outside)  # points out of the tree: not followed

    first = cli(url, "import", "cloudtrail", str(tree), "--json", token=t)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["files"] == FILES and summary["events"] == EVENTS and summary["rejected"] == 0
    assert summary["new_versions"] == EVENTS
    assert summary["digests"] == 1 and summary["digest_log_files_verified"] == 2
    assert summary["digest_log_files_mismatched"] == [] and summary["failed"] == {}
    assert any("link.json" in s for s in summary["skipped"])
    assert sorted(r["event_id"] for r in all_audit(url, t)) == sorted(ids)

    again = cli(url, "import", "cloudtrail", str(tree), "--quiet", token=t)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"added nothing new: the {EVENTS} events from {FILES} files"), again.stdout
    assert sorted(r["event_id"] for r in all_audit(url, t)) == sorted(ids)  # nothing twice

    report = wait_sealed(url, t)
    assert report["ok"] and report["unsealed_events"] == 0, report


def test_a_log_file_changed_after_delivery_fails_its_digest(instance: str, tmp_path: Path) -> None:
    url, t = instance, "digest"
    tree = tmp_path / "bucket"
    _, logs = build_tree(tree)
    records = orjson.loads(gzip.decompress(logs[1].read_bytes()))
    records["Records"][0]["sourceIPAddress"] = "192.0.2.66"
    logs[1].write_bytes(gzip.compress(orjson.dumps(records)))
    result = cli(url, "import", "cloudtrail", str(tree), "--quiet", token=t)
    assert result.returncode == 1
    assert "verified 1, mismatched 1" in result.stdout
    assert f"MISMATCH {logs[1]}" in result.stderr


def test_a_correction_is_shown_with_the_event_it_corrects_in_either_order(instance: str, tmp_path: Path) -> None:
    url, t = instance, "correction"
    original = technique("persistence.lambda-overwrite-code")[0]
    correction = derive(
        original,
        sourceIPAddress="192.0.2.10",
        addendum={"reason": "UPDATED_DATA", "updatedFields": "sourceIPAddress", "originalEventID": original["eventID"]},
    )
    (tmp_path / "late").mkdir()
    (tmp_path / "late" / "correction.json").write_bytes(orjson.dumps({"Records": [correction]}))
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "original.json.gz").write_bytes(gzip.compress(orjson.dumps({"Records": [original]})))
    # the correction arrives first, the original after it: both are shown, linked, whichever came first
    assert cli(url, "import", "cloudtrail", str(tmp_path / "late"), "--quiet", token=t).returncode == 0
    assert cli(url, "import", "cloudtrail", str(tmp_path / "first"), "--quiet", token=t).returncode == 0

    expected = {
        (original["eventID"], original["sourceIPAddress"], "", (correction["eventID"],)),
        (correction["eventID"], "192.0.2.10", original["eventID"], ()),
    }

    def shown(lines: str) -> set[tuple[str, str, str, tuple[str, ...]]]:
        rows = [json.loads(line) for line in lines.splitlines()]
        return {(r["event_id"], r["source_ip"], r["corrects"], tuple(r["corrected_by"])) for r in rows}

    run = cli(url, "audit", "run", "lambda-code-changes", "--since", "20000d", "--json", token=t)
    assert run.returncode == 0, run.stderr
    assert shown(run.stdout) == expected
    listed = cli(url, "audit", "--action", "UpdateFunctionCode", "--since", "20000d", "--json", token=t)
    assert shown(listed.stdout) == expected
    # the same through the principal and resource lookups
    function = original["requestParameters"]["functionName"].rsplit(":", 1)[-1]
    for flag, value in (("--principal", original["userIdentity"]["userName"]), ("--resource", function)):
        found = cli(url, "audit", flag, value, "--since", "20000d", "--json", token=t)
        assert shown(found.stdout) == expected, flag


def _cloudtrail_requests(url: str) -> float:
    metrics = httpx.get(f"{url}/metrics").text
    match = re.search(r'^fnscope_received_requests_total\{[^}]*format="cloudtrail"[^}]*\} (\S+)$', metrics, re.M)
    return float(match.group(1)) if match else 0.0


def test_small_files_travel_together_and_a_bad_one_is_still_named(instance: str, tmp_path: Path) -> None:
    """One record per file, as CloudTrail often delivers, plain and gzip mixed, one file corrupt."""
    url, t = instance, "small"
    records = [derive(r) for _ in range(7) for r in FIXTURE_SET.all_records()]  # ~300 files
    day = tmp_path / "AWSLogs/111122223333/CloudTrail/us-east-1/2024/08/01"
    day.mkdir(parents=True)
    for n, record in enumerate(records):
        body = orjson.dumps({"Records": [record]})
        if n % 2:
            (day / f"{n:04d}.json.gz").write_bytes(gzip.compress(body))
        else:
            (day / f"{n:04d}.json").write_bytes(body)
    corrupt = day / "0150-corrupt.json.gz"
    corrupt.write_bytes(gzip.compress(b'{"Records": [')[:-8] + b"garbage!")
    before = _cloudtrail_requests(url)

    result = cli(url, "import", "cloudtrail", str(tmp_path / "AWSLogs"), "--json", token=t)
    summary = json.loads(result.stdout)
    assert result.returncode == 1  # a file failed
    assert list(summary["failed"]) == [str(corrupt)]
    assert summary["files"] == len(records) and summary["events"] == len(records)
    assert sorted(r["event_id"] for r in all_audit(url, t)) == sorted(r["eventID"] for r in records)
    assert _cloudtrail_requests(url) - before < len(records) / 10  # a few requests, not one per file


def test_audit_outputs_and_saved_queries_through_the_cli(instance: str, tmp_path: Path) -> None:
    url, t = instance, "outputs"
    tree = tmp_path / "bucket"
    build_tree(tree)
    assert cli(url, "import", "cloudtrail", str(tree), "--quiet", token=t).returncode == 0

    as_csv = cli(url, "audit", "--principal", "ci-runner", "--failed", "--since", "20000d", "--csv", token=t)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == 2 and all(r["error_code"] == "AccessDenied" and "ci-runner" in r["principal_arn"] for r in rows)
    by_resource = cli(url, "audit", "--resource", "image-resize", "--since", "20000d", "--json", token=t)
    assert [json.loads(line)["action"] for line in by_resource.stdout.splitlines()] == ["AddPermission20150331v2"]

    listing = cli(url, "audit", "queries", "--json", token=t)
    names = {q["name"] for q in json.loads(listing.stdout)}
    assert len(names) >= 15 and "console-login-without-mfa" in names
    spike = cli(
        url, "audit", "run", "access-denied-spike", "--since", "20000d", "--param", "threshold=10", "--json", token=t
    )
    assert len(spike.stdout.splitlines()) == 1
    missing = httpx.get(f"{url}/api/audit/queries/no-such-query", headers=_auth(t))
    assert missing.status_code == 404 and "no saved query" in missing.text


def test_verify_through_the_cli_names_an_event_edited_in_the_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    url, proc = start_up(data, tmp_path / "up.log")
    try:
        tree = tmp_path / "bucket"
        build_tree(tree)
        assert cli(url, "import", "cloudtrail", str(tree), "--quiet").returncode == 0
        assert wait_sealed(url)["ok"]
        clean = cli(url, "audit", "verify")
        assert clean.returncode == 0 and "intact" in clean.stdout
    finally:
        assert proc.stop() == 0
    victim = technique("persistence.lambda-overwrite-code")[0]["eventID"]
    with chdb_store(data / "store") as client:  # `up` is stopped: the store is ours to edit
        rewrite(client, "audit_events", "default", victim, source_ip="198.51.100.1")
    url, proc = start_up(data, tmp_path / "up2.log")
    try:
        result = cli(url, "audit", "verify")
        assert result.returncode == 1
        assert "TAMPERED" in result.stdout and victim in result.stdout and "changed" in result.stdout
    finally:
        proc.stop()
