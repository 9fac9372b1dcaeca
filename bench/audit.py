"""Audit: query latency over millions of events and CloudTrail import rate, each beside a same-run reference.

    python -m bench.audit [--events 5000000] [--files 400] [--records-per-file 1000] [--runs 30]

1. Generates ``--events`` audit events straight into a fresh embedded store (an INSERT ... SELECT over
   ``numbers()``: a year of activity, 10 accounts, 8 regions, 2,000 principals, 500 functions, Lambda names with
   their API dates), then seals them into the hash chain (the seal rate is printed too).
2. The two audit questions, as bare ClickHouse queries (the exact SQL and parameters the API runs, on the same
   store, in this process), p50/p95 over ``--runs``:
     - every change to function X in the last 90 days   (`fnscope audit --resource X --changes --since 90d`)
     - all actions of principal P over the year          (`fnscope audit --principal P --since 365d`)
   and, for reference, the same question read from ``audit_events`` with FINAL (what the API ran before v006's
   lookups): its p50/p95 and whether both give the same rows.
3. The same two through a running `fnscope up` on that store (HTTP + JSON): p50/p95 and the ratio to bare.
4. Import: ``--files`` gzip CloudTrail log files in an S3-style tree (real detonation records with new ids);
   bare `gzip + orjson.loads` of every file (before and after the import, averaged), and `fnscope import
   cloudtrail` of the same files into that `fnscope up`: events/s of each, the ratio, and the server's CPU per
   event. The embedded store maps plain records itself (processors/cloudtrail_bulk.py).
Targets: API p95 <= 100 ms; import >= 50% of the bare decode rate.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

from bench.figures import cpu_seconds, timed
from fnscope.processors.audit_sealer import Sealer
from fnscope.processors.store import open_store
from fnscope.query.audit import AuditRequest, audit_query, audit_sql, audit_where
from tests.conftest import FNSCOPE, free_port, wait_http
from tests.fixtures import cloudtrail_set

ROOT = Path(__file__).resolve().parents[1]


GENERATE = """
INSERT INTO audit_events (tenant, event_id, time, account, region, source, service, action, principal_type,
  principal_arn, principal_name, principal_account, session_issuer, access_key, mfa, source_ip, user_agent,
  error_code, error_message, read_only, event_type, event_category, event_version, function, resources, raw,
  ingested_at)
SELECT 'default', eid, t, acct, reg, 'cloudtrail', svc, act, ptype, parn, pname, acct, '', akey, mfa, ip, ua, err, '',
  ro, 'AwsApiCall', 'Management', '1.09', fn, res,
  concat('{"eventVersion":"1.09","userIdentity":{"type":"', ptype, '","arn":"', parn, '","accountId":"', acct,
    '","accessKeyId":"', akey, '","userName":"', pname, '"},"eventTime":"', formatDateTime(t, '%Y-%m-%dT%H:%i:%SZ'),
    '","eventSource":"', svc, '","eventName":"', act, '","awsRegion":"', reg, '","sourceIPAddress":"', ip,
    '","userAgent":"', ua, '","requestParameters":{"functionName":"', fn, '"},"responseElements":null,',
    '"requestID":"', toString(generateUUIDv4()), '","eventID":"', eid, '","readOnly":', if(ro, 'true', 'false'),
    ',"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"', acct,
    '","eventCategory":"Management"}'),
  ing
FROM (
  SELECT number AS n, toString(generateUUIDv4()) AS eid,
    now64(3) - toIntervalMillisecond(cityHash64(n, 1) % (365 * 86400000)) AS t,
    concat('1111', leftPad(toString(cityHash64(n, 2) % 10), 8, '0')) AS acct,
    ['us-east-1','us-west-2','eu-west-1','eu-central-1','ap-southeast-1','ap-northeast-1','sa-east-1',
     'ca-central-1'][1 + cityHash64(n, 3) % 8] AS reg,
    cityHash64(n, 4) % 100 AS k,
    multiIf(k < 40, 'lambda.amazonaws.com', k < 60, 'sts.amazonaws.com', k < 75, 'ec2.amazonaws.com',
            k < 90, 's3.amazonaws.com', 'iam.amazonaws.com') AS svc,
    multiIf(k < 25, 'GetFunction20150331v2', k < 30, 'UpdateFunctionCode20150331v2',
            k < 34, 'UpdateFunctionConfiguration20150331v2', k < 36, 'AddPermission20150331v2',
            k < 38, 'PutFunctionConcurrency20171031', k < 40, 'ListFunctions20150331', k < 60, 'AssumeRole',
            k < 75, 'DescribeInstances', k < 90, 'GetObject', k < 95, 'CreateAccessKey', 'AttachRolePolicy') AS act,
    k < 25 OR (k >= 38 AND k < 90) AS ro,
    cityHash64(n, 5) % 2000 AS p,
    if(p % 4 = 0, 'AssumedRole', 'IAMUser') AS ptype,
    if(p % 4 = 0, concat('arn:aws:sts::', acct, ':assumed-role/deployer-', toString(p), '/session'),
       concat('arn:aws:iam::', acct, ':user/user-', toString(p))) AS parn,
    if(p % 4 = 0, concat('deployer-', toString(p)), concat('user-', toString(p))) AS pname,
    concat('AKIA', leftPad(toString(p), 16, '0')) AS akey,
    if(p % 3 = 0, NULL, p % 3 = 1) AS mfa,
    IPv4NumToString(toUInt32(cityHash64(p, 6) % 4294967295)) AS ip,
    ['aws-cli/2.15.0','Boto3/1.34.0','console.amazonaws.com','terraform/1.7.0'][1 + p % 4] AS ua,
    if(cityHash64(n, 7) % 50 = 0, 'AccessDenied', '') AS err,
    if(k < 40, concat('fn-', toString(cityHash64(n, 8) % 500)), '') AS fn,
    if(k < 40, [concat('arn:aws:lambda:', reg, ':', acct, ':function:', fn)], []) AS res,
    -- arrival spread as if ingested at 20,000 events/s, ending now
    now64(3) - toIntervalMillisecond(toUInt64(({events:UInt64} - n) / 20)) AS ing
  FROM numbers({events:UInt64})
)
"""


def questions() -> dict[str, tuple[AuditRequest, dict[str, str]]]:
    now = datetime.now(UTC)
    return {
        "every change to function fn-42, last 90 days": (
            AuditRequest("default", resource="fn-42", changes=True, since=now - timedelta(days=90), limit=1000),
            {"resource": "fn-42", "changes": "true", "since": "90d", "limit": "1000"},
        ),
        "all actions of principal user-1337, last year": (
            AuditRequest("default", principal="user-1337", since=now - timedelta(days=366), limit=1000),
            {"principal": "user-1337", "since": "366d", "limit": "1000"},
        ),
    }


def build_store(data: Path, events: int, runs: int) -> dict[str, tuple[float, float, int]]:
    client = open_store(f"chdb://{data / 'store'}")
    start = time.perf_counter()
    client.command(GENERATE, parameters={"events": events})
    print(f"generated {events:,} audit events in {time.perf_counter() - start:.1f}s (lookup views included)")
    start = time.perf_counter()
    digests = Sealer(client, window_s=60, settle_s=0).seal_once()
    took = time.perf_counter() - start
    print(f"sealed into {digests} digests in {took:.1f}s: {events / took:,.0f} events/s")
    parts = client.query(
        "SELECT table, count() FROM system.parts WHERE active AND table IN ('audit_events', 'audit_lookup') "
        "GROUP BY table ORDER BY table"
    ).result_rows
    print("active parts: " + ", ".join(f"{table} {n}" for table, n in parts))
    bare = {}
    print(f"\nbare ClickHouse, {runs} runs each (ms)")
    print(f"{'question':<48} {'p50':>7} {'p95':>7}   {'FINAL p50':>9} {'FINAL p95':>9}  same rows")
    for name, (req, _) in questions().items():
        sql, params = audit_query(req)
        where = audit_where(req)
        final_sql, final_params = audit_sql(where), {**where.params, "limit": req.limit}
        bare[name] = timed(lambda sql=sql, params=params: len(client.query(sql, parameters=params).result_rows), runs)
        before = timed(
            lambda sql=final_sql, params=final_params: len(client.query(sql, parameters=params).result_rows), runs
        )
        same = (
            client.query(sql, parameters=params).result_rows
            == client.query(final_sql, parameters=final_params).result_rows
        )
        b = bare[name]
        print(f"{name:<48} {b[0]:>7.1f} {b[1]:>7.1f}   {before[0]:>9.1f} {before[1]:>9.1f}  {same} ({b[2]} rows)")
        assert same, f"{name}: the lookup and audit_events with FINAL disagree"
    client.close()
    return bare


def make_tree(root: Path, files: int, per_file: int, templates_dir: Path | None) -> tuple[int, int]:
    """Writes the files, each record a template with a new eventID; (records, bytes of raw JSON in them).

    Templates: the detonation set written for the tests, or every record of the CloudTrail files in
    ``templates_dir`` (a JSON array or ``{"Records": [...]}`` per file)."""
    if templates_dir is None:
        templates = cloudtrail_set.all_records()
    else:
        documents = [orjson.loads(path.read_bytes()) for path in sorted(templates_dir.glob("*.json"))]
        templates = [r for doc in documents for r in (doc["Records"] if isinstance(doc, dict) else doc)]
    total = raw = 0
    for n in range(files):
        records = []
        for i in range(per_file):
            record = dict(templates[(n * per_file + i) % len(templates)])
            record["eventID"] = str(uuid.uuid4())
            records.append(record)
        path = root / f"AWSLogs/111122223333/CloudTrail/us-east-1/2024/08/01/{n:05d}.json.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        document = orjson.dumps({"Records": records})
        path.write_bytes(gzip.compress(document))
        total += per_file
        raw += len(document)
    return total, raw


def bare_decode(root: Path) -> float:
    start = time.perf_counter()
    records = sum(len(orjson.loads(gzip.decompress(p.read_bytes()))["Records"]) for p in sorted(root.rglob("*.gz")))
    return records / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--files", type=int, default=400)  # a backfill: large enough that start-up is noise
    parser.add_argument("--records-per-file", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--templates",
        type=Path,
        default=None,
        help="a folder of CloudTrail files whose records the backfill repeats (default: tests/fixtures' set)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fnscope-bench-audit-"))
    try:
        bare = build_store(work / "data", args.events, args.runs)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(work / "up.log", "wb")
        up = subprocess.Popen(
            [*FNSCOPE, "up", "--data-dir", str(work / "data"), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        try:
            wait_http(f"{url}/healthz", timeout=120, proc=up)
            print(f"\naudit queries over {args.events:,} events, {args.runs} runs each (ms)")
            print(f"{'question':<48} {'bare p50':>9} {'bare p95':>9} {'API p50':>9} {'API p95':>9} {'API/bare':>9}")
            with httpx.Client(base_url=url, timeout=120) as http:
                for name, (_, params) in questions().items():
                    api = timed(
                        lambda params=params: len(http.get("/api/audit", params=params).json()["results"]), args.runs
                    )
                    b = bare[name]
                    assert api[2] == b[2], f"{name}: API gave {api[2]} rows, bare {b[2]}"
                    print(
                        f"{name:<48} {b[0]:>9.1f} {b[1]:>9.1f} {api[0]:>9.1f} {api[1]:>9.1f} {api[1] / b[1]:>8.2f}x"
                        f"   ({api[2]} rows; target p95 <= 100 ms: {'met' if api[1] <= 100 else 'NOT met'})"
                    )
            tree = work / "bucket"
            records, raw = make_tree(tree, args.files, args.records_per_file, args.templates)
            before = bare_decode(tree)
            cpu_before = cpu_seconds(up.pid)
            start = time.perf_counter()
            result = subprocess.run(
                [*FNSCOPE, "import", "cloudtrail", str(tree), "--json", "--api", url],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            took = time.perf_counter() - start
            server_cpu = cpu_seconds(up.pid) - cpu_before
            decode = (before + bare_decode(tree)) / 2  # before and after, as the machine's load drifts
            summary = json.loads(result.stdout)
            assert summary["events"] == records, result.stderr
            rate = records / took
            print(f"\nimport of {args.files} files x {args.records_per_file} records ({records:,} events)")
            print(f"  bare gzip + orjson.loads      {decode:>12,.0f} events/s   (one core)")
            print(f"  fnscope import cloudtrail     {rate:>12,.0f} events/s   ({took:.1f}s, CLI start-up included)")
            print(
                f"    fnscope up's CPU            {server_cpu / records * 1e6:>12.1f} us per event "
                f"= {raw / server_cpu / 1e6:.1f} MB of raw JSON per CPU-second"
            )
            print(f"  import / decode               {rate / decode:>12.1%}   (target >= 50%)")
        finally:
            up.terminate()
            up.wait(60)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
