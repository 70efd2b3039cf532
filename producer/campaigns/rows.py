"""Reading a campaign's recipient list, one row at a time: CSV with a header row, or JSON
lines. Each row has ``email`` (or ``to``) and may have ``name``; every other column or key is
a variable. Rows are numbered as a spreadsheet shows them (a CSV's header is row 1) or as an
editor shows the lines of a JSON-lines file, so ``row N`` points at the right line.

The file is streamed, never loaded whole: 100 000 rows take the memory of one.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ADDRESS_COLUMNS = ("email", "to")
_JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


@dataclass(frozen=True)
class Row:
    """One recipient: the row's number, the address, the name if any, the other columns."""

    number: int
    email: str
    name: str | None
    variables: dict[str, Any]


@dataclass(frozen=True)
class BadRow:
    """A row that could not even be read as a recipient: ``row N: field: problem``."""

    number: int
    problems: list[tuple[str, str]] = field(default_factory=list)


def is_json_lines(path: Path) -> bool:
    """JSON lines by the name's suffix, else by the first character that is not blank."""
    if path.suffix.lower() in _JSON_SUFFIXES:
        return True
    if path.suffix.lower() == ".csv":
        return False
    with path.open("rb") as source:
        head = source.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{")


def read_rows(path: Path) -> Iterator[Row | BadRow]:
    """Every row of ``path``, in order; blank lines are skipped."""
    if is_json_lines(path):
        yield from _json_rows(path)
    else:
        yield from _csv_rows(path)


def _recipient(number: int, data: dict[str, Any]) -> Row | BadRow:
    """A row from its columns: the address column, the name, and the variables."""
    present = [key for key in _ADDRESS_COLUMNS if key in data]
    if len(present) != 1:
        problem = "both email and to given" if present else "missing (give email or to)"
        return BadRow(number, [("email", problem)])
    address = data[present[0]]
    name = data.get("name")
    problems = []
    if not isinstance(address, str) or not address.strip():
        problems.append((present[0], "must be a non-empty string"))
    if name is not None and not isinstance(name, str):
        problems.append(("name", "must be a string"))
    if problems:
        return BadRow(number, problems)
    variables = {key: value for key, value in data.items() if key not in _ADDRESS_COLUMNS}
    variables["email"] = address.strip()
    if not name:
        variables.pop("name", None)
    return Row(number, address.strip(), name.strip() if name else None, variables)


def _csv_rows(path: Path) -> Iterator[Row | BadRow]:
    with path.open(encoding="utf-8-sig", newline="") as source:
        try:
            reader = csv.reader(source)
            header = next(reader, None)
            if header is None:
                return
            columns = [column.strip() for column in header]
            if len(set(columns)) != len(columns) or "" in columns:
                yield BadRow(1, [("header", "column names must be present and different")])
                return
            number = reader.line_num + 1  # where the record starts: a quoted cell may span lines
            for cells in reader:
                start, number = number, reader.line_num + 1
                if not any(cell.strip() for cell in cells):
                    continue
                if len(cells) != len(columns):
                    problem = f"has {len(cells)} cells, the header {len(columns)} columns"
                    yield BadRow(start, [("row", problem)])
                    continue
                yield _recipient(start, dict(zip(columns, cells, strict=True)))
        except UnicodeDecodeError:
            yield BadRow(0, [("file", "is not UTF-8 text")])
        except csv.Error as exc:
            yield BadRow(0, [("file", f"is not valid CSV: {exc}")])


def _json_rows(path: Path) -> Iterator[Row | BadRow]:
    with path.open("rb") as source:
        for number, raw in enumerate(source, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except UnicodeDecodeError:
                yield BadRow(number, [("row", "not UTF-8 text")])
                continue
            except json.JSONDecodeError as exc:
                yield BadRow(number, [("row", f"not valid JSON ({exc.msg})")])
                continue
            except RecursionError:
                yield BadRow(number, [("row", "JSON nested too deeply")])
                continue
            if not isinstance(data, dict):
                yield BadRow(number, [("row", "must be a JSON object")])
                continue
            yield _recipient(number, data)
