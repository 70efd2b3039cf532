"""``MAILFLEET_WEBHOOKS`` and the other webhook settings, and the topology built from them."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from mailfleet.shared.errors import ConfigError
from mailfleet.shared.names import Names
from mailfleet.shared.settings import load_settings
from mailfleet.shared.webhook_topology import (
    POSSIBLE_KEYS,
    build_webhook_topology,
    stale_bindings,
)
from mailfleet.shared.webhooks import WebhookEndpoint, WebhookNames, derived_name, parse_webhooks

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"z" * 24).decode()
URL = "https://hooks.example.com/mail"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("MAILFLEET_"):
            monkeypatch.delenv(name)


def _error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    return str(caught.value)


def _hooks(*endpoints: dict[str, Any]) -> str:
    return json.dumps(list(endpoints))


class TestDefaults:
    def test_defaults(self) -> None:
        settings = load_settings()
        assert (
            [],
            10.0,
            86400.0,
            [5.0, 30.0, 120.0, 600.0, 3600.0],
            4,
            False,
        ) == (
            settings.webhooks,
            settings.webhook_timeout,
            settings.webhook_max_age,
            settings.webhook_retry_delays,
            settings.webhook_concurrency,
            settings.events_queue,
        )

    def test_durations_and_switch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MAILFLEET_WEBHOOK_MAX_AGE", "2h")
        monkeypatch.setenv("MAILFLEET_WEBHOOK_RETRY_DELAYS", "1s,500ms")
        monkeypatch.setenv("MAILFLEET_EVENTS_QUEUE", "on")
        settings = load_settings()
        assert (7200.0, [1.0, 0.5], True) == (
            settings.webhook_max_age,
            settings.webhook_retry_delays,
            settings.events_queue,
        )


class TestEndpoints:
    def test_one_endpoint(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(
            "MAILFLEET_WEBHOOKS", _hooks({"url": URL, "events": ["delivered"], "secret": SECRET})
        )
        [endpoint] = load_settings().webhooks
        assert (URL, ("delivered",), [SECRET], ["delivered.*"]) == (
            endpoint.url,
            endpoint.events,
            [secret.get_secret_value() for secret in endpoint.secrets],
            endpoint.binding_keys,
        )

    def test_star_and_default_mean_every_event(self) -> None:
        star, default = parse_webhooks(
            [
                {"url": URL, "events": ["bounced", "*"], "secret": SECRET},
                {"url": URL + "/2", "secret": SECRET},
            ]
        )
        assert (["#"], ["#"]) == (star.binding_keys, default.binding_keys)

    def test_two_secrets_for_rotation(self) -> None:
        [endpoint] = parse_webhooks([{"url": URL, "secret": [SECRET, OTHER_SECRET]}])
        assert 2 == len(endpoint.secrets)

    def test_name_is_derived_stable_and_per_url(self) -> None:
        first = derived_name(URL)
        assert first == derived_name(URL)
        assert first.startswith("hooks-example-com-")
        assert first != derived_name(URL + "?v=2")

    def test_a_given_name_wins(self) -> None:
        [endpoint] = parse_webhooks([{"url": URL, "secret": SECRET, "name": "crm"}])
        assert "crm" == endpoint.name

    def test_empty_means_none(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MAILFLEET_WEBHOOKS", "  ")
        assert [] == load_settings().webhooks

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("{not json", "MAILFLEET_WEBHOOKS: not valid JSON"),
            ('{"url": "x"}', "MAILFLEET_WEBHOOKS: expected a JSON list"),
            (_hooks({"secret": SECRET}), "MAILFLEET_WEBHOOKS: endpoint 1: url: Field required"),
            (
                _hooks({"url": "ftp://example.com", "secret": SECRET}),
                "MAILFLEET_WEBHOOKS: endpoint 1: url: must be an http:// or https:// URL",
            ),
            (
                _hooks({"url": URL, "secret": SECRET}, {"url": URL, "secret": "whsec_short"}),
                "MAILFLEET_WEBHOOKS: endpoint 2: secret: is not a Standard Webhooks secret",
            ),
            (
                _hooks({"url": URL, "secret": SECRET, "events": ["delivred"]}),
                "MAILFLEET_WEBHOOKS: endpoint 1: events: 'delivred' is not an event kind",
            ),
            (
                _hooks({"url": URL, "secret": SECRET, "events": []}),
                "MAILFLEET_WEBHOOKS: endpoint 1: events: name at least one event kind",
            ),
            (
                _hooks({"url": URL, "secret": SECRET, "name": "Not A Name"}),
                "MAILFLEET_WEBHOOKS: endpoint 1: name: must be",
            ),
            (
                _hooks({"url": URL, "secret": SECRET}, {"url": URL, "secret": OTHER_SECRET}),
                "MAILFLEET_WEBHOOKS: two endpoints are named",
            ),
            ("[]", None),
        ],
    )
    def test_bad_input_is_one_line_naming_the_setting(
        self, monkeypatch: pytest.MonkeyPatch, value: str, expected: str | None
    ) -> None:
        if expected is None:
            monkeypatch.setenv("MAILFLEET_WEBHOOKS", value)
            load_settings()
            return
        message = _error(monkeypatch, MAILFLEET_WEBHOOKS=value)
        assert message.startswith(expected), message
        assert "\n" not in message

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("MAILFLEET_WEBHOOK_TIMEOUT", "soon"),
            ("MAILFLEET_WEBHOOK_MAX_AGE", "0s"),
            ("MAILFLEET_WEBHOOK_RETRY_DELAYS", "5s,later"),
            ("MAILFLEET_WEBHOOK_CONCURRENCY", "0"),
            ("MAILFLEET_EVENTS_QUEUE", "perhaps"),
        ],
    )
    def test_bad_other_settings_are_named(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
    ) -> None:
        assert _error(monkeypatch, **{variable: value}).startswith(f"{variable}: ")


class TestSecretsStaySecret:
    def test_not_in_repr_of_endpoint_or_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        url = "https://user:url-password-Qx5@hooks.example.com/mail?token=tok-Zz9"
        monkeypatch.setenv(
            "MAILFLEET_WEBHOOKS", _hooks({"url": url, "secret": [SECRET, OTHER_SECRET]})
        )
        settings = load_settings()
        shown = " ".join([repr(settings), str(settings), repr(settings.webhooks[0])])
        for secret in (SECRET, OTHER_SECRET, SECRET.removeprefix("whsec_"), "url-password-Qx5"):
            assert secret not in shown
        assert "tok-Zz9" not in settings.webhooks[0].safe_url
        assert "url-password-Qx5" not in settings.webhooks[0].safe_url

    def test_not_in_errors(self, monkeypatch: pytest.MonkeyPatch) -> None:
        near_miss = "whsec_" + base64.b64encode(b"s" * 8).decode()  # too short a key
        message = _error(
            monkeypatch,
            MAILFLEET_WEBHOOKS=_hooks({"url": URL, "secret": [SECRET, near_miss], "extra": 1}),
        )
        assert SECRET not in message
        assert near_miss not in message
        assert near_miss.removeprefix("whsec_") not in message


class TestTopology:
    names = Names("ns")
    endpoints = parse_webhooks(
        [
            {"url": URL, "events": ["delivered", "bounced"], "secret": SECRET, "name": "a"},
            {"url": URL + "/b", "secret": SECRET, "name": "b"},
        ]
    )

    def _queues(self, **kwargs: Any) -> dict[str, Any]:
        topology = build_webhook_topology(self.names, self.endpoints, [5.0, 30.0], 20, **kwargs)
        return {queue.name: queue for queue in topology.queues}

    def test_a_queue_per_endpoint_bound_to_its_kinds(self) -> None:
        queues = self._queues()
        bindings = {
            name: sorted(
                (b.exchange, b.routing_key) for b in queues[f"ns.webhooks.{name}"].bindings
            )
            for name in ("a", "b")
        }
        assert {
            "a": [
                ("ns.events", "bounced.*"),
                ("ns.events", "delivered.*"),
                ("ns.webhooks", "endpoint.a"),
            ],
            "b": [("ns.events", "#"), ("ns.webhooks", "endpoint.b")],
        } == bindings
        arguments = queues["ns.webhooks.a"].arguments
        assert ("quorum", "ns.webhooks", "dead", 20) == (
            arguments["x-queue-type"],
            arguments["x-dead-letter-exchange"],
            arguments["x-dead-letter-routing-key"],
            arguments["x-delivery-limit"],
        )

    def test_delay_tiers_dead_letter_back_through_the_direct_exchange(self) -> None:
        tier = self._queues()["ns.webhooks.delay.30s"]
        assert (30000, "ns.webhooks") == (
            tier.arguments["x-message-ttl"],
            tier.arguments["x-dead-letter-exchange"],
        )
        assert [("ns.webhooks.delay", {"x-match": "all-with-x", "x-mailfleet-tier": "30s"})] == [
            (b.exchange, b.arguments) for b in tier.bindings
        ]

    def test_events_dead_and_the_optional_queue_of_all(self) -> None:
        assert "ns.events.dead" in self._queues()
        assert "ns.events.all" not in self._queues()
        everything = self._queues(events_queue=True)["ns.events.all"]
        assert [("ns.events", "#")] == [(b.exchange, b.routing_key) for b in everything.bindings]

    def test_no_endpoints_only_the_exchange(self) -> None:
        topology = build_webhook_topology(self.names, [], [5.0], 20, events_queue=True)
        assert (["ns.events"], ["ns.events.all"]) == (
            [exchange.name for exchange in topology.exchanges],
            [queue.name for queue in topology.queues],
        )

    def test_stale_bindings_are_every_other_possible_key(self) -> None:
        stale = stale_bindings(self.names, self.endpoints)
        a = {key for queue, key in stale if queue == "ns.webhooks.a"}
        b = {key for queue, key in stale if queue == "ns.webhooks.b"}
        assert set(POSSIBLE_KEYS) - {"delivered.*", "bounced.*"} == a
        assert set(POSSIBLE_KEYS) - {"#"} == b

    def test_endpoint_of_queue(self) -> None:
        hooks = WebhookNames(self.names)
        assert ("a", None, None) == (
            hooks.endpoint_of_queue("ns.webhooks.a"),
            hooks.endpoint_of_queue("ns.webhooks.delay.5s"),
            hooks.endpoint_of_queue("ns.bulk"),
        )

    def test_endpoint_model_is_frozen(self) -> None:
        endpoint: WebhookEndpoint = self.endpoints[0]
        with pytest.raises(ValueError, match="frozen"):
            endpoint.name = "c"  # type: ignore[misc]
