"""The CloudFormation templates `fnscope aws template` prints (deploy/aws), and the API Gateway access-log formats.

Every template passes cfn-lint (as a library, all rules, us-east-1). What they wire is checked against fnscope itself:
the Firehose endpoint is a route the app serves, each path's stream holds its own token, the account-level policy
leaves out the trail's group and the streams' own error logs, and an access-log line written in the printed format,
delivered through a CloudWatch Logs subscription, becomes the same API request `POST /ingest/apigateway` stores.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest
import yaml
from cfnlint.api import ManualArgs, lint
from click.testing import CliRunner

from fnscope.cli import main
from fnscope.collector.formats import apigateway, cloudwatch
from fnscope.events import ApiAccess, FunctionLog
from fnscope.sink import IngestContext
from tests.fixtures.formats import firehose_body, gzipped, post, subscription_message
from tests.fixtures.wire import cloudwatch_gzip

URL = "https://fnscope.example.com"


def printed(*args: str) -> str:
    result = CliRunner().invoke(main, ["aws", *args])
    assert result.exit_code == 0, result.output
    return result.output


def template(path: str) -> dict[str, Any]:
    return yaml.safe_load(printed("template", "--path", path, "--url", URL))


@pytest.mark.parametrize("path", ["logs", "cloudtrail", "all"])
def test_every_template_passes_cfn_lint(path: str) -> None:
    text = printed("template", "--path", path, "--url", URL)
    problems = lint(text, config=ManualArgs(regions=["us-east-1"]))
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in problems] == []


def test_cfn_lint_finds_a_broken_template() -> None:
    """The check above can fail: the same template with a property CloudFormation does not know is refused."""
    text = printed("template", "--path", "logs", "--url", URL).replace("S3BackupMode:", "S3BackupMood:")
    assert lint(text, config=ManualArgs(regions=["us-east-1"]))


def test_the_url_is_filled_in_and_each_stream_delivers_to_the_firehose_route() -> None:
    doc = template("all")
    assert doc["Parameters"]["FnscopeUrl"]["Default"] == URL
    resources = {k: v for k, v in doc["Resources"].items() if isinstance(v, dict)}  # not the Fn::ForEach
    streams = {k: v for k, v in resources.items() if v["Type"] == "AWS::KinesisFirehose::DeliveryStream"}
    assert set(streams) == {"LogsDeliveryStream", "TrailDeliveryStream"}
    for name, token in (("LogsDeliveryStream", "LogsToken"), ("TrailDeliveryStream", "TrailToken")):
        http = streams[name]["Properties"]["HttpEndpointDestinationConfiguration"]
        url = http["EndpointConfiguration"]["Url"]["Fn::Sub"]
        assert url.startswith("${FnscopeUrl}/")
        # the path answers a delivery as this stream sends it: gzip (ContentEncoding), the token as access key
        delivery = firehose_body("req-1", 1722517201000, [cloudwatch_gzip()])
        headers = {"Content-Encoding": "gzip", "X-Amz-Firehose-Access-Key": "any", "X-Amz-Firehose-Request-Id": "r"}
        answer, stored = post(url.removeprefix("${FnscopeUrl}"), gzipped(delivery), headers)
        assert answer.status_code == 200 and "errorMessage" not in answer.json() and stored
        assert http["EndpointConfiguration"]["AccessKey"] == {"Ref": token}  # each stream its own token
        assert doc["Parameters"][token]["NoEcho"] is True
        assert http["S3BackupMode"] == "FailedDataOnly"
        assert http["RequestConfiguration"]["ContentEncoding"] == "GZIP"
    assert "telemetry scope only" in doc["Parameters"]["LogsToken"]["Description"]
    assert "telemetry+audit" in doc["Parameters"]["TrailToken"]["Description"]


def test_the_account_policy_leaves_out_the_trail_group_and_the_streams_error_logs() -> None:
    doc = template("all")
    excluded = doc["Parameters"]["ExcludedLogGroups"]["Default"]
    assert excluded == doc["Resources"]["TrailLogGroup"]["Properties"]["LogGroupName"]
    names = json.dumps(doc["Resources"]["LogsAccountPolicy"]["Properties"]["SelectionCriteria"])
    assert '"Ref": "LogsFirehoseLogGroup"' in names and '"Ref": "ExcludedLogGroups"' in names
    # the trail's subscription goes to the stream with the audit token, never to the logs stream
    subscription = doc["Resources"]["TrailSubscription"]["Properties"]
    assert subscription["DestinationArn"] == {"Fn::GetAtt": ["TrailDeliveryStream", "Arn"]}


@pytest.mark.parametrize("url", ["http://fnscope.example.com", "https://a.example.com\n  Evil: 1", "ftp://x", ""])
def test_a_url_that_is_not_plain_https_is_refused(url: str) -> None:
    result = CliRunner().invoke(main, ["aws", "template", "--url", url])
    assert result.exit_code != 0 and "https://" in result.output


# --- API Gateway access logs ----------------------------------------------------------------------------------

# What API Gateway substitutes for each variable (the same names in REST and HTTP APIs); "-" where it has none.
VALUES = {
    "apiId": "a1b2c3d4e5",
    "stage": "prod",
    "accountId": "111122223333",
    "deploymentId": "k9x2mq",
    "isCanaryRequest": "true",
    "domainName": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
    "requestId": "Jx7Qd2xmplAEMLw=",
    "requestTimeEpoch": "1722517200123",
    "httpMethod": "POST",
    "resourcePath": "/orders/{id}",
    "routeKey": "POST /orders/{id}",
    "path": "/prod/orders/17",
    "protocol": "HTTP/1.1",
    "status": "502",
    "responseLength": "36",
    "responseLatency": "1034",
    "integrationLatency": "1029",
    "integrationStatus": "200",
    "error.message": "Internal server error",
    "error.responseType": "-",
    "integration.error": "Lambda function errored",
    "integrationErrorMessage": "Lambda function errored",
    "identity.sourceIp": "198.51.100.7",
    "identity.userAgent": "curl/8.5.0",
}


def access_line(kind: str) -> str:
    """A line as API Gateway writes it with the printed format: each $context variable replaced by its value."""
    text = printed("access-log-format", "--api", kind).strip()
    line = re.sub(r"\$context\.([A-Za-z.]+)", lambda m: VALUES[m.group(1)], text)
    assert "$context" not in line
    return line


@pytest.mark.parametrize("kind", ["rest", "http"])
def test_an_access_log_line_through_a_subscription_is_the_api_request(kind: str) -> None:
    line = access_line(kind)
    lines = [(1722517201000, line), (1722517201001, '{"level": "info", "msg": "not an access log"}')]
    message = subscription_message(f"API-Gateway-Access-Logs_a1b2c3d4e5/{kind}", "stream-1", lines)
    ctx = IngestContext(tenant="acme")
    parsed = cloudwatch.parse(gzipped(orjson.dumps(message)), ctx)
    requests = [e for e in parsed.events if isinstance(e, ApiAccess)]
    assert [e.message for e in parsed.events if isinstance(e, FunctionLog)] == ["not an access log"]
    (request,) = requests
    assert (request.api_id, request.stage, request.account, request.region) == (
        "a1b2c3d4e5",
        "prod",
        "111122223333",
        "eu-west-1",
    )
    route = "/orders/{id}" if kind == "rest" else "POST /orders/{id}"
    assert (request.method, request.route, request.path, request.status) == ("POST", route, "/prod/orders/17", 502)
    assert (request.latency_ms, request.integration_latency_ms, request.integration_status) == (1034, 1029, 200)
    assert (request.source_ip, request.user_agent, request.response_length) == ("198.51.100.7", "curl/8.5.0", 36)
    assert request.error_message == "Internal server error"
    assert request.time.timestamp() == 1722517200.123
    if kind == "rest":  # an HTTP API has no canary releases
        assert (request.deployment_id, request.canary) == ("k9x2mq", True)
    # exactly what the access-log endpoint stores for the same line
    assert request.model_dump() == apigateway.parse(line.encode(), ctx).events[0].model_dump()


def test_an_access_log_line_printed_by_a_function_stays_a_log_line() -> None:
    message = subscription_message(
        "/aws/lambda/orders-api", "2024/08/01/[$LATEST]abc", [(1722517201000, access_line("http"))]
    )
    parsed = cloudwatch.parse(gzipped(orjson.dumps(message)), IngestContext(tenant="acme"))
    assert [type(e) for e in parsed.events] == [FunctionLog]


def test_the_logs_template_outputs_the_printed_formats() -> None:
    outputs = template("logs")["Outputs"]
    assert outputs["ApiGatewayRestAccessLogFormat"]["Value"] == printed("access-log-format", "--api", "rest").strip()
    assert outputs["ApiGatewayHttpAccessLogFormat"]["Value"] == printed("access-log-format", "--api", "http").strip()


def test_what_the_readme_says_each_path_makes() -> None:
    """Failed records: after 5 minutes of retries, gzip, kept 14 days; the trail: multi-region, validated, its group
    kept 7 days, or an existing trail's group instead."""
    for path, prefix in (("logs", "Logs"), ("cloudtrail", "Trail")):
        doc = template(path)
        resources = doc["Resources"]
        http = resources[f"{prefix}DeliveryStream"]["Properties"]["HttpEndpointDestinationConfiguration"]
        assert http["RetryOptions"]["DurationInSeconds"] == 300
        assert (http["S3BackupMode"], http["S3Configuration"]["CompressionFormat"]) == ("FailedDataOnly", "GZIP")
        (rule,) = resources[f"{prefix}BackupBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        assert (
            rule["ExpirationInDays"] == {"Ref": "FailedRecordDays"}
            and doc["Parameters"]["FailedRecordDays"]["Default"] == 14
        )
    doc = template("cloudtrail")
    trail = doc["Resources"]["Trail"]["Properties"]
    assert trail["IsMultiRegionTrail"] and trail["EnableLogFileValidation"] and trail["IsLogging"]
    group = doc["Resources"]["TrailLogGroup"]["Properties"]
    assert (group["LogGroupName"], group["RetentionInDays"]) == ("aws-cloudtrail-logs-fnscope", 7)
    assert doc["Resources"]["TrailSubscription"]["Properties"]["LogGroupName"] == {
        "Fn::If": ["NewTrail", {"Ref": "TrailLogGroup"}, {"Ref": "TrailLogGroupName"}]
    }


def _evaluate(node: Any, doc: dict[str, Any], params: dict[str, Any]) -> Any:
    """The few intrinsic functions the account policy's SelectionCriteria uses, as CloudFormation resolves them
    (a log group's Ref is its name; the stack is called ``stack``)."""
    if isinstance(node, list):
        return [_evaluate(n, doc, params) for n in node]
    if not isinstance(node, dict):
        return node
    ((fn, arg),) = node.items()
    if fn == "Ref":
        if arg in params:
            return params[arg]
        return _evaluate(doc["Resources"][arg]["Properties"]["LogGroupName"], doc, params)
    if fn == "Fn::If":
        condition = doc["Conditions"][arg[0]]["Fn::Equals"]
        holds = _evaluate(condition[0], doc, params) == _evaluate(condition[1], doc, params)
        return _evaluate(arg[1] if holds else arg[2], doc, params)
    if fn == "Fn::Join":
        return arg[0].join(_flat(_evaluate(arg[1], doc, params)))
    if fn == "Fn::Split":
        return _evaluate(arg[1], doc, params).split(arg[0])
    if fn == "Fn::ToJsonString":
        return json.dumps(_evaluate(arg, doc, params))
    if fn == "Fn::Sub":
        text, given = (arg, {}) if isinstance(arg, str) else arg
        names = {k: _evaluate(v, doc, params) for k, v in given.items()}
        names["AWS::StackName"] = "stack"
        return re.sub(r"\$\{([^}]+)\}", lambda m: names[m.group(1)], text)
    raise AssertionError(f"not evaluated here: {fn}")


def _flat(items: list[Any]) -> list[str]:
    return [x for item in items for x in (item if isinstance(item, list) else [item])]


@pytest.mark.parametrize("trail_group", ["", "org-trail-group"])
def test_one_stack_with_both_paths_leaves_the_trail_and_both_streams_error_logs_out(trail_group: str) -> None:
    doc = template("all")
    params = {"TrailLogGroupName": trail_group, "ExcludedLogGroups": ["aws-cloudtrail-logs-fnscope"]}
    criteria = _evaluate(doc["Resources"]["LogsAccountPolicy"]["Properties"]["SelectionCriteria"], doc, params)
    assert criteria.startswith("LogGroupName NOT IN [")
    left_out = set(json.loads(criteria.removeprefix("LogGroupName NOT IN ")))
    trail = trail_group or "aws-cloudtrail-logs-fnscope"  # the new trail's group
    assert {trail, "/aws/kinesisfirehose/stack-logs", "/aws/kinesisfirehose/stack-cloudtrail"} <= left_out


def test_credentials_in_the_url_are_refused_and_never_printed() -> None:
    result = CliRunner().invoke(main, ["aws", "template", "--url", "https://ops:s3cret@fnscope.example.com/x"])
    assert result.exit_code != 0 and "without user:password@" in result.output
    assert "s3cret" not in result.output
