"""``mailfleet campaign send|status``: one stored template, a recipient list, a job each."""

from __future__ import annotations

import argparse
import hashlib
import sys
from datetime import datetime
from pathlib import Path

from mailfleet.shared.addresses import check_address
from mailfleet.shared.cli import EXIT_OK, EXIT_USAGE, Subparsers, positive_int
from mailfleet.shared.job import Lane, check_campaign_id
from mailfleet.shared.send_window import SendWindow, parse_window
from mailfleet.shared.settings import Settings

# The handlers import what they use, so registering the commands stays cheap.
# ruff: noqa: PLC0415

_BATCH = 2000


def _campaign_id(text: str) -> str:
    try:
        return check_campaign_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _window(text: str) -> SendWindow:
    try:
        return parse_window(text)
    except ValueError as exc:  # pydantic's ValidationError is one too
        raise argparse.ArgumentTypeError(str(exc).replace("\n", "; ")) from None


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone, e.g. ...T09:00:00+01:00")
    return value


def register(subparsers: Subparsers) -> None:
    campaign = subparsers.add_parser(
        "campaign", help="send one template to a recipient list (CSV or JSON lines), and follow it"
    )
    actions = campaign.add_subparsers(dest="action", metavar="ACTION", required=True)

    send = actions.add_parser("send", help="check every row, then publish a job per recipient")
    send.add_argument("--template", required=True, help="a stored template's name")
    send.add_argument("--version", type=positive_int, help="default: the newest, pinned")
    send.add_argument("--recipients", type=Path, required=True, help="CSV or JSON lines")
    send.add_argument("--from", dest="sender", required=True, help="the From address")
    send.add_argument("--lane", type=Lane, choices=list(Lane), default=Lane.BULK)
    send.add_argument(
        "--id", type=_campaign_id, help="default: the template's name and the file's digest"
    )
    send.add_argument("--not-before", type=_instant, help="ISO 8601 time with a zone")
    send.add_argument(
        "--window", type=_window, help="'mon-fri 09:00-18:00 Europe/Berlin' or its JSON form"
    )
    send.add_argument("--batch", type=positive_int, default=_BATCH, help=argparse.SUPPRESS)
    send.add_argument("--dry-run", action="store_true", help="check and count; publish nothing")
    send.set_defaults(handler=run_send)

    status = actions.add_parser("status", help="published, sent, deferred, dead-lettered...")
    status.add_argument("campaign", type=_campaign_id)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=run_status)


def file_digest(path: Path) -> str:
    """The start of the file's SHA-256: the default campaign id's second half."""
    sha = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()[:12]


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run_send(args: argparse.Namespace, settings: Settings) -> int:
    from mailfleet.producer.campaigns.check import check_rows
    from mailfleet.producer.campaigns.jobs import Campaign
    from mailfleet.producer.campaigns.progress import ProgressBar
    from mailfleet.producer.campaigns.publish import CampaignPublisher
    from mailfleet.producer.campaigns.rows import read_rows
    from mailfleet.producer.publisher import Producer
    from mailfleet.shared.redis_client import make_redis
    from mailfleet.shared.template_ref import TemplateRef
    from mailfleet.shared.templates.render import Renderer
    from mailfleet.shared.templates.store import TemplateStore

    try:
        check_address(args.sender)
    except ValueError as exc:
        print(f"mailfleet campaign send: --from: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.recipients.is_file():
        print(f"mailfleet campaign send: {args.recipients}: no such file", file=sys.stderr)
        return EXIT_USAGE
    client = make_redis(settings)
    try:
        version, source = TemplateStore(client, settings.names).get(args.template, args.version)
        template = TemplateRef(name=args.template, version=version)
        renderer = Renderer(settings.max_rendered_bytes)
        compiled = renderer.compile(template.label(), source)
        campaign = Campaign(
            id=args.id or f"{args.template}-{file_digest(args.recipients)}",
            template=template,
            sender=args.sender,
            lane=args.lane,
            window=args.window,
            not_before=args.not_before,
        )
        rows = read_rows(args.recipients)
        checked = check_rows(
            rows,
            campaign,
            template=compiled,
            renderer=renderer,
            limits=settings.job_limits,
            warn=_warn,
        )
        if checked.problem_count:
            for problem in checked.problems:
                print(problem, file=sys.stderr)
            hidden = checked.problem_count - len(checked.problems)
            if hidden:
                print(f"... and {hidden} more", file=sys.stderr)
            print(f"nothing published: {checked.problem_count} problem(s)", file=sys.stderr)
            return EXIT_USAGE
        if args.dry_run:
            unique = checked.rows - len(checked.duplicates)
            print(
                f"campaign {campaign.id}: dry run, {unique} recipients to publish "
                f"({len(checked.duplicates)} duplicate(s) folded; suppression not checked)"
            )
            return EXIT_OK
        progress = ProgressBar(checked.rows, f"campaign {campaign.id}")
        with Producer(settings) as producer:
            publisher = CampaignPublisher(settings, producer, client, campaign, args.batch)
            result = publisher.run(read_rows(args.recipients), checked.duplicates, progress)
        progress.close()
    finally:
        client.close()
    earlier = f"; {result.earlier} published by an earlier run" if result.earlier else ""
    print(
        f"campaign {campaign.id}: published {result.published}, skipped {result.skipped} "
        f"(suppressed {result.suppressed}, duplicate {result.duplicates}){earlier}"
    )
    return EXIT_OK


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    from mailfleet.producer.campaigns.status import campaign_status
    from mailfleet.shared.redis_client import make_redis

    client = make_redis(settings)
    try:
        status = campaign_status(client, settings.names, args.campaign)
    finally:
        client.close()
    print(status.to_json() if args.json else status.render())
    return EXIT_OK
