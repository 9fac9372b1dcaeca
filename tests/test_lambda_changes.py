"""Every kind of Lambda change, as CloudTrail records it, on a real chDB store: found by the "lambda-function-changes"
saved query, and listed in the function's change history (what `fnscope search --context` and the console show)
with a summary of what changed, whichever way the record names the function (name, ARN, partial ARN, alias ARN, a
tagged resource, or only an event source mapping's uUID).

Records: ``tests/fixtures/cloudtrail_lambda.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from fnscope.cli import main
from fnscope.dashboards.saved_queries import BY_NAME, LAMBDA_CHANGE_ACTIONS
from fnscope.query.audit_saved import run_saved
from fnscope.query.lambda_changes import MAX_SUMMARY, function_changes, summarize
from fnscope.query.runner import QueryRunner
from fnscope.query.search_correlate import recent_changes
from tests import corpus
from tests.conftest import start_fnscope_up
from tests.fixtures.cloudtrail_lambda import FUNCTION, LAYER_2, changes, near_misses, remapped, unrecorded_request
from tests.test_audit_support import chdb_store, doc_records, stratus_records, write

SINCE = datetime(2000, 1, 1, tzinfo=UTC)
OTHER_FUNCTIONS = {"other-reserved", "other-mapping-create", "other-mapping-update"}


@dataclass
class Store:
    runner: QueryRunner
    labels: dict[str, str]  # eventID -> label
    times: dict[str, datetime]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    records = {label: rec for label, (rec, _) in changes().items()} | near_misses()
    records["unrecorded-request"] = unrecorded_request()
    records["remapped"] = remapped()
    with chdb_store(tmp_path_factory.mktemp("lambda-changes") / "store") as client:
        write(client, list(records.values()))
        if corpus.PRESENT:  # one chDB store per process: the corpus's records go in beside, as another tenant
            write(client, corpus_records(), "corpus")
        yield Store(
            QueryRunner(client),
            {rec["eventID"]: label for label, rec in records.items()},
            {label: datetime.fromisoformat(rec["eventTime"]) for label, rec in records.items()},
        )


def history(store: Store, function: str = FUNCTION, since: datetime = SINCE, **kw: Any) -> list[dict[str, Any]]:
    return function_changes(store.runner, "default", function, since, kw.get("until", datetime.now(UTC)), 100)


def test_every_change_kind_is_in_the_fixture() -> None:
    kinds = {rec["eventName"].rstrip("v0123456789") for rec, _ in changes().values()}
    must = set(LAMBDA_CHANGE_ACTIONS) - {
        "UpdateFunctionEventInvokeConfig", "DeleteFunctionEventInvokeConfig", "PutRuntimeManagementConfig",
        "PutFunctionCodeSigningConfig", "DeleteFunctionCodeSigningConfig", "PutFunctionRecursionConfig",
        "UntagResource",
    }  # fmt: skip
    assert must <= kinds, sorted(must - kinds)


def test_the_saved_query_finds_every_change_and_no_read(store: Store) -> None:
    rows = run_saved(store.runner, BY_NAME["lambda-function-changes"], "default", SINCE, datetime.now(UTC), 10_000)
    found = {store.labels[row["event_id"]] for row in rows}
    assert found == set(changes()) | OTHER_FUNCTIONS | {"unrecorded-request", "remapped"}
    assert not found & {"read", "read-aliases", "layer-publish"}


def test_layer_changes_are_found_wherever_the_event_names_the_layers(store: Store) -> None:
    rows = run_saved(store.runner, BY_NAME["lambda-layer-changes"], "default", SINCE, datetime.now(UTC), 10_000)
    # a new function's layers, a change of them, a layer version published, and a change whose request CloudTrail
    # did not record; not a memory change or a code update, whose responses list the layers the function kept
    assert {store.labels[row["event_id"]] for row in rows} == {
        "create", "layer-added", "layer-publish", "unrecorded-request"
    }  # fmt: skip
    (unrecorded,) = history(store, "billing-sync")
    assert unrecorded["summary"] == f"layers → {LAYER_2}"


def test_the_history_lists_each_change_newest_first_with_its_summary(store: Store) -> None:
    rows = history(store)
    got = [(store.labels[row["event_id"]], row["summary"]) for row in rows]
    expected = [(label, summary) for label, (_, summary) in changes().items()]
    assert got == list(reversed(expected))
    assert all(row["principal_name"] == "deploy-role" and "raw" not in row for row in rows)


def test_another_function_has_only_its_own_changes(store: Store) -> None:
    got = {store.labels[row["event_id"]]: row["summary"] for row in history(store, "orders-api")}
    assert got == {
        "other-reserved": "reserved concurrency → 5",
        "other-mapping-create": "event source arn:aws:sqs:ap-westeast-2r:111122223333:checkout-jobs mapped",
        "other-mapping-update": "event source mapping a1b2c3d4-5678-90ab-cdef-22222example batch size → 5",
    }


@pytest.mark.parametrize(
    "label",
    # a full ARN, a partial ARN, an alias ARN, a tagged resource's ARN, and only the mapping's uUID
    ["permission", "permission-remove", "mapping-create", "tag", "mapping-disable"],
)
def test_a_change_naming_the_function_any_way_is_in_its_history(store: Store, label: str) -> None:
    assert label in {store.labels[row["event_id"]] for row in history(store)}
    assert label not in {store.labels[row["event_id"]] for row in history(store, "orders-api")}


def test_a_mapping_naming_its_function_only_as_function_name_is_in_its_history(store: Store) -> None:
    (row,) = history(store, "ledger")
    assert store.labels[row["event_id"]] == "remapped"
    assert row["summary"] == "event source mapping a1b2c3d4-5678-90ab-cdef-33333example function → ledger"


def test_a_layer_change_is_told_against_the_layers_before_the_window(store: Store) -> None:
    # the window starts after the create and code events, which named the one layer the function had
    rows = history(store, since=store.times["layer-added"] - timedelta(seconds=1))
    by_label = {store.labels[row["event_id"]]: row["summary"] for row in rows}
    assert by_label["layer-added"] == f"layer {LAYER_2} added"
    assert "create" not in by_label and "code" not in by_label


def test_the_context_of_a_log_line_shows_the_24_hours_before_it(store: Store) -> None:
    line = {"function": FUNCTION, "time": store.times["reserved"] + timedelta(seconds=30)}
    got = [(store.labels[row["event_id"]], row["summary"]) for row in recent_changes(store.runner, "default", line)]
    assert got[0] == ("reserved", "reserved concurrency → 0")
    assert [label for label, _ in got] == list(reversed([label for label in changes()][:9]))


def test_summaries_of_shapes_the_fixture_lacks() -> None:
    assert summarize("UntagResource20170331v2", {"requestParameters": {"tagKeys": ["team", "cost"]}}) == (
        "tags removed: team, cost"
    )
    weights_only = {"requestParameters": {"name": "live", "routingConfig": {"additionalVersionWeights": {"9": 0.05}}}}
    assert summarize("UpdateAlias20150331", weights_only) == "alias live → v9 5%"
    # CloudTrail recorded no request: the response's layers are the change, told against those before
    no_request = {"requestParameters": None, "responseElements": {"layers": [{"arn": "L1"}]}}
    assert summarize("UpdateFunctionConfiguration20150331v2", no_request, ["L1", "L0"]) == "layer L0 removed"
    # a shape nobody expects says less, never fails
    assert summarize("UpdateAlias20150331", {"requestParameters": ["x"]}) == "alias ? → ?"
    assert summarize("PutFunctionConcurrency20171031", {}) == "reserved concurrency → ?"


def test_search_context_prints_each_change_with_its_summary(tmp_path: Path) -> None:
    """A real `fnscope up`: the Lambda changes and a log line of the function after them; `fnscope search --context`
    prints the changes of the 24 hours before the line, each with what changed; `GET /api/audit/changes` lists
    them for any range."""
    url, proc = start_fnscope_up(tmp_path / "data", tmp_path / "up.log")
    try:
        records = [rec for rec, _ in changes().values()] + list(near_misses().values())
        r = httpx.post(f"{url}/ingest/cloudtrail?wait=stored", content=orjson.dumps(records), timeout=60)
        assert r.status_code == 200, r.text
        at = datetime.fromisoformat(changes()["reserved"][0]["eventTime"]) + timedelta(seconds=30)
        line = [{"time": at.isoformat().replace("+00:00", "Z"), "type": "function", "record": "checkout throttled\n"}]
        r = httpx.post(f"{url}/ingest/telemetry?function={FUNCTION}&wait=stored", content=orjson.dumps(line))
        assert r.status_code == 200, r.text
        found = httpx.get(
            f"{url}/api/search",
            params={"q": "throttled", "since": (at - timedelta(minutes=1)).isoformat(), "until": at.isoformat()},
            timeout=60,
        ).json()["results"]
        (hit,) = found
        out = CliRunner().invoke(main, ["search", "--context", hit["ref"], "--api", url])
        assert out.exit_code == 0, out.output
        changed = [line for line in out.output.splitlines() if line.startswith("changed")]
        assert len(changed) == 9  # create .. reserved: nothing after the line, no other function's, no read
        assert "PutFunctionConcurrency20171031: reserved concurrency → 0 by " in changed[0]
        assert "UpdateAlias20150331: alias live → v7 90% / v8 10% by " in changed[2]
        assert f"UpdateFunctionConfiguration20150331v2: layer {LAYER_2} added by " in changed[6]

        # the same history over HTTP, for any range (what a console page of the function reads)
        since = {"since": "2024-08-01T00:00:00Z", "until": "2024-09-01T00:00:00Z"}
        answer = httpx.get(f"{url}/api/audit/changes", params={"function": FUNCTION, **since}, timeout=60).json()
        assert [c["summary"] for c in answer["changes"]] == [summary for _, summary in reversed(changes().values())]
        assert httpx.get(f"{url}/api/audit/changes", params=since, timeout=60).status_code == 422
        bad = httpx.get(f"{url}/api/audit/changes", params={"function": FUNCTION, "since": "yesterday"}, timeout=60)
        assert bad.status_code == 400 and "since" in bad.json()["detail"]
    finally:
        proc.stop()


CORPUS_LAMBDA = ("persistence.lambda-overwrite-code", "persistence.lambda-layer-extension",
                 "persistence.lambda-backdoor-function")  # fmt: skip


def corpus_records() -> list[dict[str, Any]]:
    """Stratus Red Team's Lambda detonations and the Lambda guide's examples, as AWS wrote them."""
    records = [r for name in CORPUS_LAMBDA for r in stratus_records(name)]
    return records + [r for r in doc_records() if r.get("eventSource") == "lambda.amazonaws.com"]


@corpus.needed
def test_the_corpus_lambda_detonations_are_in_their_functions_histories(store: Store) -> None:
    corpus.require()

    def summaries(function: str) -> list[str]:
        return [row["summary"] for row in function_changes(store.runner, "corpus", function, SINCE, datetime.now(UTC))]

    assert summaries("stratus-red-team-olc-func-vayhjqkdav") == [
        "code replaced (sha256 Pt1c8vVaBygmNtAeSyjlpdy7r8nHRqJAAL++HEGlQkc=), published as v1"
    ]
    layer = "arn:aws:lambda:eugov-eastcentral-1r:712967571683:layer:stratus-red-team-lambda-layer-my-lambda-extension:1"
    assert summaries("stratus-red-team-lambda-layer-simpleLambda") == [f"layers → {layer}; environment changed"]
    assert summaries("stratus-red-team-backdoor-f-func") == ["permission backdoor added: * may lambda:InvokeFunction"]
    assert summaries("basic-node-task") == ["function deleted"]  # the guide's example; its GetFunction is a read


def test_a_summary_is_bounded_whatever_the_record_holds() -> None:
    tags = {
        "requestParameters": {"resource": "arn:aws:lambda:r:1:function:f", "tags": {f"k{i}": "v" for i in range(500)}}
    }
    text = summarize("TagResource20170331v2", tags)
    assert len(text) == MAX_SUMMARY and text.startswith("tags set: k0, k1, ") and text.endswith("…")
