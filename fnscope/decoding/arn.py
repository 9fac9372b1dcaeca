"""Lambda function names out of the ways AWS refers to a function (names, partial and full ARNs)."""

from __future__ import annotations

import re
from typing import Any

_FUNCTION_IN_ARN = re.compile(r"(?:^|:)function:([^:/\s]+)")


def function_name(value: Any) -> str:
    """NAME from ``NAME``, ``NAME:qualifier``, ``acct:function:NAME`` or ``arn:aws:lambda:r:acct:function:NAME[:q]``."""
    if not isinstance(value, str) or not value:
        return ""
    match = _FUNCTION_IN_ARN.search(value)
    if match:
        return match.group(1)
    if value.startswith("arn:"):  # an ARN of something else (a layer, an event source mapping)
        return ""
    return value.split(":", 1)[0]
