"""MIME building cost: ``mailfleet.worker.mime.build.build_message`` against ``EmailMessage``.

Run from the repository root::

    .venv/bin/python tests/benchmarks/bench_mime.py [--number 2000] [--repeat 5]

For three jobs (text only; text + html; text + html + a 20 KiB attachment) it times, in this
one process, the worker's ``build_message`` and the same message built with the modern
``email.message.EmailMessage`` API (policy ``email.policy.SMTP``: CRLF, as SMTP sends it),
and prints microseconds per message: the best of ``--repeat`` rounds of ``--number`` builds,
so a busy machine inflates the figures less. Both outputs are parsed back and compared
(headers and decoded bodies) so the two columns build the same email.
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import random
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage, Message
from email.utils import formatdate

from mailfleet.shared.job import EmailJob
from mailfleet.shared.names import JOB_ID_HEADER
from mailfleet.worker.mime.build import build_message, message_id

Builder = Callable[[EmailJob], bytes]
_TEXT = (
    "Hello Ann,\n\nyour order 12345 has shipped and will arrive on Thursday.\n"
    "Track it at https://shop.example.com/orders/12345.\n\nThanks,\nThe Example Shop\n"
)
_HTML = (
    "<html><body><p>Hello Ann,</p><p>your order <b>12345</b> has shipped and will arrive "
    'on Thursday.</p><p><a href="https://shop.example.com/orders/12345">Track it</a></p>'
    "<p>Thanks,<br>The Example Shop</p></body></html>"
)


def sample_jobs() -> dict[str, EmailJob]:
    common = {
        "id": "bench-mime-0001",
        "from": "Example Shop <shop@example.com>",
        "to": ["Ann Example <ann@example.org>"],
        "reply_to": "support@example.com",
        "subject": "Your order 12345 has shipped",
        "headers": {"List-Unsubscribe": "<mailto:unsubscribe@example.com>"},
    }
    attachment = bytes(random.Random(7).getrandbits(8) for _ in range(20 * 1024))
    return {
        "text only": EmailJob.model_validate({**common, "text": _TEXT}),
        "text + html": EmailJob.model_validate({**common, "text": _TEXT, "html": _HTML}),
        "text + html + 20 KiB attachment": EmailJob.model_validate(
            {
                **common,
                "text": _TEXT,
                "html": _HTML,
                "attachments": [
                    {
                        "filename": "invoice-12345.pdf",
                        "content_type": "application/pdf",
                        "content_base64": base64.b64encode(attachment).decode(),
                    }
                ],
            }
        ),
    }


def with_email_message(job: EmailJob) -> bytes:
    """The same email with the modern API (``EmailMessage``, ``email.policy.SMTP``)."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = job.from_
    if job.to:
        message["To"] = ", ".join(job.to)
    if job.cc:
        message["Cc"] = ", ".join(job.cc)
    if job.reply_to:
        message["Reply-To"] = job.reply_to
    message["Subject"] = job.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id(job)
    message[JOB_ID_HEADER] = job.id
    for name, value in job.headers.items():
        message[name] = value
    if job.text is not None:
        message.set_content(job.text)
        if job.html is not None:
            message.add_alternative(job.html, subtype="html")
    elif job.html is not None:
        message.set_content(job.html, subtype="html")
    for attachment in job.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.content(), maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return message.as_bytes()


def _shape(raw: bytes) -> list[tuple[str, str | None, bytes | None]]:
    """What a reader sees: From/To/Subject, then each part's type, file name and body."""
    parsed: Message = email.message_from_bytes(raw)
    shape: list[tuple[str, str | None, bytes | None]] = [
        ("headers", f"{parsed['From']}|{parsed['To']}|{parsed['Subject']}", None)
    ]
    for part in parsed.walk():
        if part.is_multipart():
            shape.append((part.get_content_type(), None, None))
            continue
        body = part.get_payload(decode=True)
        if isinstance(body, bytes) and part.get_content_maintype() == "text":
            # set_content ends a text with a newline where the job had none
            body = body.replace(b"\r\n", b"\n").rstrip(b"\n")
        shape.append(
            (
                part.get_content_type(),
                part.get_filename(),
                body if isinstance(body, bytes) else None,
            )
        )
    return shape


def best_microseconds(builder: Builder, job: EmailJob, number: int, repeat: int) -> float:
    builder(job)  # warm caches (regexes, charsets) outside the timing
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            builder(job)
        best = min(best, (time.perf_counter() - started) / number)
    return best * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--number", type=int, default=2000, help="builds per round (2000)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best counts (5)")
    args = parser.parse_args(argv)
    if args.number < 1 or args.repeat < 1:
        parser.error("--number and --repeat must be at least 1")
    builders: dict[str, Builder] = {
        "build_message (email.mime)": build_message,
        "EmailMessage (modern API)": with_email_message,
    }
    print(f"Python {sys.version.split()[0]}; best of {args.repeat} x {args.number} builds\n")
    header = f"{'job':<34}{'bytes':>7}"
    for name in builders:
        header += f"{name:>30}"
    print(header + f"{'ratio':>8}")
    status = 0
    for label, job in sample_jobs().items():
        timings = [best_microseconds(b, job, args.number, args.repeat) for b in builders.values()]
        outputs = [builder(job) for builder in builders.values()]
        if _shape(outputs[0]) != _shape(outputs[1]):
            print(f"{label}: the two builders produce different emails", file=sys.stderr)
            status = 1
        line = f"{label:<34}{len(outputs[0]):>7}"
        for timing in timings:
            line += f"{timing:>26.0f} µs"
        print(line + f"{timings[1] / timings[0]:>7.1f}x")
    print("\nratio = EmailMessage time / build_message time; µs per message, one thread.")
    return status


if __name__ == "__main__":
    sys.exit(main())
