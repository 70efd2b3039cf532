"""What an HTTP outcome means for an event, the signature headers, and the messages built."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pika
import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook

from mailfleet.shared import names as job_headers
from mailfleet.shared import webhooks as hook_headers
from mailfleet.shared.events import EVENT_TYPE, Event, EventKind, event_id, utc_ms
from mailfleet.shared.job import Lane
from mailfleet.shared.webhooks import parse_webhooks
from mailfleet.worker.webhooks.delivery import (
    DEAD,
    RETRY,
    Attempt,
    Outcome,
    Step,
    classify_error,
    classify_status,
    next_step,
)
from mailfleet.worker.webhooks.messages import dead_properties, read_incoming, retry_properties
from mailfleet.worker.webhooks.signer import Signer

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"z" * 24).decode()
DELAYS = [5.0, 30.0, 120.0]
NOW = datetime(2026, 12, 2, 1, 20, tzinfo=UTC)


def _event(occurred: datetime = NOW) -> Event:
    kind = EventKind.DELIVERED
    return Event(
        event=kind,
        event_id=event_id("job-1", "a@example.org", 1, kind),
        job_id="job-1",
        recipient="a@example.org",
        lane=Lane.BULK,
        attempt=1,
        occurred_at=utc_ms(occurred),
        seq=1,
    )


def _properties(event: Event, **message_headers: object) -> pika.BasicProperties:
    return pika.BasicProperties(
        type=EVENT_TYPE, message_id=event.event_id, headers=dict(message_headers)
    )


class TestClassify:
    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            (200, Outcome.DELIVERED),
            (204, Outcome.DELIVERED),
            (299, Outcome.DELIVERED),
            (301, Outcome.FINAL),
            (400, Outcome.FINAL),
            (401, Outcome.FINAL),
            (404, Outcome.FINAL),
            (410, Outcome.FINAL),
            (408, Outcome.RETRY),
            (429, Outcome.RETRY),
            (500, Outcome.RETRY),
            (502, Outcome.RETRY),
            (503, Outcome.RETRY),
        ],
    )
    def test_status(self, status: int, outcome: Outcome) -> None:
        assert outcome == classify_status(status)

    @pytest.mark.parametrize(
        ("error", "outcome"),
        [
            (httpx.ConnectError("refused"), Outcome.RETRY),
            (httpx.ReadTimeout("slow"), Outcome.RETRY),
            (httpx.ConnectTimeout("slow"), Outcome.RETRY),
            (httpx.RemoteProtocolError("hung up"), Outcome.RETRY),
            (httpx.ReadError("reset"), Outcome.RETRY),
            (httpx.UnsupportedProtocol("ftp"), Outcome.FINAL),
            (httpx.LocalProtocolError("bad header"), Outcome.FINAL),
        ],
    )
    def test_errors(self, error: httpx.HTTPError, outcome: Outcome) -> None:
        assert outcome == classify_error(error)


class TestNextStep:
    def test_delivered_is_acked(self) -> None:
        assert Step("ack") == next_step(Outcome.DELIVERED, 1, 0.0, DELAYS, 86400)

    def test_final_is_dead_permanent_at_once(self) -> None:
        assert Step(DEAD, reason="permanent") == next_step(Outcome.FINAL, 1, 0.0, DELAYS, 86400)

    def test_tiers_in_order_then_the_last_repeats(self) -> None:
        delays = [next_step(Outcome.RETRY, n, 0.0, DELAYS, 86400).delay for n in range(1, 6)]
        assert [5.0, 30.0, 120.0, 120.0, 120.0] == delays

    def test_retries_while_the_next_attempt_is_within_the_max_age(self) -> None:
        assert Step(RETRY, delay=30.0) == next_step(Outcome.RETRY, 2, 3570.0, DELAYS, 3600)
        assert Step(DEAD, reason="exhausted") == next_step(Outcome.RETRY, 2, 3571.0, DELAYS, 3600)


class TestSigner:
    def test_headers_verify_with_each_secret(self) -> None:
        payload = _event().to_wire().decode()
        signer = Signer([SecretStr(SECRET), SecretStr(OTHER_SECRET)])
        headers = signer.headers("msg-1", payload)
        assert 2 == len(headers["webhook-signature"].split(" "))
        assert "msg-1" == headers["webhook-id"]
        for secret in (SECRET, OTHER_SECRET):
            assert json.loads(payload) == Webhook(secret).verify(payload, headers)

    def test_a_tampered_body_fails(self) -> None:
        headers = Signer([SecretStr(SECRET)]).headers("msg-1", '{"a": 1}')
        with pytest.raises(Exception, match="signature"):
            Webhook(SECRET).verify('{"a": 2}', headers)

    def test_repr_shows_no_secret(self) -> None:
        signer = Signer([SecretStr(SECRET)])
        assert SECRET.removeprefix("whsec_") not in repr(signer)
        assert "1 secret" in repr(signer)


class TestMessages:
    endpoint = parse_webhooks([{"url": "https://u:pw@h.example.com/x?t=1", "secret": SECRET}])[0]

    def test_first_try_comes_from_occurred_at(self) -> None:
        event = _event(NOW - timedelta(minutes=10))
        incoming = read_incoming(event.to_wire(), _properties(event), NOW)
        assert (None, 1, 600.0, event.event_id) == (
            incoming.problem,
            incoming.attempt,
            incoming.age(NOW),
            incoming.event_id,
        )

    def test_the_header_wins_over_occurred_at(self) -> None:
        event = _event(NOW - timedelta(days=3))
        properties = _properties(
            event,
            **{hook_headers.FIRST_TRY: utc_ms(NOW - timedelta(seconds=5)), hook_headers.ATTEMPT: 3},
        )
        incoming = read_incoming(event.to_wire(), properties, NOW)
        assert (3, 5.0) == (incoming.attempt, incoming.age(NOW))

    @pytest.mark.parametrize(
        ("body", "kind", "problem"),
        [
            (b"\xff", EVENT_TYPE, "not a JSON event"),
            (b"[1]", EVENT_TYPE, "not a JSON object"),
            (b'{"a": 1}', "mailfleet.email.v1", "unknown message type"),
        ],
    )
    def test_what_cannot_be_sent(self, body: bytes, kind: str, problem: str) -> None:
        incoming = read_incoming(body, pika.BasicProperties(type=kind, message_id="m"), NOW)
        assert incoming.problem is not None
        assert incoming.problem.startswith(problem)

    def test_no_event_id_is_a_problem(self) -> None:
        incoming = read_incoming(b'{"a": 1}', pika.BasicProperties(), NOW)
        assert "no event_id" == incoming.problem

    def test_retry_counts_up_and_keeps_the_first_try(self) -> None:
        event = _event()
        properties = _properties(event, **{"x-death": [{}], "x-custom": "kept"})
        incoming = read_incoming(event.to_wire(), properties, NOW)
        retry = retry_properties(properties, incoming, 30.0)
        assert {
            "x-custom": "kept",
            hook_headers.ATTEMPT: 2,
            hook_headers.FIRST_TRY: event.occurred_at,
            job_headers.TIER: "30s",
        } == retry.headers
        assert (event.event_id, EVENT_TYPE, 2) == (
            retry.message_id,
            retry.type,
            retry.delivery_mode,
        )

    def test_dead_names_endpoint_status_and_body_without_credentials(self) -> None:
        event = _event()
        properties = _properties(event, **{job_headers.TIER: "5s", hook_headers.ATTEMPT: 2})
        incoming = read_incoming(event.to_wire(), properties, NOW)
        attempt = Attempt(Outcome.FINAL, 400, "HTTP 400", "x" * 5000)
        dead = dead_properties(properties, incoming, self.endpoint, attempt, "permanent")
        assert dead.headers is not None
        assert job_headers.TIER not in dead.headers
        assert {
            job_headers.REASON: "permanent",
            job_headers.ERROR: f"{self.endpoint.name}: HTTP 400",
            job_headers.ATTEMPTS: 2,
            hook_headers.ENDPOINT: self.endpoint.name,
            hook_headers.ENDPOINT_URL: "https://h.example.com/x",
            hook_headers.STATUS: 400,
        }.items() <= dead.headers.items()
        assert 1024 == len(dead.headers[hook_headers.RESPONSE])
