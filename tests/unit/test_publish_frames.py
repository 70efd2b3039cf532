"""The hand-packed publish frames are byte for byte what pika would write."""

from __future__ import annotations

import pika
import pytest
from pika import frame, spec

from mailfleet.worker.broker.publish_frames import publish_frames


def pika_frames(channel: int, exchange: str, key: str, message_id: str, body: bytes, max_body: int):
    properties = pika.BasicProperties(
        content_type="application/json",
        type="mailfleet.event.v1",
        message_id=message_id,
        delivery_mode=2,
    )
    frames = [
        frame.Method(channel, spec.Basic.Publish(exchange=exchange, routing_key=key)).marshal(),
        frame.Header(channel, len(body), properties).marshal(),
    ]
    frames += [
        frame.Body(channel, body[start : start + max_body]).marshal()
        for start in range(0, len(body), max_body)
    ]
    return frames


@pytest.mark.parametrize(
    ("channel", "body", "max_body"),
    [
        (1, b'{"event":"sent"}', 131_064),
        (7, b"x" * 300, 100),  # split over three body frames, the last one short
        (65_535, "é".encode() * 50, 131_064),
        (2, b"", 131_064),  # an empty body has no body frame
    ],
)
def test_frames_match_pika(channel: int, body: bytes, max_body: int) -> None:
    ours = publish_frames(
        channel,
        "ns.events",
        "sent.bulk",
        content_type="application/json",
        message_type="mailfleet.event.v1",
        message_id="8d1c0b5e-2f0a-5b57-9f3e-6c1d2a4b7e90",
        body=body,
        max_body_frame=max_body,
    )
    assert (
        pika_frames(
            channel,
            "ns.events",
            "sent.bulk",
            "8d1c0b5e-2f0a-5b57-9f3e-6c1d2a4b7e90",
            body,
            max_body,
        )
        == ours
    )


def test_a_routing_key_over_255_bytes_is_refused_with_its_start() -> None:
    with pytest.raises(ValueError, match="over 255 bytes: 'kkkk"):
        publish_frames(
            1,
            "ex",
            "k" * 256,
            content_type="application/json",
            message_type="t",
            message_id="m",
            body=b"{}",
            max_body_frame=100,
        )
