"""``mailfleet template put|list|show|render``: the stored templates (``shared/templates/``)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mailfleet.shared.cli import EXIT_OK, EXIT_USAGE, Subparsers, positive_int
from mailfleet.shared.errors import InvalidJobError
from mailfleet.shared.settings import Settings
from mailfleet.shared.template_ref import check_variables

if TYPE_CHECKING:
    from mailfleet.shared.templates.store import TemplateStore

# The handlers import what they use, so registering the commands stays cheap.
# ruff: noqa: PLC0415


def register(subparsers: Subparsers) -> None:
    template = subparsers.add_parser(
        "template", help="store, list, show and dry-run templates (immutable versions)"
    )
    actions = template.add_subparsers(dest="action", metavar="ACTION", required=True)

    put = actions.add_parser("put", help="store DIR as NAME's next version; prints the version")
    put.add_argument("name")
    put.add_argument("dir", type=Path, help="subject.txt and text.txt and/or html.html")
    put.set_defaults(handler=run_put)

    listing = actions.add_parser("list", help="every template, with its newest version")
    listing.set_defaults(handler=run_list)

    show = actions.add_parser("show", help="a template's source (the newest version unless -v)")
    show.add_argument("name")
    show.add_argument("--version", type=positive_int)
    show.set_defaults(handler=run_show)

    render = actions.add_parser("render", help="print the email a template renders (dry run)")
    render.add_argument("name")
    render.add_argument("--version", type=positive_int)
    render.add_argument(
        "--variables", type=Path, required=True, help="a JSON object of the variables"
    )
    render.set_defaults(handler=run_render)


def _store(settings: Settings) -> TemplateStore:
    from mailfleet.shared.redis_client import make_redis
    from mailfleet.shared.templates.store import TemplateStore

    return TemplateStore(make_redis(settings), settings.names)


def run_put(args: argparse.Namespace, settings: Settings) -> int:
    from mailfleet.shared.templates.render import Renderer
    from mailfleet.shared.templates.store import read_directory

    try:
        source = read_directory(args.dir)
        Renderer().compile(args.name, source)  # a syntax error is refused before storing
    except InvalidJobError as exc:
        print(f"mailfleet template put: {exc}", file=sys.stderr)
        return EXIT_USAGE
    version, new = _store(settings).put(args.name, source)
    print(version if new else f"{version} (unchanged: the newest version is the same)")
    return EXIT_OK


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    for name in store.names():
        versions = store.versions(name)
        newest = versions[-1]
        at = datetime.fromtimestamp(newest.put_at, UTC).isoformat(timespec="seconds")
        print(f"{name}  v{newest.number}  ({len(versions)} versions, newest put {at})")
    return EXIT_OK


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    version, source = _store(settings).get(args.name, args.version)
    print(f"# {args.name} v{version}")
    print(_layout(source.subject, source.text, source.html))
    return EXIT_OK


def run_render(args: argparse.Namespace, settings: Settings) -> int:
    from mailfleet.shared.templates.render import Renderer

    try:
        variables = json.loads(args.variables.read_text(encoding="utf-8"))
        if not isinstance(variables, dict):
            raise InvalidJobError([("variables", "must be a JSON object")])
        check_variables(variables)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        print(f"mailfleet template render: {args.variables}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InvalidJobError as exc:
        print(f"mailfleet template render: {args.variables}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    version, source = _store(settings).get(args.name, args.version)
    renderer = Renderer(settings.max_rendered_bytes)
    try:
        compiled = renderer.compile(f"{args.name} v{version}", source)
        rendered = renderer.render(compiled, variables)
    except InvalidJobError as exc:
        print(f"mailfleet template render: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(_layout(rendered.subject, rendered.text, rendered.html))
    return EXIT_OK


def _layout(subject: str, text: str | None, html: str | None) -> str:
    """Subject, then each body under a line naming its type."""
    lines = [f"Subject: {subject}"]
    if text is not None:
        lines += ["", "--- text/plain ---", text]
    if html is not None:
        lines += ["", "--- text/html ---", html]
    return "\n".join(lines)
