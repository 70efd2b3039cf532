"""A worker whose MAILFLEET_METRICS_PORT is taken stops with one line naming the setting and
the port, before it takes any message (a second `mailfleet worker` on the same host)."""

from __future__ import annotations

import socket

import pytest
from kombu.connection import Connection

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.job import Lane
from mailfleet.shared.settings import Settings
from tests.integration.helpers import WorkerProcess, make_job


@pytest.mark.parametrize("args", [(), ("--processes", "2")], ids=["one-process", "group"])
def test_a_busy_metrics_port_is_a_one_line_error_and_nothing_is_consumed(
    settings: Settings,
    producer: Producer,
    smtp_server: SmtpSink,
    amqp_connection: Connection,
    args: tuple[str, ...],
) -> None:
    producer.publish(make_job(1))
    with socket.socket() as holder:  # what the first worker on the host would hold
        holder.bind(("0.0.0.0", 0))  # noqa: S104 (where the worker binds its port)
        holder.listen()
        port = int(holder.getsockname()[1])
        worker = WorkerProcess(settings.model_copy(update={"metrics_port": port}), *args)
        try:
            assert 1 == worker.wait(timeout=30), worker.log()
            lines = worker.log().strip().splitlines()
        finally:
            worker.stop()

    expected = f"mailfleet worker: metrics port {port} is already in use (MAILFLEET_METRICS_PORT):"
    assert 1 == len(lines), lines
    assert lines[0].startswith(expected), lines
    assert 0 == smtp_server.count
    channel = amqp_connection.channel()
    try:  # never handed to the worker: not even delivered and requeued
        message = channel.basic_get(settings.names.lane_queue(Lane.TRANSACTIONAL))
        assert message is not None
        assert not message.delivery_info["redelivered"]
    finally:
        channel.close()
