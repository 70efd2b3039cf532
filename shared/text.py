"""What counts as a line break. Python's email package folds and splits header lines at
more than CR and LF (``str.splitlines`` boundaries), so anything bound for a header is
refused if it holds any of them, or NUL."""

from __future__ import annotations

import re

_LINE_BREAK = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\0]")


def has_line_break(value: str) -> bool:
    return _LINE_BREAK.search(value) is not None
