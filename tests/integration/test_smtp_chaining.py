"""Chained SMTP transactions against a real relay (aiosmtpd, offering PIPELINING): each
email's end of message shares a write with the next email's MAIL, RCPT and DATA, and every
failure on the way leaves each email with its own true outcome, never an empty message."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.shared.relays import Relay
from mailfleet.worker.smtp.transport import Envelope, SmtpTransport

BODY = b"Subject: chained\r\n\r\nHello there.\r\n.leading dot stays\r\n"


def envelope(n: int, body: bytes = BODY) -> Envelope:
    return Envelope("sender@example.com", [f"user{n}@example.org"], body + f"#{n}\r\n".encode())


def refuse_rcpt(address: str) -> str | None:
    return "550 5.1.1 no such user" if address.startswith("nobody") else None


def refuse_data(recipients: list[str]) -> str | None:
    return "554 5.6.0 rejected" if any(r.startswith("user1@") for r in recipients) else None


@pytest.fixture
def relay_sink() -> Iterator[SmtpSink]:
    with SmtpSink(pipelining=True, rcpt_reply=refuse_rcpt, data_reply=refuse_data) as sink:
        yield sink


@pytest.fixture
def transport() -> Iterator[SmtpTransport]:
    transport = SmtpTransport(10.0)
    yield transport
    transport.close()


def bodies(sink: SmtpSink) -> list[bytes]:
    return [message.data for message in sink.messages]


def test_a_chain_delivers_every_email_once_with_its_own_body(
    relay_sink: SmtpSink, transport: SmtpTransport
) -> None:
    relay = Relay.parse(relay_sink.url)
    emails = [envelope(n) for n in (2, 3, 4, 5)]
    for current, following in zip(emails, [*emails[1:], None], strict=True):
        result = transport.send(current, relay, following)
        assert (current.recipients, {}) == (result.accepted, result.refused)
        assert (relay if following else None) == (
            transport.opened(following) if following else None
        )
    assert relay_sink.wait_for(4, timeout=5)
    assert [b"#2", b"#3", b"#4", b"#5"] == [
        body.strip().rsplit(b"\n", 1)[1] for body in bodies(relay_sink)
    ]
    assert all(
        b"\n..leading dot" not in body and b".leading dot" in body for body in bodies(relay_sink)
    )


def test_a_chained_email_whose_recipient_is_refused_gets_that_refusal(
    relay_sink: SmtpSink, transport: SmtpTransport
) -> None:
    relay = Relay.parse(relay_sink.url)
    refused = Envelope("sender@example.com", ["nobody@example.org"], BODY)
    transport.send(envelope(2), relay, refused)
    assert relay == transport.opened(refused)

    result = transport.send(refused, relay, envelope(3))
    assert [] == result.accepted
    assert 550 == result.refused["nobody@example.org"].code
    assert not result.relay_failed
    assert 0 == len(transport.send(envelope(3), relay).refused)
    assert relay_sink.wait_for(2, timeout=5)
    assert 2 == relay_sink.count


def test_a_refused_message_leaves_the_chained_email_to_be_sent_afresh(
    relay_sink: SmtpSink, transport: SmtpTransport
) -> None:
    relay = Relay.parse(relay_sink.url)
    rejected, following = envelope(1), envelope(2)
    result = transport.send(rejected, relay, following)
    assert 554 == result.refused["user1@example.org"].code
    assert transport.opened(following) is None  # the connection closed under it

    assert ["user2@example.org"] == transport.send(following, relay).accepted
    assert relay_sink.wait_for(1, timeout=5)
    assert 1 == relay_sink.count


def test_an_abandoned_chain_never_delivers_an_empty_or_partial_message(
    relay_sink: SmtpSink, transport: SmtpTransport
) -> None:
    relay = Relay.parse(relay_sink.url)
    abandoned = envelope(3)
    transport.send(envelope(2), relay, abandoned)
    # Another email goes first (the chained one went stale): the open transaction is
    # dropped with its connection, never ended with an empty message.
    assert ["user4@example.org"] == transport.send(envelope(4), relay).accepted
    transport.send(envelope(5), relay, envelope(6))
    transport.close()  # mid-transaction: no QUIT, which would be read as message text
    assert relay_sink.wait_for(3, timeout=5)
    recipients = sorted(r for message in relay_sink.messages for r in message.rcpt_tos)
    assert ["user2@example.org", "user4@example.org", "user5@example.org"] == recipients
