"""Which assurance-framework controls each saved compliance query serves: one table, read by the saved queries'
descriptions (``SavedQuery.controls``), the audit report (``fnscope audit report``) and the tests.

The numbering, stated once here because frameworks renumber:

- CIS Amazon Web Services Foundations Benchmark **v1.4.0** (the version AWS Security Hub's CIS checks cite; its
  section 4 "Monitoring" is section 3 in v1.2.0, e.g. 4.3 there is 3.3). Lambda is outside that benchmark, so the
  Lambda queries serve no CIS item.
- AICPA **2017 Trust Services Criteria** (revised points of focus, 2022) for SOC 2: CC6 logical and physical access,
  CC7 system operations, CC8 change management, A1 availability.
- **PCI DSS v4.0** (v4.0.1 keeps these numbers), requirement 10 "Log and monitor all access to system components
  and cardholder data". 10.4.1.1 (automated mechanisms perform audit log reviews) is what every saved query is.
- **HIPAA Security Rule**, 45 CFR §164.312(b) "Audit controls" (a standard with no implementation specifications),
  and §164.308(a)(5)(ii)(C) "Log-in monitoring" where a query watches sign-ins.

A query is mapped to a control when what it finds is evidence the control asks for; a control no saved query
serves is listed too, so a report shows the gap rather than hiding it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Control:
    id: str
    title: str


@dataclass(frozen=True)
class Framework:
    name: str  # what `--framework` takes
    label: str  # the prefix of a control's citation: "PCI DSS 10.2.1.4"
    title: str
    version: str
    controls: tuple[Control, ...]

    def cite(self, control_id: str) -> str:
        return f"{self.label} {control_id}"


CIS = Framework(
    "cis",
    "CIS AWS Foundations",
    "CIS Amazon Web Services Foundations Benchmark",
    "v1.4.0",
    (
        Control("1.7", "Eliminate use of the 'root' user for administrative and daily tasks"),
        Control("1.10", "Ensure multi-factor authentication (MFA) is enabled for all IAM users that have a console "
                "password"),
        Control("1.12", "Ensure credentials unused for 45 days or greater are disabled"),
        Control("1.14", "Ensure access keys are rotated every 90 days or less"),
        Control("3.1", "Ensure CloudTrail is enabled in all regions"),
        Control("3.5", "Ensure AWS Config is enabled in all regions"),
        Control("3.9", "Ensure VPC flow logging is enabled in all VPCs"),
        Control("4.1", "Ensure a log metric filter and alarm exist for unauthorized API calls"),
        Control("4.2", "Ensure a log metric filter and alarm exist for Management Console sign-in without MFA"),
        Control("4.3", "Ensure a log metric filter and alarm exist for usage of 'root' account"),
        Control("4.4", "Ensure a log metric filter and alarm exist for IAM policy changes"),
        Control("4.5", "Ensure a log metric filter and alarm exist for CloudTrail configuration changes"),
        Control("4.6", "Ensure a log metric filter and alarm exist for AWS Management Console authentication "
                "failures"),
        Control("4.7", "Ensure a log metric filter and alarm exist for disabling or scheduled deletion of customer "
                "created CMKs"),
        Control("4.8", "Ensure a log metric filter and alarm exist for S3 bucket policy changes"),
        Control("4.9", "Ensure a log metric filter and alarm exist for AWS Config configuration changes"),
        Control("4.10", "Ensure a log metric filter and alarm exist for security group changes"),
        Control("4.11", "Ensure a log metric filter and alarm exist for changes to Network Access Control Lists"),
        Control("4.12", "Ensure a log metric filter and alarm exist for changes to network gateways"),
        Control("4.13", "Ensure a log metric filter and alarm exist for route table changes"),
        Control("4.14", "Ensure a log metric filter and alarm exist for VPC changes"),
        Control("4.15", "Ensure a log metric filter and alarm exists for AWS Organizations changes"),
    ),
)  # fmt: skip

SOC2 = Framework(
    "soc2",
    "SOC 2",
    "SOC 2 (AICPA Trust Services Criteria)",
    "2017 (revised points of focus, 2022)",
    (
        Control("CC6.1", "Logical access security software, infrastructure and architectures protect information "
                "assets"),
        Control("CC6.2", "New internal and external users are registered and authorized before credentials are "
                "issued"),
        Control("CC6.3", "Access to data, software and functions is authorized, modified or removed by role"),
        Control("CC6.6", "Logical access security measures protect against threats from outside the system "
                "boundaries"),
        Control("CC6.7", "The transmission, movement and removal of information is restricted to authorized users"),
        Control("CC6.8", "Controls prevent or detect the introduction of unauthorized or malicious software"),
        Control("CC7.1", "Detection and monitoring identify configuration changes that introduce vulnerabilities"),
        Control("CC7.2", "System components are monitored for anomalies indicative of malicious acts, natural "
                "disasters and errors"),
        Control("A1.1", "Current processing capacity and use of system components is maintained, monitored and "
                "evaluated"),
        Control("CC8.1", "Changes to infrastructure, data, software and procedures are authorized, tested, approved "
                "and implemented"),
    ),
)  # fmt: skip

PCI = Framework(
    "pci",
    "PCI DSS",
    "PCI DSS requirement 10: log and monitor all access to system components and cardholder data",
    "v4.0",
    (
        Control("10.2.1.1", "Audit logs capture all individual user access to cardholder data"),
        Control("10.2.1.2", "Audit logs capture all actions taken by any individual with administrative access"),
        Control("10.2.1.3", "Audit logs capture all access to audit logs"),
        Control("10.2.1.4", "Audit logs capture all invalid logical access attempts"),
        Control("10.2.1.5", "Audit logs capture all changes to identification and authentication credentials"),
        Control("10.2.1.6", "Audit logs capture the initialization, starting, stopping or pausing of audit logs"),
        Control("10.2.1.7", "Audit logs capture all creation and deletion of system-level objects"),
        Control("10.4.1.1", "Automated mechanisms are used to perform audit log reviews"),
        Control("10.7.2", "Failures of critical security control systems (audit logging, change detection) are "
                "detected, alerted and addressed promptly"),
    ),
)  # fmt: skip

HIPAA = Framework(
    "hipaa",
    "HIPAA",
    "HIPAA Security Rule (45 CFR Part 164, Subpart C)",
    "45 CFR 164 (2013)",
    (
        Control("164.312(b)", "Audit controls: record and examine activity in information systems that contain or "
                "use ePHI"),
        Control("164.308(a)(5)(ii)(C)", "Log-in monitoring: monitor log-in attempts and report discrepancies"),
    ),
)  # fmt: skip

FRAMEWORKS: dict[str, Framework] = {f.name: f for f in (CIS, SOC2, PCI, HIPAA)}

_AUDIT = ("164.312(b)",)
_LOGIN = ("164.312(b)", "164.308(a)(5)(ii)(C)")
_REVIEW = "10.4.1.1"

# saved query -> framework -> the control ids it serves (every id is one of its framework's controls: a test holds it)
MAPPING: dict[str, dict[str, tuple[str, ...]]] = {
    "root-account-usage": {
        "cis": ("4.3", "1.7"), "soc2": ("CC6.1", "CC7.2"), "pci": ("10.2.1.2", _REVIEW), "hipaa": _AUDIT,
    },
    "console-login-without-mfa": {
        "cis": ("4.2", "1.10"), "soc2": ("CC6.1", "CC7.2"), "pci": ("10.2.1.2", _REVIEW), "hipaa": _LOGIN,
    },
    "console-login-failures": {
        "cis": ("4.6",), "soc2": ("CC6.1", "CC7.2"), "pci": ("10.2.1.4", _REVIEW), "hipaa": _LOGIN,
    },
    "access-denied-spike": {
        "cis": ("4.1",), "soc2": ("CC7.2",), "pci": ("10.2.1.4", _REVIEW), "hipaa": _AUDIT,
    },
    "iam-policy-changes": {
        "cis": ("4.4",), "soc2": ("CC6.3", "CC7.1"), "pci": ("10.2.1.2", "10.2.1.5", _REVIEW), "hipaa": _AUDIT,
    },
    "cloudtrail-changes": {
        "cis": ("4.5", "3.1"), "soc2": ("CC7.1", "CC7.2"), "pci": ("10.2.1.6", "10.7.2", _REVIEW), "hipaa": _AUDIT,
    },
    # CIS 1.12 (unused credentials disabled) and 1.14 (keys rotated) are about credentials' age, which no event
    # count shows: those controls are listed with no saved query rather than claimed.
    "access-keys-created": {
        "soc2": ("CC6.1", "CC6.2"), "pci": ("10.2.1.5", _REVIEW), "hipaa": _AUDIT,
    },
    "iam-login-profile-changes": {
        "soc2": ("CC6.2",), "pci": ("10.2.1.5", _REVIEW), "hipaa": _LOGIN,
    },
    "lambda-function-changes": {
        "soc2": ("CC7.1", "CC8.1"), "pci": ("10.2.1.2", "10.2.1.7", _REVIEW), "hipaa": _AUDIT,
    },
    "lambda-code-changes": {
        "soc2": ("CC7.1", "CC8.1"), "pci": ("10.2.1.2", "10.2.1.7", _REVIEW), "hipaa": _AUDIT,
    },
    "lambda-config-changes": {
        "soc2": ("CC7.1", "CC8.1"), "pci": ("10.2.1.2", _REVIEW), "hipaa": _AUDIT,
    },
    "lambda-layer-changes": {
        "soc2": ("CC6.8", "CC8.1"), "pci": ("10.2.1.2", "10.2.1.7", _REVIEW), "hipaa": _AUDIT,
    },
    "lambda-permission-changes": {
        "soc2": ("CC6.1", "CC6.3"), "pci": ("10.2.1.2", _REVIEW), "hipaa": _AUDIT,
    },
    "lambda-public-access": {
        "soc2": ("CC6.1", "CC6.6"), "pci": ("10.2.1.2", _REVIEW), "hipaa": _AUDIT,
    },
    "lambda-concurrency-changes": {
        "soc2": ("CC8.1", "A1.1"), "pci": ("10.2.1.2", _REVIEW), "hipaa": _AUDIT,
    },
    "security-group-changes": {
        "cis": ("4.10",), "soc2": ("CC6.6", "CC7.1"), "pci": ("10.2.1.2", "10.2.1.7", _REVIEW), "hipaa": _AUDIT,
    },
    "kms-key-disabled-or-deleted": {
        "cis": ("4.7",), "soc2": ("CC6.1", "CC7.2"), "pci": ("10.2.1.2", "10.2.1.7", _REVIEW), "hipaa": _AUDIT,
    },
    "aws-config-changes": {
        "cis": ("4.9", "3.5"), "soc2": ("CC7.1", "CC7.2"), "pci": ("10.2.1.2", "10.7.2", _REVIEW), "hipaa": _AUDIT,
    },
    "logging-deleted": {
        "cis": ("3.9",), "soc2": ("CC7.2",), "pci": ("10.2.1.6", "10.7.2", _REVIEW), "hipaa": _AUDIT,
    },
    "organizations-changes": {
        "cis": ("4.15",), "soc2": ("CC6.3", "CC7.1"), "pci": ("10.2.1.2", _REVIEW), "hipaa": _AUDIT,
    },
    "snapshot-or-image-shared": {
        "soc2": ("CC6.7",), "pci": ("10.2.1.2", _REVIEW), "hipaa": _AUDIT,
    },
    "new-region-activity": {
        "soc2": ("CC7.2",), "pci": (_REVIEW,), "hipaa": _AUDIT,
    },
}  # fmt: skip


def citations(query_name: str) -> tuple[str, ...]:
    """A saved query's controls as cited in text: "CIS AWS Foundations 4.3", "PCI DSS 10.2.1.2", ..."""
    mapped = MAPPING.get(query_name, {})
    return tuple(FRAMEWORKS[fw].cite(cid) for fw in FRAMEWORKS for cid in mapped.get(fw, ()))


def queries_for(framework: Framework, control_id: str) -> tuple[str, ...]:
    """The saved queries that serve one control, in the table's order."""
    return tuple(name for name, mapped in MAPPING.items() if control_id in mapped.get(framework.name, ()))
