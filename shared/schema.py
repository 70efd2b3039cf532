"""``mailfleet schema NAME``: a wire contract as JSON Schema, for publishers in other languages.

The schema is generated from the pydantic model both sides validate with, in validation mode
and by alias: what a publisher may send (``from``, not ``from_``; ``id`` may be left out), not
what :meth:`~mailfleet.shared.job.EmailJob.to_wire` writes. It describes the structure; rules
that need code (address syntax, the recipient and size caps, protected headers) are the
README's and :mod:`mailfleet.shared.job`'s. ``docs/schema/NAME.json`` is a committed copy that
``tests/unit/test_schema_files.py`` keeps in step.

Each name maps to its model by path, so registering the command imports no model.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import import_module
from typing import TYPE_CHECKING, Any

from mailfleet.shared.cli import EXIT_OK, Subparsers
from mailfleet.shared.settings import Settings

if TYPE_CHECKING:
    from pydantic import BaseModel

# Contract name → "module:Model".
SCHEMAS: dict[str, str] = {
    "event": "mailfleet.shared.events:Event",
    "job": "mailfleet.shared.job:EmailJob",
}
# The dialect pydantic generates (JSON Schema 2020-12), named so validators need not guess.
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def register(subparsers: Subparsers) -> None:
    schema = subparsers.add_parser(
        "schema", help="print a wire contract as JSON Schema (e.g. `mailfleet schema job`)"
    )
    schema.add_argument("name", choices=sorted(SCHEMAS), help="which contract")
    schema.set_defaults(handler=run_schema)


def schema_of(name: str) -> dict[str, Any]:
    """The JSON Schema of contract ``name`` (a key of :data:`SCHEMAS`)."""
    module, _, attribute = SCHEMAS[name].partition(":")
    model: type[BaseModel] = getattr(import_module(module), attribute)
    return {"$schema": DIALECT, **model.model_json_schema(by_alias=True, mode="validation")}


def render(name: str) -> str:
    """The schema as the command prints it: indented JSON and a trailing newline."""
    return json.dumps(schema_of(name), indent=2, ensure_ascii=False) + "\n"


def run_schema(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(render(args.name))
    return EXIT_OK
