"""`fnscope import cloudtrail PATH... | s3://bucket/prefix`: backfill CloudTrail log files into a running instance.

Local files and S3 objects go the same way (cloudtrail_files.py); S3 is walked by import_s3.py.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from fnscope.cli.cloudtrail_files import Summary, import_cloudtrail, sending
from fnscope.cli.common import API_OPTION, TOKEN_OPTION, api_call, api_get, check_reachable
from fnscope.timeparse import parse_time


@click.group(name="import")
def import_() -> None:
    """Backfill data into a running fnscope."""


@import_.command(name="cloudtrail")
@click.argument("sources", nargs=-1, required=True)
@click.option("--since", help="S3 only: date folders from this day on (2024-08-01, or 90d)")
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="S3 only: where the import remembers how far it got "
    "[default: $XDG_STATE_HOME/fnscope/cloudtrail-s3.json, else ~/.local/state/fnscope/cloudtrail-s3.json]",
)
@click.option("--workers", type=int, default=4, show_default=True, help="files sent at the same time")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.option("--quiet", is_flag=True, help="no progress bar")
@API_OPTION
@TOKEN_OPTION
def cloudtrail(
    sources: tuple[str, ...],
    since: str | None,
    state_path: Path | None,
    workers: int,
    as_json: bool,
    quiet: bool,
    api: str,
    token: str | None,
) -> None:
    """CloudTrail log files: .json, .json.gz, S3-style trees (AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/),
    or the trail's bucket itself: s3://bucket[/prefix].

    Importing the same files again adds nothing twice. Digest files are checked against the log files imported
    beside them (their signatures need AWS's public keys and are not checked here). From S3 (boto3's standard
    credentials; AWS_ENDPOINT_URL honoured) only the date folders from --since on are listed, and a re-run
    resumes where the last one got to: folders it finished are not listed again, files it sent not read again.
    """
    buckets = [s for s in sources if s.startswith("s3://")]
    paths = [Path(s) for s in sources if not s.startswith("s3://")]
    if buckets and paths:
        raise click.UsageError("import either local files or one s3:// location, not both")
    if len(buckets) > 1:
        raise click.UsageError("one s3:// location at a time")
    if since and not buckets:
        raise click.UsageError("--since is for an s3:// location (local files are imported as named)")
    for path in paths:
        if not path.exists():
            raise click.BadParameter(f"{path} does not exist", param_hint="SOURCES")
    check_reachable(api)
    began = _arrivals(api, token, {})
    progress = not quiet and not as_json
    extra: dict[str, Any] = {}
    if buckets:
        from fnscope.cli.import_s3 import default_state_path, import_from_s3

        try:
            start = parse_time(since) if since else None
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
        with sending(api, token, workers, progress, None) as out:
            counts = import_from_s3(buckets[0], start, state_path or default_state_path(), api, token, out)
        summary, extra = out.summary, {"s3": asdict(counts)}
    else:
        summary = import_cloudtrail(paths, api, token, workers, progress)
    _all_stored(api, token)  # acknowledged is durable; once stored, what was imported can be queried (and counted)
    if began is not None and (after := _arrivals(api, token, {"since_ms": began["now_ms"]})) is not None:
        summary.new_versions = after["new_versions"]
    if as_json:
        click.echo(json.dumps(asdict(summary) | extra))
    else:
        _print_summary(summary)
        if "s3" in extra:
            s3 = extra["s3"]
            click.echo(
                f"S3: {s3['listings']} listings, {s3['objects_read']} objects read, "
                f"{s3['folders_done_before']} folders done by an earlier run"
            )
    if summary.failed or summary.digest_log_files_mismatched:
        raise SystemExit(1)


def _arrivals(api: str, token: str | None, params: dict[str, Any]) -> dict[str, Any] | None:
    """The store's clock, or the versions new since a moment by it; None when this token may not read them."""
    try:
        answer: dict[str, Any] = api_get(api, token, "/api/audit/arrivals", params)
    except click.ClickException:
        return None
    return answer


def _all_stored(api: str, token: str | None) -> None:
    """Wait until everything the instance acknowledged is in its store (an empty request with ``?wait=stored``)."""
    api_call("POST", api, token, "/ingest/cloudtrail", {"wait": "stored"}, {"Records": []})


def _print_summary(summary: Summary) -> None:
    sent = f"{summary.events} events from {summary.files} files ({summary.rejected} rejected records)"
    if summary.new_versions is None:
        click.echo(f"sent {sent}; an event already stored is kept once")
    elif summary.new_versions == 0 and summary.events:
        click.echo(f"added nothing new: the {sent} were all stored already")
    else:
        click.echo(f"sent {sent}; the store gained {summary.new_versions} new event versions meanwhile "
                   "(live deliveries included, repeats of stored events not)")  # fmt: skip
    if summary.digests:
        click.echo(
            f"digests: {summary.digests} files; log files verified {summary.digest_log_files_verified}, "
            f"mismatched {len(summary.digest_log_files_mismatched)}, "
            f"not among the imported files {summary.digest_log_files_not_imported}"
        )
        for path in summary.digest_log_files_mismatched:
            click.echo(f"  MISMATCH {path}: its content is not what CloudTrail's digest recorded", err=True)
    if summary.skipped:
        click.echo(f"skipped {len(summary.skipped)} files that are not CloudTrail logs (e.g. {summary.skipped[0]})")
    for path, reason in summary.failed.items():
        click.echo(f"  FAILED {path}: {reason}", err=True)
