"""The saved compliance queries: each with what it finds, the control it serves, and its SQL (run by the API,
``fnscope.query.audit_saved``, and by the Grafana audit dashboard), and what every audit query sees.

Every query reads the same rows as ``fnscope audit`` (every version of every event: nothing that arrives later
replaces or hides what was stored, a CloudTrail correction included),
within ``since``/``until``; every value a caller passes is a bound parameter. CloudTrail names Lambda's events
with API dates (``UpdateFunctionCode20150331v2``), so Lambda actions are matched as NAME plus an optional date.
A query's ``controls`` are the assurance-framework controls it serves (CIS AWS Foundations, SOC 2, PCI DSS
requirement 10, HIPAA; the table and the versions numbered are in ``fnscope.dashboards.assurance``) followed by its
other references: AWS Security Hub controls and MITRE ATT&CK techniques.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fnscope.dashboards.assurance import MAPPING, citations

AUDIT_COLUMNS = (
    "time, account, region, service, action, principal_type, principal_arn, principal_name, principal_account, "
    "session_issuer, access_key, mfa, source_ip, user_agent, error_code, error_message, read_only, event_type, "
    "event_category, function, resources, event_id, content"
)

# FINAL: one row per version of an event (eventID and content: an identical re-delivery is no new version).
# Partitions are by event time, and the rows one FINAL merges share their time, so partitions need no merging.
FINAL_SETTINGS = "SETTINGS do_not_merge_across_partitions_select_final = 1"


@dataclass(frozen=True)
class SavedQuery:
    name: str
    title: str
    description: str
    references: tuple[str, ...]  # beside the framework controls: Security Hub, MITRE ATT&CK, ...
    sql: str
    params: dict[str, tuple[str, Any]] = field(default_factory=dict)  # name -> (ClickHouse type, default)
    grouped: bool = False  # rows are groups of events (an ``events`` count and ``event_ids`` each), not events

    @property
    def controls(self) -> tuple[str, ...]:
        return (*citations(self.name), *self.references)

    def meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "controls": list(self.controls),
            "frameworks": {name: list(ids) for name, ids in MAPPING.get(self.name, {}).items()},
            "params": {name: {"type": kind, "default": default} for name, (kind, default) in self.params.items()},
        }


def _visible(condition: str, since: str = "{since:DateTime64(3)}") -> str:
    """The audit rows in the time range that meet ``condition``: every version of every event."""
    return (
        "(SELECT *, content FROM audit_events FINAL WHERE tenant = {tenant:String} "
        f"AND time >= {since} AND time <= {{until:DateTime64(3)}} AND ({condition}))"
    )


def _events(condition: str) -> str:
    return (
        f"SELECT {AUDIT_COLUMNS} FROM {_visible(condition)} "
        "ORDER BY time DESC, event_id, ingested_at LIMIT {limit:UInt32}"
    )


def _names(service: str, *names: str) -> str:
    """Exact event names of a service (services whose event names carry no API date)."""
    quoted = ", ".join(f"'{name}'" for name in names)
    return f"(service = '{service}' AND action IN ({quoted}))"


def _lambda(*names: str) -> str:
    """Lambda event names with or without their API date: AddPermission, AddPermission20150331v2, ..."""
    return f"(service = 'lambda.amazonaws.com' AND match(action, '^({'|'.join(names)})([0-9]{{8}}(v[0-9]+)?)?$'))"


# Every Lambda API call that changes a function or what reaches it (the names without their API dates): the
# "lambda-function-changes" query and a function's change history (``fnscope.query.lambda_changes``) read this.
LAMBDA_CHANGE_ACTIONS = (
    "CreateFunction",
    "UpdateFunctionCode",
    "UpdateFunctionConfiguration",
    "DeleteFunction",
    "PublishVersion",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "PutFunctionConcurrency",
    "DeleteFunctionConcurrency",
    "PutProvisionedConcurrencyConfig",
    "DeleteProvisionedConcurrencyConfig",
    "AddPermission",
    "RemovePermission",
    "CreateFunctionUrlConfig",
    "UpdateFunctionUrlConfig",
    "DeleteFunctionUrlConfig",
    "CreateEventSourceMapping",
    "UpdateEventSourceMapping",
    "DeleteEventSourceMapping",
    "PutFunctionEventInvokeConfig",
    "UpdateFunctionEventInvokeConfig",
    "DeleteFunctionEventInvokeConfig",
    "PutRuntimeManagementConfig",
    "PutFunctionCodeSigningConfig",
    "DeleteFunctionCodeSigningConfig",
    "PutFunctionRecursionConfig",
    "TagResource",
    "UntagResource",
)


def lambda_changes() -> str:
    """The condition matching every call of ``LAMBDA_CHANGE_ACTIONS``, with or without its API date."""
    return _lambda(*LAMBDA_CHANGE_ACTIONS)


def _request(*path: str) -> str:
    keys = ", ".join(f"'{key}'" for key in path)
    return f"JSONExtractString(raw, 'requestParameters', {keys})"


_ACCESS_DENIED = (
    "(error_code IN ('AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', "
    "'Client.UnauthorizedOperation', 'UnauthorizedAccess') OR error_code ILIKE '%AccessDenied%' "
    "OR error_code ILIKE '%Unauthorized%')"
)
_CONSOLE_FAILURE = (
    "(action = 'ConsoleLogin' AND (JSONExtractString(raw, 'responseElements', 'ConsoleLogin') = 'Failure' "
    "OR error_message != ''))"
)
_WINDOW = {"window_minutes": ("UInt32", 5)}


def _burst(condition: str, by: str, threshold: int) -> tuple[str, dict[str, tuple[str, Any]]]:
    """Groups (``by``) that had at least ``threshold`` matching events within any ``window_minutes``: the peak
    is the most in one sliding window; the rows list all of the group's matching events in the range."""
    sql = (
        f"SELECT {by}, max(recent) AS peak, count() AS events, min(time) AS first, max(time) AS last, "
        "groupUniqArray(10)(principal_arn) AS principals, groupUniqArray(10)(action) AS actions, "
        "groupUniqArray(10)(error_code) AS errors, groupArray(100)(event_id) AS event_ids "
        f"FROM (SELECT *, count() OVER (PARTITION BY {by} ORDER BY toUnixTimestamp(time) "
        "RANGE BETWEEN {window_minutes:UInt32} * 60 PRECEDING AND CURRENT ROW) AS recent "
        f"FROM {_visible(condition)}) GROUP BY {by} HAVING peak >= {{threshold:UInt32}} "
        "ORDER BY peak DESC, first LIMIT {limit:UInt32}"
    )
    return sql, {**_WINDOW, "threshold": ("UInt32", threshold)}


_DENIED_SQL, _DENIED_PARAMS = _burst(_ACCESS_DENIED, "account, principal_arn", 10)
_FAILED_LOGIN_SQL, _FAILED_LOGIN_PARAMS = _burst(_CONSOLE_FAILURE, "account, source_ip", 3)

_BASELINE_START = "{since:DateTime64(3)} - toIntervalDay({baseline_days:UInt32})"
_REGION_ROWS = _visible("region != ''", since=_BASELINE_START)
_NEW_REGION_SQL = (
    "SELECT account, region, min(time) AS first_seen, count() AS events, "
    "groupUniqArray(10)(principal_arn) AS principals, groupUniqArray(10)(action) AS actions, "
    "groupArray(100)(event_id) AS event_ids "
    f"FROM {_REGION_ROWS} "
    "GROUP BY account, region "
    "HAVING first_seen >= {since:DateTime64(3)} AND account IN (SELECT account FROM audit_events "
    f"WHERE tenant = {{tenant:String}} AND time >= {_BASELINE_START} "
    "AND time < {since:DateTime64(3)}) "
    "ORDER BY first_seen LIMIT {limit:UInt32}"
)

_IAM_POLICY_ACTIONS = (
    "DeleteGroupPolicy",
    "DeleteRolePolicy",
    "DeleteUserPolicy",
    "PutGroupPolicy",
    "PutRolePolicy",
    "PutUserPolicy",
    "CreatePolicy",
    "DeletePolicy",
    "CreatePolicyVersion",
    "DeletePolicyVersion",
    "SetDefaultPolicyVersion",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "AttachUserPolicy",
    "DetachUserPolicy",
    "AttachGroupPolicy",
    "DetachGroupPolicy",
    "UpdateAssumeRolePolicy",
)

SAVED_QUERIES: tuple[SavedQuery, ...] = (
    SavedQuery(
        "root-account-usage",
        "Root user activity",
        "Anything the root user did itself (not AWS services acting for it). Root should be locked away.",
        (),
        _events(
            "principal_type = 'Root' AND event_type != 'AwsServiceEvent' "
            "AND JSONExtractString(raw, 'userIdentity', 'invokedBy') = ''"
        ),
    ),
    SavedQuery(
        "console-login-without-mfa",
        "Console sign-in without MFA",
        "Successful console sign-ins of IAM users (or root) that did not use MFA.",
        (),
        _events(
            "action = 'ConsoleLogin' AND principal_type IN ('IAMUser', 'Root') AND coalesce(mfa, false) = false "
            "AND JSONExtractString(raw, 'responseElements', 'ConsoleLogin') = 'Success'"
        ),
    ),
    SavedQuery(
        "console-login-failures",
        "Bursts of failed console sign-ins",
        "Source addresses with at least `threshold` failed console sign-ins in `window_minutes`: password guessing.",
        ("MITRE ATT&CK T1110",),
        _FAILED_LOGIN_SQL,
        _FAILED_LOGIN_PARAMS,
        grouped=True,
    ),
    SavedQuery(
        "access-denied-spike",
        "Spikes of AccessDenied / unauthorized calls",
        "Principals with at least `threshold` denied calls in `window_minutes`: probing with stolen credentials.",
        ("MITRE ATT&CK T1580",),
        _DENIED_SQL,
        _DENIED_PARAMS,
        grouped=True,
    ),
    SavedQuery(
        "iam-policy-changes",
        "IAM policy changes",
        "Inline and managed policies created, changed, attached or detached, and role trust policies changed.",
        ("MITRE ATT&CK T1098",),
        _events(_names("iam.amazonaws.com", *_IAM_POLICY_ACTIONS)),
    ),
    SavedQuery(
        "cloudtrail-changes",
        "CloudTrail stopped, deleted or reconfigured",
        "Trails created, updated, deleted, logging stopped or started, event or insight selectors changed.",
        ("MITRE ATT&CK T1562.008",),
        _events(
            _names(
                "cloudtrail.amazonaws.com",
                "CreateTrail",
                "UpdateTrail",
                "DeleteTrail",
                "StartLogging",
                "StopLogging",
                "PutEventSelectors",
                "PutInsightSelectors",
                "DeleteEventDataStore",
                "UpdateEventDataStore",
                "StopEventDataStoreIngestion",
            )
        ),
    ),
    SavedQuery(
        "access-keys-created",
        "Access keys created",
        "New long-lived IAM access keys: a common way to keep access after a compromise.",
        ("MITRE ATT&CK T1098.001",),
        _events(_names("iam.amazonaws.com", "CreateAccessKey")),
    ),
    SavedQuery(
        "iam-login-profile-changes",
        "Console passwords set for IAM users",
        "Login profiles created, updated or deleted: someone gave a user console access or changed its password.",
        ("MITRE ATT&CK T1098",),
        _events(_names("iam.amazonaws.com", "CreateLoginProfile", "UpdateLoginProfile", "DeleteLoginProfile")),
    ),
    SavedQuery(
        "lambda-function-changes",
        "Lambda function changes",
        "Every call that changed a function or what reaches it: code, configuration and layers, versions, aliases "
        "and their weights, reserved and provisioned concurrency, permissions, function URLs, event source "
        "mappings, async invoke settings, tags, creation and deletion.",
        ("AWS Security Hub Lambda.2",),
        _events(lambda_changes()),
    ),
    SavedQuery(
        "lambda-code-changes",
        "Lambda function code changes",
        "Functions created or their code replaced (UpdateFunctionCode): who shipped what, when, from where.",
        ("AWS Security Hub Lambda.2", "MITRE ATT&CK T1525"),
        _events(_lambda("CreateFunction", "UpdateFunctionCode")),
    ),
    SavedQuery(
        "lambda-config-changes",
        "Lambda function configuration changes",
        "Configuration updates: environment, role, handler, runtime, layers, VPC, code signing, async targets.",
        ("AWS Security Hub Lambda.2",),
        _events(
            _lambda(
                "UpdateFunctionConfiguration",
                "PutFunctionEventInvokeConfig",
                "UpdateFunctionEventInvokeConfig",
                "DeleteFunctionEventInvokeConfig",
                "PutRuntimeManagementConfig",
                "PutFunctionCodeSigningConfig",
                "DeleteFunctionCodeSigningConfig",
                "PutFunctionRecursionConfig",
            )
        ),
    ),
    SavedQuery(
        "lambda-layer-changes",
        "Lambda layer changes",
        "Layer versions published, deleted or shared, and functions given layers: extensions run inside every call.",
        ("MITRE ATT&CK T1525", "Stratus Red Team lambda-layer-extension"),
        _events(
            f"{_lambda('PublishLayerVersion', 'DeleteLayerVersion', 'AddLayerVersionPermission', 'RemoveLayerVersionPermission')}"
            # a function given layers, wherever the event names them: a new function's request or response; a
            # configuration change's request (its response lists the layers kept too), or its response when
            # CloudTrail recorded no request
            f" OR ({_lambda('CreateFunction')} AND (JSONHas(raw, 'requestParameters', 'layers') "
            "OR JSONHas(raw, 'responseElements', 'layers')))"
            f" OR ({_lambda('UpdateFunctionConfiguration')} AND (JSONHas(raw, 'requestParameters', 'layers') "
            "OR (JSONType(raw, 'requestParameters') != 'Object' AND JSONHas(raw, 'responseElements', 'layers'))))"
        ),
    ),
    SavedQuery(
        "lambda-permission-changes",
        "Lambda resource policy changes",
        "Permissions added to or removed from a function's resource policy: who else may invoke it.",
        ("AWS Security Hub Lambda.1", "MITRE ATT&CK T1098"),
        _events(_lambda("AddPermission", "RemovePermission")),
    ),
    SavedQuery(
        "lambda-public-access",
        "Lambda functions made public",
        "Function URLs with AuthType NONE, and permissions granted to every principal ('*').",
        ("AWS Security Hub Lambda.1", "MITRE ATT&CK T1190"),
        _events(
            f"({_lambda('CreateFunctionUrlConfig', 'UpdateFunctionUrlConfig')} AND {_request('authType')} = 'NONE') "
            f"OR ({_lambda('AddPermission')} AND {_request('principal')} = '*')"
        ),
    ),
    SavedQuery(
        "lambda-concurrency-changes",
        "Lambda concurrency changes",
        "Reserved or provisioned concurrency set or removed: a function throttled to zero, or starving the others.",
        ("MITRE ATT&CK T1499",),
        _events(
            _lambda(
                "PutFunctionConcurrency",
                "DeleteFunctionConcurrency",
                "PutProvisionedConcurrencyConfig",
                "DeleteProvisionedConcurrencyConfig",
            )
        ),
    ),
    SavedQuery(
        "security-group-changes",
        "Security group changes",
        "Security groups created, deleted, or their rules changed.",
        (),
        _events(
            _names(
                "ec2.amazonaws.com",
                "AuthorizeSecurityGroupIngress",
                "AuthorizeSecurityGroupEgress",
                "RevokeSecurityGroupIngress",
                "RevokeSecurityGroupEgress",
                "CreateSecurityGroup",
                "DeleteSecurityGroup",
                "ModifySecurityGroupRules",
            )
        ),
    ),
    SavedQuery(
        "kms-key-disabled-or-deleted",
        "KMS keys disabled or scheduled for deletion",
        "Customer-managed keys disabled or scheduled for deletion: data encrypted with them becomes unreadable.",
        ("MITRE ATT&CK T1485",),
        _events(_names("kms.amazonaws.com", "DisableKey", "ScheduleKeyDeletion")),
    ),
    SavedQuery(
        "aws-config-changes",
        "AWS Config changes",
        "Configuration recorders stopped or deleted, delivery channels changed.",
        (),
        _events(
            _names(
                "config.amazonaws.com",
                "StopConfigurationRecorder",
                "DeleteConfigurationRecorder",
                "PutConfigurationRecorder",
                "DeleteDeliveryChannel",
                "PutDeliveryChannel",
            )
        ),
    ),
    SavedQuery(
        "logging-deleted",
        "Network and DNS logging removed",
        "VPC flow logs and Route 53 Resolver query logging deleted: covering tracks.",
        ("MITRE ATT&CK T1562.008",),
        _events(
            f"{_names('ec2.amazonaws.com', 'DeleteFlowLogs')} OR "
            f"{_names('route53resolver.amazonaws.com', 'DeleteResolverQueryLogConfig', 'DisassociateResolverQueryLogConfig')}"
        ),
    ),
    SavedQuery(
        "organizations-changes",
        "AWS Organizations changes",
        "Changes to the organization: accounts leaving or removed, policies attached or detached.",
        ("MITRE ATT&CK T1666",),
        _events("service = 'organizations.amazonaws.com' AND read_only = false"),
    ),
    SavedQuery(
        "snapshot-or-image-shared",
        "Snapshots and images shared",
        "EBS snapshots, AMIs and RDS snapshots whose sharing attributes changed: data leaving the account.",
        ("MITRE ATT&CK T1537",),
        _events(
            f"{_names('ec2.amazonaws.com', 'ModifySnapshotAttribute', 'ModifyImageAttribute')} OR "
            f"{_names('rds.amazonaws.com', 'ModifyDBSnapshotAttribute', 'ModifyDBClusterSnapshotAttribute')}"
        ),
    ),
    SavedQuery(
        "new-region-activity",
        "Activity from a region never seen before",
        "Regions an account used for the first time since `since`, when it had activity elsewhere in the "
        "`baseline_days` before: resources hidden in unused regions.",
        ("MITRE ATT&CK T1535",),
        _NEW_REGION_SQL,
        {"baseline_days": ("UInt32", 90)},
        grouped=True,
    ),
)

BY_NAME = {query.name: query for query in SAVED_QUERIES}
