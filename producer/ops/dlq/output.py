"""How ``mailfleet dlq`` shows dead letters: table rows, JSON records, the ``show`` page.

AMQP header values are not all JSON (py-amqp gives datetimes for timestamps, bytes for byte
arrays); :func:`json_safe` turns them into strings. A body that is not UTF-8 is base64.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from mailfleet.producer.ops.dlq.letter import DeadLetter
from mailfleet.shared.clock import utc_stamp

_ERROR_WIDTH = 60
_COLUMNS = ("id", "reason", "attempts", "lane", "domains", "failed_at", "error")


def _time(value: datetime | None) -> str | None:
    return None if value is None else utc_stamp(value)


def json_safe(value: Any) -> Any:
    """``value`` with datetimes, bytes and decimals turned into strings, recursively."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, datetime):
        return _time(value)
    if isinstance(value, bytes):
        text, encoding = body_text(value)
        return text if encoding == "utf-8" else f"base64:{text}"
    if isinstance(value, Decimal):
        return str(value)
    return value


def body_text(body: bytes) -> tuple[str, str]:
    """``(text, "utf-8")`` when ``body`` is UTF-8, else ``(base64, "base64")``."""
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def summary_row(letter: DeadLetter) -> dict[str, Any]:
    """One line of ``dlq list``: what failed, why, where, when."""
    return {
        "id": letter.id,
        "reason": letter.reason,
        "error": letter.error,
        "attempts": letter.attempts,
        "lane": letter.lane,
        "domains": letter.domains,
        "failed_at": _time(letter.failed_at),
    }


def render_table(rows: list[dict[str, Any]]) -> str:
    """``rows`` of :func:`summary_row` as aligned columns, the error cut to fit."""

    def cell(row: dict[str, Any], column: str) -> str:
        value = row[column]
        if column == "domains":
            return ",".join(value) or "-"
        if column == "error":
            text = " ".join(str(value).split())
            return text if len(text) <= _ERROR_WIDTH else text[: _ERROR_WIDTH - 1] + "…"
        return "-" if value is None or value == "" else str(value)

    table = [[column.upper().replace("_", "-") for column in _COLUMNS]]
    table += [[cell(row, column) for column in _COLUMNS] for row in rows]
    widths = [max(len(line[index]) for line in table) for index in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )


def export_record(letter: DeadLetter) -> dict[str, Any]:
    """One JSON line of ``dlq export``: properties, headers and body, as read."""
    body, encoding = body_text(letter.body)
    return {
        "id": letter.id,
        "properties": json_safe(letter.properties),
        "headers": json_safe(letter.headers),
        "body": body,
        "body_encoding": encoding,
    }


def show_record(letter: DeadLetter) -> dict[str, Any]:
    """Everything about one letter, the job decoded when it is one."""
    record = {**summary_row(letter), "recipients": letter.recipients}
    record.update(export_record(letter))
    record["job"] = (
        letter.job.model_dump(mode="json", by_alias=True, exclude_none=True) if letter.job else None
    )
    record["problem"] = letter.problem
    return record


def _block(value: Any) -> str:
    """A value on one ``name: value`` line; lines after the first indented under it."""
    text = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return text.replace("\n", "\n    ")


def render_letter(letter: DeadLetter) -> str:
    """``dlq show``: the summary, every property and header, then the job (or the body)."""
    record = show_record(letter)
    lines = [f"{key}: {_block(record[key])}" for key in ("id", "reason", "error", "attempts")]
    lines.append(f"lane: {record['lane'] or '-'}")
    lines.append(f"recipients: {', '.join(letter.recipients) or '-'}")
    lines.append(f"failed_at: {record['failed_at'] or '-'}")
    lines.append("properties:")
    lines += [f"  {key}: {_block(value)}" for key, value in sorted(record["properties"].items())]
    lines.append("headers:")
    lines += [f"  {key}: {_block(value)}" for key, value in sorted(record["headers"].items())]
    if record["job"] is not None:
        lines.append("job:")
        lines.append(json.dumps(record["job"], indent=2, ensure_ascii=False))
    else:
        lines.append(f"job: not a valid job ({letter.problem})")
        lines.append(f"body ({record['body_encoding']}):")
        lines.append(record["body"])
    return "\n".join(lines)
