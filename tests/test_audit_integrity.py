"""The audit hash chain on a real chDB store: sealing the real detonation records, then tampering with them
directly in ClickHouse (ALTER TABLE ... UPDATE / DELETE, INSERT) and checking that verify names each event.

One store for the module (chDB opens one path per process); each test tampers with its own tenant, whose
chain is its own, so the tests do not see each other's damage.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fnscope.audit_chain import Signer, content_hash, epoch_ms, events_hash, load_signer
from fnscope.processors.audit_sealer import Sealer
from fnscope.query.audit_verify import Report, verify
from tests.test_audit_support import FIXTURE_SET, chdb_store, rewrite, write

technique = FIXTURE_SET.technique
EVENTS = len(FIXTURE_SET.all_records())

SYNC = {"mutations_sync": 2}
WINDOW_S = 0.3
KEY = "operator-secret"
TENANTS = ("untouched", "events", "manifest", "digests", "redelivery", "reference")


def _seal(client: Client, signer: Signer | None = None) -> int:
    """Seal everything written so far: short windows, no settle delay (nothing else writes here)."""
    time.sleep(WINDOW_S + 0.05)  # let the last window close
    return Sealer(client, signer, window_s=WINDOW_S, settle_s=0).seal_once()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """The detonation set for each tenant, written in three batches a window apart, sealed with an HMAC key."""
    with chdb_store(tmp_path_factory.mktemp("sealed") / "store") as client:
        names = FIXTURE_SET.techniques
        third = len(names) // 3
        for batch in (names[:third], names[third : 2 * third], names[2 * third :]):
            records = [r for name in batch for r in technique(name)]
            for tenant in TENANTS:
                write(client, records, tenant)
            time.sleep(WINDOW_S + 0.05)
        assert _seal(client, load_signer(KEY)) >= 3 * len(TENANTS)
        yield client


def _ids(client: Client, tenant: str, n: int) -> list[str]:
    rows = client.query(
        "SELECT event_id FROM audit_events WHERE tenant = {t:String} ORDER BY event_id LIMIT {n:UInt32}",
        parameters={"t": tenant, "n": n},
    ).result_rows
    return [row[0] for row in rows]


def _problems(report: Report) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for problem in report.problems:
        out.setdefault(problem.kind, set()).add(problem.event_id or f"seq {problem.seq}")
    return out


def test_untouched_store_verifies_with_every_signature_checked(store: Client) -> None:
    report = verify(store, "untouched", load_signer(KEY))
    assert report.ok, report.as_dict()
    assert report.sealed_events == EVENTS and report.unsealed_events == 0 and report.digests >= 3
    assert report.signatures.startswith(f"{report.digests} verified (hmac-sha256")
    wrong = verify(store, "untouched", load_signer("another-secret"))
    assert {p.kind for p in wrong.problems} == {"signature"} and len(wrong.problems) == report.digests


def test_changed_deleted_inserted_and_reordered_events_are_each_named(store: Client) -> None:
    t = "events"
    changed, deleted, source, a, b = _ids(store, t, 5)
    p: dict[str, Any] = {"t": t}
    rewrite(store, "audit_events", t, changed, principal_name="someone-else")
    store.command(
        "ALTER TABLE audit_events DELETE WHERE tenant = {t:String} AND event_id = {id:String}",
        parameters={**p, "id": deleted},
        settings=SYNC,
    )
    # a forged event slipped into sealed history: a copy of a real one with another id and its old arrival time
    store.command(
        "INSERT INTO audit_events SELECT * REPLACE ('forged-event' AS event_id) "
        "FROM (SELECT * FROM audit_events WHERE tenant = {t:String} AND event_id = {id:String})",
        parameters={**p, "id": source},
    )
    # reorder: a and b swap their event times (time is in the sorting key: re-insert, then delete the originals)
    times = dict(
        store.query(
            "SELECT event_id, toUnixTimestamp64Milli(time) FROM audit_events "
            "WHERE tenant = {t:String} AND event_id IN ({a:String}, {b:String})",
            parameters={**p, "a": a, "b": b},
        ).result_rows
    )
    assert times[a] != times[b]
    swap = {**p, "a": a, "b": b, "ta": times[a], "tb": times[b]}
    store.command(
        "INSERT INTO audit_events SELECT * REPLACE (fromUnixTimestamp64Milli(if(event_id = {a:String}, {tb:Int64}, "
        "{ta:Int64}), 'UTC') AS time) FROM audit_events WHERE tenant = {t:String} AND event_id IN ({a:String}, {b:String})",
        parameters=swap,
    )
    store.command(
        "ALTER TABLE audit_events DELETE WHERE tenant = {t:String} AND ("
        "(event_id = {a:String} AND toUnixTimestamp64Milli(time) = {ta:Int64}) "
        "OR (event_id = {b:String} AND toUnixTimestamp64Milli(time) = {tb:Int64}))",
        parameters=swap,
        settings=SYNC,
    )
    report = verify(store, t, load_signer(KEY))
    assert not report.ok
    assert _problems(report) == {
        "changed": {changed},
        "deleted": {deleted},
        "inserted": {"forged-event"},
        "reordered": {a, b},
    }
    reordered = {p.event_id: p.detail for p in report.problems if p.kind == "reordered"}
    assert "event time moved" in reordered[a]


def test_rewriting_the_manifest_with_the_event_is_caught_by_the_digest(store: Client) -> None:
    t = "manifest"
    (target,) = _ids(store, t, 1)
    p = {"t": t, "id": target}
    rewrite(store, "audit_events", t, target, source_ip="203.0.113.9")
    # a careful attacker also recomputes the event's manifest entry
    row = store.query("SELECT * FROM audit_events WHERE tenant = {t:String} AND event_id = {id:String}", parameters=p)
    new_hash = content_hash(dict(zip(row.column_names, row.result_rows[0])))
    rewrite(store, "audit_seal_entries", t, target, content=new_hash)
    seq = store.command(
        "SELECT seq FROM audit_seal_entries WHERE tenant = {t:String} AND event_id = {id:String}", parameters=p
    )
    report = verify(store, t)
    assert [(p.kind, p.seq) for p in report.problems] == [("digest", int(seq))]
    assert "manifest" in report.problems[0].detail


def test_altered_or_removed_digests_break_the_chain(store: Client) -> None:
    t = {"t": "digests"}
    store.command(
        "ALTER TABLE audit_digests UPDATE event_count = event_count + 1 WHERE tenant = {t:String} AND seq = 1",
        parameters=t,
        settings=SYNC,
    )
    store.command("ALTER TABLE audit_digests DELETE WHERE tenant = {t:String} AND seq = 2", parameters=t, settings=SYNC)
    kinds = {(p.kind, p.seq) for p in verify(store, "digests").problems}
    assert ("digest", 1) in kinds  # its hash no longer matches its header
    assert ("chain", 3) in kinds  # digest 2 is missing and 3 no longer links to 1


def test_redelivery_and_new_events_after_sealing_are_not_tampering(store: Client) -> None:
    t = "redelivery"
    write(store, technique("persistence.lambda-overwrite-code"), t)  # the same event again
    write(store, [{**technique("defense-evasion.cloudtrail-stop")[0], "eventID": "a-new-event"}], t)
    before = verify(store, t)
    assert before.ok and before.unsealed_events == 1  # the new event: the re-delivered one is sealed already
    sealed = _seal(store)  # one window, or two when the writes straddle a window boundary
    after = verify(store, t)
    assert sealed in (1, 2)
    assert after.ok and after.unsealed_events == 0 and after.digests == before.digests + sealed


def test_ed25519_signatures_verify_with_the_public_key_alone(store: Client, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_file = tmp_path / "audit.pub"
    public_file.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    write(store, technique("persistence.lambda-overwrite-code"), "ed25519")
    assert _seal(store, load_signer(private_pem)) == 1
    public_only = load_signer(str(public_file))
    assert public_only is not None and not public_only.can_sign
    assert verify(store, "ed25519", public_only).ok
    store.command(
        "ALTER TABLE audit_digests UPDATE signature = 'AAAA' WHERE tenant = 'ed25519' AND seq = 1", settings=SYNC
    )
    assert [p.kind for p in verify(store, "ed25519", public_only).problems] == ["signature"]


def test_tenants_have_separate_chains(store: Client) -> None:
    write(store, technique("persistence.lambda-overwrite-code"), "acme")
    write(store, technique("defense-evasion.cloudtrail-stop"), "globex")
    assert _seal(store) == 2
    store.command("ALTER TABLE audit_events DELETE WHERE tenant = 'globex'", settings=SYNC)
    assert verify(store, "acme").ok
    assert {p.kind for p in verify(store, "globex").problems} == {"deleted"}


def test_the_documented_hashes_can_be_recomputed_without_clickhouse(store: Client) -> None:
    """content_hash / events_hash in Python give the bytes the store computed in SQL."""
    result = store.query("SELECT * FROM audit_events WHERE tenant = 'reference'")
    rows = [dict(zip(result.column_names, row)) for row in result.result_rows]
    digests = store.query(
        "SELECT seq, toUnixTimestamp64Milli(window_start), toUnixTimestamp64Milli(window_end), events_hash, "
        "event_count FROM audit_digests WHERE tenant = 'reference' ORDER BY seq"
    ).result_rows
    assert sum(d[4] for d in digests) == EVENTS
    for seq, start, end, stored_hash, count in digests:
        entries = [
            (epoch_ms(r["ingested_at"]), r["event_id"], epoch_ms(r["time"]), content_hash(r))
            for r in rows
            if start <= epoch_ms(r["ingested_at"]) < end
        ]
        assert len(entries) == count
        assert events_hash(entries) == stored_hash, f"digest {seq}"
