"""`fnscope import cloudtrail s3://bucket/prefix` against moto's standalone server, a stand-in for S3 (moto_server
in its own process, reached by boto3 through AWS_ENDPOINT_URL as a user would point it at any S3 endpoint).

The bucket is laid out as a trail delivers: log files under ``<prefix>/AWSLogs/<account>/CloudTrail/<region>/
YYYY/MM/DD/``, a digest under ``CloudTrail-Digest/``. moto's request recorder shows what each run asked of S3, so a
re-run is seen listing and reading nothing it did before, from the server's side, not only the CLI's word.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import boto3
import httpx
import orjson
import pytest

from fnscope.auth import fingerprint
from fnscope.cli.import_s3 import default_state_path
from tests.conftest import FNSCOPE, ROOT, Process, free_port, wait_http
from tests.fixtures.cloudtrail_set import ACCOUNT, REGION
from tests.test_audit_support import FIXTURE_SET, derive
from tests.test_import_cloudtrail import EVENTS, FILES, all_audit, build_tree, start_up

BUCKET, PREFIX = "org-trail-logs", "trails/main"
DAY = f"{PREFIX}/AWSLogs/{ACCOUNT}/CloudTrail/{REGION}"


@dataclass
class S3StandIn:
    """moto's standalone server: its endpoint, a boto3 client on it, and its request recording."""

    url: str
    recording: Path
    client: Any

    def requests(self) -> list[tuple[str, str, dict[str, list[str]]]]:
        """(method, path, query) of every request since the last ``reset``."""
        out = []
        for line in self.recording.read_text().splitlines():
            entry = json.loads(line)
            parsed = urlparse(entry["url"])
            out.append((entry["method"], unquote(parsed.path), parse_qs(parsed.query)))
        return out

    def reset(self) -> None:
        httpx.post(f"{self.url}/moto-api/recorder/reset-recording").raise_for_status()

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=body)


AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3StandIn]:
    tmp = tmp_path_factory.mktemp("moto")
    port = free_port()
    recording = tmp / "recording.jsonl"
    env = {"MOTO_RECORDER_FILEPATH": str(recording)}
    proc = Process([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], tmp / "moto.log", env)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/moto-api/data.json", proc=proc.proc)
    client = boto3.client("s3", endpoint_url=url, **_client_credentials())
    client.create_bucket(Bucket=BUCKET)
    httpx.post(f"{url}/moto-api/recorder/start-recording").raise_for_status()
    yield S3StandIn(url, recording, client)
    proc.stop()


def _client_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_ENV["AWS_DEFAULT_REGION"],
    }


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("up")
    url, proc = start_up(
        tmp / "data", tmp / "up.log", {"FNSCOPE_TOKENS": "tok-resume:resume,tok-tamper:tamper,tok-org:org"}
    )
    yield url
    proc.stop()


def run_import(url: str, s3: S3StandIn, state_home: Path, *args: str) -> dict[str, Any]:
    """The CLI as a user runs it, boto3 pointed at the stand-in by AWS_ENDPOINT_URL; its JSON summary."""
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": s3.url, "XDG_STATE_HOME": str(state_home), "FNSCOPE_TOKEN": "tok-resume"}
    result = _cli(url, env, "import", "cloudtrail", f"s3://{BUCKET}/{PREFIX}", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _cli(url: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FNSCOPE, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env={"FNSCOPE_API": url, **env}
    )


def listed_prefixes(requests: list[tuple[str, str, dict[str, list[str]]]]) -> list[str]:
    return [q.get("prefix", [""])[0] for method, _, q in requests if method == "GET" and "list-type" in q]


def objects_read(requests: list[tuple[str, str, dict[str, list[str]]]]) -> list[str]:
    return [path.split("/", 2)[2] for method, path, q in requests if method == "GET" and "list-type" not in q]


def log_file(records: list[dict[str, Any]], when: datetime, n: int) -> tuple[str, bytes]:
    key = f"{DAY}/{when:%Y/%m/%d}/{ACCOUNT}_CloudTrail_{REGION}_{when:%Y%m%dT%H%MZ}_{n:016x}.json.gz"
    return key, gzip.compress(orjson.dumps({"Records": records}))


def test_import_from_s3_twice_adds_nothing_and_resumes(instance: str, s3: S3StandIn, tmp_path: Path) -> None:
    url, state_home = instance, tmp_path / "state"
    # the detonation set as delivered on 2024-08-01, with a digest covering two of its files
    tree = tmp_path / "tree"
    ids, _ = build_tree(tree)
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        s3.put(f"{PREFIX}/{path.relative_to(tree).as_posix()}", path.read_bytes())
    # a day before --since, a file delivered today (a day still open), and objects that are not the trail's
    old = [derive(r, eventTime="2024-07-15T09:00:00Z") for r in FIXTURE_SET.technique(FIXTURE_SET.techniques[0])]
    s3.put(*log_file(old, datetime(2024, 7, 15, 9, tzinfo=UTC), 1))
    now = datetime.now(UTC).replace(microsecond=0)
    today = [derive(FIXTURE_SET.all_records()[0], eventTime=f"{now - timedelta(minutes=5):%Y-%m-%dT%H:%M:%SZ}")]
    s3.put(*log_file(today, now, 2))
    s3.put(f"{PREFIX}/AWSLogs/{ACCOUNT}/CloudTrail-Insight/{REGION}/2024/08/01/insight.json.gz", b"not ours")
    s3.put(f"{PREFIX}/README.txt", b"not a log")
    s3.reset()

    first = run_import(url, s3, state_home, "--since", "2024-08-01")
    assert (first["files"], first["events"], first["rejected"]) == (FILES + 1, EVENTS + 1, 0)
    assert first["digests"] == 1 and first["digest_log_files_verified"] == 2
    assert first["digest_log_files_mismatched"] == [] and first["failed"] == {}
    expected = sorted([*ids, today[0]["eventID"]])
    assert sorted(r["event_id"] for r in all_audit(url, "resume")) == expected  # nothing from before --since
    asked = s3.requests()
    assert not any("/2024/07" in p for p in listed_prefixes(asked) + objects_read(asked))  # never listed
    assert not any("Insight" in key or "README" in key for key in objects_read(asked))
    assert len(objects_read(asked)) == FILES + 2 == first["s3"]["objects_read"]  # the logs, today's file, the digest
    # where it got to is in the user's state directory
    state = orjson.loads((state_home / "fnscope" / "cloudtrail-s3.json").read_bytes())
    ((key, entry),) = state["sources"].items()
    assert key == f"{url} {fingerprint('tok-resume')} s3://{BUCKET}/{PREFIX}/"  # per instance, token, location
    digest_day = f"{PREFIX}/AWSLogs/{ACCOUNT}/CloudTrail-Digest/{REGION}"
    assert f"{DAY}/2024/08/" in entry["done"]  # a finished month is one entry
    assert f"{digest_day}/2024/" in entry["done"]  # as is a finished year
    assert not any("/2024/07" in p for p in entry["done"])  # before --since: not done, only left out
    assert list(entry["sent"]) == [f"{DAY}/{now:%Y/%m/%d}/"]  # today is still open: its sent keys are kept

    s3.reset()
    again = run_import(url, s3, state_home, "--since", "2024-08-01")
    assert (again["files"], again["events"], again["s3"]["objects_read"]) == (0, 0, 0)
    asked = s3.requests()
    assert objects_read(asked) == []
    listed = listed_prefixes(asked)
    assert not any(p.startswith((f"{DAY}/2024/0", f"{digest_day}/2024/")) for p in listed)  # done: not listed
    assert f"{DAY}/{now:%Y/%m/%d}/" in listed  # the open day is listed, its files not read again
    assert sorted(r["event_id"] for r in all_audit(url, "resume")) == expected

    # a file delivered since: the next run reads that one file only
    later = [derive(FIXTURE_SET.all_records()[1], eventTime=f"{now - timedelta(minutes=1):%Y-%m-%dT%H:%M:%SZ}")]
    key, body = log_file(later, now, 3)
    s3.put(key, body)
    s3.reset()
    third = run_import(url, s3, state_home, "--since", "2024-08-01")
    assert (third["files"], third["events"]) == (1, 1)
    assert objects_read(s3.requests()) == [key]
    assert sorted(r["event_id"] for r in all_audit(url, "resume")) == sorted([*expected, later[0]["eventID"]])


def test_a_log_file_changed_in_the_bucket_fails_its_digest(instance: str, s3: S3StandIn, tmp_path: Path) -> None:
    """The digest check of a local import, on the bucket's files (a prefix of its own, a state file of its own)."""
    tree = tmp_path / "tree"
    _, logs = build_tree(tree)
    changed = orjson.loads(gzip.decompress(logs[0].read_bytes()))
    changed["Records"][0]["sourceIPAddress"] = "192.0.2.66"
    logs[0].write_bytes(gzip.compress(orjson.dumps(changed)))
    prefix = "tampered"
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        s3.put(f"{prefix}/{path.relative_to(tree).as_posix()}", path.read_bytes())
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": s3.url, "FNSCOPE_TOKEN": "tok-tamper"}
    state = tmp_path / "elsewhere.json"
    result = _cli(instance, env, "import", "cloudtrail", f"s3://{BUCKET}/{prefix}", "--state", str(state), "--quiet")
    assert result.returncode == 1
    assert "verified 1, mismatched 1" in result.stdout
    assert f"MISMATCH s3://{BUCKET}/{prefix}/{logs[0].relative_to(tree).as_posix()}" in result.stderr
    assert state.is_file()


def test_an_organization_trail_is_walked_through_its_accounts(instance: str, s3: S3StandIn, tmp_path: Path) -> None:
    """An organization trail delivers under AWSLogs/<org id>/<account>/CloudTrail/...; other folders are not walked."""
    records = [derive(r) for r in FIXTURE_SET.technique(FIXTURE_SET.techniques[1])]
    when = datetime(2024, 8, 1, 13, tzinfo=UTC)
    name = f"{ACCOUNT}_CloudTrail_{REGION}_{when:%Y%m%dT%H%MZ}_0001.json.gz"
    s3.put(
        f"org/AWSLogs/o-a1b2c3d4e5/{ACCOUNT}/CloudTrail/{REGION}/2024/08/01/{name}",
        gzip.compress(orjson.dumps({"Records": records})),
    )
    s3.put(f"org/AWSLogs/not-an-account/CloudTrail/{REGION}/2024/08/01/{name}", b"{}")
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": s3.url, "FNSCOPE_TOKEN": "tok-org"}
    state = tmp_path / "state.json"
    result = _cli(instance, env, "import", "cloudtrail", f"s3://{BUCKET}/org", "--state", str(state), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["files"], summary["events"], summary["s3"]["objects_read"]) == (1, len(records), 1)
    assert sorted(r["event_id"] for r in all_audit(instance, "org")) == sorted(r["eventID"] for r in records)


def test_the_state_file_is_in_the_users_state_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_path() == tmp_path / "xdg" / "fnscope" / "cloudtrail-s3.json"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_path() == tmp_path / "home" / ".local" / "state" / "fnscope" / "cloudtrail-s3.json"


def test_a_missing_bucket_or_a_corrupt_state_file_is_one_line_not_a_traceback(
    instance: str, s3: S3StandIn, tmp_path: Path
) -> None:
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": s3.url, "XDG_STATE_HOME": str(tmp_path), "FNSCOPE_TOKEN": "tok-resume"}
    missing = _cli(instance, env, "import", "cloudtrail", "s3://no-such-bucket/trails", "--quiet")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr, missing.stderr
    assert missing.stderr.strip().splitlines() == [missing.stderr.strip()]
    assert (
        missing.stderr.startswith("Error: cannot list s3://no-such-bucket/trails/: ")
        and "NoSuchBucket" in missing.stderr
    )

    state = tmp_path / "state.json"
    state.write_bytes(b'{"version": 1, "sources": {"x": ')  # cut short, as a full disk might leave it
    corrupt = _cli(instance, env, "import", "cloudtrail", f"s3://{BUCKET}/{PREFIX}", "--quiet", "--state", str(state))
    assert corrupt.returncode == 1 and "Traceback" not in corrupt.stderr, corrupt.stderr
    assert corrupt.stderr.startswith(f"Error: cannot use the state file {state}: ")
    assert len(corrupt.stderr.strip().splitlines()) == 1
    state.write_bytes(b'{"sources": []}')  # JSON, but not a state file
    assert (
        "cannot use the state file"
        in _cli(instance, env, "import", "cloudtrail", f"s3://{BUCKET}/{PREFIX}", "--state", str(state)).stderr
    )


def test_a_password_in_the_api_url_is_not_kept_in_the_state_file(s3: S3StandIn, tmp_path: Path) -> None:
    # an instance without tokens, as behind a proxy that takes the URL's user:password (sent as Basic auth)
    url, proc = start_up(tmp_path / "data", tmp_path / "up.log")
    prefix = "with-userinfo"
    records = [derive(r) for r in FIXTURE_SET.technique(FIXTURE_SET.techniques[0])]
    key, body = log_file(records, datetime(2024, 8, 2, 9, tzinfo=UTC), 7)
    s3.put(key.replace(PREFIX, prefix, 1), body)
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": s3.url}
    state = tmp_path / "state.json"
    try:
        with_password = url.replace("http://", "http://ops:s3cret@")
        args = ("import", "cloudtrail", f"s3://{BUCKET}/{prefix}", "--json", "--state", str(state))
        done = _cli(with_password, env, *args)
    finally:
        proc.stop()
    assert done.returncode == 0 and json.loads(done.stdout)["events"] == len(records), done.stderr
    text = state.read_text()
    assert "s3cret" not in text and "ops@" not in text
    (entry,) = orjson.loads(text)["sources"]
    assert entry == f"{url} {fingerprint('')} s3://{BUCKET}/{prefix}/"
