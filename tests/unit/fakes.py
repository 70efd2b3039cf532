"""Small hand-written fakes of the worker's seams, for unit tests of its pure logic.

In the spirit of httpx's ``MockTransport``: each fake records what it was asked, in order,
and answers as scripted (a value, an exception to raise, or a function of the arguments).
Fakes that take a ``journal`` also append one line per call to it, so a test can check the
order of calls made to different collaborators (a republish before its ack, say).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pika
import redis

from mailfleet.shared.job import CONTENT_TYPE, JOB_TYPE, EmailJob, Lane
from mailfleet.shared.recipients import RecipientFilter, Recipients
from mailfleet.shared.relays import Relay
from mailfleet.shared.round_trip import ScriptCall
from mailfleet.shared.settings import Settings
from mailfleet.worker.inbox import Delivery
from mailfleet.worker.limits.bucket import Bucket
from mailfleet.worker.limits.buckets import RateLimiter, TokenGrant
from mailfleet.worker.smtp.replies import SmtpReply
from mailfleet.worker.smtp.transport import Envelope, SendResult

Journal = list[str]


# Building jobs and deliveries ------------------------------------------------------------


def make_job(number: int = 1, **fields: Any) -> EmailJob:
    """A valid job ``job-<number>`` to one recipient, with ``fields`` (wire names) applied."""
    data: dict[str, Any] = {
        "id": f"job-{number}",
        "from": "Sender <sender@example.com>",
        "to": [f"rcpt{number}@example.org"],
        "subject": f"Test {number}",
        "text": f"Body of test email {number}.",
    }
    data.update(fields)
    return EmailJob.model_validate(data)


def make_delivery(
    job: EmailJob | bytes,
    *,
    tag: int = 1,
    lane: Lane | None = None,
    generation: int = 1,
    headers: Mapping[str, Any] | None = None,
    timestamp: int | None = None,
    message_type: str | None = JOB_TYPE,
) -> Delivery:
    """``job`` as the consumer hands it over: its wire body and the producer's properties.
    A ``bytes`` body stands for a message that may not even be a job."""
    if isinstance(job, EmailJob):
        body, message_id, job_lane = job.to_wire(), job.id, job.lane
    else:
        body, message_id, job_lane = job, "not-a-job", Lane.BULK
    properties = pika.BasicProperties(
        content_type=CONTENT_TYPE,
        type=message_type,
        message_id=message_id,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        delivery_mode=2,
        headers=dict(headers or {}),
    )
    return Delivery(lane or job_lane, tag, generation, body, properties)


# Settler's seams: Acker, Publisher, Ledger, Suppressor, Adaptive ----------------------------


class FakeAcker:
    """Records acks and requeues (settle.Acker)."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.acked: list[Delivery] = []
        self.requeued: list[Delivery] = []
        self._journal = journal if journal is not None else []

    def ack(self, delivery: Delivery) -> None:
        self._journal.append(f"ack {delivery.delivery_tag}")
        self.acked.append(delivery)

    def requeue(self, delivery: Delivery) -> None:
        self._journal.append(f"requeue {delivery.delivery_tag}")
        self.requeued.append(delivery)


@dataclass(frozen=True)
class Published:
    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})


class FakePublisher:
    """Records publishes (settle.Publisher); raises ``fail`` instead, when it is set."""

    def __init__(self, journal: Journal | None = None, fail: Exception | None = None) -> None:
        self.published: list[Published] = []
        self.fail = fail
        self._journal = journal if journal is not None else []

    def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties
    ) -> None:
        if self.fail is not None:
            self._journal.append(f"publish failed {exchange}")
            raise self.fail
        self._journal.append(f"publish {exchange}")
        self.published.append(Published(exchange, routing_key, body, properties))

    def to(self, exchange: str) -> list[Published]:
        return [message for message in self.published if message.exchange == exchange]


class FakeLedger:
    """Records sent marks (settle.Ledger); raises ``fail`` instead, when it is set."""

    def __init__(self, journal: Journal | None = None, fail: Exception | None = None) -> None:
        self.marks: list[tuple[str, list[str]]] = []
        self.fail = fail
        self._journal = journal if journal is not None else []

    def mark(self, job_id: str, recipients: list[str]) -> None:
        self._journal.append(f"mark {job_id}")
        if self.fail is not None:
            raise self.fail
        self.marks.append((job_id, list(recipients)))


class FakeSuppressor:
    """Records suppressed addresses (settle.Suppressor); raises ``fail`` when it is set."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.added: list[tuple[str, str]] = []
        self.fail = fail

    def add(self, address: str, reason: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.added.append((address, reason))


class FakeAdaptive:
    """Records what the adaptive limits were told (settle.Adaptive)."""

    def __init__(self) -> None:
        self.throttled_domains: list[str] = []
        self.succeeded_domains: list[str] = []

    def throttled(self, domain: str) -> None:
        self.throttled_domains.append(domain)

    def succeeded(self, domain: str) -> None:
        self.succeeded_domains.append(domain)


# SMTP: the Transport protocol -------------------------------------------------------------

# How a FakeTransport answers one send: a result, an exception to raise, or a function of
# the envelope and relay.
Reply = SendResult | BaseException | Callable[[Envelope, Relay], SendResult]


def accept() -> Callable[[Envelope, Relay], SendResult]:
    """The relay accepts every recipient."""
    return lambda envelope, relay: SendResult(relay.name, accepted=list(envelope.recipients))


def refuse_all(
    reply: SmtpReply, *, relay_failed: bool = False
) -> Callable[[Envelope, Relay], SendResult]:
    """The relay refuses every recipient with ``reply`` (or fails, with ``relay_failed``)."""

    def answer(envelope: Envelope, relay: Relay) -> SendResult:
        refused = dict.fromkeys(envelope.recipients, reply)
        return SendResult(relay.name, refused=refused, relay_failed=relay_failed)

    return answer


def refuse_some(refused: Mapping[str, SmtpReply]) -> Callable[[Envelope, Relay], SendResult]:
    """The relay refuses ``refused`` (those of them in the envelope) and accepts the rest."""

    def answer(envelope: Envelope, relay: Relay) -> SendResult:
        mine = {rcpt: reply for rcpt, reply in refused.items() if rcpt in envelope.recipients}
        accepted = [rcpt for rcpt in envelope.recipients if rcpt not in mine]
        return SendResult(relay.name, accepted=accepted, refused=mine)

    return answer


@dataclass(frozen=True)
class Sent:
    envelope: Envelope
    relay: Relay
    then: Envelope | None


class FakeTransport:
    """A Transport that answers each send from its script, in order (then accepts all), and
    records every send. With ``pipelining`` it chains: a send with ``then`` opens that
    envelope's transaction on its relay, as SmtpTransport does."""

    def __init__(self, *script: Reply, pipelining: bool = False) -> None:
        self.script: deque[Reply] = deque(script)
        self.sends: list[Sent] = []
        self.pipelining = pipelining
        self.closed = False
        self._opened: list[tuple[Envelope, Relay]] = []

    def send(self, envelope: Envelope, relay: Relay, then: Envelope | None = None) -> SendResult:
        self.sends.append(Sent(envelope, relay, then))
        self._opened = [(env, on) for env, on in self._opened if on != relay]
        if then is not None and self.pipelining:
            self._opened.append((then, relay))
        reply: Reply = self.script.popleft() if self.script else accept()
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, SendResult):
            return reply
        return reply(envelope, relay)

    def opened(self, envelope: Envelope) -> Relay | None:
        return next((relay for env, relay in self._opened if env is envelope), None)

    def chains(self, relay: Relay) -> bool:
        return self.pipelining

    def warm_up(self, relays: list[Relay]) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    @property
    def recipients_sent(self) -> list[list[str]]:
        return [list(sent.envelope.recipients) for sent in self.sends]


# Rate limits: the limiter's Redis calls, scripted ----------------------------------------


def unreachable_redis() -> redis.Redis:
    """A client for real objects that register scripts at construction; any command it is
    actually asked to send fails at once (nothing listens on port 9)."""
    return redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.05)


# A scripted answer of the limiter: a grant, an exception to raise, or a function to call.
Grant = TokenGrant | BaseException | Callable[[], TokenGrant]


def _grant(item: Grant) -> TokenGrant:
    if isinstance(item, BaseException):
        raise item
    if isinstance(item, TokenGrant):
        return item
    return item()


class FakeLimiter(RateLimiter):
    """The real RateLimiter (its buckets from ``settings``, its script calls and answers)
    with its Redis calls, ``try_take`` and ``try_take_many``, answered from scripts
    (granted once a script runs out) and recorded."""

    def __init__(
        self,
        settings: Settings,
        *grants: Grant,
        many: Iterable[list[TokenGrant] | BaseException] = (),
    ) -> None:
        super().__init__(unreachable_redis(), settings)
        self.grants: deque[Grant] = deque(grants)
        self.many: deque[list[TokenGrant] | BaseException] = deque(many)
        self.takes: list[tuple[list[Bucket], Lane]] = []
        self.takes_many: list[list[tuple[list[Bucket], Lane]]] = []

    def try_take(self, buckets: list[Bucket], lane: Lane = Lane.TRANSACTIONAL) -> TokenGrant:
        self.takes.append((buckets, lane))
        return _grant(self.grants.popleft() if self.grants else TokenGrant(True, 0.0))

    def try_take_many(self, requests: Sequence[tuple[list[Bucket], Lane]]) -> list[TokenGrant]:
        self.takes_many.append(list(requests))
        answer = self.many.popleft() if self.many else [TokenGrant(True, 0.0) for _ in requests]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def raw_grant(granted: bool, wait_us: int = 0, blocking: int = 0, at_us: int = 1) -> list[int]:
    """A take script's raw answer, as Redis returns it: ``blocking`` is the 1-based index
    of the bucket that needs the longest wait, 0 for none."""
    return [int(granted), wait_us, blocking, at_us]


# Recipients: the sent ledger and the suppression list, read for a batch -------------------


@dataclass(frozen=True)
class Read:
    """One ``split_with`` call: the batch's job ids, what each asked for, the other calls."""

    job_ids: list[str]
    per_job: list[list[str]]
    calls: list[ScriptCall]


@dataclass
class FakeRecipients(RecipientFilter):
    """A RecipientFilter whose ledger and suppression list are in memory (``sent`` by job
    id, ``suppressed`` lower-cased, as recipients.lua reads them); the answers to the calls
    run along with the read (the rate-limit leases) come from ``lease_answers`` in order,
    granted once it runs out. ``fail`` is raised instead of reading."""

    sent: dict[str, set[str]] = field(default_factory=dict)
    suppressed: set[str] = field(default_factory=set)
    lease_answers: list[list[int]] = field(default_factory=list)
    fail: Exception | None = None
    reads: list[Read] = field(default_factory=list)

    def split_with(
        self,
        batch: Sequence[tuple[Delivery, EmailJob]],
        per_job: Sequence[list[str]],
        others: Sequence[ScriptCall],
    ) -> tuple[list[Recipients], list[Any]]:
        self.reads.append(Read([job.id for _, job in batch], list(per_job), list(others)))
        if self.fail is not None:
            raise self.fail
        split = []
        for (_, job), recipients in zip(batch, per_job, strict=True):
            sent = self.sent.get(job.id, set())
            already = [rcpt for rcpt in recipients if rcpt in sent]
            left = [rcpt for rcpt in recipients if rcpt not in sent]
            suppressed = [rcpt for rcpt in left if rcpt.lower() in self.suppressed]
            to_send = [rcpt for rcpt in left if rcpt.lower() not in self.suppressed]
            split.append(Recipients(to_send, already, suppressed))
        answers = [
            self.lease_answers.pop(0) if self.lease_answers else raw_grant(True) for _ in others
        ]
        return split, answers


# The broker: a pika connection and channel, for the consumer's settles -------------------


class FakeChannel:
    """Records the settle frames a BlockingChannel would send, as (method, tag, flag):
    ``("ack", tag, multiple)`` and ``("nack", tag, requeue)``."""

    def __init__(self) -> None:
        self.is_open = True
        self.frames: list[tuple[str, int, bool]] = []

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        self.frames.append(("ack", delivery_tag, multiple))

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        assert not multiple, "the consumer nacks one tag at a time"
        self.frames.append(("nack", delivery_tag, requeue))


class FakeConnection:
    """Holds the callbacks other threads hand to pika's thread, to run when the test says."""

    def __init__(self) -> None:
        self.is_open = True
        self.callbacks: list[Callable[[], None]] = []

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)

    def run_callbacks(self) -> int:
        """Run what is pending, as pika's I/O loop would; how many ran."""
        pending, self.callbacks = self.callbacks, []
        for callback in pending:
            callback()
        return len(pending)
