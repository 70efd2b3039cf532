"""The worker's composition root: every collaborator built from the settings and connected,
in one place, so that ``runner.py`` only runs threads and tests can build the same parts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import redis

from mailfleet.shared.complaint_guard import ComplaintGuard
from mailfleet.shared.recipients import RecipientFilter
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.reports import ReportKeys
from mailfleet.shared.sent_ledger import SentLedger
from mailfleet.shared.sent_refs import SentRefs
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList
from mailfleet.shared.templates.store import TemplateStore
from mailfleet.shared.topology import Topology, build_topology
from mailfleet.worker.batch_commit import BatchCommit, HeldAcks, WriteAheadLedger
from mailfleet.worker.broker.consumer import LaneConsumer
from mailfleet.worker.broker.event_publisher import EventPublisher
from mailfleet.worker.broker.republisher import Republisher
from mailfleet.worker.campaign_counts import CampaignCounters
from mailfleet.worker.dispatch import Dispatcher
from mailfleet.worker.envelopes import Envelopes
from mailfleet.worker.events import EventRecorder
from mailfleet.worker.inbox import Inbox
from mailfleet.worker.inflight import InFlightMarks
from mailfleet.worker.limits.adaptive import AdaptiveLimits
from mailfleet.worker.limits.admission import Admission
from mailfleet.worker.limits.buckets import RateLimiter
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.mime.finish import Finisher, build_finisher
from mailfleet.worker.paused import PausedSenders
from mailfleet.worker.personalise import Personaliser
from mailfleet.worker.pipeline import Pipeline
from mailfleet.worker.redis_gate import RedisGate
from mailfleet.worker.retry import RetryPolicy
from mailfleet.worker.send_time import SendTime
from mailfleet.worker.settle import Settler
from mailfleet.worker.smtp.relay_pool import RelayPool
from mailfleet.worker.smtp.transport import SmtpTransport, Transport
from mailfleet.worker.tally import Tally

TransportFactory = Callable[[], Transport]
_MAX_BATCH = 64


@dataclass(frozen=True)
class Parts:
    """What one worker process is made of; shared by its threads unless said otherwise."""

    settings: Settings
    stopping: threading.Event
    inbox: Inbox
    consumer: LaneConsumer
    republisher: Republisher
    redis: redis.Redis
    metrics: WorkerMetrics
    gate: RedisGate
    relays: RelayPool
    suppression: SuppressionList
    adaptive: AdaptiveLimits
    recipients: RecipientFilter
    dispatcher: Dispatcher
    topology: Topology
    transports: TransportFactory  # one transport per sender thread
    finisher: Finisher  # List-Unsubscribe and DKIM, the last steps of building a message
    batch: int  # deliveries a sender takes at once
    personaliser: Personaliser  # its cache of compiled templates serves every sender
    paused: PausedSenders  # the complaint guard's pauses, as last read


def build(settings: Settings, transports: TransportFactory | None = None) -> Parts:
    stopping = threading.Event()
    inbox = Inbox()
    consumer = LaneConsumer(settings, inbox.put)
    client = make_redis(settings)
    metrics = WorkerMetrics()
    finisher = build_finisher(settings, metrics)  # first: a bad key stops start-up
    gate = RedisGate(stopping)
    suppression = SuppressionList(client, settings.names)
    limiter = RateLimiter(client, settings)
    admission = Admission(limiter, gate, inbox, metrics, stopping) if limiter.configured else None
    relays = RelayPool(settings.smtp_relays, settings.breaker_failures, settings.breaker_cooldown)
    ledger = SentLedger(client, settings.names, settings.sent_ttl)
    return Parts(
        settings=settings,
        stopping=stopping,
        inbox=inbox,
        consumer=consumer,
        republisher=Republisher(settings),
        redis=client,
        metrics=metrics,
        gate=gate,
        relays=relays,
        suppression=suppression,
        adaptive=AdaptiveLimits(client, settings.names, set(settings.domain_limits)),
        recipients=RecipientFilter(client, ledger, suppression),
        dispatcher=Dispatcher(relays, admission, consumer.is_current),
        topology=build_topology(
            settings.names, settings.retry_delays, settings.delivery_limit, settings.quorum_size
        ),
        transports=transports or (lambda: smtp_transport(settings)),
        finisher=finisher,
        # Enough for one Redis round trip, one events confirm and one ack wake-up to pay for
        # many emails: each batch costs about 2 ms of CPU in fixed round trips and thread
        # hand-offs (worker CPU 0.63 ms an email at 8, 0.42 ms at 64).
        batch=max(1, min(_MAX_BATCH, settings.prefetch // settings.concurrency)),
        personaliser=Personaliser(
            TemplateStore(client, settings.names), settings.max_rendered_bytes, gate
        ),
        paused=PausedSenders(),
    )


def smtp_transport(settings: Settings) -> Transport:
    return SmtpTransport(
        settings.smtp_timeout,
        ca_file=settings.smtp_ca_file,
        username=settings.smtp_username,
        password=settings.smtp_password,
    )


def sender(parts: Parts) -> tuple[Pipeline, BatchCommit]:
    """One sender thread's pipeline, with its own ledger connection and held acks."""
    settings = parts.settings
    events = EventRecorder(enabled=settings.events)
    commit = BatchCommit(
        WriteAheadLedger(parts.redis, settings.names, settings.sent_ttl),
        HeldAcks(parts.consumer),
        events,
        EventPublisher(settings, pushback=parts.republisher.pushback) if settings.events else None,
        parts.stopping,
    )
    refs = SentRefs(parts.redis, settings.names, settings.sent_ttl) if settings.verp else None
    keys = ReportKeys(settings.names, settings.report_days)
    commit.tally = tally = Tally(commit.ledger, keys, parts.metrics, refs)
    commit.campaigns = campaigns = CampaignCounters(
        commit.ledger, settings.names, settings.sent_ttl
    )
    settler = Settler(
        settings=settings,
        tally=tally,
        acker=commit.acks,
        publisher=parts.republisher,
        ledger=commit.ledger,
        suppression=parts.suppression,
        metrics=parts.metrics,
        adaptive=parts.adaptive,
        events=events,
        counters=campaigns,
    )
    pipeline = Pipeline(
        limits=settings.job_limits,
        retry=RetryPolicy.from_settings(settings),
        recipients=parts.recipients,
        dispatcher=parts.dispatcher,
        settler=settler,
        gate=parts.gate,
        metrics=parts.metrics,
        finisher=parts.finisher,
        send_time=SendTime(settings.lane_windows),
        personaliser=parts.personaliser,
        envelopes=Envelopes(settings.verp),
        guard=ComplaintGuard(
            parts.redis, keys, settings.complaint_pause, settings.complaint_min_sends
        ),
        paused=parts.paused,
        pushback=parts.republisher.pushback,
        inflight=InFlightMarks(parts.redis, settings.names, commit.ledger),
        ambiguity=settings.ambiguous,
    )
    return pipeline, commit
