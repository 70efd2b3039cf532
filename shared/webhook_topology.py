"""The webhook side of the broker topology, as plain data like ``shared/topology.py``::

    worker ──► {ns}.events (topic, key <event>.<lane>)
                 ├─► {ns}.webhooks.<endpoint>   one quorum queue per endpoint, bound with its
                 │                              kinds (<kind>.* or #), consumed by `webhooks`
                 └─► {ns}.events.all            only with MAILFLEET_EVENTS_QUEUE=on
    webhooks retry ──► {ns}.webhooks.delay (headers, tier) ──► {ns}.webhooks.delay.<tier>
                 (TTL) ──► {ns}.webhooks (direct, key endpoint.<name>) ──► that endpoint's queue
    webhooks final ──► {ns}.webhooks (key dead) ──► {ns}.events.dead

An endpoint's queue also dead-letters there (key ``dead``) once a message exceeds
``MAILFLEET_DELIVERY_LIMIT`` redeliveries, so an event that kills its consumer is parked,
not retried forever.
"""

from __future__ import annotations

from mailfleet.shared.events import EventKind
from mailfleet.shared.names import Names
from mailfleet.shared.settings import Settings
from mailfleet.shared.topology import (
    BindingSpec,
    ExchangeSpec,
    QueueSpec,
    Topology,
    delay_tiers,
    quorum_arguments,
)
from mailfleet.shared.webhooks import WebhookEndpoint, WebhookNames

# Every key an endpoint's queue can be bound with: what it is not bound with now is unbound
# at start-up, so narrowing an endpoint's "events" takes effect.
POSSIBLE_KEYS = ("#", *(f"{kind.value}.*" for kind in EventKind))


def build_webhook_topology(
    names: Names,
    endpoints: list[WebhookEndpoint],
    retry_delays: list[float],
    delivery_limit: int,
    *,
    events_queue: bool = False,
) -> Topology:
    """Exchanges and queues of the events and webhooks; declaring them twice changes nothing."""
    hooks = WebhookNames(names)
    everything = (
        (
            QueueSpec(
                names.events_queue,
                {"x-queue-type": "quorum"},
                (BindingSpec(names.events_exchange, "#"),),
            ),
        )
        if events_queue
        else ()
    )
    if not endpoints:  # no webhooks: only what the workers publish to
        return Topology((ExchangeSpec(names.events_exchange, "topic"),), everything)
    exchanges = (
        ExchangeSpec(names.events_exchange, "topic"),
        ExchangeSpec(hooks.exchange, "direct"),
        ExchangeSpec(hooks.delay_exchange, "headers"),
    )
    endpoint_queues = tuple(
        QueueSpec(
            hooks.queue(endpoint.name),
            quorum_arguments(
                hooks.exchange,
                **{
                    "x-dead-letter-routing-key": hooks.dead_key,
                    "x-delivery-limit": delivery_limit,
                },
            ),
            (
                *(BindingSpec(names.events_exchange, key) for key in endpoint.binding_keys),
                BindingSpec(hooks.exchange, hooks.routing_key(endpoint.name)),
            ),
        )
        for endpoint in endpoints
    )
    tiers = delay_tiers(hooks.delay_queue, hooks.delay_exchange, hooks.exchange, retry_delays)
    dead = QueueSpec(
        names.events_dead_queue,
        {"x-queue-type": "quorum"},
        (BindingSpec(hooks.exchange, hooks.dead_key),),
    )
    return Topology(exchanges=exchanges, queues=(*endpoint_queues, *tiers, dead, *everything))


def webhook_topology_of(settings: Settings) -> Topology:
    return build_webhook_topology(
        settings.names,
        settings.webhooks,
        settings.webhook_retry_delays,
        settings.delivery_limit,
        events_queue=settings.events_queue,
    )


def stale_bindings(names: Names, endpoints: list[WebhookEndpoint]) -> list[tuple[str, str]]:
    """``(queue, key)`` bindings of ``{ns}.events`` that the endpoints' kinds no longer want,
    to unbind (unbinding one that does not exist is harmless)."""
    hooks = WebhookNames(names)
    return [
        (hooks.queue(endpoint.name), key)
        for endpoint in endpoints
        for key in POSSIBLE_KEYS
        if key not in endpoint.binding_keys
    ]
