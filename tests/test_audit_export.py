"""The evidence bundle, as an auditor receives it from a real `fnscope up` signing with Ed25519: it verifies with
fnscope and with the plain tools its VERIFY.md names (sha256sum, openssl), and any hand edit makes it fail, even one
whose author also rewrote SHA256SUMS."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fnscope.cli import main
from fnscope.cli.audit_bundle import SUMS
from tests.conftest import all_stored, start_fnscope_up
from tests.fixtures import cloudtrail_set


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("export")
    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp / "signing.pem").write_bytes(key)
    env = {
        "FNSCOPE_AUDIT_SIGNING_KEY": str(tmp / "signing.pem"),
        "FNSCOPE_AUDIT_SEAL_WINDOW_S": "0.5",
        "FNSCOPE_AUDIT_SEAL_SETTLE_S": "0.2",
    }
    url, proc = start_fnscope_up(tmp / "data", tmp / "up.log", env)
    try:
        records = cloudtrail_set.all_records()
        formula = {**records[0], "eventID": "formula-1"}
        formula["userIdentity"] = {**formula["userIdentity"], "userName": "=HYPERLINK(1)"}
        forged = {**records[0], "sourceIPAddress": "198.51.100.66"}  # a second version of the first event
        for body in (records, [formula], [forged]):
            assert httpx.post(f"{url}/ingest/cloudtrail", content=orjson.dumps(body), timeout=60).status_code == 200
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            report = httpx.get(f"{url}/api/audit/verify", timeout=60).json()
            if report["unsealed_events"] == 0 and report["digests"] > 0:
                break
            time.sleep(0.3)
        out = CliRunner().invoke(main, ["audit", "export", "--api", url, "--since", "20000d", str(tmp / "bundle")])
        assert out.exit_code == 0, out.output
        assert "not sealed yet" not in out.output  # everything was sealed: nothing left out
        yield tmp / "bundle"
    finally:
        proc.stop()


def check(directory: Path) -> tuple[int, str]:
    out = CliRunner().invoke(main, ["audit", "verify", "--bundle", str(directory)])
    return out.exit_code, out.output


def test_the_bundle_holds_every_version_and_verifies(bundle: Path) -> None:
    code, output = check(bundle)
    assert code == 0 and "bundle intact" in output and "verified with public_key.pem" in output, output
    events = [json.loads(line) for line in (bundle / "events.jsonl").read_text().splitlines()]
    first = cloudtrail_set.all_records()[0]["eventID"]
    assert sorted(e["version"] for e in events if e["event_id"] == first) == [1, 2]
    assert len(events) == len(cloudtrail_set.all_records()) + 2
    assert {p.name for p in (bundle / "queries").iterdir()} >= {"lambda-code-changes.json", "root-account-usage.json"}
    rows = list(csv.DictReader((bundle / "events.csv").open()))
    assert [r["principal_name"] for r in rows if r["event_id"] == "formula-1"] == ["'=HYPERLINK(1)"]


def test_the_plain_tools_of_verify_md_check_it(bundle: Path) -> None:
    steps = (bundle / "VERIFY.md").read_text()
    assert "sha256sum -c SHA256SUMS" in steps and "openssl pkeyutl -verify" in steps
    assert subprocess.run(["sha256sum", "-c", SUMS], cwd=bundle, capture_output=True).returncode == 0
    digest = json.loads((bundle / "digests.jsonl").read_text().splitlines()[0])
    work = bundle.parent / "openssl"
    work.mkdir(exist_ok=True)
    (work / "hash.txt").write_text(digest["digest_hash"])
    (work / "sig.bin").write_bytes(base64.b64decode(digest["signature"]))
    result = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(bundle / "public_key.pem"), "-rawin",
         "-in", str(work / "hash.txt"), "-sigfile", str(work / "sig.bin")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout


def _copy_with(bundle: Path, target: Path, name: str, old: str, new: str, resum: bool) -> Path:
    import shutil

    shutil.copytree(bundle, target)
    path = target / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    if resum:  # a careful forger rewrites SHA256SUMS too
        lines = []
        for line in (target / SUMS).read_text().splitlines():
            _, _, file = line.partition("  ")
            lines.append(f"{hashlib.sha256((target / file).read_bytes()).hexdigest()}  {file}")
        (target / SUMS).write_text("\n".join(lines) + "\n")
    return target


@pytest.mark.parametrize("resum", [False, True], ids=["as is", "SHA256SUMS rewritten"])
@pytest.mark.parametrize(
    ("name", "old", "new", "found"),
    [
        ("events.jsonl", '"source_ip": "203.0.113.24"', '"source_ip": "203.0.113.25"', "is not what a digest sealed"),
        ("manifest.jsonl", '"ingested_ms": ', '"ingested_ms": 1', "manifest does not hash"),
        ("digests.jsonl", '"event_count": ', '"event_count": 9', "its hash does not match"),
    ],
)
def test_a_bundle_edited_by_hand_fails(
    bundle: Path, tmp_path: Path, name: str, old: str, new: str, found: str, resum: bool
) -> None:
    edited = _copy_with(bundle, tmp_path / "edited", name, old, new, resum)
    code, output = check(edited)
    assert code == 1 and "bundle TAMPERED" in output and found in output, output
    if not resum:
        assert f"{name}: does not match {SUMS}" in output


def test_versions_not_sealed_yet_are_left_out_and_said_so(tmp_path: Path) -> None:
    url, proc = start_fnscope_up(tmp_path / "data", tmp_path / "up.log")  # seals each minute: nothing sealed yet
    try:
        body = orjson.dumps(cloudtrail_set.technique("defense-evasion.cloudtrail-stop"))
        assert httpx.post(f"{url}/ingest/cloudtrail", content=body, timeout=60).status_code == 200
        all_stored(url)
        out = CliRunner().invoke(main, ["audit", "export", "--api", url, "--since", "20000d", str(tmp_path / "b")])
        assert out.exit_code == 0 and "1 event versions in the range are not sealed yet" in out.output, out.output
        code, output = check(tmp_path / "b")
        assert code == 0 and "0 event versions" in output  # what is in it is evidence; nothing unsealed is
    finally:
        proc.stop()
