"""A CodeDeploy lifecycle hook for Lambda deployments that asks fnscope whether the new version is worse.

Deploy it as a Lambda function (Python 3.11+, nothing to install: boto3 is in the runtime) and name it in the
AppSpec's ``Hooks`` as ``BeforeAllowTraffic`` (PreTraffic) and/or ``AfterAllowTraffic`` (PostTraffic):

    Hooks:
      - BeforeAllowTraffic: fnscope-pre-traffic     # this handler
      - AfterAllowTraffic: fnscope-post-traffic     # this handler again (the hook name is in its environment)

Environment: ``FNSCOPE_API`` (https://fnscope.example.com), ``FNSCOPE_TOKEN`` (a token with the `read` scope;
better from Secrets Manager in production), ``FNSCOPE_HOOK`` (``PreTraffic`` or ``PostTraffic``),
``FNSCOPE_MAX_WAIT_S`` (how long PostTraffic waits for enough traffic, default 600; keep the hook's Lambda
timeout above it), ``FNSCOPE_ON_WAIT`` (``Failed``, the default, or ``Succeeded``: what to report when there is
still too little traffic to tell). Its role needs ``codedeploy:GetDeployment``, ``codedeploy:ListDeploymentTargets``,
``codedeploy:BatchGetDeploymentTargets`` and ``codedeploy:PutLifecycleEventHookExecutionStatus``.

- PreTraffic: the new version has had no traffic through the alias yet. The hook fails only on a ``fail`` verdict
  (calls made to the version directly, e.g. by smoke tests, already worse than the current one), so a broken
  version never gets traffic; ``wait`` (no traffic yet) is what a healthy PreTraffic sees, and succeeds.
- PostTraffic: the new version has taken traffic since the deployment began (the canary period, then all of it).
  The hook asks for the verdict over the time since the deployment was created, against the version it replaces,
  until it is ``pass`` (Succeeded) or ``fail`` (Failed: CodeDeploy rolls back), or ``FNSCOPE_MAX_WAIT_S`` passes.

CodeDeploy's alarm-based rollback works without this hook: an fnscope ``cloudwatch_alarm`` alert target sets the
deployment group's alarm while the ``canary-regression`` alert fires (see the README, "Safe deploys").
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any

Ask = Callable[[dict[str, str]], dict[str, Any]]
POLL_S = 20.0


class Refused(Exception):
    """fnscope answered 4xx (a wrong token, scope, function or version): asking again will not change it."""


def ask_fnscope(api: str, token: str) -> Ask:
    """GET /api/deployments/verdict on the fnscope at ``api``."""

    def ask(params: dict[str, str]) -> dict[str, Any]:
        url = f"{api.rstrip('/')}/api/deployments/verdict?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (the operator's own URL)
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if not 400 <= exc.code < 500:
                raise  # 5xx: fnscope is there but not answering yet, like unreachable
            text = exc.read(2000).decode("utf-8", "replace")
            try:
                detail = json.loads(text).get("detail", text)
            except (ValueError, AttributeError):
                detail = text
            raise Refused(f"fnscope refused the request ({exc.code}): {detail}") from None

    return ask


def lambda_target(codedeploy: Any, deployment_id: str) -> dict[str, Any]:
    """The function, its alias, and the current and target versions of this deployment (one Lambda target)."""
    ids = codedeploy.list_deployment_targets(deploymentId=deployment_id)["targetIds"]
    targets = codedeploy.batch_get_deployment_targets(deploymentId=deployment_id, targetIds=ids[:1])
    return targets["deploymentTargets"][0]["lambdaTarget"]["lambdaFunctionInfo"]


def decide(
    hook: str,
    info: dict[str, Any],
    since: datetime,
    ask: Ask,
    max_wait_s: float,
    on_wait: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[str, dict[str, Any] | None]:
    """``Succeeded`` or ``Failed``, and the last verdict fnscope gave (None if it never answered)."""
    params = {
        "function": info["functionName"],
        "version": str(info["targetVersion"]),
        "baseline": str(info["currentVersion"]),
        "since": since.isoformat(),
    }
    deadline = clock() + (0.0 if hook == "PreTraffic" else max_wait_s)
    last: dict[str, Any] | None = None
    while True:
        try:
            last = ask(params)
        except Refused as exc:  # a mistake in the setup, not too little traffic: never a wait, never Succeeded
            print(json.dumps({"hook": hook, "verdict": "refused", "reasons": [str(exc)]}))
            return "Failed", None
        except OSError as exc:  # fnscope unreachable: keep asking until the deadline, then it counts as a wait
            print(f"fnscope did not answer: {exc}")
        verdict = last["verdict"] if last else "wait"
        print(json.dumps({"hook": hook, "verdict": verdict, "reasons": last["reasons"] if last else []}))
        if verdict == "fail":
            return "Failed", last
        if verdict == "pass" or (hook == "PreTraffic" and last is not None):
            return "Succeeded", last
        if clock() + POLL_S > deadline:
            return on_wait, last
        sleep(POLL_S)


def run(event: dict[str, Any], codedeploy: Any, ask: Ask, env: dict[str, str], **waits: Any) -> str:
    """The hook: find what is being deployed, decide, and report the result to CodeDeploy."""
    deployment_id, execution_id = event["DeploymentId"], event["LifecycleEventHookExecutionId"]
    hook = env.get("FNSCOPE_HOOK", "PostTraffic")
    status = "Failed"
    try:
        info = lambda_target(codedeploy, deployment_id)
        created = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]["createTime"]
        on_wait = env.get("FNSCOPE_ON_WAIT", "Failed")
        max_wait = float(env.get("FNSCOPE_MAX_WAIT_S", "600"))
        status, _ = decide(
            hook, info, created, ask, max_wait, on_wait if on_wait in ("Failed", "Succeeded") else "Failed", **waits
        )
    finally:  # whatever happened, CodeDeploy hears back (else it waits an hour for the hook)
        codedeploy.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
        )
    return status


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    import boto3

    env = dict(os.environ)
    status = run(event, boto3.client("codedeploy"), ask_fnscope(env["FNSCOPE_API"], env.get("FNSCOPE_TOKEN", "")), env)
    return {"status": status}
