"""Sum py-spy samples of mailfleet workers into per-message costs by function group.

Record the workers of a throughput run with py-spy (``pip install py-spy`` into the venv)::

    .venv/bin/python tests/benchmarks/bench_throughput.py --jobs 12000 \\
        --wrap ".venv/bin/py-spy record --nonblocking --threads -r 250 -f raw -o /tmp/w{n}.txt --"
    .venv/bin/python tests/benchmarks/profile_groups.py --messages 12000 /tmp/w0.txt /tmp/w1.txt

py-spy's default mode samples only threads that are on a CPU (or runnable), so the figures
are CPU time, not waiting. ``--scale-ms X`` rescales them so that they add up to X ms per
message (the "worker CPU" the benchmark measured without py-spy, whose sampling is lossy).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

# Below Pipeline.handle / Pipeline._send: the first frame (from the top) naming a step wins.
_STEPS: tuple[tuple[str, str], ...] = (
    ("Settler.settle", ""),  # split further with _SETTLE
    ("Settler.", "settle: other outcomes (retry, dead letter, duplicate)"),
    ("decode", "JSON parse + validate (pydantic)"),
    ("parse_job", "JSON parse + validate (pydantic)"),
    ("BaseModel.", "JSON parse + validate (pydantic)"),
    ("EmailJob.", "JSON parse + validate (pydantic)"),
    ("build_message", "MIME build"),
    ("SmtpTransport", "SMTP: smtplib + socket"),
    ("RecipientFilter", "Redis: sent ledger (+ suppression) read"),
    ("Admission", "Redis: rate-limit tokens"),
    ("RateLimiter", "Redis: rate-limit tokens"),
    ("Histogram", "metrics (prometheus_client)"),
    ("bare_address", "envelope (parseaddr)"),
    ("Envelope", "envelope (parseaddr)"),
)
# Below Settler.settle: the first needle found anywhere in the rest of the stack wins.
_SETTLE: tuple[tuple[str, str], ...] = (
    ("SentLedger.mark", "Redis: mark sent"),
    ("LaneConsumer.ack", "ack hand-off to the pika thread"),
    ("prometheus_client", "metrics (prometheus_client)"),
    ("WorkerMetrics", "metrics (prometheus_client)"),
    ("_domains", "logging (arguments built even when filtered)"),
    ("structlog", "logging (arguments built even when filtered)"),
    ("", "settle (own code)"),
)
# Main (pika) thread and the rest: the first needle found anywhere in the stack wins.
_MAIN: tuple[tuple[str, str], ...] = (
    ("_drained", "pika: burst-mode idle checks"),
    ("_on_message", "pika: deliveries in (frames, Delivery, inbox)"),
    ("<locals>.settle", "pika: basic_ack (incl. its flush)"),
    ("process_data_events", "pika: I/O loop (poll, frames, wake-ups)"),
    ("_find_and_load", "start-up (imports, connect, declare)"),
    ("Worker._connect", "start-up (imports, connect, declare)"),
    ("Worker._shutdown", "shutdown"),
)
_SENDER_IDLE: tuple[tuple[str, str], ...] = (
    ("Inbox.", "sender: inbox (waiting for work)"),
    ("warm_up", "SMTP: smtplib + socket"),
    ("", "sender: loop and thread overhead"),
)


def _name(frame: str) -> str:
    return frame.split(" (", 1)[0]


def _first(rules: tuple[tuple[str, str], ...], text: str, default: str) -> str:
    return next((group for needle, group in rules if needle in text), default)


def _sender_group(frames: list[str]) -> str:
    names = [_name(frame) for frame in frames]
    anchors = [i for i, name in enumerate(names) if name in {"Pipeline.handle", "Pipeline._send"}]
    if not anchors:
        return _first(_SENDER_IDLE, ";".join(names), "")
    below = names[anchors[-1] + 1 :]
    for position, name in enumerate(below):
        group = next((group for needle, group in _STEPS if name.startswith(needle)), None)
        if group == "":
            return _first(_SETTLE, ";".join(below[position + 1 :]), "")
        if group is not None:
            return group
    return f"pipeline: {below[0]} (own code)" if below else "pipeline (own code)"


def classify(frames: list[str]) -> str:
    thread, body = frames[0], frames[1:]
    stack = ";".join(body)
    if "sender" in thread or "_send_loop" in stack:
        return _sender_group(body)
    if "MainThread" in thread:
        return _first(_MAIN, stack, "main: other (no Python frame: start-up, exit)")
    return _first(_MAIN[4:5], stack, "other threads (health, redis watch)")


def summarise(paths: list[Path]) -> Counter[str]:
    groups: Counter[str] = Counter()
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            groups[classify(stack.split(";"))] += int(count)
    return groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("files", nargs="+", type=Path, help="py-spy record -f raw outputs")
    parser.add_argument("--messages", type=int, required=True, help="messages the run sent")
    parser.add_argument("--rate", type=float, default=250.0, help="py-spy -r (250)")
    parser.add_argument("--scale-ms", type=float, help="rescale to this worker CPU ms/message")
    args = parser.parse_args(argv)
    groups = summarise(args.files)
    total = sum(groups.values())
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    sampled_ms = total / args.rate * 1000 / args.messages
    scale = args.scale_ms / sampled_ms if args.scale_ms else 1.0
    print(
        f"{total} samples = {sampled_ms:.3f} ms CPU per message as sampled"
        + (f", rescaled to {args.scale_ms:.3f} ms" if args.scale_ms else "")
    )
    for group, samples in groups.most_common():
        ms = samples / args.rate * 1000 / args.messages * scale
        print(f"{group:<48} {ms:7.3f} ms/msg  {samples / total:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
