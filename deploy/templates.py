"""The CloudFormation templates `fnscope aws template` prints, one per way into fnscope, with the caller's URL filled in.

Each path's file (aws/logs.yaml, aws/cloudtrail.yaml) holds what is its own; the delivery they share (a Firehose
stream to fnscope, its backup bucket and roles) is written once, in aws/delivery.yaml, and joined to each path under
the path's name, so ``all`` is one stack with two streams, each holding its own token (the CloudTrail stream's may
send audit events; the logs stream's, which every log group reaches, may not). The API Gateway access-log formats
fnscope reads best are in aws/apigateway-access-log-format.json and appear as outputs of the logs template.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from typing import Any

import yaml

PATHS: dict[str, tuple[str, ...]] = {"logs": ("logs",), "cloudtrail": ("cloudtrail",), "all": ("logs", "cloudtrail")}
# Each path's name in the logical ids of its copy of the delivery.
_PREFIX = {"logs": "Logs", "cloudtrail": "Trail"}
_SECTIONS = ("Parameters", "Conditions", "Resources", "Outputs")
# Firehose delivers to HTTPS endpoints only; the URL goes into YAML as a value, never as text. No user:password@:
# the template is stored in CloudFormation and seen by all who can read the stack (the token is a NoEcho parameter).
_URL = re.compile(r"https://[^\s/?#@]+(/[^\s?#]*)?")


def _read(name: str) -> str:
    return files("fnscope.deploy").joinpath("aws", name).read_text(encoding="utf-8")


def access_log_formats() -> dict[str, str]:
    """API Gateway access-log format strings by API kind (rest, http), as a stage's AccessLogSetting takes them."""
    formats: dict[str, dict[str, str]] = json.loads(_read("apigateway-access-log-format.json"))
    return {kind: json.dumps(fields, separators=(",", ":")) for kind, fields in formats.items()}


def _merge(into: dict[str, Any], part: dict[str, Any], origin: str) -> None:
    for section in _SECTIONS:
        for key, value in (part.get(section) or {}).items():
            held = into.setdefault(section, {})
            if key in held and held[key] != value:
                raise ValueError(f"{origin}: {section}.{key} differs from the one already in the template")
            held[key] = value


def _exclude_trail(out: dict[str, Any]) -> None:
    """In one stack with both paths, the logs path's account policy leaves out the trail's group (new or existing)
    and the CloudTrail stream's error logs too: the trail's records reach fnscope by their own stream only."""
    criteria = out["Resources"]["LogsAccountPolicy"]["Properties"]["SelectionCriteria"]["Fn::Sub"][1]
    names: list[Any] = criteria["Names"]["Fn::ToJsonString"]["Fn::Split"][1]["Fn::Join"][1]
    names.append({"Ref": "TrailFirehoseLogGroup"})
    names.append({"Fn::If": ["NewTrail", {"Ref": "TrailLogGroup"}, {"Ref": "TrailLogGroupName"}]})


def render(path: str, url: str | None = None) -> dict[str, Any]:
    """The template for ``path`` (logs, cloudtrail, all); ``url`` becomes the FnscopeUrl parameter's default."""
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}: use {', '.join(PATHS)}")
    out: dict[str, Any] = {}
    descriptions = []
    for name in PATHS[path]:
        template = yaml.safe_load(_read(f"{name}.yaml"))
        descriptions.append(template["Description"])
        for key in ("AWSTemplateFormatVersion", "Transform"):
            if key in template:
                out[key] = template[key]
        _merge(out, template, f"{name}.yaml")
        delivery = _read("delivery.yaml").replace("__P__", _PREFIX[name]).replace("__p__", name)
        _merge(out, yaml.safe_load(delivery), f"delivery.yaml for {name}")
    out["Description"] = " ".join(descriptions)
    if "cloudtrail" in PATHS[path] and "logs" in PATHS[path]:
        _exclude_trail(out)
    if "logs" in PATHS[path]:
        formats = access_log_formats()
        out["Outputs"]["ApiGatewayRestAccessLogFormat"]["Value"] = formats["rest"]
        out["Outputs"]["ApiGatewayHttpAccessLogFormat"]["Value"] = formats["http"]
    if url is not None:
        if "@" in url.partition("://")[2].split("/", 1)[0]:
            raise ValueError("an https:// URL without user:password@, please: the token is the stream's access key")
        if not _URL.fullmatch(url):
            raise ValueError(f"not an https:// URL: {url!r} (Firehose delivers to HTTPS endpoints only)")
        out["Parameters"]["FnscopeUrl"]["Default"] = url.rstrip("/")
    ordered = {key: out[key] for key in ("AWSTemplateFormatVersion", "Transform", "Description") if key in out}
    return ordered | {section: out[section] for section in _SECTIONS if section in out}


def render_yaml(path: str, url: str | None = None) -> str:
    return yaml.safe_dump(render(path, url), sort_keys=False, width=120)
