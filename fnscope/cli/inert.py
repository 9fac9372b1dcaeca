"""Output that can't act: what the CLI prints or writes comes from senders (log lines, CloudTrail fields, function
names), so it must not run as a spreadsheet formula, steer the terminal, or render as rich markup."""

from __future__ import annotations

import re

from rich.markup import escape

# C0 and C1 control characters but tab and newline: ESC starts terminal sequences (colours, titles, cursor
# moves, OSC 8 hyperlinks), CR overwrites what was printed, BEL rings. And the bidirectional overrides and
# isolates, which make a line read other than it is stored (a principal's name shown backwards).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# OWASP's rule for CSV injection: a cell that starts with one of these is read as a formula by spreadsheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def terminal(text: str) -> str:
    """Text safe to print on a terminal: control characters and bidi overrides shown as their escapes (\\x1b,
    \\u202e), never sent."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def markup(text: str) -> str:
    """Text safe inside rich markup: shown as typed (``[link=...]`` stays text), and terminal-safe."""
    return escape(terminal(text))


def csv_cell(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text: a leading ``'`` before what would start a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
